//! DHCP leases: read from dnsmasq's own lease file and kept in libvirt's
//! JSON status format (`BRIDGE.status`: what `net-dhcp-leases` and
//! libvirt's NSS module read), without a helper process per network.

use serde::{Deserialize, Serialize};

/// One lease, with libvirt's field names and order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iaid: Option<String>,
    #[serde(rename = "ip-address")]
    pub ip_address: String,
    #[serde(
        rename = "mac-address",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub mac_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hostname: Option<String>,
    #[serde(rename = "client-id", skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
    #[serde(
        rename = "server-duid",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub server_duid: Option<String>,
    /// Seconds since the epoch; 0 for an infinite lease.
    #[serde(rename = "expiry-time")]
    pub expiry_time: i64,
}

impl Lease {
    /// Still valid at `now` (seconds since the epoch).
    pub fn is_active(&self, now: i64) -> bool {
        self.expiry_time == 0 || self.expiry_time > now
    }
}

/// dnsmasq writes `*` for a field it does not know.
fn known(field: &str) -> Option<String> {
    (field != "*").then(|| field.to_owned())
}

/// The MAC inside a DUID-LLT (type 1) or DUID-LL (type 3) on Ethernet.
fn mac_of_duid(duid: &str) -> Option<String> {
    let bytes: Vec<u8> = duid
        .split(':')
        .map(|byte| u8::from_str_radix(byte, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let mac = match bytes.as_slice() {
        [0, 1, 0, 1, _, _, _, _, mac @ ..] | [0, 3, 0, 1, mac @ ..] if mac.len() == 6 => mac,
        _ => return None,
    };
    Some(
        mac.iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// Parses dnsmasq's lease file: IPv4 lines `expiry mac ip hostname client-id`,
/// then after a `duid SERVER-DUID` line, IPv6 lines
/// `expiry iaid ip hostname client-duid`. Lines it cannot read are skipped.
pub fn parse_dnsmasq(text: &str) -> Vec<Lease> {
    let mut server_duid = None;
    let mut leases = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["duid", duid] => server_duid = Some((*duid).to_owned()),
            [expiry, second, ip, hostname, client, ..] => {
                let Ok(expiry_time) = expiry.parse() else {
                    continue;
                };
                let lease = if server_duid.is_some() {
                    Lease {
                        iaid: Some((*second).to_owned()),
                        ip_address: (*ip).to_owned(),
                        mac_address: known(client).as_deref().and_then(mac_of_duid),
                        hostname: known(hostname),
                        client_id: known(client),
                        server_duid: server_duid.clone(),
                        expiry_time,
                    }
                } else {
                    Lease {
                        iaid: None,
                        ip_address: (*ip).to_owned(),
                        mac_address: Some((*second).to_owned()),
                        hostname: known(hostname),
                        client_id: known(client),
                        server_duid: None,
                        expiry_time,
                    }
                };
                leases.push(lease);
            }
            _ => {}
        }
    }
    leases
}

/// libvirt's status file text: a JSON array, four-space indented.
pub fn to_status_json(leases: &[Lease]) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Serializing plain strings and numbers cannot fail.
    let _ = leases.serialize(&mut serializer);
    let mut text = String::from_utf8(out).unwrap_or_default();
    text.push('\n');
    text
}

pub fn from_status_json(text: &str) -> Result<Vec<Lease>, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_families_of_dnsmasq_leases() {
        let file = "1900000000 52:54:00:a4:6f:93 192.168.122.199 fedora *\n\
                    0 52:54:00:aa:bb:cc 192.168.122.3 * 01:52:54:00:aa:bb:cc\n\
                    duid 00:01:00:01:2c:aa:bb:cc:52:54:00:00:00:01\n\
                    1900000000 1234 2001:db8::2 gentoo 00:03:00:01:52:54:00:04:be:64\n";
        let leases = parse_dnsmasq(file);
        assert_eq!(leases.len(), 3);
        assert_eq!(leases[0].hostname.as_deref(), Some("fedora"));
        assert_eq!(leases[0].client_id, None);
        assert_eq!(leases[1].expiry_time, 0);
        assert!(leases[1].is_active(i64::MAX));
        let v6 = &leases[2];
        assert_eq!(v6.iaid.as_deref(), Some("1234"));
        assert_eq!(v6.mac_address.as_deref(), Some("52:54:00:04:be:64"));
        assert_eq!(
            v6.server_duid.as_deref(),
            Some("00:01:00:01:2c:aa:bb:cc:52:54:00:00:00:01")
        );
        assert!(!leases[0].is_active(1900000000));
    }

    #[test]
    fn writes_libvirt_status_format() {
        let lease = Lease {
            iaid: None,
            ip_address: "192.168.122.3".into(),
            mac_address: Some("52:54:00:a4:6f:91".into()),
            hostname: Some("fedora".into()),
            client_id: Some("01:52:54:00:a4:6f:91".into()),
            server_duid: None,
            expiry_time: 0,
        };
        assert_eq!(
            to_status_json(&[lease]),
            "[\n    {\n        \"ip-address\": \"192.168.122.3\",\n        \"mac-address\": \"52:54:00:a4:6f:91\",\n        \"hostname\": \"fedora\",\n        \"client-id\": \"01:52:54:00:a4:6f:91\",\n        \"expiry-time\": 0\n    }\n]\n"
        );
    }

    /// libvirt's lease helper (`virLeaseNew`) writes an IPv6 lease's keys
    /// as: iaid, ip-address, mac-address, hostname, client-id,
    /// server-duid, expiry-time. libvirt's corpus holds no IPv6 lease.
    #[test]
    fn writes_an_ipv6_lease_in_libvirts_key_order() {
        let file = "duid 00:01:00:01:2c:aa:bb:cc:52:54:00:00:00:01\n\
                    1900000000 1234 2001:db8::2 gentoo 00:03:00:01:52:54:00:04:be:64\n";
        let text = to_status_json(&parse_dnsmasq(file));
        let keys: Vec<&str> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix('"')?.split('"').next())
            .collect();
        assert_eq!(
            keys,
            [
                "iaid",
                "ip-address",
                "mac-address",
                "hostname",
                "client-id",
                "server-duid",
                "expiry-time"
            ],
            "{text}"
        );
        assert_eq!(from_status_json(&text).unwrap(), parse_dnsmasq(file));
    }
}

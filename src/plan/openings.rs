//! What a network needs other firewalls on the host to let through.
//!
//! nftables accepts a packet only when every base chain on its hook accepts
//! it: a drop in another tool's table (Docker's and ufw's `FORWARD` policy
//! DROP through iptables-nft, a hand-made `policy drop` table) is final,
//! whatever virtnet's own table says. Where such a chain would drop a
//! network's traffic, virtnet adds the few accepts listed here, as
//! iptables-era libvirt put its accepts into `FORWARD` and `INPUT`.
//!
//! They open nothing beyond the network's own rules: every packet they
//! accept still passes virtnet's table, on the same hooks, which rejects
//! what the network's mode forbids (new connections into a NAT network,
//! anything in or out of an isolated one).

use crate::definition::{ForwardMode, IpFamily, NetworkDef};

/// What one running network needs from other firewalls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningNeeds {
    pub network: String,
    pub bridge: String,
    /// The address families the network has addresses in.
    pub families: Vec<IpFamily>,
    /// Whether traffic is routed through the host in and out of the bridge.
    pub forward: bool,
    /// The host's services guests use on the bridge.
    pub services: Vec<HostService>,
}

/// A service of the host a guest reaches on its bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostService {
    pub protocol: Protocol,
    pub port: u16,
    /// The family it is served in; `None` for both.
    pub family: Option<IpFamily>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// What an accept lets through, and which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passage {
    /// Routed out of the bridge (forward hook).
    FromBridge,
    /// Routed into the bridge (forward hook).
    ToBridge,
    /// To one of the host's services on the bridge (input hook).
    Service(HostService),
}

impl Passage {
    /// The words that tell this accept from the network's others, in the
    /// rule's comment.
    pub fn purpose(self) -> String {
        match self {
            Self::FromBridge => "forward from bridge".to_owned(),
            Self::ToBridge => "forward to bridge".to_owned(),
            Self::Service(service) => format!("{} {}", service.protocol.as_str(), service.port),
        }
    }

    pub fn on_forward_hook(self) -> bool {
        !matches!(self, Self::Service(_))
    }
}

/// The comments of virtnet's accepts in other tables begin with this.
pub const COMMENT_PREFIX: &str = "virtnet network ";

/// The comment that marks an accept of `network`'s for `passage`.
pub fn comment(network: &str, passage: Passage) -> String {
    format!("{COMMENT_PREFIX}{network}: {}", passage.purpose())
}

/// The network and purpose a comment of virtnet's names, or `None` for a
/// comment of someone else's.
pub fn parse_comment(comment: &str) -> Option<(&str, &str)> {
    comment.strip_prefix(COMMENT_PREFIX)?.rsplit_once(": ")
}

impl OpeningNeeds {
    /// What network `def`, running on `bridge`, needs; `None` for modes
    /// virtnet sets no rules for (open, and those without a bridge of
    /// their own), whose traffic is the administrator's business, as with
    /// libvirt.
    pub fn of(def: &NetworkDef, bridge: &str) -> Option<Self> {
        let mode = def.forward_mode();
        if !matches!(mode, None | Some(ForwardMode::Nat | ForwardMode::Route)) {
            return None;
        }
        let mut families: Vec<IpFamily> = def.ips.iter().map(|ip| ip.family()).collect();
        families.sort_by_key(|family| *family == IpFamily::V6);
        families.dedup();
        let mut services = Vec::new();
        let dhcp = |family: IpFamily| {
            def.ips.iter().any(|ip| {
                ip.family() == family && !(ip.dhcp.ranges.is_empty() && ip.dhcp.hosts.is_empty())
            })
        };
        if dhcp(IpFamily::V4) {
            services.push(service(Protocol::Udp, 67, Some(IpFamily::V4)));
        }
        if dhcp(IpFamily::V6) {
            services.push(service(Protocol::Udp, 547, Some(IpFamily::V6)));
        }
        if def.dns.enable != Some(false) && !families.is_empty() {
            services.push(service(Protocol::Udp, 53, None));
            services.push(service(Protocol::Tcp, 53, None));
        }
        if def.ips.iter().any(|ip| ip.tftp_root.is_some()) {
            services.push(service(Protocol::Udp, 69, Some(IpFamily::V4)));
        }
        Some(Self {
            network: def.name.to_string(),
            bridge: bridge.to_owned(),
            families,
            forward: mode.is_some(),
            services,
        })
    }

    /// The accepts this network needs on a chain of `family` (`None`: a
    /// chain that sees both, as in an `inet` table) on the forward hook, or
    /// on the input hook.
    pub fn passages(&self, family: Option<IpFamily>, forward_hook: bool) -> Vec<Passage> {
        let has = |wanted: Option<IpFamily>| match (family, wanted) {
            (None, None) => !self.families.is_empty(),
            (None, Some(wanted)) | (Some(wanted), None) => self.families.contains(&wanted),
            (Some(family), Some(wanted)) => family == wanted && self.families.contains(&family),
        };
        if forward_hook {
            if self.forward && has(None) && has(family) {
                return vec![Passage::FromBridge, Passage::ToBridge];
            }
            return Vec::new();
        }
        self.services
            .iter()
            .filter(|service| has(family) && has(service.family))
            .filter(|service| match (family, service.family) {
                (Some(family), Some(wanted)) => family == wanted,
                _ => true,
            })
            .map(|service| Passage::Service(*service))
            .collect()
    }
}

fn service(protocol: Protocol, port: u16, family: Option<IpFamily>) -> HostService {
    HostService {
        protocol,
        port,
        family,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(xml: &str) -> Option<OpeningNeeds> {
        let def = NetworkDef::parse(xml).expect("valid network");
        OpeningNeeds::of(&def, "br0")
    }

    const NAT: &str = "<network><name>n</name><forward mode='nat'/>\
        <ip address='192.168.7.1' prefix='24'><dhcp><range start='192.168.7.2' end='192.168.7.9'/></dhcp></ip>\
        </network>";

    #[test]
    fn a_nat_network_needs_forwarding_dhcp_and_dns() {
        let needs = needs(NAT).expect("nat has rules");
        assert_eq!(needs.families, vec![IpFamily::V4]);
        assert!(needs.forward);
        assert_eq!(
            needs.passages(Some(IpFamily::V4), true),
            vec![Passage::FromBridge, Passage::ToBridge]
        );
        assert!(needs.passages(Some(IpFamily::V6), true).is_empty());
        let ports: Vec<String> = needs
            .passages(Some(IpFamily::V4), false)
            .into_iter()
            .map(Passage::purpose)
            .collect();
        assert_eq!(ports, ["udp 67", "udp 53", "tcp 53"]);
        assert!(needs.passages(Some(IpFamily::V6), false).is_empty());
        assert_eq!(needs.passages(None, false).len(), 3, "an inet chain");
    }

    #[test]
    fn an_isolated_network_needs_no_forwarding() {
        let isolated = NAT.replace("<forward mode='nat'/>", "");
        let needs = needs(&isolated).expect("isolated has rules");
        assert!(needs.passages(None, true).is_empty());
        assert_eq!(needs.passages(None, false).len(), 3);
    }

    #[test]
    fn open_and_bridge_modes_need_nothing() {
        assert_eq!(needs(&NAT.replace("nat", "open")), None);
        let bridged =
            "<network><name>n</name><forward mode='bridge'/><bridge name='br9'/></network>";
        assert_eq!(needs(bridged), None);
    }

    #[test]
    fn dns_turned_off_needs_no_dns() {
        let quiet = NAT.replace("</network>", "<dns enable='no'/></network>");
        let ports: Vec<String> = needs(&quiet)
            .expect("rules")
            .passages(None, false)
            .into_iter()
            .map(Passage::purpose)
            .collect();
        assert_eq!(ports, ["udp 67"]);
    }

    #[test]
    fn comments_name_network_and_purpose() {
        let text = comment("my:net", Passage::ToBridge);
        assert_eq!(text, "virtnet network my:net: forward to bridge");
        assert_eq!(parse_comment(&text), Some(("my:net", "forward to bridge")));
        assert_eq!(parse_comment("docker rule"), None);
    }
}

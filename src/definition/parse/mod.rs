//! XML tree → [`NetworkDef`], with the checks libvirt's network_conf.c makes
//! while parsing, in the same order (so the first error reported matches).
//! Unlike libvirt, unknown elements or attributes and repeated singleton
//! elements are refused instead of silently ignored: a typo must not turn
//! into a network that quietly lacks what the admin asked for.

mod dns;
mod extensions;
mod forward;
mod ip;
mod portgroup;
mod route;
mod scalars;
mod shape;

pub(super) use dns::{dns_host, dns_srv, dns_txt};
pub(super) use forward::pci_address;
pub(super) use ip::{dhcp_host, dhcp_range};
pub(super) use portgroup::{BandwidthUse, bandwidth_for, portgroup, virtualport, vlan};
pub(super) use scalars::{attribute_error, config_text, link_name, yes_no};
pub(super) use shape::{check_shape, check_singletons, check_text_only, single};

use super::error::DefinitionError;
use super::values::{BridgeName, ConfigText, MacAddr, NetworkName, Uuid, ValueError};
use super::*;
use crate::xml::tree::Element;

use dns::dns;
use extensions::{dnsmasq_options, metadata};
use forward::{check_mode_restrictions, forward};
use ip::ip;
use portgroup::bandwidth;
use route::{check_route_gateways, route};
use scalars::parse_unsigned;
use shape::check_shape_with;

type Result<T> = std::result::Result<T, DefinitionError>;

pub(in crate::definition) fn invalid(message: impl Into<String>) -> DefinitionError {
    DefinitionError::Invalid(message.into())
}

fn unsupported(message: impl Into<String>) -> DefinitionError {
    DefinitionError::Unsupported(message.into())
}

/// The children `<network>` may hold: those that may appear once first,
/// then the repeatable ones.
const NETWORK_CHILDREN: [&str; 18] = [
    "name",
    "uuid",
    "title",
    "description",
    "metadata",
    "forward",
    "bridge",
    "mtu",
    "mac",
    "domain",
    "dns",
    "vlan",
    "bandwidth",
    "port",
    "virtualport",
    "ip",
    "route",
    "portgroup",
];
const NETWORK_SINGLETONS: usize = 15;

pub(super) fn network(root: &Element) -> Result<NetworkDef> {
    if root.name != "network" || root.namespace.is_some() {
        return Err(invalid(format!(
            "expecting root element of 'network', not '{}'",
            root.name
        )));
    }
    check_shape_with(
        root,
        &["connections", "ipv6", "trustGuestRxFilters"],
        &NETWORK_CHILDREN,
        Some(DNSMASQ_NAMESPACE),
        false,
    )?;
    check_singletons(root, &NETWORK_CHILDREN[..NETWORK_SINGLETONS])?;
    if let Some(connections) = root.attribute("connections") {
        parse_unsigned::<u32>(connections).ok_or_else(|| {
            attribute_error(
                root,
                "connections",
                connections,
                " Expected non-negative integer value",
            )
        })?;
    }

    let name_text = root
        .children_named("name")
        .next()
        .map(Element::text)
        .unwrap_or_default();
    if name_text.is_empty() {
        return Err(DefinitionError::NoName);
    }
    for child in ["name", "uuid", "title", "description"] {
        if let Some(element) = root.children_named(child).next() {
            check_text_only(element)?;
        }
    }
    let name = NetworkName::new(name_text.as_str()).map_err(|error| match error {
        ValueError::IllegalChar('/') => invalid("invalid char in name: /"),
        error => DefinitionError::value("network name", &name_text, error),
    })?;
    let name_str = name.as_str();

    let uuid = match root.children_named("uuid").next().map(Element::text) {
        Some(text) if !text.is_empty() => text
            .parse::<Uuid>()
            .map_err(|_| DefinitionError::Internal("malformed uuid element".into()))?,
        _ => Uuid::generate().map_err(DefinitionError::Random)?,
    };

    let title = match root.children_named("title").next().map(Element::text) {
        Some(text) if !text.is_empty() => Some(
            ConfigText::new(text).map_err(|_| invalid("Network title can't contain newlines"))?,
        ),
        _ => None,
    };
    let description = root
        .children_named("description")
        .next()
        .map(Element::text)
        .filter(|text| !text.is_empty());

    let ipv6_without_gateway = match root.attribute("ipv6") {
        None | Some("no") => false,
        Some("yes") => true,
        Some(other) => {
            return Err(invalid(format!(
                "Invalid ipv6 setting '{other}' in network '{name_str}'"
            )));
        }
    };
    let trust_guest_rx_filters = yes_no(root, "trustGuestRxFilters")?;

    let domain = single(root, "domain")?.map(domain).transpose()?;

    let bandwidth = single(root, "bandwidth")?
        .map(bandwidth)
        .transpose()?
        .flatten();
    let vlan = single(root, "vlan")?.map(vlan).transpose()?;
    let port_isolated = match single(root, "port")? {
        Some(port) => {
            check_shape(port, &["isolated"], &[])?;
            yes_no(port, "isolated")?
        }
        None => None,
    };

    let bridge_element = single(root, "bridge")?;
    let (bridge, stp_given) = bridge(bridge_element, name_str)?;

    let mac = match single(root, "mac")? {
        Some(element) => {
            check_shape(element, &["address"], &[])?;
            match element.attribute("address") {
                Some(text) => {
                    let mac = text.parse::<MacAddr>().map_err(|_| {
                        invalid(format!(
                            "Invalid bridge mac address '{text}' in network '{name_str}'"
                        ))
                    })?;
                    if mac.is_multicast() {
                        return Err(invalid(format!(
                            "Invalid multicast bridge mac address '{text}' in network '{name_str}'"
                        )));
                    }
                    Some(mac)
                }
                None => None,
            }
        }
        None => None,
    };

    let mtu = match single(root, "mtu")? {
        Some(element) => {
            check_shape(element, &["size"], &[])?;
            match element.attribute("size") {
                Some(size) => Some(parse_unsigned::<u32>(size).ok_or_else(|| {
                    invalid(format!("Invalid mtu size '{size}' in network '{name_str}'"))
                })?)
                .filter(|&size| size > 0),
                None => None,
            }
        }
        None => None,
    };

    let dns = match single(root, "dns")? {
        Some(element) => dns(element, name_str)?,
        None => Dns::default(),
    };

    let virtualport = single(root, "virtualport")?
        .map(|element| virtualport(element, true))
        .transpose()?;

    let portgroups = root
        .children_named("portgroup")
        .map(portgroup)
        .collect::<Result<Vec<_>>>()?;

    let ips = root
        .children_named("ip")
        .map(|element| ip(element, name_str))
        .collect::<Result<Vec<_>>>()?;

    let routes = root
        .children_named("route")
        .map(|element| route(element, name_str))
        .collect::<Result<Vec<_>>>()?;
    check_route_gateways(&routes, &ips, name_str)?;

    let forward = match single(root, "forward")? {
        Some(element) => forward(element, name_str)?,
        None => None,
    };

    check_mode_restrictions(
        forward.as_ref(),
        &bridge,
        stp_given,
        mtu,
        ips.len(),
        name_str,
    )?;

    let metadata = single(root, "metadata")?.and_then(|element| metadata(root, element));
    let dnsmasq_options = dnsmasq_options(root)?;

    Ok(NetworkDef {
        name,
        uuid,
        title,
        description,
        metadata,
        ipv6_without_gateway,
        trust_guest_rx_filters,
        forward,
        bridge,
        mtu,
        mac,
        domain,
        dns,
        vlan,
        bandwidth,
        port_isolated,
        ips,
        routes,
        virtualport,
        portgroups,
        dnsmasq_options,
    })
}

fn domain(element: &Element) -> Result<Domain> {
    check_shape(element, &["name", "localOnly", "register"], &[])?;
    let name = element
        .attribute("name")
        .ok_or_else(|| invalid("Missing required name attribute in <domain>"))?;
    Ok(Domain {
        name: config_text("domain name", name)?,
        local_only: yes_no(element, "localOnly")?,
        register: yes_no(element, "register")?,
    })
}

fn bridge(element: Option<&Element>, network: &str) -> Result<(Bridge, bool)> {
    let Some(element) = element else {
        return Ok((Bridge::default(), false));
    };
    check_shape(
        element,
        &["name", "stp", "delay", "macTableManager", "zone"],
        &[],
    )?;
    let name = element
        .attribute("name")
        .filter(|name| !name.is_empty())
        .map(|name| {
            BridgeName::new(name)
                .map_err(|error| DefinitionError::value("bridge name", name, error))
        })
        .transpose()?;
    let zone = element
        .attribute("zone")
        .filter(|zone| !zone.is_empty())
        .map(|zone| config_text("bridge zone", zone))
        .transpose()?;
    let stp = match element.attribute("stp") {
        None | Some("on") => true,
        Some("off") => false,
        Some(other) => {
            return Err(attribute_error(element, "stp", other, ""));
        }
    };
    let delay = match element.attribute("delay") {
        Some(delay) => parse_unsigned(delay)
            .ok_or_else(|| invalid(format!("Invalid delay value in network '{network}'")))?,
        None => 0,
    };
    let mac_table_manager = match element.attribute("macTableManager") {
        None => None,
        Some("kernel") => Some(MacTableManager::Kernel),
        Some("libvirt") => Some(MacTableManager::Libvirt),
        Some(other) => {
            return Err(invalid(format!(
                "Invalid macTableManager setting '{other}' in network '{network}'"
            )));
        }
    };
    Ok((
        Bridge {
            name,
            zone,
            stp,
            delay,
            mac_table_manager,
        },
        element.attribute("stp").is_some(),
    ))
}

#[cfg(test)]
mod tests {
    use crate::definition::{FormatFlags, NetworkDef};

    /// The formatted text, after checking that it reads back into the
    /// same definition and formats the same again.
    fn round_trip(xml: &str) -> String {
        let def = NetworkDef::parse(xml).unwrap();
        let first = def.to_xml(FormatFlags::default());
        let reparsed = NetworkDef::parse(&first).unwrap();
        assert_eq!(reparsed, def, "the definition reads back the same");
        assert_eq!(
            reparsed.to_xml(FormatFlags::default()),
            first,
            "formatting is idempotent"
        );
        first
    }

    #[test]
    fn an_infinite_lease_reads_back_the_same_whatever_its_unit() {
        let xml = "<network><name>l</name><ip address='10.0.0.1' prefix='24'><dhcp>\
            <host mac='52:54:00:00:00:01' ip='10.0.0.5'><lease expiry='0' unit='hours'/></host>\
            </dhcp></ip></network>";
        assert!(round_trip(xml).contains("<lease expiry='0'/>"));
    }

    #[test]
    fn metadata_without_namespaced_children_is_dropped() {
        let xml = "<network><name>m</name><metadata><plain/></metadata></network>";
        assert!(!round_trip(xml).contains("metadata"));
        let kept = "<network><name>m</name><metadata><a:x xmlns:a='urn:a'>t</a:x><plain/></metadata></network>";
        assert!(round_trip(kept).contains("<a:x xmlns:a=\"urn:a\">t</a:x>"));
    }

    #[test]
    fn metadata_with_text_beside_elements_reads_back_the_same() {
        let xml = "<network><name>m</name><metadata>\
            <a:x xmlns:a='urn:a'>text\n  <a:y>\n    <a:z/>\n  </a:y>\n  <a:w/>\n</a:x>\
            </metadata></network>";
        assert!(round_trip(xml).contains("<a:x xmlns:a=\"urn:a\">text\n  <a:y>"));
    }

    #[test]
    fn an_empty_portgroup_virtualport_reads_back_the_same() {
        let xml = "<network><name>p</name><forward mode='bridge'/><bridge name='br0'/>\
            <portgroup name='a'><virtualport/></portgroup></network>";
        assert!(round_trip(xml).contains("<portgroup name='a'>\n  </portgroup>"));
    }

    #[test]
    fn an_empty_nat_reads_back_the_same() {
        let xml = "<network><name>n</name><forward mode='nat'><nat/></forward>\
            <ip address='10.0.0.1' prefix='24'/></network>";
        assert!(round_trip(xml).contains("<forward mode='nat'/>"));
    }

    #[test]
    fn a_bandwidth_that_limits_nothing_reads_back_the_same() {
        let xml = "<network><name>b</name><bandwidth><inbound average='0'/>\
            <outbound average='100'/></bandwidth><ip address='10.0.0.1' prefix='24'/></network>";
        let formatted = round_trip(xml);
        assert!(
            formatted.contains("<bandwidth>\n    <outbound average='100'/>\n  </bandwidth>"),
            "{formatted}"
        );
        let xml = "<network><name>b</name><bandwidth><inbound average='0'/></bandwidth>\
            <ip address='10.0.0.1' prefix='24'/></network>";
        assert!(!round_trip(xml).contains("bandwidth"));
    }

    #[test]
    fn a_bootp_without_ranges_or_hosts_reads_back_the_same() {
        let xml = "<network><name>b</name><ip address='10.0.0.1' prefix='24'><dhcp>\
            <bootp file='pxe.img'/></dhcp></ip></network>";
        assert!(!round_trip(xml).contains("bootp"));
    }

    #[test]
    fn tabs_and_line_breaks_in_attributes_survive_a_round_trip() {
        let xml = "<network><name>t</name><forward/><dns><forwarder domain='a&#9;b'/></dns>\
            <ip address='10.0.0.1' prefix='24'/></network>";
        assert!(round_trip(xml).contains("domain='a&#9;b'"));
    }

    #[test]
    fn dhcp_host_macs_keep_their_spelling_and_the_bridge_mac_is_lowercased() {
        let xml = "<network><name>m</name><mac address='52:54:00:AB:CD:EF'/>\
            <ip address='10.0.0.1' prefix='24'><dhcp>\
            <host mac='52:54:00:AB:0:1' ip='10.0.0.5'/></dhcp></ip></network>";
        let formatted = round_trip(xml);
        assert!(
            formatted.contains("<host mac='52:54:00:AB:0:1' ip='10.0.0.5'/>"),
            "{formatted}"
        );
        assert!(
            formatted.contains("<mac address='52:54:00:ab:cd:ef'/>"),
            "{formatted}"
        );
    }

    #[test]
    fn markup_characters_in_values_survive_a_round_trip() {
        let xml = "<network><name>a&apos;b&quot;&lt;&gt;</name><forward mode='bridge'/><bridge name='br0'/></network>";
        assert!(round_trip(xml).contains("<name>a&apos;b&quot;&lt;&gt;</name>"));
    }
}

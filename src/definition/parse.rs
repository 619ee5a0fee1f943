//! XML tree → [`NetworkDef`], with the checks libvirt's network_conf.c makes
//! while parsing, in the same order (so the first error reported matches).
//! Unlike libvirt, unknown elements or attributes and repeated singleton
//! elements are refused instead of silently ignored: a typo must not turn
//! into a network that quietly lacks what the admin asked for.

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use std::sync::Arc;

use crate::xml::tree::{Element, Node};

use super::error::DefinitionError;
use super::values::{BridgeName, ConfigText, LinkName, MacAddr, NetworkName, Uuid, ValueError};
use super::*;

type Result<T> = std::result::Result<T, DefinitionError>;

fn invalid(message: impl Into<String>) -> DefinitionError {
    DefinitionError::Invalid(message.into())
}

fn unsupported(message: impl Into<String>) -> DefinitionError {
    DefinitionError::Unsupported(message.into())
}

/// Refuses attributes, child elements and text that `element` cannot hold.
pub(super) fn check_shape(element: &Element, attributes: &[&str], children: &[&str]) -> Result<()> {
    check_shape_with(element, attributes, children, None, false)
}

/// As [`check_shape`], also allowing children in `foreign_namespace`, and
/// text when `allow_text`.
fn check_shape_with(
    element: &Element,
    attributes: &[&str],
    children: &[&str],
    foreign_namespace: Option<&str>,
    allow_text: bool,
) -> Result<()> {
    if let Some((name, _)) = element
        .attributes
        .iter()
        .find(|(name, _)| !attributes.contains(&name.as_str()))
    {
        return Err(invalid(format!(
            "unexpected attribute '{name}' in element <{}>",
            element.name
        )));
    }
    if let Some(child) = element
        .elements()
        .find(|child| match child.namespace.as_deref() {
            None => !children.contains(&child.name.as_str()),
            Some(namespace) => Some(namespace) != foreign_namespace,
        })
    {
        return Err(invalid(format!(
            "unexpected element <{}> in <{}>",
            child.name, element.name
        )));
    }
    if element.has_own_text() && !allow_text {
        return Err(invalid(format!(
            "unexpected text in element <{}>",
            element.name
        )));
    }
    Ok(())
}

/// Refuses a second child of any of these names, in one pass.
fn check_singletons(parent: &Element, names: &[&str]) -> Result<()> {
    let mut seen = [false; 16];
    for child in parent.elements().filter(|child| child.namespace.is_none()) {
        if let Some(index) = names.iter().position(|name| *name == child.name)
            && std::mem::replace(&mut seen[index], true)
        {
            return Err(invalid(format!(
                "element <{}> may appear only once in <{}>",
                child.name, parent.name
            )));
        }
    }
    Ok(())
}

/// The one child named `name`; refuses a second one.
pub(super) fn single<'a>(parent: &'a Element, name: &'a str) -> Result<Option<&'a Element>> {
    let mut found = parent.children_named(name);
    let first = found.next();
    if found.next().is_some() {
        return Err(invalid(format!(
            "element <{name}> may appear only once in <{}>",
            parent.name
        )));
    }
    Ok(first)
}

fn attribute_error(element: &Element, name: &str, value: &str, expected: &str) -> DefinitionError {
    invalid(format!(
        "Invalid value for attribute '{name}' in element '{}': '{}'.{expected}",
        element.local_name(),
        value.escape_debug()
    ))
}

/// libvirt's virXMLPropTristateBool: absent, 'yes' or 'no'.
pub(super) fn yes_no(element: &Element, name: &str) -> Result<Option<bool>> {
    match element.attribute(name) {
        None => Ok(None),
        Some("yes") => Ok(Some(true)),
        Some("no") => Ok(Some(false)),
        Some(other) => Err(attribute_error(element, name, other, "")),
    }
}

/// libvirt's virXMLPropUInt and friends: a decimal unsigned number.
pub(super) fn unsigned<T: FromStr>(element: &Element, name: &str) -> Result<Option<T>> {
    match element.attribute(name) {
        None => Ok(None),
        Some(value) => parse_unsigned(value).map(Some).ok_or_else(|| {
            attribute_error(element, name, value, " Expected non-negative integer value")
        }),
    }
}

/// A number as C's strtoul reads it with base 0: `0x` hex, leading-0 octal.
fn parse_c_unsigned(text: &str) -> Option<u32> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(hex, 16).ok()
    } else if text.len() > 1 && text.starts_with('0') {
        if !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return None;
        }
        u32::from_str_radix(&text[1..], 8).ok()
    } else {
        parse_unsigned(text)
    }
}

/// An address as libvirt's virSocketAddrParse (glibc getaddrinfo) reads
/// it: IPv6, or IPv4 including inet_aton's short forms (`127.1`, `0x7f.0.0.1`).
pub(super) fn parse_address(text: &str) -> Option<IpAddr> {
    if text.contains(':') {
        return text.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    // The common dotted quad first, without the inet_aton machinery.
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    let mut parts = [0u32; 4];
    let mut count = 0;
    for part in text.split('.') {
        *parts.get_mut(count)? = parse_c_unsigned(part)?;
        count += 1;
    }
    let value = match &parts[..count] {
        [a] => *a,
        [a, b] if *a <= 0xff && *b <= 0xff_ffff => a << 24 | b,
        [a, b, c] if *a <= 0xff && *b <= 0xff && *c <= 0xffff => a << 24 | b << 16 | c,
        [a, b, c, d] if [a, b, c, d].iter().all(|p| **p <= 0xff) => a << 24 | b << 16 | c << 8 | d,
        _ => return None,
    };
    Some(IpAddr::V4(Ipv4Addr::from(value)))
}

fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    match parse_address(text)? {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }
}

fn parse_unsigned<T: FromStr>(value: &str) -> Option<T> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

pub(super) fn config_text(what: &str, value: &str) -> Result<ConfigText> {
    ConfigText::new(value).map_err(|error| DefinitionError::value(what, value, error))
}

fn optional_text(element: &Element, name: &str) -> Result<Option<ConfigText>> {
    element
        .attribute(name)
        .map(|value| config_text(&format!("attribute '{name}' of <{}>", element.name), value))
        .transpose()
}

fn link_name(what: &str, value: &str) -> Result<LinkName> {
    LinkName::new(value).map_err(|error| DefinitionError::value(what, value, error))
}

/// libvirt's virSocketAddrParse (any family).
pub(super) fn ip_address(value: &str) -> Result<IpAddr> {
    parse_address(value).ok_or_else(|| {
        DefinitionError::Invalid(format!(
            "Cannot parse socket address '{}': Name or service not known",
            value.escape_debug()
        ))
    })
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

    let bandwidth = single(root, "bandwidth")?.map(bandwidth).transpose()?;
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

/// An element that holds text alone: no attributes, no children.
fn check_text_only(element: &Element) -> Result<()> {
    check_shape_with(element, &[], &[], None, true)
}

fn dnsmasq_options(root: &Element) -> Result<Vec<ConfigText>> {
    let mut blocks = root
        .elements()
        .filter(|child| child.namespace.as_deref() == Some(DNSMASQ_NAMESPACE));
    let Some(block) = blocks.next() else {
        return Ok(Vec::new());
    };
    if blocks.next().is_some() {
        return Err(invalid(
            "element <dnsmasq:options> may appear only once in <network>",
        ));
    }
    if !block.attributes.is_empty() || block.has_own_text() {
        return Err(invalid("unexpected content in <dnsmasq:options>"));
    }
    block
        .elements()
        .map(|option| {
            if option.namespace.as_deref() != Some(DNSMASQ_NAMESPACE)
                || option.local_name() != "option"
            {
                return Err(invalid(format!(
                    "unexpected element <{}> in <dnsmasq:options>",
                    option.name
                )));
            }
            check_shape(option, &["value"], &[])?;
            let value = option
                .attribute("value")
                .filter(|value| !value.is_empty())
                .ok_or_else(|| invalid("No dnsmasq options value specified"))?;
            config_text("dnsmasq option value", value)
        })
        .collect()
}

/// Keeps `<metadata>` as libvirt does: children outside any namespace are
/// dropped and only the first child of each namespace is kept; nothing is
/// kept when no child is left.
fn metadata(root: &Element, element: &Element) -> Option<Metadata> {
    let mut kept = element.clone();
    let mut seen: Vec<Arc<str>> = Vec::new();
    kept.children.retain(|node| match node {
        Node::Element(child) => match &child.namespace {
            Some(namespace) if !seen.contains(namespace) => {
                seen.push(namespace.clone());
                true
            }
            _ => false,
        },
        Node::Text(_) => false,
    });
    // libvirt would print `<metadata/>` here, which it then drops when the
    // output is read back; dropping it at once keeps formatting idempotent.
    kept.elements().next()?;
    let mut used = Vec::new();
    collect_prefixes(&kept, &mut used);
    let inherited = used
        .iter()
        .filter_map(|prefix| {
            root.declarations
                .iter()
                .rev()
                .find(|binding| binding.prefix == *prefix)
                .cloned()
        })
        .collect();
    Some(Metadata {
        element: kept,
        inherited,
    })
}

/// Prefixes used in a subtree but not declared inside it.
fn collect_prefixes(element: &Element, used: &mut Vec<String>) {
    let declared = |prefix: &str| element.declarations.iter().any(|b| b.prefix == prefix);
    let mut names = vec![element.name.as_str()];
    names.extend(element.attributes.iter().map(|(name, _)| name.as_str()));
    for (index, name) in names.into_iter().enumerate() {
        let prefix = match name.split_once(':') {
            Some((prefix, _)) => prefix,
            // Unprefixed attributes are in no namespace; unprefixed elements use the default.
            None if index == 0 => "",
            None => continue,
        };
        if prefix != "xml" && !declared(prefix) && !used.iter().any(|p| p == prefix) {
            used.push(prefix.to_owned());
        }
    }
    let mut inner = Vec::new();
    for child in element.elements() {
        collect_prefixes(child, &mut inner);
    }
    for prefix in inner {
        if !declared(&prefix) && !used.contains(&prefix) {
            used.push(prefix);
        }
    }
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

fn lease(element: &Element) -> Result<Option<Lease>> {
    check_shape(element, &["expiry", "unit"], &[])?;
    let Some(expiry) = unsigned::<u64>(element, "expiry")? else {
        return Ok(None);
    };
    let unit = match element.attribute("unit") {
        None | Some("minutes") => LeaseUnit::Minutes,
        Some("seconds") => LeaseUnit::Seconds,
        Some("hours") => LeaseUnit::Hours,
        Some(other) => {
            return Err(attribute_error(
                element,
                "unit",
                other,
                "one of 'seconds', 'minutes', 'hours'",
            ));
        }
    };
    if expiry > 0
        && ((unit == LeaseUnit::Seconds && expiry < 120)
            || (unit == LeaseUnit::Minutes && expiry < 2))
    {
        return Err(unsupported(
            "The minimum lease time should be greater than 2 minutes",
        ));
    }
    Ok(Some(Lease { expiry, unit }))
}

fn optional_lease(element: &Element) -> Result<Option<Lease>> {
    match single(element, "lease")? {
        Some(lease_element) => lease(lease_element),
        None => Ok(None),
    }
}

pub(super) fn dhcp_range(element: &Element, ip: &IpDef, network: &str) -> Result<DhcpRange> {
    check_shape(element, &["start", "end"], &["lease"])?;
    let start = element.attribute("start").ok_or_else(|| {
        invalid(format!(
            "Missing 'start' attribute in dhcp range for network '{network}'"
        ))
    })?;
    let start = ip_address(start)?;
    let end = element.attribute("end").ok_or_else(|| {
        invalid(format!(
            "Missing 'end' attribute in dhcp range for network '{network}'"
        ))
    })?;
    let end = ip_address(end)?;
    range_size(&start, &end, Some((&ip.address, ip.effective_prefix())))?;
    Ok(DhcpRange {
        start,
        end,
        lease: optional_lease(element)?,
    })
}

/// A `<host>` of `<dhcp>`; `partial` is net-update's delete, where any one
/// of mac, name or ip identifies the entry.
pub(super) fn dhcp_host(
    element: &Element,
    ip: &IpDef,
    network: &str,
    partial: bool,
) -> Result<DhcpHost> {
    check_shape(element, &["mac", "id", "name", "ip"], &["lease"])?;
    let is_v6 = ip.family() == IpFamily::V6;
    let mac = match element.attribute("mac") {
        Some(text) => {
            if is_v6 {
                return Err(invalid(format!(
                    "Invalid to specify MAC address '{text}' in network '{network}' IPv6 static host definition"
                )));
            }
            let mac = text.parse::<MacAddr>().map_err(|_| {
                invalid(format!(
                    "Cannot parse MAC address '{text}' in network '{network}'"
                ))
            })?;
            if mac.is_multicast() {
                return Err(invalid(format!(
                    "expected unicast mac address, found multicast '{text}' in network '{network}'"
                )));
            }
            Some(mac)
        }
        None => None,
    };
    let id = match element.attribute("id") {
        Some(id) => {
            if let Some(bad) = id.chars().find(|c| !(c.is_ascii_hexdigit() || *c == ':')) {
                return Err(invalid(format!(
                    "Invalid character '{}' in id '{}' of network '{network}'",
                    bad.escape_debug(),
                    id.escape_debug()
                )));
            }
            Some(config_text("dhcp host id", id)?)
        }
        None => None,
    };
    let name = match element.attribute("name") {
        Some(name) => {
            if !name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            {
                return Err(invalid(format!(
                    "Cannot use host name '{}' in network '{network}'",
                    name.escape_debug()
                )));
            }
            Some(config_text("dhcp host name", name)?)
        }
        None => None,
    };
    let host_ip = match element.attribute("ip") {
        Some(text) => Some(parse_address(text).ok_or(()).map_err(|_| {
            invalid(format!(
                "Invalid IP address in static host definition for network '{network}'"
            ))
        })?),
        None => None,
    };
    if partial {
        if mac.is_none() && name.is_none() && host_ip.is_none() {
            return Err(invalid(format!(
                "At least one of name, mac, or ip attribute must be specified for static host definition in network '{network}'"
            )));
        }
    } else {
        if is_v6 {
            if id.is_none() && name.is_none() {
                return Err(invalid(format!(
                    "Static host definition in IPv6 network '{network}' must have id or name attribute"
                )));
            }
        } else if mac.is_none() && name.is_none() {
            return Err(invalid(format!(
                "Static host definition in IPv4 network '{network}' must have mac or name attribute"
            )));
        }
        if host_ip.is_none() {
            return Err(invalid(format!(
                "Missing IP address in static host definition for network '{network}'"
            )));
        }
    }
    Ok(DhcpHost {
        mac,
        id,
        name,
        ip: host_ip,
        lease: optional_lease(element)?,
    })
}

fn dhcp(element: &Element, ip: &IpDef, network: &str) -> Result<Dhcp> {
    check_shape(element, &[], &["range", "host", "bootp"])?;
    let ranges = element
        .children_named("range")
        .map(|range| dhcp_range(range, ip, network))
        .collect::<Result<Vec<_>>>()?;
    let hosts = element
        .children_named("host")
        .map(|host| dhcp_host(host, ip, network, false))
        .collect::<Result<Vec<_>>>()?;
    let bootp = match single(element, "bootp")? {
        Some(bootp) if ip.family() == IpFamily::V4 => {
            check_shape(bootp, &["file", "server"], &[])?;
            let file = bootp
                .attribute("file")
                .ok_or_else(|| invalid("Missing required attribute 'file' in element 'bootp'"))?;
            Some(Bootp {
                file: config_text("bootp file", file)?,
                server: bootp.attribute("server").map(ip_address).transpose()?,
            })
        }
        _ => None,
    };
    Ok(Dhcp {
        ranges,
        hosts,
        bootp,
    })
}

fn ip(element: &Element, network: &str) -> Result<IpDef> {
    check_shape(
        element,
        &["family", "address", "netmask", "prefix", "localPtr"],
        &["dhcp", "tftp"],
    )?;
    let family_attr = element.attribute("family").filter(|f| !f.is_empty());
    let address_text = element
        .attribute("address")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "Missing required address attribute in network '{network}'"
            ))
        })?;
    let address: IpAddr = parse_address(address_text).ok_or(()).map_err(|_| {
        invalid(format!(
            "Invalid address '{}' in network '{network}'",
            address_text.escape_debug()
        ))
    })?;
    let netmask_text = element.attribute("netmask").filter(|n| !n.is_empty());
    let netmask: Option<IpAddr> = netmask_text
        .map(|text| {
            parse_address(text).ok_or(()).map_err(|_| {
                invalid(format!(
                    "Invalid netmask '{}' in network '{network}'",
                    text.escape_debug()
                ))
            })
        })
        .transpose()?;
    let prefix = unsigned::<u32>(element, "prefix")?.unwrap_or(0);
    let local_ptr = yes_no(element, "localPtr")?;

    let family = match family_attr {
        None | Some("ipv4") => {
            if !address.is_ipv4() {
                return Err(unsupported(format!(
                    "{} family specified for non-IPv4 address '{address_text}' in network '{network}'",
                    if family_attr.is_none() { "no" } else { "ipv4" }
                )));
            }
            family_attr.map(|_| IpFamily::V4)
        }
        Some("ipv6") => {
            if !address.is_ipv6() {
                return Err(unsupported(format!(
                    "Family 'ipv6' specified for non-IPv6 address '{address_text}' in network '{network}'"
                )));
            }
            if netmask.is_some() {
                return Err(unsupported(format!(
                    "netmask not allowed for IPv6 address '{address_text}' in network '{network}'"
                )));
            }
            Some(IpFamily::V6)
        }
        Some(other) => {
            return Err(invalid(format!(
                "Unrecognized family '{}' in network '{network}'",
                other.escape_debug()
            )));
        }
    };
    let netmask = match (netmask, netmask_text) {
        (Some(IpAddr::V4(mask)), Some(text)) => {
            if prefix > 0 {
                return Err(unsupported(format!(
                    "Network '{network}' IP address cannot have both a prefix and a netmask"
                )));
            }
            let bits = u32::from(mask);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(unsupported(format!(
                    "Invalid netmask '{text}' for address '{address_text}' in network '{network}' (not a contiguous netmask)"
                )));
            }
            Some(mask)
        }
        (Some(_), Some(text)) => {
            return Err(unsupported(format!(
                "Invalid netmask '{text}' for address '{address_text}' in network '{network}' (both must be IPv4)"
            )));
        }
        _ => None,
    };
    let limit = if address.is_ipv4() { 32 } else { 128 };
    if prefix > limit {
        return Err(unsupported(format!(
            "Invalid {} prefix '{prefix}' in network '{network}'",
            IpFamily::of(&address).label()
        )));
    }
    let mut ip = IpDef {
        family,
        address,
        netmask,
        prefix: prefix as u8,
        local_ptr,
        tftp_root: None,
        dhcp: Dhcp::default(),
    };
    if let Some(dhcp_element) = single(element, "dhcp")? {
        ip.dhcp = dhcp(dhcp_element, &ip, network)?;
    }
    if let Some(tftp) = single(element, "tftp")? {
        if !address.is_ipv4() {
            return Err(unsupported(format!(
                "Unsupported <tftp> element in an IPv6 element in network '{network}'"
            )));
        }
        check_shape(tftp, &["root"], &[])?;
        ip.tftp_root = optional_text(tftp, "root")?.filter(|root| !root.as_str().is_empty());
    }
    Ok(ip)
}

fn dns(element: &Element, network: &str) -> Result<Dns> {
    check_shape(
        element,
        &["enable", "forwardPlainNames"],
        &["forwarder", "txt", "srv", "host"],
    )?;
    let enable = yes_no(element, "enable")?;
    let forward_plain_names = yes_no(element, "forwardPlainNames")?;
    let forwarders = element
        .children_named("forwarder")
        .map(|forwarder| {
            check_shape(forwarder, &["addr", "domain", "port"], &[])?;
            let addr = forwarder
                .attribute("addr")
                .map(|text| {
                    parse_address(text).ok_or(()).map_err(|_| {
                        invalid(format!(
                            "Invalid forwarder IP address '{}' in network '{network}'",
                            text.escape_debug()
                        ))
                    })
                })
                .transpose()?;
            let domain = optional_text(forwarder, "domain")?;
            if addr.is_none() && domain.is_none() {
                return Err(invalid(
                    "Invalid forwarder element, must contain at least one of addr or domain",
                ));
            }
            let port = match unsigned::<u32>(forwarder, "port")? {
                None => None,
                Some(port @ 1..=65535) if addr.is_some() => Some(port as u16),
                Some(_) if addr.is_none() => {
                    return Err(invalid(format!(
                        "DNS forwarder port not permitted without addr in network '{network}'"
                    )));
                }
                Some(port) => {
                    return Err(invalid(format!(
                        "Invalid DNS forwarder port '{port}' in network '{network}'"
                    )));
                }
            };
            Ok(DnsForwarder { addr, domain, port })
        })
        .collect::<Result<Vec<_>>>()?;
    let hosts = element
        .children_named("host")
        .map(|host| dns_host(host, network, false).and_then(DnsHostMatch::into_record))
        .collect::<Result<Vec<_>>>()?;
    let srvs = element
        .children_named("srv")
        .map(|srv| dns_srv(srv, network, false).and_then(DnsSrvMatch::into_record))
        .collect::<Result<Vec<_>>>()?;
    let txts = element
        .children_named("txt")
        .map(|txt| dns_txt(txt, network, false).and_then(DnsTxtMatch::into_record))
        .collect::<Result<Vec<_>>>()?;
    if enable == Some(false)
        && !(forwarders.is_empty() && hosts.is_empty() && srvs.is_empty() && txts.is_empty())
    {
        return Err(invalid(format!(
            "Extra data in disabled network '{network}'"
        )));
    }
    Ok(Dns {
        enable,
        forward_plain_names,
        forwarders,
        txts,
        srvs,
        hosts,
    })
}

/// A DNS host; with `partial` (net-update delete) either ip or names suffice.
pub(super) fn dns_host(element: &Element, network: &str, partial: bool) -> Result<DnsHostMatch> {
    check_shape(element, &["ip"], &["hostname"])?;
    let mut hostnames = Vec::new();
    for hostname in element.children_named("hostname") {
        check_text_only(hostname)?;
        let text = hostname.text();
        if text.is_empty() {
            return Err(invalid(format!(
                "Missing hostname in network '{network}' DNS HOST record"
            )));
        }
        hostnames.push(config_text("DNS hostname", &text)?);
    }
    if hostnames.is_empty() && !partial {
        return Err(invalid(format!(
            "Missing hostname in network '{network}' DNS HOST record"
        )));
    }
    let ip = match element.attribute("ip") {
        Some(text) => Some(parse_address(text).ok_or(()).map_err(|_| {
            invalid(format!(
                "Invalid IP address in network '{network}' DNS HOST record"
            ))
        })?),
        None => {
            if !partial {
                return Err(invalid(format!(
                    "Missing IP address in network '{network}' DNS HOST record"
                )));
            }
            if hostnames.is_empty() {
                return Err(invalid(format!(
                    "Missing ip and hostname in network '{network}' DNS HOST record"
                )));
            }
            None
        }
    };
    Ok(DnsHostMatch { ip, hostnames })
}

/// A `<host>` of `<dns>` as net-update reads it (ip may be absent).
pub(super) struct DnsHostMatch {
    pub ip: Option<IpAddr>,
    pub hostnames: Vec<ConfigText>,
}

impl DnsHostMatch {
    /// The full record; parsing without `partial` guarantees the ip.
    pub fn into_record(self) -> Result<DnsHost> {
        let ip = self
            .ip
            .ok_or_else(|| invalid("Missing IP address in DNS HOST record"))?;
        Ok(DnsHost {
            ip,
            hostnames: self.hostnames,
        })
    }
}

const SRV_SERVICE_MAX_BYTES: usize = 512 - 30;

pub(super) struct DnsSrvMatch {
    pub service: Option<ConfigText>,
    pub protocol: Option<ConfigText>,
    pub domain: Option<ConfigText>,
    pub target: Option<ConfigText>,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

impl DnsSrvMatch {
    /// The full record; parsing without `partial` guarantees service and protocol.
    pub fn into_record(self) -> Result<DnsSrv> {
        let (Some(service), Some(protocol)) = (self.service, self.protocol) else {
            return Err(invalid("missing service or protocol in DNS SRV record"));
        };
        Ok(DnsSrv {
            service,
            protocol,
            domain: self.domain,
            target: self.target,
            port: self.port,
            priority: self.priority,
            weight: self.weight,
        })
    }
}

pub(super) fn dns_srv(element: &Element, network: &str, partial: bool) -> Result<DnsSrvMatch> {
    check_shape(
        element,
        &[
            "service", "protocol", "domain", "target", "port", "priority", "weight",
        ],
        &[],
    )?;
    let service = element.attribute("service");
    let service_label = service.unwrap_or("(null)");
    if service.is_none() && !partial {
        return Err(invalid(format!(
            "missing required service attribute in DNS SRV record of network '{network}'"
        )));
    }
    if let Some(service) = service {
        if service.len() > SRV_SERVICE_MAX_BYTES {
            return Err(invalid(format!(
                "service attribute '{service}' in network '{network}' is too long, limit is {SRV_SERVICE_MAX_BYTES} bytes"
            )));
        }
        if !service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-+/*".contains(c))
        {
            return Err(invalid(format!(
                "invalid character in service attribute '{}' in DNS SRV record of network '{network}'",
                service.escape_debug()
            )));
        }
    }
    let protocol = element.attribute("protocol");
    if protocol.is_none() && !partial {
        return Err(invalid(format!(
            "missing required protocol attribute in DNS SRV record '{service_label}' of network '{network}'"
        )));
    }
    if let Some(protocol) = protocol
        && !protocol
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-+/".contains(c))
    {
        return Err(invalid(format!(
            "invalid character in protocol attribute '{}' in DNS SRV record of network '{network}'",
            protocol.escape_debug()
        )));
    }
    let domain = optional_text(element, "domain")?;
    let target = optional_text(element, "target")?;
    let mut numbers = [0u16; 3];
    for (slot, (name, invalid_message)) in numbers.iter_mut().zip([
        ("port", "invalid DNS SRV port attribute"),
        ("priority", "Invalid DNS SRV priority attribute"),
        ("weight", "invalid DNS SRV weight attribute"),
    ]) {
        let Some(text) = element.attribute(name) else {
            continue;
        };
        let value = parse_unsigned::<u32>(text);
        if value.is_some() && target.is_none() {
            return Err(invalid(format!(
                "DNS SRV {name} attribute not permitted without target for service '{service_label}' in network '{network}'"
            )));
        }
        let limit_ok = |v: u32| v <= 65535 && (name != "port" || v >= 1);
        match value {
            Some(v) if limit_ok(v) => *slot = v as u16,
            _ => {
                return Err(invalid(format!(
                    "{invalid_message} for service '{service_label}' in network '{network}'"
                )));
            }
        }
    }
    let [port, priority, weight] = numbers;
    Ok(DnsSrvMatch {
        service: service
            .map(|s| config_text("DNS SRV service", s))
            .transpose()?,
        protocol: protocol
            .map(|p| config_text("DNS SRV protocol", p))
            .transpose()?,
        domain,
        target,
        port,
        priority,
        weight,
    })
}

pub(super) struct DnsTxtMatch {
    pub name: ConfigText,
    pub value: Option<ConfigText>,
}

impl DnsTxtMatch {
    /// The full record; parsing without `partial` guarantees the value.
    pub fn into_record(self) -> Result<DnsTxt> {
        let value = self
            .value
            .ok_or_else(|| invalid("missing value in DNS TXT record"))?;
        Ok(DnsTxt {
            name: self.name,
            value,
        })
    }
}

pub(super) fn dns_txt(element: &Element, network: &str, partial: bool) -> Result<DnsTxtMatch> {
    check_shape(element, &["name", "value"], &[])?;
    let name = element.attribute("name").ok_or_else(|| {
        invalid(format!(
            "missing required name attribute in DNS TXT record of network {network}"
        ))
    })?;
    if name.contains([' ', ',']) {
        return Err(invalid(format!(
            "prohibited character in DNS TXT record name '{name}' of network {network}"
        )));
    }
    let value = element.attribute("value");
    if value.is_none() && !partial {
        return Err(invalid(format!(
            "missing required value attribute in DNS TXT record named '{name}' of network {network}"
        )));
    }
    Ok(DnsTxtMatch {
        name: config_text("DNS TXT name", name)?,
        value: value.map(|v| config_text("DNS TXT value", v)).transpose()?,
    })
}

pub(super) fn vlan(element: &Element) -> Result<Vlan> {
    check_shape(element, &["trunk"], &["tag"])?;
    let mut tags: Vec<VlanTag> = Vec::new();
    for tag in element.children_named("tag") {
        check_shape(tag, &["id", "nativeMode"], &[])?;
        let id_text = tag
            .attribute("id")
            .ok_or_else(|| invalid("Missing required attribute 'id' in element 'tag'"))?;
        let id = parse_unsigned::<u32>(id_text).ok_or_else(|| {
            attribute_error(tag, "id", id_text, " Expected non-negative integer value")
        })?;
        if id > 4095 {
            return Err(invalid(format!(
                "vlan tag id {id} too large (maximum 4095)"
            )));
        }
        let native_mode = match tag.attribute("nativeMode") {
            None => None,
            Some("tagged") => Some(NativeMode::Tagged),
            Some("untagged") => Some(NativeMode::Untagged),
            Some(other) => return Err(attribute_error(tag, "nativeMode", other, "")),
        };
        if native_mode.is_some() && tags.iter().any(|t| t.native_mode.is_some()) {
            return Err(invalid("duplicate native vlan setting"));
        }
        tags.push(VlanTag {
            id: id as u16,
            native_mode,
        });
    }
    if tags.is_empty() {
        return Err(invalid(
            "missing tag id - each <vlan> must have at least one <tag id='n'/> subelement",
        ));
    }
    let mut trunk = tags.len() > 1;
    if let Some(value) = element.attribute("trunk").filter(|v| !v.is_empty()) {
        trunk = value.eq_ignore_ascii_case("yes");
        if !trunk {
            if tags.len() > 1 {
                return Err(invalid(format!(
                    "invalid \"trunk='{value}'\" in <vlan> - trunk='yes' is required for more than one vlan tag"
                )));
            }
            if tags.iter().any(|t| t.native_mode.is_some()) {
                return Err(invalid(
                    "invalid configuration in <vlan> - \"trunk='no'\" is not allowed with a native vlan id",
                ));
            }
            if !value.eq_ignore_ascii_case("no") {
                return Err(invalid(format!(
                    "invalid \"trunk='{value}'\" in <vlan> - must be yes or no"
                )));
            }
        }
    }
    Ok(Vlan { trunk, tags })
}

pub(super) fn virtualport(element: &Element, require_type: bool) -> Result<VirtualPort> {
    check_shape(element, &["type"], &["parameters"])?;
    let kind = match element.attribute("type") {
        None => None,
        Some("802.1Qbg") => Some(VirtualPortType::Qbg),
        Some("802.1Qbh") => Some(VirtualPortType::Qbh),
        Some("openvswitch") => Some(VirtualPortType::OpenVswitch),
        Some("midonet") => Some(VirtualPortType::Midonet),
        Some(other) => {
            return Err(unsupported(format!(
                "unknown virtualport type {}",
                other.escape_debug()
            )));
        }
    };
    if require_type && kind.is_none() {
        return Err(invalid("missing required virtualport type"));
    }
    let mut port = VirtualPort {
        kind,
        ..VirtualPort::default()
    };
    let Some(parameters) = single(element, "parameters")? else {
        return Ok(port);
    };
    check_shape(
        parameters,
        &[
            "managerid",
            "typeid",
            "typeidversion",
            "instanceid",
            "profileid",
            "interfaceid",
        ],
        &[],
    )?;
    let number = |name: &str, limit: u32, range_message: &str| -> Result<Option<u32>> {
        let Some(text) = parameters.attribute(name) else {
            return Ok(None);
        };
        let value = parse_c_unsigned(text)
            .ok_or_else(|| invalid(format!("cannot parse value of {name} parameter")))?;
        if value > limit {
            return Err(invalid(range_message.to_owned()));
        }
        Ok(Some(value))
    };
    port.manager_id =
        number("managerid", 0xff, "value of managerid out of range")?.map(|v| v as u8);
    port.type_id = number("typeid", 0xff_ffff, "value for typeid out of range")?;
    port.type_id_version =
        number("typeidversion", 0xff, "value of typeidversion out of range")?.map(|v| v as u8);
    if let Some(text) = parameters.attribute("instanceid") {
        port.instance_id = Some(
            text.parse()
                .map_err(|_| invalid("cannot parse instanceid parameter as a uuid"))?,
        );
    }
    if let Some(text) = parameters.attribute("profileid") {
        if text.len() >= 40 {
            return Err(invalid("profileid parameter too long"));
        }
        port.profile_id =
            Some(config_text("virtualport profileid", text)?).filter(|p| !p.as_str().is_empty());
    }
    if let Some(text) = parameters.attribute("interfaceid") {
        port.interface_id = Some(
            text.parse()
                .map_err(|_| invalid("cannot parse interfaceid parameter as a uuid"))?,
        );
    }
    let extra = match kind {
        Some(VirtualPortType::Qbg) => [
            ("profileid", port.profile_id.is_some()),
            ("interfaceid", port.interface_id.is_some()),
        ]
        .into_iter()
        .find(|(_, set)| *set),
        Some(VirtualPortType::Qbh) => [
            ("managerid", port.manager_id.is_some()),
            ("typeid", port.type_id.is_some()),
            ("typeidversion", port.type_id_version.is_some()),
            ("instanceid", port.instance_id.is_some()),
            ("interfaceid", port.interface_id.is_some()),
        ]
        .into_iter()
        .find(|(_, set)| *set),
        // midonet uses only interfaceid; libvirt would silently drop the rest.
        Some(VirtualPortType::OpenVswitch | VirtualPortType::Midonet) => [
            ("managerid", port.manager_id.is_some()),
            ("typeid", port.type_id.is_some()),
            ("typeidversion", port.type_id_version.is_some()),
            ("instanceid", port.instance_id.is_some()),
            (
                "profileid",
                kind == Some(VirtualPortType::Midonet) && port.profile_id.is_some(),
            ),
        ]
        .into_iter()
        .find(|(_, set)| *set),
        None => None,
    };
    if let (Some((name, _)), Some(kind)) = (extra, kind) {
        return Err(invalid(format!(
            "extra {name} unsupported in <virtualport type='{}'>",
            kind.as_str()
        )));
    }
    Ok(port)
}

pub(super) fn portgroup(element: &Element) -> Result<PortGroup> {
    check_shape(
        element,
        &["name", "default", "trustGuestRxFilters"],
        &["vlan", "virtualport", "bandwidth"],
    )?;
    check_singletons(element, &["vlan", "virtualport", "bandwidth"])?;
    let name = element
        .attribute("name")
        .filter(|name| !name.is_empty())
        .ok_or_else(|| invalid("Missing required name attribute in portgroup"))?;
    let is_default = match element.attribute("default") {
        None => false,
        Some(value) if value.eq_ignore_ascii_case("yes") => true,
        Some(value) if value.eq_ignore_ascii_case("no") => false,
        Some(other) => {
            return Err(attribute_error(element, "default", other, ""));
        }
    };
    Ok(PortGroup {
        name: config_text("portgroup name", name)?,
        is_default,
        trust_guest_rx_filters: yes_no(element, "trustGuestRxFilters")?,
        virtualport: single(element, "virtualport")?
            .map(|port| virtualport(port, false))
            .transpose()?,
        bandwidth: single(element, "bandwidth")?.map(bandwidth).transpose()?,
        vlan: single(element, "vlan")?.map(vlan).transpose()?,
    })
}

fn bandwidth(element: &Element) -> Result<Bandwidth> {
    check_shape(element, &["classID"], &["inbound", "outbound"])?;
    if unsigned::<u32>(element, "classID")?.is_some() {
        return Err(invalid(
            "classID attribute not supported on <bandwidth> in this usage context",
        ));
    }
    let rate = |name: &str| -> Result<Option<Rate>> {
        let Some(rate_element) = single(element, name)? else {
            return Ok(None);
        };
        check_shape(rate_element, &["average", "peak", "burst", "floor"], &[])?;
        let average = unsigned::<u64>(rate_element, "average")?;
        let peak = unsigned::<u64>(rate_element, "peak")?;
        let burst = unsigned::<u64>(rate_element, "burst")?;
        let floor = unsigned::<u64>(rate_element, "floor")?;
        if average.is_none() && floor.is_none() {
            return Err(invalid("Missing mandatory average or floor attributes"));
        }
        if (peak.is_some() || burst.is_some()) && average.is_none() {
            return Err(unsupported(
                "'peak' and 'burst' require 'average' attribute",
            ));
        }
        if floor.is_some() {
            return Err(unsupported(
                "floor attribute is not supported for this config",
            ));
        }
        Ok(Some(Rate {
            average: average.unwrap_or(0),
            peak: peak.unwrap_or(0),
            floor: 0,
            burst: burst.unwrap_or(0),
        }))
    };
    Ok(Bandwidth {
        inbound: rate("inbound")?,
        outbound: rate("outbound")?,
    })
}

fn route(element: &Element, network: &str) -> Result<Route> {
    check_shape(
        element,
        &[
            "family", "address", "netmask", "prefix", "gateway", "metric",
        ],
        &[],
    )?;
    let prefix = unsigned::<u32>(element, "prefix")?;
    let metric = unsigned::<u32>(element, "metric")?;
    if metric == Some(0) {
        return Err(invalid(
            "Invalid value for attribute 'metric' in element 'route': Zero is not permitted",
        ));
    }
    let address_text = element.attribute("address").ok_or_else(|| {
        invalid(format!(
            "{network}: Missing required address attribute in route definition"
        ))
    })?;
    let gateway_text = element.attribute("gateway").ok_or_else(|| {
        invalid(format!(
            "{network}: Missing required gateway attribute in route definition"
        ))
    })?;
    let address = parse_address(address_text).ok_or_else(|| {
        invalid(format!(
            "{network}: Bad network address '{}' in route definition",
            address_text.escape_debug()
        ))
    })?;
    let gateway = parse_address(gateway_text).ok_or_else(|| {
        invalid(format!(
            "{network}: Bad gateway address '{}' in route definition",
            gateway_text.escape_debug()
        ))
    })?;
    let netmask_text = element.attribute("netmask");
    let family_attr = element.attribute("family");
    let (family, netmask) = match family_attr {
        None | Some("ipv4") => {
            let label = if family_attr.is_none() {
                "No family"
            } else {
                "IPv4 family"
            };
            if !address.is_ipv4() {
                return Err(invalid(format!(
                    "{network}: {label} specified for non-IPv4 address '{address_text}' in route definition"
                )));
            }
            if !gateway.is_ipv4() {
                return Err(invalid(format!(
                    "{network}: {label} specified for non-IPv4 gateway '{address_text}' in route definition"
                )));
            }
            let netmask = match netmask_text {
                Some(text) => {
                    let mask = parse_address(text).ok_or_else(|| {
                        invalid(format!(
                            "{network}: Bad netmask address '{}' in route definition",
                            text.escape_debug()
                        ))
                    })?;
                    let IpAddr::V4(mask) = mask else {
                        return Err(invalid(format!(
                            "{network}: Invalid netmask '{text}' for address '{address_text}' (both must be IPv4)"
                        )));
                    };
                    if prefix.is_some() {
                        return Err(invalid(format!(
                            "{network}: Route definition cannot have both a prefix and a netmask"
                        )));
                    }
                    Some(mask)
                }
                None => None,
            };
            if let Some(prefix) = prefix.filter(|&p| p > 32) {
                return Err(invalid(format!(
                    "{network}: Invalid prefix {prefix} specified in route definition, must be 0 - 32"
                )));
            }
            (family_attr.map(|_| IpFamily::V4), netmask)
        }
        Some("ipv6") => {
            if !address.is_ipv6() {
                return Err(invalid(format!(
                    "{network}: ipv6 family specified for non-IPv6 address '{address_text}' in route definition"
                )));
            }
            if netmask_text.is_some() {
                return Err(invalid(format!(
                    "{network}: Specifying netmask invalid for IPv6 address '{address_text}' in route definition"
                )));
            }
            if !gateway.is_ipv6() {
                return Err(invalid(format!(
                    "{network}: ipv6 specified for non-IPv6 gateway address '{gateway_text}' in route definition"
                )));
            }
            if let Some(prefix) = prefix.filter(|&p| p > 128) {
                return Err(invalid(format!(
                    "{network}: Invalid prefix {prefix} specified in route definition, must be 0 - 128"
                )));
            }
            (Some(IpFamily::V6), None)
        }
        Some(other) => {
            return Err(invalid(format!(
                "{network}: Unrecognized family '{}' in route definition",
                other.escape_debug()
            )));
        }
    };
    let bits = match netmask {
        Some(mask) => u32::from(mask).count_ones() as u8,
        None => prefix.unwrap_or(0) as u8,
    };
    if network_address(&address, bits) != address {
        return Err(invalid(format!(
            "{network}: Address '{address_text}' in route definition is not a network address"
        )));
    }
    Ok(Route {
        family,
        address,
        netmask,
        prefix: prefix.map(|p| p as u8),
        gateway,
        metric,
    })
}

fn check_route_gateways(routes: &[Route], ips: &[IpDef], network: &str) -> Result<()> {
    for route in routes {
        let reachable = ips.iter().any(|ip| {
            IpFamily::of(&ip.address) == IpFamily::of(&route.gateway)
                && ip
                    .effective_prefix()
                    .is_some_and(|prefix| in_subnet(&ip.address, prefix, &route.gateway))
        });
        if !reachable {
            return Err(unsupported(format!(
                "unreachable static route gateway '{}' specified for network '{network}'",
                route.gateway
            )));
        }
    }
    Ok(())
}

fn pci_address(element: &Element) -> Result<PciAddress> {
    let number = |name: &str| -> Result<u32> {
        match element.attribute(name) {
            None => Ok(0),
            Some(text) => parse_c_unsigned(text).ok_or_else(|| {
                attribute_error(element, name, text, " Expected non-negative integer value")
            }),
        }
    };
    let pci = PciAddress {
        domain: number("domain")?,
        bus: number("bus")?,
        slot: number("slot")?,
        function: number("function")?,
    };
    if let Some(multifunction) = element.attribute("multifunction")
        && !matches!(multifunction, "on" | "off")
    {
        return Err(attribute_error(element, "multifunction", multifunction, ""));
    }
    let empty = pci.domain == 0 && pci.bus == 0 && pci.slot == 0;
    if !empty {
        if pci.bus > 0xff {
            return Err(invalid(format!(
                "Invalid PCI address bus='0x{:x}', must be <= 0xFF",
                pci.bus
            )));
        }
        if pci.slot > 0x1f {
            return Err(invalid(format!(
                "Invalid PCI address slot='0x{:x}', must be <= 0x1F",
                pci.slot
            )));
        }
        if pci.function > 7 {
            return Err(invalid(format!(
                "Invalid PCI address function=0x{:x}, must be <= 7",
                pci.function
            )));
        }
    }
    Ok(pci)
}

fn forward(element: &Element, network: &str) -> Result<Option<Forward>> {
    check_shape(
        element,
        &["mode", "dev", "managed"],
        &["interface", "address", "pf", "nat", "driver"],
    )?;
    single(element, "driver")?;
    let mode = match element.attribute("mode").filter(|m| !m.is_empty()) {
        None => Some(ForwardMode::Nat),
        Some("none") => None,
        Some(text) => Some(
            ForwardMode::ALL
                .into_iter()
                .find(|mode| mode.as_str() == text)
                .ok_or_else(|| {
                    unsupported(format!("unknown forwarding type '{}'", text.escape_debug()))
                })?,
        ),
    };
    let managed = element
        .attribute("managed")
        .is_some_and(|managed| managed.eq_ignore_ascii_case("yes"));
    let driver = match element.children_named("driver").next() {
        Some(driver) => {
            check_shape(driver, &["name", "model"], &[])?;
            let name = match driver.attribute("name") {
                None => None,
                Some("kvm") => Some(DriverName::Kvm),
                Some("vfio") => Some(DriverName::Vfio),
                Some("xen") => Some(DriverName::Xen),
                Some(other) => return Err(attribute_error(driver, "name", other, "")),
            };
            let model = optional_text(driver, "model")?;
            (name.is_some() || model.is_some()).then_some(ForwardDriver { name, model })
        }
        None => None,
    };

    let interface_elements: Vec<&Element> = element.children_named("interface").collect();
    let address_elements: Vec<&Element> = element.children_named("address").collect();
    let pf_elements: Vec<&Element> = element.children_named("pf").collect();
    let nat_elements: Vec<&Element> = element.children_named("nat").collect();

    let nat = match nat_elements.as_slice() {
        [] => None,
        [nat_element] => Some(nat(nat_element, mode, network)?),
        _ => {
            return Err(invalid(format!(
                "Only one <nat> element is allowed in <forward> of network {network}"
            )));
        }
    };

    let dev = element.attribute("dev").filter(|dev| !dev.is_empty());
    if dev.is_some() && !(address_elements.is_empty() && pf_elements.is_empty()) {
        return Err(invalid(format!(
            "the <forward> 'dev' attribute cannot be used when <address> or <pf> sub-elements are present in network {network}"
        )));
    }

    let mut interfaces: Vec<ForwardInterface> = Vec::new();
    let mut pf = None;
    if !interface_elements.is_empty() || dev.is_some() {
        if let Some(dev) = dev {
            interfaces.push(ForwardInterface::Netdev(link_name("forward dev", dev)?));
        }
        for (index, interface) in interface_elements.iter().enumerate() {
            check_shape(interface, &["dev", "connections"], &[])?;
            let name = interface.attribute("dev").filter(|d| !d.is_empty()).ok_or_else(|| {
                invalid(format!(
                    "Missing required dev attribute in <forward> <interface> element of network {network}"
                ))
            })?;
            if index == 0 && dev.is_some() {
                if Some(name) != dev {
                    return Err(invalid(format!(
                        "<forward dev='{}'> must match first <interface dev='{name}'/> in network {network}",
                        dev.unwrap_or_default()
                    )));
                }
                continue;
            }
            let name = link_name("forward interface dev", name)?;
            if interfaces.contains(&ForwardInterface::Netdev(name.clone())) {
                return Err(invalid(format!(
                    "interface '{name}' can only be listed once in network {network}"
                )));
            }
            interfaces.push(ForwardInterface::Netdev(name));
        }
    } else if !address_elements.is_empty() {
        for address in &address_elements {
            check_shape(
                address,
                &["type", "domain", "bus", "slot", "function", "multifunction"],
                &[],
            )?;
            let kind = address
                .attribute("type")
                .ok_or_else(|| invalid(format!("missing address type in network {network}")))?;
            if kind != "pci" {
                return Err(unsupported(format!(
                    "unknown address type '{}' in network {network}",
                    kind.escape_debug()
                )));
            }
            let pci = pci_address(address)?;
            if interfaces.contains(&ForwardInterface::Pci(pci)) {
                return Err(invalid(format!(
                    "PCI device '{:04x}:{:02x}:{:02x}.{:x}' can only be listed once in network {network}",
                    pci.domain, pci.bus, pci.slot, pci.function
                )));
            }
            interfaces.push(ForwardInterface::Pci(pci));
        }
    } else if pf_elements.len() > 1 {
        return Err(invalid(format!(
            "Only one <pf> element is allowed in <forward> of network {network}"
        )));
    } else if let Some(pf_element) = pf_elements.first() {
        check_shape(pf_element, &["dev"], &[])?;
        let dev = pf_element
            .attribute("dev")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| {
                invalid(format!(
                    "Missing required dev attribute in <pf> element of network '{network}'"
                ))
            })?;
        pf = Some(link_name("forward pf dev", dev)?);
    }

    Ok(mode.map(|mode| Forward {
        mode,
        managed,
        driver,
        nat,
        pf,
        interfaces,
    }))
}

fn nat(element: &Element, mode: Option<ForwardMode>, network: &str) -> Result<Nat> {
    if mode != Some(ForwardMode::Nat) {
        return Err(invalid(format!(
            "The <nat> element can only be used when <forward> 'mode' is 'nat' in network {network}"
        )));
    }
    check_shape(element, &["ipv6"], &["address", "port"])?;
    let ipv6 = yes_no(element, "ipv6")?;
    let addresses: Vec<&Element> = element.children_named("address").collect();
    let addresses = match addresses.as_slice() {
        [] => None,
        [address] => {
            check_shape(address, &["start", "end"], &[])?;
            let start = address.attribute("start").ok_or_else(|| {
                invalid(format!(
                    "missing 'start' attribute in <address> element in <nat> in <forward> in network {network}"
                ))
            })?;
            let end = address.attribute("end").ok_or_else(|| {
                invalid(format!(
                    "missing 'end' attribute in <address> element in <nat> in <forward> in network {network}"
                ))
            })?;
            let start = parse_ipv4(start).ok_or_else(|| {
                invalid(format!(
                    "Bad ipv4 start address '{}' in <nat> in <forward> in network '{network}'",
                    start.escape_debug()
                ))
            })?;
            let end = parse_ipv4(end).ok_or_else(|| {
                invalid(format!(
                    "Bad ipv4 end address '{}' in <nat> in <forward> in network '{network}'",
                    end.escape_debug()
                ))
            })?;
            range_size(&IpAddr::V4(start), &IpAddr::V4(end), None)?;
            Some((start, end))
        }
        _ => {
            return Err(invalid(format!(
                "Only one <address> element is allowed in <nat> in <forward> in network {network}"
            )));
        }
    };
    let ports: Vec<&Element> = element.children_named("port").collect();
    let ports = match ports.as_slice() {
        [] => None,
        [port] => {
            check_shape(port, &["start", "end"], &[])?;
            let start = port
                .attribute("start")
                .and_then(parse_unsigned::<u32>)
                .filter(|&start| start <= 65535)
                .ok_or_else(|| {
                    invalid(format!(
                        "Missing or invalid 'start' attribute in <port> in <nat> in <forward> in network {network}"
                    ))
                })?;
            let end = port
                .attribute("end")
                .and_then(parse_unsigned::<u32>)
                .filter(|&end| end <= 65535 && end >= start)
                .ok_or_else(|| {
                    invalid(format!(
                        "Missing or invalid 'end' attribute in <port> in <nat> in <forward> in network {network}"
                    ))
                })?;
            Some((start as u16, end as u16))
        }
        _ => {
            return Err(invalid(format!(
                "Only one <port> element is allowed in <nat> in <forward> in network {network}"
            )));
        }
    };
    Ok(Nat {
        ipv6,
        addresses,
        ports,
    })
}

fn check_mode_restrictions(
    forward: Option<&Forward>,
    bridge: &Bridge,
    stp_given: bool,
    mtu: Option<u32>,
    ip_count: usize,
    network: &str,
) -> Result<()> {
    let Some(forward) = forward else {
        return Ok(());
    };
    let mode = forward.mode.as_str();
    match forward.mode {
        ForwardMode::Route | ForwardMode::Nat | ForwardMode::Open => {
            if ip_count == 0 {
                return Err(invalid(format!(
                    "{mode} forwarding requested, but no IP address provided for network '{network}'"
                )));
            }
            if forward.interfaces.len() > 1 {
                return Err(invalid(format!(
                    "multiple forwarding interfaces specified for network '{network}', only one is supported"
                )));
            }
            if forward.mode == ForwardMode::Open && !forward.interfaces.is_empty() {
                return Err(invalid(format!(
                    "forward dev not allowed for network '{network}' with forward mode='{mode}'"
                )));
            }
        }
        ForwardMode::Private
        | ForwardMode::Vepa
        | ForwardMode::Passthrough
        | ForwardMode::Hostdev
        | ForwardMode::Bridge => {
            if forward.mode != ForwardMode::Bridge {
                if bridge.name.is_some() {
                    return Err(invalid(format!(
                        "bridge name not allowed in {mode} mode (network '{network}')"
                    )));
                }
                if bridge.zone.is_some() {
                    return Err(invalid(format!(
                        "bridge zone not allowed in {mode} mode (network '{network}')"
                    )));
                }
                if bridge.mac_table_manager.is_some() {
                    return Err(invalid(format!(
                        "bridge macTableManager setting not allowed in {mode} mode (network '{network}')"
                    )));
                }
            }
            if bridge.delay > 0 || stp_given || bridge.zone.is_some() {
                return Err(invalid(format!(
                    "bridge delay/stp/zone options only allowed in route, nat, and isolated mode, not in {mode} (network '{network}')"
                )));
            }
            if bridge.name.is_some() && (!forward.interfaces.is_empty() || forward.pf.is_some()) {
                return Err(invalid(format!(
                    "A network with forward mode='{mode}' can specify a bridge name or a forward dev, but not both (network '{network}')"
                )));
            }
            if mtu.is_some() {
                return Err(invalid(format!(
                    "mtu size only allowed in open, route, nat, and isolated mode, not in {mode} (network '{network}')"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::definition::{FormatFlags, NetworkDef};

    fn round_trip(xml: &str) -> String {
        let first = NetworkDef::parse(xml)
            .unwrap()
            .to_xml(FormatFlags::default());
        let second = NetworkDef::parse(&first)
            .unwrap()
            .to_xml(FormatFlags::default());
        assert_eq!(first, second, "formatting is idempotent");
        first
    }

    #[test]
    fn metadata_without_namespaced_children_is_dropped() {
        let xml = "<network><name>m</name><metadata><plain/></metadata></network>";
        assert!(!round_trip(xml).contains("metadata"));
        let kept = "<network><name>m</name><metadata><a:x xmlns:a='urn:a'>t</a:x><plain/></metadata></network>";
        assert!(round_trip(kept).contains("<a:x xmlns:a=\"urn:a\">t</a:x>"));
    }

    #[test]
    fn tabs_and_line_breaks_in_attributes_survive_a_round_trip() {
        let xml = "<network><name>t</name><forward/><dns><forwarder domain='a&#9;b'/></dns>\
            <ip address='10.0.0.1' prefix='24'/></network>";
        assert!(round_trip(xml).contains("domain='a&#9;b'"));
    }

    #[test]
    fn markup_characters_in_values_survive_a_round_trip() {
        let xml = "<network><name>a&apos;b&quot;&lt;&gt;</name><forward mode='bridge'/><bridge name='br0'/></network>";
        assert!(round_trip(xml).contains("<name>a&apos;b&quot;&lt;&gt;</name>"));
    }
}

//! `<ip>` and its `<dhcp>` (ranges, hosts, bootp) and `<tftp>`.

use std::net::IpAddr;

use crate::definition::*;
use crate::xml::tree::Element;

use super::scalars::{
    attribute_error, config_text, ip_address, optional_text, parse_address, unsigned, yes_no,
};
use super::shape::{check_shape, single};
use super::{Result, invalid, unsupported};

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
    // An infinite lease has no unit: libvirt prints none, so none is kept.
    let unit = if expiry == 0 {
        LeaseUnit::Minutes
    } else {
        unit
    };
    Ok(Some(Lease { expiry, unit }))
}

fn optional_lease(element: &Element) -> Result<Option<Lease>> {
    match single(element, "lease")? {
        Some(lease_element) => lease(lease_element),
        None => Ok(None),
    }
}

pub(in crate::definition) fn dhcp_range(
    element: &Element,
    ip: &IpDef,
    network: &str,
) -> Result<DhcpRange> {
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
pub(in crate::definition) fn dhcp_host(
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
            let mac = text.parse::<MacAsWritten>().map_err(|_| {
                invalid(format!(
                    "Cannot parse MAC address '{text}' in network '{network}'"
                ))
            })?;
            if mac.address().is_multicast() {
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
    let mut dhcp = Dhcp {
        ranges,
        hosts,
        bootp,
    };
    dhcp.drop_unserved_bootp();
    Ok(dhcp)
}

pub(super) fn ip(element: &Element, network: &str) -> Result<IpDef> {
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

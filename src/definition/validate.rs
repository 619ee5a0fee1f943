//! Checks that span several parts of a definition: address ranges (as
//! libvirt's virSocketAddrGetRange) and the define-time checks of libvirt's
//! network driver (networkValidate) that do not depend on the host.

use std::net::IpAddr;

use super::error::DefinitionError;
use super::format::address;
use super::*;

type Result<T> = std::result::Result<T, DefinitionError>;

fn internal(message: String) -> DefinitionError {
    DefinitionError::Internal(message)
}

fn unsupported(message: String) -> DefinitionError {
    DefinitionError::Unsupported(message)
}

/// Checks a start–end range as libvirt's virSocketAddrGetRange does, and
/// when `network` is given that the range lies inside it; returns the
/// number of addresses.
pub fn range_size(
    start: &IpAddr,
    end: &IpAddr,
    network: Option<(&IpAddr, Option<u8>)>,
) -> Result<u32> {
    let (start_text, end_text) = (address(start), address(end));
    if IpFamily::of(start) != IpFamily::of(end) {
        return Err(internal(format!(
            "mismatch of address family in range {start_text} - {end_text}"
        )));
    }
    if let Some((network, prefix)) = network {
        let network_text = address(network);
        if IpFamily::of(start) != IpFamily::of(network) {
            return Err(internal(format!(
                "mismatch of address family in range {start_text} - {end_text} for network {network_text}"
            )));
        }
        let Some(prefix) = prefix else {
            return Err(internal(format!(
                "bad prefix -1 for network {network_text} when checking range {start_text} - {end_text}"
            )));
        };
        if !in_subnet(network, prefix, start) || !in_subnet(network, prefix, end) {
            return Err(internal(format!(
                "range {start_text} - {end_text} is not entirely within network {network_text}/{prefix}"
            )));
        }
        if let (IpAddr::V4(start4), IpAddr::V4(end4), IpAddr::V4(net4)) = (start, end, network) {
            let mask = ipv4_mask(prefix);
            let network_address = u32::from(*net4) & mask;
            let broadcast = network_address | !mask;
            if u32::from(*start4) == network_address {
                return Err(internal(format!(
                    "start of range {start_text} - {end_text} in network {network_text}/{prefix} is the network address"
                )));
            }
            if u32::from(*end4) == broadcast {
                return Err(internal(format!(
                    "end of range {start_text} - {end_text} in network {network_text}/{prefix} is the broadcast address"
                )));
            }
        }
    }
    match (start, end) {
        (IpAddr::V4(start4), IpAddr::V4(end4)) => {
            let (low, high) = (u32::from(*start4), u32::from(*end4));
            if high < low {
                return Err(internal(format!(
                    "range {start_text} - {end_text} is reversed "
                )));
            }
            if high - low > 65535 {
                return Err(internal(format!(
                    "range {start_text} - {end_text} is too large (> 65535)"
                )));
            }
            Ok(high - low + 1)
        }
        (IpAddr::V6(start6), IpAddr::V6(end6)) => {
            let (low, high) = (start6.segments(), end6.segments());
            if low[..7] != high[..7] {
                return Err(internal(format!(
                    "range {start_text} - {end_text} is too large (> 65535)"
                )));
            }
            if high[7] < low[7] {
                return Err(internal(format!(
                    "range {start_text} - {end_text} start larger than end"
                )));
            }
            Ok(u32::from(high[7] - low[7]) + 1)
        }
        _ => unreachable!("families were compared above"),
    }
}

/// libvirt caps network-wide rates at 2^54 kbytes/s and bursts at UINT_MAX >> 10.
const RATE_LIMIT: u64 = 1 << 54;
const BURST_LIMIT: u64 = (u32::MAX >> 10) as u64;

/// The define-time checks of libvirt's networkValidate that do not depend
/// on the host. `virsh net-define` runs them; libvirt's XML round-trip
/// tests do not, which is why `xml-format` does not either.
pub(super) fn network(def: &NetworkDef) -> Result<()> {
    let name = def.name.as_str();
    // The definition and status files are named after the network, and
    // their loaders skip hidden files: such a network would keep running
    // unknown to the daemon after its restart. libvirt has the same trap.
    if name.starts_with('.') {
        return Err(DefinitionError::value(
            "network name",
            name,
            ValueError::LeadingDot,
        ));
    }
    let mode = def.forward_mode();
    let mode_name = mode.map_or("none", ForwardMode::as_str);
    let bandwidth_allowed = match mode {
        None | Some(ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open) => true,
        Some(ForwardMode::Bridge) => def.bridge.name.is_some(),
        Some(_) => false,
    };
    if matches!(
        mode,
        Some(
            ForwardMode::Bridge
                | ForwardMode::Private
                | ForwardMode::Vepa
                | ForwardMode::Passthrough
                | ForwardMode::Hostdev
        )
    ) {
        let unsupported_element = |element: &str| {
            unsupported(format!(
                "Unsupported <{element}> element in network {name} with forward mode='{mode_name}'"
            ))
        };
        if def.mac.is_some() {
            return Err(unsupported_element("mac"));
        }
        if !def.ips.is_empty() {
            return Err(unsupported_element("ip"));
        }
        if !(def.dns.txts.is_empty() && def.dns.hosts.is_empty() && def.dns.srvs.is_empty()) {
            return Err(unsupported_element("dns"));
        }
        if def.domain.is_some() {
            return Err(unsupported_element("domain"));
        }
    }
    if let Some(bandwidth) = &def.bandwidth {
        if !bandwidth_allowed {
            return Err(unsupported(format!(
                "Unsupported network-wide <bandwidth> element in network {name} with forward mode='{mode_name}'"
            )));
        }
        for rate in [bandwidth.inbound, bandwidth.outbound]
            .into_iter()
            .flatten()
        {
            for (field, value, limit) in [
                ("average", rate.average, RATE_LIMIT),
                ("peak", rate.peak, RATE_LIMIT),
                ("burst", rate.burst, BURST_LIMIT),
                ("floor", rate.floor, RATE_LIMIT),
            ] {
                if value > limit {
                    return Err(DefinitionError::Overflow(format!(
                        "value '{value}' is too big for '{field}' parameter, maximum is '{limit}'"
                    )));
                }
            }
        }
    }
    if let Some(forward) = &def.forward {
        for interface in &forward.interfaces {
            match (interface, forward.mode) {
                (ForwardInterface::Netdev(dev), ForwardMode::Hostdev) => {
                    return Err(unsupported(format!(
                        "hostdev network '{name}' lists '{dev}' in the device pool, but hostdev networks require all devices to be listed by PCI address, not network device name"
                    )));
                }
                (ForwardInterface::Pci(_), mode) if mode != ForwardMode::Hostdev => {
                    return Err(unsupported(format!(
                        "network '{name}' has forward mode '{mode_name}' but lists a device by PCI address in the device pool. This is only supported for networks with forward mode 'hostdev'"
                    )));
                }
                _ => {}
            }
        }
        let uses_interface = forward
            .interfaces
            .iter()
            .any(|i| matches!(i, ForwardInterface::Netdev(_)));
        let uses_address = forward
            .interfaces
            .iter()
            .any(|i| matches!(i, ForwardInterface::Pci(_)));
        if usize::from(forward.pf.is_some())
            + usize::from(uses_interface)
            + usize::from(uses_address)
            > 1
        {
            return Err(unsupported(format!(
                "<address>, <interface>, and <pf> elements of <forward> in network {name} are mutually exclusive"
            )));
        }
    }
    for family in [IpFamily::V4, IpFamily::V6] {
        let with_dhcp = def
            .ips
            .iter()
            .filter(|ip| ip.family() == family && ip.has_dhcp())
            .count();
        if with_dhcp > 1 {
            let label = family.label();
            return Err(unsupported(format!(
                "Multiple {label} dhcp sections found -- dhcp is supported only for a single {label} address on each network"
            )));
        }
    }
    for ip in &def.ips {
        for host in &ip.dhcp.hosts {
            check_host_in_subnet(host, ip, name)?;
        }
    }
    check_portgroups(def, bandwidth_allowed, mode_name)
}

/// A DHCP host's address lies in the subnet of its `<ip>`: dnsmasq would
/// silently ignore the reservation otherwise. libvirt does not check.
pub(super) fn check_host_in_subnet(host: &DhcpHost, ip: &IpDef, network: &str) -> Result<()> {
    // Without a prefix there is no subnet; dnsmasq's plan refuses that.
    let (Some(host_address), Some(prefix)) = (&host.ip, ip.effective_prefix()) else {
        return Ok(());
    };
    if in_subnet(&ip.address, prefix, host_address) {
        return Ok(());
    }
    Err(DefinitionError::HostOutsideSubnet {
        address: address(host_address),
        subnet: format!(
            "{}/{prefix}",
            address(&network_address(&ip.address, prefix))
        ),
        network: network.to_owned(),
    })
}

fn check_portgroups(def: &NetworkDef, bandwidth_allowed: bool, mode_name: &str) -> Result<()> {
    let name = def.name.as_str();
    let mode = def.forward_mode();
    let vlan_allowed = match mode {
        Some(ForwardMode::Hostdev | ForwardMode::Passthrough) => true,
        Some(ForwardMode::Bridge) => def
            .virtualport
            .as_ref()
            .is_none_or(|port| port.kind == Some(VirtualPortType::OpenVswitch)),
        _ => false,
    };
    let vlan_used = def.vlan.is_some();
    let mut bad_vlan_use = false;
    let mut default_group: Option<&PortGroup> = None;
    for (index, group) in def.portgroups.iter().enumerate() {
        if vlan_used || group.vlan.is_some() {
            bad_vlan_use |= match &group.virtualport {
                Some(port) => {
                    mode != Some(ForwardMode::Bridge)
                        || port.kind != Some(VirtualPortType::OpenVswitch)
                }
                None => !vlan_allowed,
            };
        }
        if group.is_default {
            if let Some(previous) = default_group {
                return Err(unsupported(format!(
                    "network '{name}' has multiple default <portgroup> elements ({} and {}), but only one default is allowed",
                    previous.name, group.name
                )));
            }
            default_group = Some(group);
        }
        if def.portgroups[index + 1..]
            .iter()
            .any(|other| other.name == group.name)
        {
            return Err(unsupported(format!(
                "multiple <portgroup> elements with the same name ({}) in network '{name}'",
                group.name
            )));
        }
        if group.bandwidth.is_some() && !bandwidth_allowed {
            return Err(unsupported(format!(
                "Unsupported <bandwidth> element in network '{name}' in portgroup '{}' with forward mode='{mode_name}'",
                group.name
            )));
        }
    }
    if bad_vlan_use || (vlan_used && !vlan_allowed && default_group.is_none()) {
        return Err(unsupported(format!(
            "<vlan> element specified for network {name}, whose type doesn't support vlan configuration"
        )));
    }
    Ok(())
}

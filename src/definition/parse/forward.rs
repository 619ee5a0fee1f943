//! `<forward>`: its mode, device pool, driver and `<nat>`, and what each
//! mode allows of the rest of the network.

use std::net::IpAddr;

use crate::definition::*;
use crate::xml::tree::Element;

use super::scalars::{
    attribute_error, link_name, optional_text, parse_c_unsigned, parse_ipv4, parse_unsigned, yes_no,
};
use super::shape::{check_shape, single};
use super::{Result, invalid, unsupported};

pub(in crate::definition) fn pci_address(element: &Element) -> Result<PciAddress> {
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
    }
    // Checked even in an address libvirt deems empty: libvirt prints the
    // function as `0x` and its decimal digits, which reads back as another
    // number once it is over 7.
    if pci.function > 7 {
        return Err(invalid(format!(
            "Invalid PCI address function=0x{:x}, must be <= 7",
            pci.function
        )));
    }
    Ok(pci)
}

pub(super) fn forward(element: &Element, network: &str) -> Result<Option<Forward>> {
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
        // An empty `<nat/>` says nothing, and libvirt prints none.
        [nat_element] => {
            Some(nat(nat_element, mode, network)?).filter(|nat| *nat != Nat::default())
        }
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

pub(super) fn check_mode_restrictions(
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

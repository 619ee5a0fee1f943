//! What a guest's port gets: `<vlan>`, `<virtualport>`, `<bandwidth>`,
//! and the `<portgroup>`s that bundle them.

use crate::definition::*;
use crate::xml::tree::Element;

use super::scalars::{
    attribute_error, config_text, parse_c_unsigned, parse_unsigned, unsigned, yes_no,
};
use super::shape::{check_shape, check_singletons, single};
use super::{Result, invalid, unsupported};

pub(in crate::definition) fn vlan(element: &Element) -> Result<Vlan> {
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

pub(in crate::definition) fn virtualport(
    element: &Element,
    require_type: bool,
) -> Result<VirtualPort> {
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

pub(in crate::definition) fn portgroup(element: &Element) -> Result<PortGroup> {
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
        // An empty `<virtualport/>` says nothing, and libvirt prints none.
        virtualport: single(element, "virtualport")?
            .map(|port| virtualport(port, false))
            .transpose()?
            .filter(|port| *port != VirtualPort::default()),
        bandwidth: single(element, "bandwidth")?
            .map(bandwidth)
            .transpose()?
            .flatten(),
        vlan: single(element, "vlan")?.map(vlan).transpose()?,
    })
}

/// A network's or a portgroup's `<bandwidth>`; `None` when it limits
/// nothing.
pub(super) fn bandwidth(element: &Element) -> Result<Option<Bandwidth>> {
    bandwidth_for(element, BandwidthUse::Network).map(|(bandwidth, _)| bandwidth)
}

/// Who a `<bandwidth>` belongs to: a guest's port also carries its htb
/// class (`classID`) and may ask for an inbound `floor`, which a network
/// or portgroup may not (libvirt checks a port's floor when the port is
/// allocated, against its network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::definition) enum BandwidthUse {
    Network,
    Port,
}

/// A `<bandwidth>` and its class id (non-zero, port only); the bandwidth
/// is `None` when it limits nothing: libvirt prints no rate without an
/// average or floor, and keeps no `<bandwidth>` without a rate.
pub(in crate::definition) fn bandwidth_for(
    element: &Element,
    usage: BandwidthUse,
) -> Result<(Option<Bandwidth>, Option<u32>)> {
    check_shape(element, &["classID"], &["inbound", "outbound"])?;
    let class_id = unsigned::<u32>(element, "classID")?;
    if class_id.is_some() && usage != BandwidthUse::Port {
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
        let floor_allowed = usage == BandwidthUse::Port && name == "inbound";
        if floor.is_some() && !floor_allowed {
            return Err(unsupported(
                "floor attribute is not supported for this config",
            ));
        }
        let average = average.unwrap_or(0);
        // Peak and burst shape an average; without one (a floor alone)
        // they would be printed without the average they require.
        let shaped = |value: Option<u64>| if average == 0 { 0 } else { value.unwrap_or(0) };
        let rate = Rate {
            average,
            peak: shaped(peak),
            floor: floor.unwrap_or(0),
            burst: shaped(burst),
        };
        Ok(Some(rate).filter(|rate| rate.average != 0 || rate.floor != 0))
    };
    let bandwidth = Bandwidth {
        inbound: rate("inbound")?,
        outbound: rate("outbound")?,
    };
    if bandwidth == Bandwidth::default() {
        return Ok((None, None));
    }
    Ok((Some(bandwidth), class_id.filter(|&id| id != 0)))
}

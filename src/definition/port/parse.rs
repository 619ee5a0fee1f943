//! XML tree → [`NetworkPortDef`], with libvirt's checks and messages
//! (virnetworkportdef.c), in its order. As for networks, unknown elements
//! and attributes, repeated elements, and values libvirt would drop
//! without a word are refused.

use crate::definition::parse::{
    BandwidthUse, attribute_error, bandwidth_for, check_shape, check_singletons, check_text_only,
    config_text, invalid, link_name, pci_address, single, virtualport, vlan, yes_no,
};
use crate::definition::values::{MacAddr, Uuid};
use crate::definition::{DefinitionError, DriverName, MacTableManager, VirtualPort};
use crate::xml::tree::Element;

use super::{
    BridgePlug, DirectMode, DirectPlug, HostdevPciPlug, NetworkPortDef, Plug, PortBandwidth,
    PortOwner,
};

type Result<T> = std::result::Result<T, DefinitionError>;

fn internal(message: impl Into<String>) -> DefinitionError {
    DefinitionError::Internal(message.into())
}

/// Every child of `<networkport>`; each may appear once, in any order.
const PORT_CHILDREN: [&str; 10] = [
    "uuid",
    "owner",
    "group",
    "mac",
    "virtualport",
    "bandwidth",
    "vlan",
    "port",
    "rxfilters",
    "plug",
];

pub(super) fn network_port(root: &Element) -> Result<NetworkPortDef> {
    if root.name != "networkport" || root.namespace.is_some() {
        return Err(invalid("unknown root element for network port"));
    }
    check_shape(root, &[], &PORT_CHILDREN)?;
    check_singletons(root, &PORT_CHILDREN)?;

    let uuid = required_uuid(single(root, "uuid")?, "network port has no uuid")?;
    let owner = owner(single(root, "owner")?)?;
    let group = match single(root, "group")? {
        Some(element) => {
            check_text_only(element)?;
            Some(element.text())
                .filter(|text| !text.is_empty())
                .map(|text| config_text("port group", &text))
                .transpose()?
        }
        None => None,
    };

    // An empty `<virtualport/>` says nothing, and libvirt prints none.
    let virtualport = single(root, "virtualport")?
        .map(|element| virtualport(element, false))
        .transpose()?
        .filter(|port| *port != VirtualPort::default());

    let mac = mac(single(root, "mac")?)?;

    let bandwidth = match single(root, "bandwidth")? {
        Some(element) => {
            let (limits, class_id) = bandwidth_for(element, BandwidthUse::Port)?;
            limits.map(|limits| PortBandwidth { limits, class_id })
        }
        None => None,
    };
    let vlan = single(root, "vlan")?.map(vlan).transpose()?;

    let isolated = match single(root, "port")? {
        Some(element) => {
            check_shape(element, &["isolated"], &[])?;
            yes_no(element, "isolated")?
        }
        None => None,
    };
    let trust_guest_rx_filters = match single(root, "rxfilters")? {
        Some(element) => {
            check_shape(element, &["trustGuest"], &[])?;
            yes_no(element, "trustGuest")?
        }
        None => None,
    };

    let plug = match single(root, "plug")? {
        Some(element) => plug(element)?,
        None => Plug::None,
    };

    Ok(NetworkPortDef {
        uuid,
        owner,
        group,
        mac,
        virtualport,
        bandwidth,
        vlan,
        isolated,
        trust_guest_rx_filters,
        plug,
    })
}

/// The UUID in `element`'s text; libvirt reports a missing or empty one
/// with `missing`, and an unreadable one as it does for any UUID.
fn required_uuid(element: Option<&Element>, missing: &str) -> Result<Uuid> {
    let Some(element) = element else {
        return Err(internal(missing));
    };
    check_text_only(element)?;
    let text = element.text();
    if text.is_empty() {
        return Err(internal(missing));
    }
    text.parse()
        .map_err(|_| internal(format!("Unable to parse UUID '{}'", text.escape_debug())))
}

fn owner(element: Option<&Element>) -> Result<PortOwner> {
    let Some(element) = element else {
        return Err(internal("network port has no owner name"));
    };
    check_shape(element, &[], &["name", "uuid"])?;
    check_singletons(element, &["name", "uuid"])?;
    let name = match single(element, "name")? {
        Some(name) => {
            check_text_only(name)?;
            name.text()
        }
        None => String::new(),
    };
    if name.is_empty() {
        return Err(internal("network port has no owner name"));
    }
    Ok(PortOwner {
        name: config_text("port owner name", &name)?,
        uuid: required_uuid(single(element, "uuid")?, "network port has no owner UUID")?,
    })
}

fn mac(element: Option<&Element>) -> Result<MacAddr> {
    let text = match element {
        Some(element) => {
            check_shape(element, &["address"], &[])?;
            element.attribute("address")
        }
        None => None,
    };
    let Some(text) = text.filter(|text| !text.is_empty()) else {
        return Err(internal("network port has no mac"));
    };
    let mac: MacAddr = text
        .parse()
        .map_err(|_| internal(format!("Unable to parse MAC '{}'", text.escape_debug())))?;
    // A guest's MAC is a unicast one: libvirt's schema and its domain
    // parser insist, though its port parser does not look.
    if mac.is_multicast() {
        return Err(invalid(format!(
            "expected unicast mac address, found multicast '{}'",
            text.escape_debug()
        )));
    }
    Ok(mac)
}

fn plug(element: &Element) -> Result<Plug> {
    match element.attribute("type") {
        None | Some("none") => {
            check_shape(element, &["type"], &[])?;
            Ok(Plug::None)
        }
        Some("network") => Ok(Plug::Network(bridge_plug(element)?)),
        Some("bridge") => Ok(Plug::Bridge(bridge_plug(element)?)),
        Some("direct") => direct_plug(element).map(Plug::Direct),
        Some("hostdev-pci") => hostdev_pci_plug(element).map(Plug::HostdevPci),
        Some(other) => Err(attribute_error(element, "type", other, "")),
    }
}

fn bridge_plug(element: &Element) -> Result<BridgePlug> {
    check_shape(element, &["type", "bridge", "macTableManager"], &[])?;
    let bridge = element
        .attribute("bridge")
        .ok_or_else(|| invalid("Missing network port bridge name"))?;
    let mac_table_manager = match element.attribute("macTableManager") {
        None => None,
        Some("kernel") => Some(MacTableManager::Kernel),
        Some("libvirt") => Some(MacTableManager::Libvirt),
        Some(other) => {
            return Err(invalid(format!(
                "Invalid macTableManager setting '{}' in network port",
                other.escape_debug()
            )));
        }
    };
    Ok(BridgePlug {
        bridge: link_name("plug bridge", bridge)?,
        mac_table_manager,
    })
}

fn direct_plug(element: &Element) -> Result<DirectPlug> {
    check_shape(element, &["type", "dev", "mode"], &[])?;
    let dev = element
        .attribute("dev")
        .ok_or_else(|| invalid("Missing network port link device name"))?;
    let mode = match element.attribute("mode") {
        None => DirectMode::default(),
        Some(text) => DirectMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == text)
            .ok_or_else(|| {
                invalid(format!(
                    "Invalid mode setting '{}' in network port",
                    text.escape_debug()
                ))
            })?,
    };
    Ok(DirectPlug {
        dev: link_name("plug dev", dev)?,
        mode,
    })
}

fn hostdev_pci_plug(element: &Element) -> Result<HostdevPciPlug> {
    check_shape(element, &["type", "managed"], &["driver", "address"])?;
    check_singletons(element, &["driver", "address"])?;
    let managed = yes_no(element, "managed")?;
    let driver = match single(element, "driver")? {
        // libvirt keeps the driver's name only; a model would be dropped.
        Some(driver) => {
            check_shape(driver, &["name"], &[])?;
            Some(match driver.attribute("name") {
                None => return Err(invalid("Missing network port driver name")),
                Some("kvm") => DriverName::Kvm,
                Some("vfio") => DriverName::Vfio,
                Some("xen") => DriverName::Xen,
                Some(other) => return Err(attribute_error(driver, "name", other, "")),
            })
        }
        None => None,
    };
    let address =
        single(element, "address")?.ok_or_else(|| invalid("Missing network port PCI address"))?;
    check_shape(address, &["domain", "bus", "slot", "function"], &[])?;
    Ok(HostdevPciPlug {
        managed,
        driver,
        address: pci_address(address)?,
    })
}

//! [`NetworkPortDef`] → XML as libvirt writes it: fixed element order,
//! single quotes, a direct plug's mode always written.

use crate::definition::MacTableManager;
use crate::definition::format::{
    pci_address_attributes, write_bandwidth_with_class, write_virtualport, write_vlan,
};
use crate::xml::write::{Tag, XmlWriter};

use super::{BridgePlug, NetworkPortDef, Plug};

pub(super) fn network_port(port: &NetworkPortDef) -> String {
    let mut w = XmlWriter::default();
    w.tag("networkport").open();
    w.text_element("uuid", &port.uuid.to_string());
    w.tag("owner").open();
    w.text_element("name", port.owner.name.as_str());
    w.text_element("uuid", &port.owner.uuid.to_string());
    w.close("owner");
    if let Some(group) = &port.group {
        w.text_element("group", group.as_str());
    }
    w.tag("mac").attr("address", port.mac).empty();
    if let Some(virtualport) = &port.virtualport {
        write_virtualport(&mut w, virtualport);
    }
    if let Some(bandwidth) = &port.bandwidth {
        write_bandwidth_with_class(&mut w, &bandwidth.limits, bandwidth.class_id);
    }
    if let Some(vlan) = &port.vlan {
        write_vlan(&mut w, vlan);
    }
    if let Some(isolated) = port.isolated {
        w.tag("port").attr("isolated", yes_no(isolated)).empty();
    }
    if let Some(trust) = port.trust_guest_rx_filters {
        w.tag("rxfilters").attr("trustGuest", yes_no(trust)).empty();
    }
    write_plug(&mut w, &port.plug);
    w.close("networkport");
    w.finish()
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn write_plug(w: &mut XmlWriter, plug: &Plug) {
    // libvirt writes no `<plug>` for a port without one.
    if *plug == Plug::None {
        return;
    }
    let tag = w.tag("plug").attr("type", plug.type_name());
    match plug {
        Plug::None => {}
        Plug::Network(bridge) | Plug::Bridge(bridge) => bridge_attributes(tag, bridge).empty(),
        Plug::Direct(direct) => tag
            .attr("dev", &direct.dev)
            .attr("mode", direct.mode.as_str())
            .empty(),
        Plug::HostdevPci(hostdev) => {
            tag.attr_opt("managed", hostdev.managed.map(yes_no)).open();
            if let Some(driver) = hostdev.driver {
                w.tag("driver").attr("name", driver.as_str()).empty();
            }
            pci_address_attributes(w.tag("address"), &hostdev.address).empty();
            w.close("plug");
        }
    }
}

fn bridge_attributes<'w>(tag: Tag<'w>, bridge: &BridgePlug) -> Tag<'w> {
    tag.attr("bridge", &bridge.bridge).attr_opt(
        "macTableManager",
        bridge.mac_table_manager.map(MacTableManager::as_str),
    )
}

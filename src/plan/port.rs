//! A network port's allocation, as libvirt's network driver decides it
//! (networkAllocatePort, networkNotifyPort): the plug a port of an active
//! network gets, and what it takes from the network and its portgroup.
//! Pure: the service records the result, nothing here touches the host.
//!
//! Bridge-backed networks only (nat, route, open, isolated, and bridge mode
//! with a bridge): the ports of device pools (macvtap and hostdev) are
//! refused as not supported yet.

use crate::definition::port::{BridgePlug, NetworkPortDef, Plug, PortBandwidth};
use crate::definition::{
    DefinitionError, ForwardMode, LinkName, NetworkDef, PortGroup, VirtualPort, VirtualPortType,
};

type Result<T> = std::result::Result<T, DefinitionError>;

fn unsupported(message: String) -> DefinitionError {
    DefinitionError::Unsupported(message)
}

/// The portgroup a port of `net` takes its settings from: the one it names
/// or, naming none, the default one. A name the network lacks is no
/// portgroup, as libvirt has it (virPortGroupFindByName).
pub fn portgroup<'a>(net: &'a NetworkDef, port: &NetworkPortDef) -> Option<&'a PortGroup> {
    match port
        .group
        .as_ref()
        .filter(|group| !group.as_str().is_empty())
    {
        Some(name) => net
            .portgroups
            .iter()
            .find(|group| group.name.as_str() == name.as_str()),
        None => net.portgroups.iter().find(|group| group.is_default),
    }
}

/// The bridge ports of `net` are plugged into, and whether that plug is
/// the network's own bridge (`network`) or a host bridge (`bridge`); an
/// error naming the mode for networks whose ports are not bridge ports.
fn bridge_plug(net: &NetworkDef) -> Result<Plug> {
    let bridge = |name: &LinkName| BridgePlug {
        bridge: name.clone(),
        mac_table_manager: net.bridge.mac_table_manager,
    };
    let name = net
        .bridge
        .name
        .as_ref()
        .filter(|name| !name.is_template())
        .and_then(|name| LinkName::new(name.as_str()).ok());
    match (net.forward_mode(), name) {
        (None | Some(ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open), Some(name)) => {
            Ok(Plug::Network(bridge(&name)))
        }
        (Some(ForwardMode::Bridge), Some(name)) => Ok(Plug::Bridge(bridge(&name))),
        (None | Some(ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open), None) => Err(
            DefinitionError::Internal(format!("network '{}' has no bridge", net.name)),
        ),
        (Some(mode), _) => Err(DefinitionError::OperationUnsupported(format!(
            "ports of network '{}' (forward mode '{}', a pool of host devices) are not \
             supported by virtnet yet",
            net.name,
            mode.as_str()
        ))),
    }
}

/// A new port of active network `net` (its plug not given): its plug, and
/// the bandwidth, vlan, virtualport, isolation and guest-filter trust it
/// takes from its portgroup and the network where it names none.
pub fn allocate(net: &NetworkDef, mut port: NetworkPortDef) -> Result<NetworkPortDef> {
    let group = portgroup(net, &port);
    if port.bandwidth.is_none()
        && let Some(limits) = group.and_then(|group| group.bandwidth.clone())
    {
        port.bandwidth = Some(PortBandwidth {
            limits,
            class_id: None,
        });
    }
    if port.vlan.is_none() {
        port.vlan = group
            .and_then(|group| group.vlan.clone())
            .or_else(|| net.vlan.clone());
    }
    if port.trust_guest_rx_filters.is_none() {
        port.trust_guest_rx_filters = net.trust_guest_rx_filters;
    }
    if port.isolated.is_none() {
        port.isolated = net.port_isolated;
    }
    port.virtualport = merge_virtualports(
        port.virtualport.as_ref(),
        net.virtualport.as_ref(),
        group.and_then(|group| group.virtualport.as_ref()),
    )?;
    port.plug = bridge_plug(net)?;
    check(net, &port)?;
    Ok(port)
}

/// A port re-created with the plug it had (RECLAIM, after the client's
/// restart): the plug must be one this network gives.
pub fn reclaim(net: &NetworkDef, port: NetworkPortDef) -> Result<NetworkPortDef> {
    match (&port.plug, bridge_plug(net)?) {
        (Plug::Network(_), Plug::Network(_)) | (Plug::Bridge(_), Plug::Bridge(_)) => {}
        (plug, _) => {
            return Err(unsupported(format!(
                "a port plugged as '{}' cannot be reclaimed from network '{}'",
                plug.type_name(),
                net.name
            )));
        }
    }
    check(net, &port)?;
    Ok(port)
}

/// What a bridge port cannot have (libvirt's checks after it allocated).
fn check(net: &NetworkDef, port: &NetworkPortDef) -> Result<()> {
    let openvswitch = port
        .virtualport
        .as_ref()
        .is_some_and(|virtualport| virtualport.kind == Some(VirtualPortType::OpenVswitch));
    if let Some(virtualport) = &port.virtualport {
        let kind = virtualport.kind.map_or("none", VirtualPortType::as_str);
        match port.plug {
            Plug::Network(_) => {
                return Err(unsupported(format!(
                    "<virtualport type='{kind}'> not supported for network '{}' which uses IP forwarding",
                    net.name
                )));
            }
            Plug::Bridge(_) if !openvswitch => {
                return Err(unsupported(format!(
                    "<virtualport type='{kind}'> not supported for network '{}' which uses a bridge device",
                    net.name
                )));
            }
            _ => {}
        }
    }
    if port.vlan.is_some() && !(matches!(port.plug, Plug::Bridge(_)) && openvswitch) {
        return Err(unsupported(format!(
            "an interface connecting to network '{}' is requesting a vlan tag, but that is \
             not supported for this type of network",
            net.name
        )));
    }
    if port
        .bandwidth
        .as_ref()
        .and_then(|bandwidth| bandwidth.limits.inbound)
        .is_some_and(|inbound| inbound.floor != 0)
    {
        return Err(DefinitionError::OperationUnsupported(format!(
            "an inbound 'floor' on a port of network '{}' is not supported by virtnet yet",
            net.name
        )));
    }
    Ok(())
}

/// libvirt's virNetDevVPortProfileMerge3, for what a bridge port uses: the
/// port's, the network's and the portgroup's virtualports in one, each
/// field from the first that gives it; types that differ are refused.
fn merge_virtualports(
    port: Option<&VirtualPort>,
    net: Option<&VirtualPort>,
    group: Option<&VirtualPort>,
) -> Result<Option<VirtualPort>> {
    let given: Vec<&VirtualPort> = [port, net, group].into_iter().flatten().collect();
    if given.is_empty() {
        return Ok(None);
    }
    let mut kinds = given.iter().filter_map(|virtualport| virtualport.kind);
    let kind = kinds.next();
    if let Some(other) = kinds.find(|other| Some(*other) != kind) {
        return Err(unsupported(format!(
            "attempt to merge virtualports with mismatched types ({} and {})",
            kind.map_or("none", VirtualPortType::as_str),
            other.as_str()
        )));
    }
    let first = |field: fn(&VirtualPort) -> bool| given.iter().copied().find(|v| field(v));
    Ok(Some(VirtualPort {
        kind,
        manager_id: first(|v| v.manager_id.is_some()).and_then(|v| v.manager_id),
        type_id: first(|v| v.type_id.is_some()).and_then(|v| v.type_id),
        type_id_version: first(|v| v.type_id_version.is_some()).and_then(|v| v.type_id_version),
        instance_id: first(|v| v.instance_id.is_some()).and_then(|v| v.instance_id),
        profile_id: first(|v| v.profile_id.is_some()).and_then(|v| v.profile_id.clone()),
        interface_id: first(|v| v.interface_id.is_some()).and_then(|v| v.interface_id),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: &str = "<networkport>
  <uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207d</uuid>
  <owner>
    <name>guest</name>
    <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  </owner>
  <group>fast</group>
  <mac address='52:54:00:7b:35:93'/>
</networkport>";

    fn network(forward: &str) -> NetworkDef {
        NetworkDef::parse(&format!(
            "<network><name>n</name><uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid>\
             {forward}<bridge name='virbr9' macTableManager='libvirt'/>\
             <ip address='10.9.0.1' prefix='24'/>\
             <portgroup name='fast'><bandwidth><inbound average='1000'/></bandwidth></portgroup>\
             <portgroup name='slow' default='yes'><bandwidth><outbound average='10'/></bandwidth></portgroup>\
             </network>"
        ))
        .unwrap()
    }

    #[test]
    fn a_nat_port_is_plugged_into_the_networks_bridge_with_its_portgroups_bandwidth() {
        let net = network("<forward mode='nat'/>");
        let port = allocate(&net, NetworkPortDef::parse(PORT).unwrap()).unwrap();
        let Plug::Network(plug) = &port.plug else {
            panic!("{:?}", port.plug)
        };
        assert_eq!(plug.bridge.as_str(), "virbr9");
        assert!(plug.mac_table_manager.is_some());
        let inbound = port.bandwidth.unwrap().limits.inbound.unwrap();
        assert_eq!(inbound.average, 1000);
    }

    #[test]
    fn without_a_group_the_default_portgroup_is_taken() {
        let net = network("");
        let xml = PORT.replace("<group>fast</group>", "");
        let port = allocate(&net, NetworkPortDef::parse(&xml).unwrap()).unwrap();
        assert_eq!(port.bandwidth.unwrap().limits.outbound.unwrap().average, 10);
    }

    #[test]
    fn a_bridge_mode_port_gets_a_bridge_plug() {
        let net = network("<forward mode='bridge'/>");
        let port = allocate(&net, NetworkPortDef::parse(PORT).unwrap()).unwrap();
        assert_eq!(port.plug.type_name(), "bridge");
    }

    #[test]
    fn pools_of_devices_are_refused_as_unsupported() {
        let net = NetworkDef::parse(
            "<network><name>p</name><forward mode='passthrough'><interface dev='eth9'/>\
             </forward></network>",
        )
        .unwrap();
        let error = allocate(&net, NetworkPortDef::parse(PORT).unwrap()).unwrap_err();
        assert!(
            matches!(&error, DefinitionError::OperationUnsupported(message)
                if message.contains("'passthrough'")),
            "{error}"
        );
    }

    #[test]
    fn a_vlan_on_a_plain_bridge_is_refused_as_libvirt_does() {
        let net = network("<forward mode='nat'/>");
        let xml = PORT.replace(
            "</networkport>",
            "<vlan><tag id='42'/></vlan></networkport>",
        );
        let error = allocate(&net, NetworkPortDef::parse(&xml).unwrap()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unsupported configuration: an interface connecting to network 'n' is requesting \
             a vlan tag, but that is not supported for this type of network"
        );
    }
}

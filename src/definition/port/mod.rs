//! A network port: libvirt's `<networkport>` document as typed data. A
//! port is a guest interface's connection to a network, as libvirt's QEMU
//! driver asks the network driver for one: who owns it (the domain), its
//! MAC, the portgroup it asked for, bandwidth (with an inbound floor),
//! vlan, virtualport and isolation, and the plug the network gave it (a
//! bridge, a macvtap device of the network's pool, or a PCI device).
//!
//! `parse` reads it with libvirt's checks (virnetworkportdef.c) and refuses
//! what libvirt would silently ignore, as the network parser does; `to_xml`
//! writes it as libvirt does, so that a port libvirt wrote reads back
//! byte for byte. The allocation of ports (the network driver's side,
//! `plan::port`) and the port records are built on this model.

mod format;
mod parse;
#[cfg(test)]
mod tests;

use super::values::{ConfigText, LinkName, MacAddr, Uuid};
use super::{
    Bandwidth, DefinitionError, DriverName, MacTableManager, PciAddress, VirtualPort, Vlan,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPortDef {
    pub uuid: Uuid,
    pub owner: PortOwner,
    /// The portgroup of the network the port asked for.
    pub group: Option<ConfigText>,
    pub mac: MacAddr,
    pub virtualport: Option<VirtualPort>,
    pub bandwidth: Option<PortBandwidth>,
    pub vlan: Option<Vlan>,
    /// `<port isolated>`: no traffic with other isolated ports of the bridge.
    pub isolated: Option<bool>,
    /// `<rxfilters trustGuest>`: the host follows the guest's MAC and
    /// multicast filter changes.
    pub trust_guest_rx_filters: Option<bool>,
    pub plug: Plug,
}

/// The domain the port belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortOwner {
    pub name: ConfigText,
    pub uuid: Uuid,
}

/// A port's bandwidth and the htb class libvirt gave it on the network's
/// bridge (for its floor), which a port record keeps across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBandwidth {
    pub limits: Bandwidth,
    /// Never 0: libvirt treats 0 as no class.
    pub class_id: Option<u32>,
}

/// How the guest's interface is connected, as the network decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plug {
    /// Not decided yet (or nothing to connect).
    None,
    /// A tap on the network's own bridge (nat, route, open, isolated).
    Network(BridgePlug),
    /// A tap on a host bridge the network forwards to.
    Bridge(BridgePlug),
    /// A macvtap device on a host interface of the network's pool.
    Direct(DirectPlug),
    /// A PCI device (an SR-IOV virtual function) of the network's pool.
    HostdevPci(HostdevPciPlug),
}

impl Plug {
    /// The `type` attribute's value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Network(_) => "network",
            Self::Bridge(_) => "bridge",
            Self::Direct(_) => "direct",
            Self::HostdevPci(_) => "hostdev-pci",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePlug {
    pub bridge: LinkName,
    pub mac_table_manager: Option<MacTableManager>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectPlug {
    pub dev: LinkName,
    pub mode: DirectMode,
}

/// The macvtap mode of a direct plug; libvirt takes vepa when none is given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DirectMode {
    #[default]
    Vepa,
    Private,
    Bridge,
    Passthrough,
}

impl DirectMode {
    pub const ALL: [DirectMode; 4] = [Self::Vepa, Self::Private, Self::Bridge, Self::Passthrough];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vepa => "vepa",
            Self::Private => "private",
            Self::Bridge => "bridge",
            Self::Passthrough => "passthrough",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostdevPciPlug {
    /// Whether libvirt detaches the device from its host driver itself.
    pub managed: Option<bool>,
    pub driver: Option<DriverName>,
    pub address: PciAddress,
}

impl NetworkPortDef {
    /// Parses a `<networkport>` document with the checks libvirt makes
    /// while parsing one. A port names its own UUID: none is generated.
    pub fn parse(xml: &str) -> Result<Self, DefinitionError> {
        let root = crate::xml::tree::parse_document(xml)?;
        parse::network_port(&root)
    }

    /// Writes the port as libvirt does (`virsh net-port-dumpxml`, and the
    /// port's status file).
    pub fn to_xml(&self) -> String {
        format::network_port(self)
    }
}

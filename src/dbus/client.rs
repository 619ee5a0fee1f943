//! Client proxies of the two interfaces, for `virtnet` and tests.

use zbus::{OwnedObjectPath, proxy};

#[proxy(interface = "org.libvirt.Connect")]
pub trait Connect {
    fn list_networks(&self, flags: u32) -> zbus::Result<Vec<OwnedObjectPath>>;

    #[zbus(name = "NetworkCreateXML")]
    fn network_create_xml(&self, xml: &str) -> zbus::Result<OwnedObjectPath>;

    #[zbus(name = "NetworkDefineXML")]
    fn network_define_xml(&self, xml: &str) -> zbus::Result<OwnedObjectPath>;

    fn network_lookup_by_name(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    #[zbus(name = "NetworkLookupByUUID")]
    fn network_lookup_by_uuid(&self, uuid: &str) -> zbus::Result<OwnedObjectPath>;
}

/// One lease: interface, expiry, type (0 IPv4, 1 IPv6), MAC, IAID,
/// address, prefix, hostname, client id.
pub type LeaseTuple = (
    String,
    i64,
    i32,
    String,
    String,
    String,
    u32,
    String,
    String,
);

#[proxy(interface = "org.libvirt.Network")]
pub trait Network {
    #[zbus(property)]
    fn active(&self) -> zbus::Result<bool>;

    #[zbus(property)]
    fn autostart(&self) -> zbus::Result<bool>;

    #[zbus(property)]
    fn set_autostart(&self, autostart: bool) -> zbus::Result<()>;

    #[zbus(property)]
    fn bridge_name(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn persistent(&self) -> zbus::Result<bool>;

    #[zbus(property, name = "UUID")]
    fn uuid(&self) -> zbus::Result<String>;

    fn create(&self) -> zbus::Result<()>;

    fn destroy(&self) -> zbus::Result<()>;

    #[zbus(name = "GetDHCPLeases")]
    fn get_dhcp_leases(&self, mac: &str, flags: u32) -> zbus::Result<Vec<LeaseTuple>>;

    #[zbus(name = "GetXMLDesc")]
    fn get_xml_desc(&self, flags: u32) -> zbus::Result<String>;

    fn undefine(&self) -> zbus::Result<()>;

    fn update(
        &self,
        command: u32,
        section: u32,
        parent_index: i32,
        xml: &str,
        flags: u32,
    ) -> zbus::Result<()>;
}

/// A network as `net-list` shows it: name, UUID, active, persistent,
/// autostart, bridge.
pub type NetworkSummary = (String, String, bool, bool, bool, String);

/// A network `ImportFromLibvirt` took over: name, UUID, bridge, MAC,
/// autostart, running in libvirtd, persistent, libvirt's copy undefined,
/// guests' ports moved.
pub type ImportedNetwork = (String, String, String, String, bool, bool, bool, bool, u32);

/// A finding of `Diagnose`: network ("" for what all networks share),
/// problem, fix.
pub type FindingTuple = (String, String, String);

#[proxy(interface = "org.virtnet.Connect")]
pub trait VirtnetConnect {
    fn list_network_summaries(&self, flags: u32) -> zbus::Result<Vec<NetworkSummary>>;

    fn reload_firewall(&self) -> zbus::Result<bool>;

    fn diagnose(&self, network: &str) -> zbus::Result<(Vec<String>, Vec<FindingTuple>)>;

    #[zbus(name = "ImportFromLibvirt")]
    fn import_from_libvirt(
        &self,
        uri: &str,
        names: &[String],
        flags: u32,
    ) -> zbus::Result<Vec<ImportedNetwork>>;
}

#[proxy(interface = "org.virtnet.Network")]
pub trait VirtnetNetwork {
    fn get_metadata(&self, kind: i32, uri: &str, flags: u32) -> zbus::Result<String>;

    fn set_metadata(
        &self,
        kind: i32,
        metadata: &str,
        key: &str,
        uri: &str,
        flags: u32,
    ) -> zbus::Result<()>;
}

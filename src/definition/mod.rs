//! The validated network definition: libvirt's network XML language as
//! typed data. `parse` builds it from XML with libvirt's checks, `format`
//! writes it back in libvirt's canonical form, `update` applies net-update.

mod error;
mod format;
mod metadata;
mod parse;
pub mod port;
mod update;
mod validate;
pub mod values;

use std::net::{IpAddr, Ipv4Addr};

pub use error::{DefinitionError, error_chain};
pub use format::{FormatFlags, address as format_address, write_bandwidth};
pub use metadata::MetadataType;
pub use update::{UpdateCommand, UpdateSection};
pub use validate::range_size;
pub use values::{
    BridgeName, ConfigText, LinkName, MacAddr, MacAsWritten, NetworkName, Uuid, ValueError,
};

use crate::xml::tree::{Element, NsBinding};

/// XML namespace of libvirt's `<dnsmasq:options>` extension.
pub const DNSMASQ_NAMESPACE: &str = "http://libvirt.org/schemas/network/dnsmasq/1.0";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDef {
    pub name: NetworkName,
    pub uuid: Uuid,
    pub title: Option<ConfigText>,
    pub description: Option<String>,
    pub metadata: Option<Metadata>,
    /// `ipv6='yes'`: guest-to-guest IPv6 without an IPv6 address on the bridge.
    pub ipv6_without_gateway: bool,
    pub trust_guest_rx_filters: Option<bool>,
    /// `None` is an isolated network (no `<forward>`).
    pub forward: Option<Forward>,
    pub bridge: Bridge,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    pub domain: Option<Domain>,
    pub dns: Dns,
    pub vlan: Option<Vlan>,
    pub bandwidth: Option<Bandwidth>,
    pub port_isolated: Option<bool>,
    pub ips: Vec<IpDef>,
    pub routes: Vec<Route>,
    pub virtualport: Option<VirtualPort>,
    pub portgroups: Vec<PortGroup>,
    pub dnsmasq_options: Vec<ConfigText>,
}

/// `<metadata>` as libvirt keeps it: the first child of each foreign
/// namespace, as written, plus the bindings it used from outside
/// `<metadata>` (printed on `<metadata>` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub element: Element,
    pub inherited: Vec<NsBinding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    Nat,
    Route,
    Open,
    Bridge,
    Private,
    Vepa,
    Passthrough,
    Hostdev,
}

impl ForwardMode {
    pub const ALL: [ForwardMode; 8] = [
        Self::Nat,
        Self::Route,
        Self::Open,
        Self::Bridge,
        Self::Private,
        Self::Vepa,
        Self::Passthrough,
        Self::Hostdev,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nat => "nat",
            Self::Route => "route",
            Self::Open => "open",
            Self::Bridge => "bridge",
            Self::Private => "private",
            Self::Vepa => "vepa",
            Self::Passthrough => "passthrough",
            Self::Hostdev => "hostdev",
        }
    }

    /// Modes where the network has a bridge of its own, made by us.
    pub fn has_own_bridge(mode: Option<Self>) -> bool {
        matches!(mode, None | Some(Self::Nat | Self::Route | Self::Open))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub mode: ForwardMode,
    pub managed: bool,
    pub driver: Option<ForwardDriver>,
    pub nat: Option<Nat>,
    pub pf: Option<LinkName>,
    pub interfaces: Vec<ForwardInterface>,
}

impl Forward {
    /// The `dev` attribute: the first pool interface, when it is a netdev.
    pub fn dev(&self) -> Option<&LinkName> {
        match self.interfaces.first() {
            Some(ForwardInterface::Netdev(name)) if self.pf.is_none() => Some(name),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardDriver {
    pub name: Option<DriverName>,
    pub model: Option<ConfigText>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverName {
    Kvm,
    Vfio,
    Xen,
}

impl DriverName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Vfio => "vfio",
            Self::Xen => "xen",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardInterface {
    Netdev(LinkName),
    Pci(PciAddress),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u32,
    pub slot: u32,
    pub function: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nat {
    pub ipv6: Option<bool>,
    pub addresses: Option<(Ipv4Addr, Ipv4Addr)>,
    pub ports: Option<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub name: Option<BridgeName>,
    pub zone: Option<ConfigText>,
    pub stp: bool,
    pub delay: u64,
    pub mac_table_manager: Option<MacTableManager>,
}

impl Default for Bridge {
    fn default() -> Self {
        Self {
            name: None,
            zone: None,
            stp: true,
            delay: 0,
            mac_table_manager: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacTableManager {
    Kernel,
    Libvirt,
}

impl MacTableManager {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Libvirt => "libvirt",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub name: ConfigText,
    pub local_only: Option<bool>,
    pub register: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub enable: Option<bool>,
    pub forward_plain_names: Option<bool>,
    pub forwarders: Vec<DnsForwarder>,
    pub txts: Vec<DnsTxt>,
    pub srvs: Vec<DnsSrv>,
    pub hosts: Vec<DnsHost>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsForwarder {
    pub addr: Option<IpAddr>,
    pub domain: Option<ConfigText>,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTxt {
    pub name: ConfigText,
    pub value: ConfigText,
}

/// A DNS SRV record; port, priority and weight of 0 mean "not given".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSrv {
    pub service: ConfigText,
    pub protocol: ConfigText,
    pub domain: Option<ConfigText>,
    pub target: Option<ConfigText>,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsHost {
    pub ip: IpAddr,
    pub hostnames: Vec<ConfigText>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeMode {
    Tagged,
    Untagged,
}

impl NativeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tagged => "tagged",
            Self::Untagged => "untagged",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vlan {
    pub trunk: bool,
    pub tags: Vec<VlanTag>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    pub id: u16,
    pub native_mode: Option<NativeMode>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bandwidth {
    pub inbound: Option<Rate>,
    pub outbound: Option<Rate>,
}

/// Rates in kbytes/s and sizes in kbytes, as libvirt defines them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rate {
    pub average: u64,
    pub peak: u64,
    pub floor: u64,
    pub burst: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn of(address: &IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V4 => "ipv4",
            Self::V6 => "ipv6",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpDef {
    /// The `family` attribute as written (it is only printed when given).
    pub family: Option<IpFamily>,
    pub address: IpAddr,
    pub netmask: Option<Ipv4Addr>,
    /// 0 means not given.
    pub prefix: u8,
    pub local_ptr: Option<bool>,
    pub tftp_root: Option<ConfigText>,
    pub dhcp: Dhcp,
}

impl IpDef {
    /// The prefix length in effect: explicit prefix, netmask, or the
    /// classful default for IPv4 and 64 for IPv6. `None` for an IPv4
    /// address outside classes A–C without prefix or netmask.
    pub fn effective_prefix(&self) -> Option<u8> {
        effective_prefix(&self.address, self.netmask, self.prefix)
    }

    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.address)
    }

    pub fn has_dhcp(&self) -> bool {
        !self.dhcp.ranges.is_empty() || !self.dhcp.hosts.is_empty()
    }
}

pub(crate) fn effective_prefix(
    address: &IpAddr,
    netmask: Option<Ipv4Addr>,
    prefix: u8,
) -> Option<u8> {
    if prefix > 0 {
        return Some(prefix);
    }
    if let Some(netmask) = netmask {
        return Some(u32::from(netmask).count_ones() as u8);
    }
    match address {
        IpAddr::V4(address) => match address.octets()[0] {
            octet if octet & 0x80 == 0 => Some(8),
            octet if octet & 0xc0 == 0x80 => Some(16),
            octet if octet & 0xe0 == 0xc0 => Some(24),
            _ => None,
        },
        IpAddr::V6(_) => Some(64),
    }
}

/// The IPv4 netmask of a prefix length, as a number.
pub fn ipv4_mask(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

/// The subnet `address`/`prefix`; a prefix longer than the family's
/// addresses counts as a whole address.
fn subnet(address: &IpAddr, prefix: u8) -> ipnet::IpNet {
    let whole = match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    ipnet::IpNet::new_assert(*address, prefix.min(whole))
}

/// `address` with the host bits of `prefix` cleared.
pub fn network_address(address: &IpAddr, prefix: u8) -> IpAddr {
    subnet(address, prefix).network()
}

/// Whether `candidate` lies in the subnet `network`/`prefix`.
pub fn in_subnet(network: &IpAddr, prefix: u8, candidate: &IpAddr) -> bool {
    subnet(network, prefix).contains(candidate)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dhcp {
    pub ranges: Vec<DhcpRange>,
    pub hosts: Vec<DhcpHost>,
    pub bootp: Option<Bootp>,
}

impl Dhcp {
    /// Leaves out a `<bootp>` that no range or host serves: libvirt prints
    /// it only inside a `<dhcp>` with either, and dnsmasq gets none then.
    pub(crate) fn drop_unserved_bootp(&mut self) {
        if self.ranges.is_empty() && self.hosts.is_empty() {
            self.bootp = None;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpRange {
    pub start: IpAddr,
    pub end: IpAddr,
    pub lease: Option<Lease>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpHost {
    pub mac: Option<MacAsWritten>,
    pub id: Option<ConfigText>,
    pub name: Option<ConfigText>,
    pub ip: Option<IpAddr>,
    pub lease: Option<Lease>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseUnit {
    Seconds,
    Minutes,
    Hours,
}

impl LeaseUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seconds => "seconds",
            Self::Minutes => "minutes",
            Self::Hours => "hours",
        }
    }
}

/// A lease time; an expiry of 0 means infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub expiry: u64,
    pub unit: LeaseUnit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootp {
    pub file: ConfigText,
    pub server: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub family: Option<IpFamily>,
    pub address: IpAddr,
    pub netmask: Option<Ipv4Addr>,
    pub prefix: Option<u8>,
    pub gateway: IpAddr,
    pub metric: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtualPortType {
    Qbg,
    Qbh,
    OpenVswitch,
    Midonet,
}

impl VirtualPortType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Qbg => "802.1Qbg",
            Self::Qbh => "802.1Qbh",
            Self::OpenVswitch => "openvswitch",
            Self::Midonet => "midonet",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VirtualPort {
    pub kind: Option<VirtualPortType>,
    pub manager_id: Option<u8>,
    pub type_id: Option<u32>,
    pub type_id_version: Option<u8>,
    pub instance_id: Option<Uuid>,
    pub profile_id: Option<ConfigText>,
    pub interface_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortGroup {
    pub name: ConfigText,
    pub is_default: bool,
    pub trust_guest_rx_filters: Option<bool>,
    pub vlan: Option<Vlan>,
    pub virtualport: Option<VirtualPort>,
    pub bandwidth: Option<Bandwidth>,
}

impl NetworkDef {
    pub fn forward_mode(&self) -> Option<ForwardMode> {
        self.forward.as_ref().map(|forward| forward.mode)
    }

    /// Parses a network definition with the checks libvirt makes while
    /// parsing. A missing `<uuid>` is generated.
    pub fn parse(xml: &str) -> Result<Self, DefinitionError> {
        let root = crate::xml::tree::parse_document(xml)?;
        parse::network(&root)
    }

    /// The checks libvirt makes when a network is defined or created
    /// (those that do not depend on the host).
    pub fn validate(&self) -> Result<(), DefinitionError> {
        validate::network(self)
    }

    /// Writes the definition in libvirt's canonical form.
    pub fn to_xml(&self, flags: FormatFlags) -> String {
        format::network(self, flags)
    }
}

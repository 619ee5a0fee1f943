//! The whole plan of a network: for modes with a bridge of their own, the
//! bridge, its addresses, routes and sysctls, the firewall rules and the
//! dnsmasq files ([`plan`]); for the others, the host devices they use
//! ([`host_devices`]).

use std::net::IpAddr;

use crate::definition::{ForwardInterface, ForwardMode, IpFamily, MacAddr, NetworkDef, PciAddress};

use super::dnsmasq::{self, DnsmasqError, DnsmasqFiles, DnsmasqPlan, Profile};
use super::firewall::{self, FirewallPlan, Subnet};

/// What the bridge of a network looks like once started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePlan {
    pub name: String,
    pub mac: [u8; 6],
    pub mtu: Option<u32>,
    pub stp: bool,
    /// Forward delay, in seconds as libvirt's `delay`.
    pub delay: u64,
    pub addresses: Vec<(IpAddr, u8)>,
    pub routes: Vec<RoutePlan>,
    /// The bridge carries IPv6 (an IPv6 address or `ipv6='yes'`).
    pub ipv6: bool,
    pub port_isolated: bool,
}

/// A route of the host's main table, as far as collision checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    pub destination: Subnet,
    /// The interface's index (none for routes through no interface).
    pub interface: Option<u32>,
}

impl BridgePlan {
    /// The subnets the bridge claims: those of its addresses and of its
    /// routes.
    pub fn claimed_subnets(&self) -> Vec<Subnet> {
        self.addresses
            .iter()
            .map(|(address, prefix)| Subnet::new(*address, *prefix))
            .chain(self.routes.iter().map(|route| route.destination))
            .collect()
    }
}

/// The host routes that collide with the subnets a bridge claims, as
/// libvirt sees it when it refuses to start a network (VIR_ERR_INTERNAL_ERROR
/// "Network is already in use by interface"): a route to the same subnet
/// through another interface than the bridge's (`bridge`: its index, none
/// before it exists).
pub fn colliding_routes<'a>(
    claimed: &'a [Subnet],
    routes: &'a [HostRoute],
    bridge: Option<u32>,
) -> impl Iterator<Item = &'a HostRoute> {
    routes.iter().filter(move |route| {
        claimed.contains(&route.destination) && (bridge.is_none() || route.interface != bridge)
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    pub destination: Subnet,
    pub gateway: IpAddr,
    pub metric: Option<u32>,
}

/// Host-wide forwarding a network needs switched on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forwarding {
    pub ipv4: bool,
    pub ipv6: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgedPlan {
    pub bridge: BridgePlan,
    pub forwarding: Forwarding,
    pub firewall: Option<FirewallPlan>,
    pub dnsmasq: Option<DnsmasqPlan>,
    /// Fill in UDP checksums of DHCP replies (udp port 68) leaving the bridge.
    pub dhcp_checksum_fix: bool,
    pub inbound_shaping: Option<InboundShaping>,
}

/// The inbound `<bandwidth>` of a network: what the host sends into the
/// bridge (to the guests) is shaped by htb classes under the bridge's root
/// qdisc, as libvirt makes them. Rates in kbytes/s, burst in kbytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundShaping {
    pub average: u64,
    pub peak: Option<u64>,
    pub burst: Option<u64>,
}

/// The bridge's root qdisc: htb, unclassified traffic to class 1:2 (the
/// network's class when shaped; otherwise no class, so unshaped).
pub const ROOT_QDISC: [&str; 6] = ["root", "handle", "1:", "htb", "default", "2"];

/// The leaf qdisc of the network's class, sharing it fairly between flows.
pub const LEAF_QDISC: [&str; 7] = ["parent", "1:2", "handle", "2:", "sfq", "perturb", "10"];

impl InboundShaping {
    pub fn of(def: &NetworkDef) -> Option<Self> {
        let rate = def.bandwidth.as_ref()?.inbound?;
        let given = |value: u64| (value > 0).then_some(value);
        Some(Self {
            average: given(rate.average)?,
            peak: given(rate.peak),
            burst: given(rate.burst),
        })
    }

    /// The arguments of `tc class add dev BRIDGE …` for libvirt's two
    /// classes: 1:1 holds the network's rate, 1:2 under it takes the
    /// traffic. tc's `kbps` is kbytes/s and `kb` kbytes, libvirt's units.
    /// The quantum is one full frame, as htb advises.
    pub fn classes(&self) -> [Vec<String>; 2] {
        let class = |parent: &str, id: &str| {
            let mut arguments: Vec<String> = ["parent", parent, "classid", id, "htb", "rate"]
                .map(String::from)
                .to_vec();
            arguments.push(format!("{}kbps", self.average));
            if let Some(peak) = self.peak {
                arguments.extend(["ceil".to_owned(), format!("{peak}kbps")]);
            }
            if let Some(burst) = self.burst {
                arguments.extend(["burst".to_owned(), format!("{burst}kb")]);
            }
            arguments.extend(["quantum".to_owned(), "1514".to_owned()]);
            arguments
        };
        [class("1:", "1:1"), class("1:1", "1:2")]
    }
}

/// Devices of the host a network without a bridge of its own hands to guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostDevices {
    /// An existing host bridge (forward mode bridge without devices).
    Bridge(String),
    /// Network devices for macvtap (bridge, private, vepa, passthrough).
    Netdevs(Vec<String>),
    /// The physical function whose virtual functions form the pool.
    PhysicalFunction(String),
    /// PCI devices for hostdev.
    Pci(Vec<PciAddress>),
}

/// Plans a network with a bridge of its own (isolated, nat, route, open).
/// `bridge` and `mac` are the concrete name and address (the definition may
/// hold a template, or nothing).
pub fn plan(
    def: &NetworkDef,
    bridge: &str,
    mac: MacAddr,
    files: &DnsmasqFiles,
) -> Result<BridgedPlan, DnsmasqError> {
    let mode = def.forward_mode();
    let has_family = |family| def.ips.iter().any(|ip| ip.family() == family);
    let routes = def
        .routes
        .iter()
        .map(|route| RoutePlan {
            destination: Subnet::new(
                route.address,
                route
                    .netmask
                    .map(|mask| u32::from(mask).count_ones() as u8)
                    .or(route.prefix)
                    .unwrap_or(0),
            ),
            gateway: route.gateway,
            metric: route.metric,
        })
        .collect();
    let bridge_plan = BridgePlan {
        name: bridge.to_owned(),
        mac: mac.0,
        mtu: def.mtu,
        stp: def.bridge.stp,
        delay: def.bridge.delay,
        addresses: def
            .ips
            .iter()
            .filter_map(|ip| ip.effective_prefix().map(|prefix| (ip.address, prefix)))
            .collect(),
        routes,
        ipv6: has_family(IpFamily::V6) || def.ipv6_without_gateway,
        port_isolated: def.port_isolated == Some(true),
    };
    let routed = matches!(
        mode,
        Some(ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open)
    );
    Ok(BridgedPlan {
        bridge: bridge_plan,
        forwarding: Forwarding {
            ipv4: routed && has_family(IpFamily::V4),
            ipv6: routed && has_family(IpFamily::V6),
        },
        firewall: firewall::plan(def, bridge),
        dnsmasq: dnsmasq::plan(def, bridge, files, Profile::Virtnet)?,
        dhcp_checksum_fix: def
            .ips
            .iter()
            .any(|ip| ip.family() == IpFamily::V4 && ip.has_dhcp()),
        inbound_shaping: InboundShaping::of(def),
    })
}

/// The host devices a network without a bridge of its own hands to guests.
pub fn host_devices(def: &NetworkDef) -> HostDevices {
    let Some(forward) = &def.forward else {
        return HostDevices::Netdevs(Vec::new());
    };
    if let Some(pf) = &forward.pf {
        return HostDevices::PhysicalFunction(pf.as_str().to_owned());
    }
    let pci: Vec<PciAddress> = forward
        .interfaces
        .iter()
        .filter_map(|interface| match interface {
            ForwardInterface::Pci(address) => Some(*address),
            ForwardInterface::Netdev(_) => None,
        })
        .collect();
    if !pci.is_empty() {
        return HostDevices::Pci(pci);
    }
    let netdevs: Vec<String> = forward
        .interfaces
        .iter()
        .filter_map(|interface| match interface {
            ForwardInterface::Netdev(name) => Some(name.as_str().to_owned()),
            ForwardInterface::Pci(_) => None,
        })
        .collect();
    match (&def.bridge.name, forward.mode) {
        (Some(bridge), ForwardMode::Bridge) if netdevs.is_empty() => {
            HostDevices::Bridge(bridge.as_str().to_owned())
        }
        _ => HostDevices::Netdevs(netdevs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaping(inbound: &str) -> Option<InboundShaping> {
        let xml = format!(
            "<network><name>q</name><bandwidth>{inbound}</bandwidth>\
             <ip address='10.1.1.1' prefix='24'/></network>"
        );
        InboundShaping::of(&NetworkDef::parse(&xml).unwrap())
    }

    #[test]
    fn inbound_bandwidth_makes_libvirts_two_htb_classes() {
        let full = shaping("<inbound average='1000' peak='2000' burst='256'/>").unwrap();
        let [network, traffic] = full.classes();
        assert_eq!(
            network.join(" "),
            "parent 1: classid 1:1 htb rate 1000kbps ceil 2000kbps burst 256kb quantum 1514"
        );
        assert_eq!(
            traffic.join(" "),
            "parent 1:1 classid 1:2 htb rate 1000kbps ceil 2000kbps burst 256kb quantum 1514"
        );
        let average = shaping("<inbound average='64'/>").unwrap();
        assert_eq!(
            average.classes()[0].join(" "),
            "parent 1: classid 1:1 htb rate 64kbps quantum 1514"
        );
        assert_eq!(shaping("<outbound average='64'/>"), None);
    }
}

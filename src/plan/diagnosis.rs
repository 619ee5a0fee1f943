//! `virtnet doctor`: why a guest may have no connectivity, as findings
//! that each say what is wrong and how to fix it. Decided here from what
//! was seen of the host ([`HostFacts`], read by `apply::inspect`) and what
//! each running network needs ([`NetworkFacts`], from its plan); nothing
//! here reads the host.
//!
//! Each kind of finding is one check function: a [`NetworkCheck`] in
//! [`NETWORK_CHECKS`] for what concerns one network, a [`HostCheck`] in
//! [`HOST_CHECKS`] for what all networks share. A new kind of finding is
//! one more function there, with the facts it needs added to the two
//! structures (and read where they are read).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use crate::definition::{ForwardMode, IpFamily, NetworkDef};

use super::dnsmasq::DnsmasqPlan;
use super::firewall::Subnet;
use super::network::{BridgedPlan, Forwarding, HostRoute, colliding_routes};

/// One thing that keeps guests from their connectivity, and its fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The network concerned; `None` for what all networks share.
    pub network: Option<String>,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = self.network.as_deref().unwrap_or("host");
        write!(f, "{subject}: {}; {}", self.problem, self.fix)
    }
}

/// The finding for a network named on the command line that is not running.
pub fn inactive(network: &str) -> Finding {
    Finding {
        network: Some(network.to_owned()),
        problem: "the network is not active: its guests have no network at all".into(),
        fix: format!("run 'virtnet net-start {network}'"),
    }
}

/// A link of the host as seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkFacts {
    pub name: String,
    pub up: bool,
    pub mtu: Option<u32>,
    pub addresses: Vec<(IpAddr, u8)>,
    /// `net.ipv4.conf.NAME.rp_filter`; `None` when unreadable.
    pub rp_filter: Option<u8>,
}

/// What was seen of the host, once for all networks.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// `net.ipv4.ip_forward`; `None` when unreadable.
    pub ipv4_forwarding: Option<bool>,
    /// `net.ipv6.conf.all.forwarding`; `None` when unreadable.
    pub ipv6_forwarding: Option<bool>,
    /// `net.ipv4.conf.all.rp_filter`; `None` when unreadable.
    pub rp_filter_all: Option<u8>,
    /// Every link, by index.
    pub links: HashMap<u32, LinkFacts>,
    /// The unicast routes of the main table.
    pub routes: Vec<HostRoute>,
    /// What is out of place in virtnet's nftables table, as its repair
    /// would name it (empty: the table is as the running networks need).
    pub table_out_of_place: Vec<String>,
    /// Other tables' chains that drop running networks' traffic, with no
    /// accept of virtnet's in place for it.
    pub foreign_drops: Vec<ForeignDrop>,
}

/// A chain of another tool's that drops a network's traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignDrop {
    pub network: String,
    /// Table, chain, why, and what it drops, as an administrator reads it.
    pub description: String,
}

impl HostFacts {
    fn link_named(&self, name: &str) -> Option<(u32, &LinkFacts)> {
        self.links
            .iter()
            .find(|(_, link)| link.name == name)
            .map(|(index, link)| (*index, link))
    }

    fn link_name(&self, index: Option<u32>) -> String {
        index
            .and_then(|index| self.links.get(&index))
            .map_or_else(|| "(no interface)".to_owned(), |link| link.name.clone())
    }

    /// The reverse path filter the kernel applies on `link`: the larger
    /// of `all`'s and the link's own (so a loose 2 on either wins over a
    /// strict 1).
    fn rp_filter(&self, link: &LinkFacts) -> Option<u8> {
        Some(link.rp_filter?.max(self.rp_filter_all.unwrap_or(0)))
    }

    /// The route the kernel takes to `address`: the longest prefix wins.
    fn route_to(&self, address: IpAddr) -> Option<&HostRoute> {
        self.routes
            .iter()
            .filter(|route| route.destination.contains(&address))
            .max_by_key(|route| route.destination.prefix)
    }

    /// The interface of the IPv4 default route (what NAT leaves through
    /// when no forward device is named).
    fn default_route_interface(&self) -> Option<u32> {
        self.routes
            .iter()
            .find(|route| {
                route.destination.prefix == 0 && route.destination.family() == IpFamily::V4
            })
            .and_then(|route| route.interface)
    }
}

/// A socket dnsmasq must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub protocol: Protocol,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = match self.protocol {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        };
        let service = match self.port {
            53 => " (DNS)",
            67 => " (DHCP)",
            547 => " (DHCPv6)",
            _ => "",
        };
        write!(f, "{protocol} port {}{service}", self.port)
    }
}

/// The sockets the dnsmasq of `plan` holds: DNS on port 53 over UDP and
/// TCP unless DNS is off (`port=0`), DHCP on UDP 67 and DHCPv6 on UDP 547
/// for the families it has DHCP ranges of.
pub fn expected_listeners(plan: &DnsmasqPlan) -> Vec<Listener> {
    let lines: Vec<&str> = plan.config.lines().collect();
    let mut expected = Vec::new();
    if !lines.contains(&"port=0") {
        expected
            .extend([Protocol::Udp, Protocol::Tcp].map(|protocol| Listener { protocol, port: 53 }));
    }
    let range_families: Vec<IpFamily> = lines
        .iter()
        .filter_map(|line| line.strip_prefix("dhcp-range="))
        .filter(|range| !range.contains("ra-only"))
        .filter_map(|range| range.split(',').next()?.parse::<IpAddr>().ok())
        .map(|start| IpFamily::of(&start))
        .collect();
    for (family, port) in [(IpFamily::V4, 67), (IpFamily::V6, 547)] {
        if range_families.contains(&family) {
            expected.push(Listener {
                protocol: Protocol::Udp,
                port,
            });
        }
    }
    expected
}

/// What was seen of a network's dnsmasq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsmasqFacts {
    pub pid: u32,
    /// The process lives and runs the network's configuration.
    pub alive: bool,
    /// What it must listen on ([`expected_listeners`]).
    pub expected: Vec<Listener>,
    /// What it listens on; `None` when its sockets could not be read.
    pub listening: Option<Vec<Listener>>,
}

/// What a running network with a bridge of its own needs of the host, and
/// what was seen of its dnsmasq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkFacts {
    pub name: String,
    pub mode: Option<ForwardMode>,
    pub forwarding: Forwarding,
    pub bridge: String,
    pub ifindex: u32,
    /// The bridge's addresses, as planned.
    pub addresses: Vec<(IpAddr, u8)>,
    /// The subnets the bridge claims (its addresses' and routes').
    pub claimed: Vec<Subnet>,
    /// The forward device (`<forward dev=…/>`).
    pub forward_dev: Option<String>,
    /// The network has rules in virtnet's table.
    pub has_rules: bool,
    /// `None` when the network has no dnsmasq.
    pub dnsmasq: Option<DnsmasqFacts>,
    /// The bridge's firewalld zone; `None` when firewalld does not run or
    /// the network asks for no zone.
    pub zone: Option<ZoneFacts>,
}

/// The firewalld zone a bridge should be in, and the one it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneFacts {
    pub wanted: String,
    /// `None`: in no zone of its own (the default zone's rules apply).
    pub actual: Option<String>,
}

impl NetworkFacts {
    /// The needs of network `def`, planned as `plan`, whose bridge has
    /// index `ifindex`; `dnsmasq` as seen.
    pub fn of(
        def: &NetworkDef,
        plan: &BridgedPlan,
        ifindex: u32,
        dnsmasq: Option<DnsmasqFacts>,
    ) -> Self {
        Self {
            name: def.name.to_string(),
            mode: def.forward_mode(),
            forwarding: plan.forwarding,
            bridge: plan.bridge.name.clone(),
            ifindex,
            addresses: plan.bridge.addresses.clone(),
            claimed: plan.bridge.claimed_subnets(),
            forward_dev: def
                .forward
                .as_ref()
                .and_then(|forward| forward.dev())
                .map(|dev| dev.as_str().to_owned()),
            has_rules: plan.firewall.is_some(),
            dnsmasq,
            zone: None,
        }
    }

    fn finding(&self, problem: String, fix: String) -> Finding {
        Finding {
            network: Some(self.name.clone()),
            problem,
            fix,
        }
    }

    fn restart(&self) -> String {
        format!(
            "restart the network ('virtnet net-destroy {0}', then 'virtnet net-start {0}')",
            self.name
        )
    }

    /// The link the network's traffic leaves the host through: its forward
    /// device, else the default route's interface. Only NAT and routed
    /// networks have one.
    fn uplink<'a>(&self, host: &'a HostFacts) -> Option<(u32, &'a LinkFacts)> {
        if !matches!(self.mode, Some(ForwardMode::Nat | ForwardMode::Route)) {
            return None;
        }
        match &self.forward_dev {
            Some(dev) => host.link_named(dev),
            None => {
                let index = host.default_route_interface()?;
                host.links.get(&index).map(|link| (index, link))
            }
        }
    }
}

/// A check of one network.
pub type NetworkCheck = fn(&NetworkFacts, &HostFacts) -> Vec<Finding>;

/// A check of what the networks share.
pub type HostCheck = fn(&HostFacts, &[NetworkFacts]) -> Vec<Finding>;

/// Every check of one network, in the order findings are listed.
pub const NETWORK_CHECKS: &[NetworkCheck] = &[
    bridge,
    dnsmasq,
    forwarding,
    reverse_path_filter,
    uplink_mtu,
    route_collisions,
    foreign_drops,
    firewalld_zone,
];

/// Every check of what the networks share.
pub const HOST_CHECKS: &[HostCheck] = &[virtnet_table];

/// Every finding about `networks` on `host`: what they share first, then
/// network by network.
pub fn diagnose(host: &HostFacts, networks: &[NetworkFacts]) -> Vec<Finding> {
    HOST_CHECKS
        .iter()
        .flat_map(|check| check(host, networks))
        .chain(networks.iter().flat_map(|network| {
            NETWORK_CHECKS
                .iter()
                .flat_map(move |check| check(network, host))
        }))
        .collect()
}

/// The bridge exists, is up and has its addresses.
fn bridge(network: &NetworkFacts, host: &HostFacts) -> Vec<Finding> {
    let name = &network.bridge;
    let Some(link) = host
        .links
        .get(&network.ifindex)
        .filter(|link| link.name == *name)
    else {
        return vec![network.finding(
            format!("bridge {name} is gone: guests have no network"),
            network.restart(),
        )];
    };
    if !link.up {
        return vec![network.finding(
            format!("bridge {name} is down: guests reach nothing, not even the host"),
            format!("run 'ip link set {name} up', or {}", network.restart()),
        )];
    }
    network
        .addresses
        .iter()
        .filter(|(address, _)| !link.addresses.iter().any(|(found, _)| found == address))
        .map(|(address, prefix)| {
            network.finding(
                format!(
                    "bridge {name} lacks its address {address}/{prefix}: guests lose their gateway, DHCP and DNS there"
                ),
                format!(
                    "run 'ip address add {address}/{prefix} dev {name}', or {}",
                    network.restart()
                ),
            )
        })
        .collect()
}

/// dnsmasq runs and listens where DHCP and DNS need it.
fn dnsmasq(network: &NetworkFacts, _host: &HostFacts) -> Vec<Finding> {
    let Some(dnsmasq) = &network.dnsmasq else {
        return Vec::new();
    };
    let pid = dnsmasq.pid;
    if !dnsmasq.alive {
        return vec![network.finding(
            format!(
                "dnsmasq (pid {pid}) is not running: guests get no DHCP lease and no DNS answer"
            ),
            format!(
                "{} (virtnetd starts it again by itself: if it keeps ending, see virtnetd's log)",
                network.restart()
            ),
        )];
    }
    let Some(listening) = &dnsmasq.listening else {
        return Vec::new();
    };
    let missing: Vec<String> = dnsmasq
        .expected
        .iter()
        .filter(|expected| !listening.contains(expected))
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }
    vec![network.finding(
        format!(
            "dnsmasq (pid {pid}) does not listen on {}: guests' requests there go unanswered",
            missing.join(", ")
        ),
        network.restart(),
    )]
}

/// The forwarding the network's mode needs is on.
fn forwarding(network: &NetworkFacts, host: &HostFacts) -> Vec<Finding> {
    let needs = match network.mode {
        Some(ForwardMode::Nat) => "NAT",
        Some(ForwardMode::Route) => "a routed network",
        Some(ForwardMode::Open) => "an open network",
        _ => return Vec::new(),
    };
    [
        (
            network.forwarding.ipv4,
            host.ipv4_forwarding,
            "net.ipv4.ip_forward",
        ),
        (
            network.forwarding.ipv6,
            host.ipv6_forwarding,
            "net.ipv6.conf.all.forwarding",
        ),
    ]
    .into_iter()
    .filter(|(needed, on, _)| *needed && *on == Some(false))
    .map(|(_, _, key)| {
        network.finding(
            format!("{key} is 0: {needs} needs it"),
            format!("run 'sysctl -w {key}=1' or {}", network.restart()),
        )
    })
    .collect()
}

/// Strict reverse path filtering (rp_filter 1) drops a packet unless the
/// route back to its source leaves through the interface it came in by.
/// That holds for guests' packets on the bridge while the host routes the
/// network's subnets through the bridge, and for what comes in by a
/// forward device while the default route goes through it; where it does
/// not, the filter drops the network's traffic.
fn reverse_path_filter(network: &NetworkFacts, host: &HostFacts) -> Vec<Finding> {
    let strict = |link: &LinkFacts| host.rp_filter(link) == Some(1);
    let loosen = |name: &str| format!("run 'sysctl -w net.ipv4.conf.{name}.rp_filter=2' (loose)");
    let mut findings = Vec::new();
    if let Some(link) = host.links.get(&network.ifindex).filter(|link| strict(link)) {
        for subnet in network
            .claimed
            .iter()
            .filter(|subnet| subnet.family() == IpFamily::V4)
        {
            let through = host
                .route_to(subnet.network)
                .and_then(|route| route.interface);
            if through != Some(network.ifindex) {
                findings.push(network.finding(
                    format!(
                        "net.ipv4.conf.{0}.rp_filter is strict (1) and the host routes {subnet} through {1}, not {0}: the kernel drops what guests send from there",
                        link.name,
                        host.link_name(through)
                    ),
                    format!("{}, or remove that route", loosen(&link.name)),
                ));
            }
        }
    }
    let forward_dev = network
        .forward_dev
        .as_deref()
        .and_then(|dev| host.link_named(dev));
    if let Some((index, link)) = forward_dev
        && strict(link)
        && let Some(default) = host.default_route_interface()
        && default != index
    {
        findings.push(network.finding(
            format!(
                "net.ipv4.conf.{0}.rp_filter is strict (1) and the default route goes through {1}, not {0}: the kernel drops the replies and connections that come in through {0}",
                link.name,
                host.link_name(Some(default))
            ),
            loosen(&link.name),
        ));
    }
    findings
}

/// Guests' full-size packets fit the uplink.
fn uplink_mtu(network: &NetworkFacts, host: &HostFacts) -> Vec<Finding> {
    let Some(bridge_mtu) = host.links.get(&network.ifindex).and_then(|link| link.mtu) else {
        return Vec::new();
    };
    let Some((_, uplink)) = network.uplink(host) else {
        return Vec::new();
    };
    match uplink.mtu {
        Some(uplink_mtu) if uplink_mtu < bridge_mtu => vec![network.finding(
            format!(
                "bridge {}'s MTU {bridge_mtu} is larger than uplink {}'s MTU {uplink_mtu}: guests' full-size packets do not fit, and their connections stall where ICMP is filtered",
                network.bridge, uplink.name
            ),
            format!(
                "give the network <mtu size='{uplink_mtu}'/> ('virtnet net-edit {0}') and restart it, or raise {1}'s MTU",
                network.name, uplink.name
            ),
        )],
        _ => Vec::new(),
    }
}

/// No host route claims the network's subnets elsewhere (what makes
/// libvirt refuse to start a network).
fn route_collisions(network: &NetworkFacts, host: &HostFacts) -> Vec<Finding> {
    colliding_routes(&network.claimed, &host.routes, Some(network.ifindex))
        .map(|route| {
            let through = host.link_name(route.interface);
            network.finding(
                format!(
                    "the host also routes {} through {through}: traffic to guests may go there, and the network would not start again",
                    route.destination
                ),
                format!(
                    "remove that route ('ip route del {} dev {through}') or give the network another subnet",
                    route.destination
                ),
            )
        })
        .collect()
}

/// virtnet's table is as the running networks need it.
fn firewalld_zone(network: &NetworkFacts, _host: &HostFacts) -> Vec<Finding> {
    let Some(zone) = &network.zone else {
        return Vec::new();
    };
    if zone.actual.as_deref() == Some(zone.wanted.as_str()) {
        return Vec::new();
    }
    let now = zone.actual.as_ref().map_or_else(
        || "in no firewalld zone (the default zone's rules apply)".to_owned(),
        |actual| format!("in firewalld zone '{actual}'"),
    );
    vec![network.finding(
        format!(
            "bridge {} is {now}, not in zone '{}': firewalld may refuse its guests' DHCP, DNS and forwarded traffic",
            network.bridge, zone.wanted
        ),
        format!(
            "run 'systemctl reload virtnetd' (it puts every bridge back into its zone), or 'firewall-cmd --zone={} --change-interface={}'",
            zone.wanted, network.bridge
        ),
    )]
}

fn foreign_drops(network: &NetworkFacts, host: &HostFacts) -> Vec<Finding> {
    host.foreign_drops
        .iter()
        .filter(|drop| drop.network == network.name)
        .map(|drop| {
            network.finding(
                drop.description.clone(),
                "let virtnetd add the accepts it needs there (its default, \
                 --foreign-firewalls=open; 'virtnet reload-firewall' adds them now), \
                 or accept the bridge's traffic in that chain yourself"
                    .into(),
            )
        })
        .collect()
}

fn virtnet_table(host: &HostFacts, networks: &[NetworkFacts]) -> Vec<Finding> {
    if host.table_out_of_place.is_empty() || !networks.iter().any(|network| network.has_rules) {
        return Vec::new();
    }
    vec![Finding {
        network: None,
        problem: format!(
            "virtnet's nftables table (inet virtnet) is not as the running networks need it: {}",
            host.table_out_of_place.join(", ")
        ),
        fix: "run 'virtnet reload-firewall' (virtnetd puts it right by itself within a second: if this stays, something keeps changing it)".into(),
    }]
}

#[cfg(test)]
#[path = "diagnosis_tests.rs"]
mod tests;

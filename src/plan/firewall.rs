//! The firewall rules a network needs, as data.
//!
//! virtnet keeps every rule in one nftables table of its own (`inet virtnet`),
//! laid out so that the cost per packet does not grow with the number of
//! networks: established traffic is accepted first, then verdict maps keyed
//! by bridge name jump straight into the few rules of the one network
//! concerned. Each network owns its chains and
//! map elements, so starting or stopping it is one transaction that leaves
//! every other network untouched.
//!
//! Meaning compared with libvirt 11.x's nftables rules
//! (`networkxml2firewalldata/*-linux.nftables`), case by case: the test
//! `tests/firewall_meaning.rs` evaluates both rule sets of every case for
//! the same probe packets, and the only differences it finds are the
//! deliberate ones listed below.
//! - nat: guests' own subnets may leave (optionally only through the
//!   forward `dev`), replies come back, new connections into the bridge are
//!   rejected; source NAT skips multicast 224.0.0.0/24 (ff02::/16),
//!   broadcast and the subnet itself, then masquerades TCP/UDP into the port
//!   range (1024–65535 unless `<nat><port>` says otherwise, SNAT when
//!   `<nat><address>` gives addresses) and everything else. IPv6 subnets
//!   are translated only with `<nat ipv6='yes'>`; otherwise they are routed
//!   as in route mode. A `<tftp>` adds no rules. Same as libvirt.
//! - route: as nat without address translation, and new connections into
//!   the guests' subnets are accepted. Same as libvirt.
//! - isolated (no `<forward>`): nothing is routed in or out; guests reach the
//!   host and each other. Same as libvirt.
//! - open, bridge, macvtap and hostdev modes: no rules. Same as libvirt.
//!
//! Deliberate differences:
//! - Established and related traffic is accepted before any per-network
//!   check, for all networks at once (libvirt checks it per network, in
//!   linear chains whose length grows with every network). Such traffic can
//!   only exist after a check let its first packet through; the one
//!   consequence is that replies for a `nat` network with a forward `dev`
//!   are not re-checked against that device.
//! - One `inet` table covers IPv4 and IPv6, so a network's bridge rejects
//!   unexpected traffic of both families; libvirt's `ip6` rules only appear
//!   when the network has an IPv6 address.
//! - Source NAT is entered by the bridge a packet came in on, then matched
//!   by source subnet as libvirt does; so the host's own packets that carry
//!   a guest subnet's source address are not translated (libvirt's rules
//!   match on the source address alone).
//! - DNS queries to a bridge's addresses are dropped unless they arrive on
//!   that bridge: dnsmasq binds to those addresses alone
//!   (`bind-interfaces`, see `plan::dnsmasq`), which, unlike libvirt's
//!   `bind-dynamic`, does not check where a query came in; this rule does.
//! - Rules carry no counters.
//! - The DHCP checksum fix-up (a tc `csum` filter for udp port 68, which
//!   libvirt's nftables files begin with) is set up only when the network
//!   serves IPv4 DHCP: libvirt adds it to every bridge it makes. On a
//!   kernel without tc's `csum` action, virtnet leaves it out.
//! - An outbound `<bandwidth>` limit (traffic the guests send into the
//!   host) is a `limit rate over … drop` rule in a chain on the bridge's
//!   ingress hook: the same token-bucket policing as libvirt's tc `police`
//!   filter on the bridge's ingress, which this kind of kernel may lack.
//!   nftables' bucket holds one second's worth of the rate on top of the
//!   burst.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::definition::{
    ForwardMode, IpDef, IpFamily, Nat, NetworkDef, in_subnet, network_address,
};

/// The nftables table (family `inet`) holding all of virtnet's rules.
pub const TABLE: &str = "virtnet";

/// A subnet in CIDR form with the host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    pub network: IpAddr,
    pub prefix: u8,
}

impl Subnet {
    pub fn new(address: IpAddr, prefix: u8) -> Self {
        Self {
            network: network_address(&address, prefix),
            prefix,
        }
    }

    pub fn of(ip: &IpDef) -> Option<Self> {
        ip.effective_prefix()
            .map(|prefix| Self::new(ip.address, prefix))
    }

    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.network)
    }

    pub fn contains(&self, address: &IpAddr) -> bool {
        in_subnet(&self.network, self.prefix, address)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    SourceIn(Subnet),
    DestinationIn(Subnet),
    InputInterface(String),
    OutputInterface(String),
    TcpOrUdp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Accept,
    Reject,
    /// Leave this network's chain; later checks decide.
    Return,
    Masquerade {
        ports: Option<(u16, u16)>,
    },
    Snat {
        addresses: (Ipv4Addr, Ipv4Addr),
        ports: Option<(u16, u16)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub conditions: Vec<Condition>,
    pub action: Action,
}

impl Rule {
    fn new(conditions: Vec<Condition>, action: Action) -> Self {
        Self { conditions, action }
    }
}

/// One network's share of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallPlan {
    pub bridge: String,
    /// Packets routed into the bridge; `Return` lets them on.
    pub to_bridge: Vec<Rule>,
    /// Packets routed out of the bridge.
    pub from_bridge: Vec<Rule>,
    /// Source NAT for packets that came in on the bridge; empty without NAT.
    pub nat: Vec<Rule>,
    /// The bridge's addresses, where dnsmasq answers DNS: queries to them
    /// that arrive on any other interface are dropped.
    pub dns_addresses: Vec<IpAddr>,
    /// Polices what enters the host from the bridge (outbound `<bandwidth>`).
    pub outbound_limit: Option<OutboundLimit>,
}

/// A token bucket: what goes beyond it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundLimit {
    pub kbytes_per_second: u64,
    pub burst_kbytes: u64,
}

impl OutboundLimit {
    /// libvirt's outbound rate: average, with a burst of one second's worth
    /// when none is given.
    pub fn of(def: &NetworkDef) -> Option<Self> {
        let rate = def.bandwidth.as_ref()?.outbound?;
        (rate.average > 0).then_some(Self {
            kbytes_per_second: rate.average,
            burst_kbytes: if rate.burst > 0 {
                rate.burst
            } else {
                rate.average
            },
        })
    }
}

impl FirewallPlan {
    pub fn to_bridge_chain(&self) -> String {
        format!("to_{}", self.bridge)
    }

    pub fn from_bridge_chain(&self) -> String {
        format!("from_{}", self.bridge)
    }

    pub fn nat_chain(&self) -> String {
        format!("nat_{}", self.bridge)
    }

    pub fn limit_chain(&self) -> String {
        format!("limit_{}", self.bridge)
    }
}

/// The default source port range for masquerading, as libvirt uses.
const MASQUERADE_PORTS: (u16, u16) = (1024, 65535);

/// `def` as it runs once its firewall is realized: as libvirt's network
/// driver does, a NAT network masquerading an IPv4 subnet records the
/// source port range it masquerades to (1024–65535 unless `<nat><port>`
/// says otherwise) in its live XML.
pub fn with_masquerade_ports(mut def: NetworkDef) -> NetworkDef {
    let masquerades_ipv4 = def
        .ips
        .iter()
        .filter_map(Subnet::of)
        .any(|subnet| subnet.family() == IpFamily::V4);
    if let Some(forward) = def.forward.as_mut()
        && forward.mode == ForwardMode::Nat
        && masquerades_ipv4
    {
        let nat = forward.nat.get_or_insert_with(Nat::default);
        nat.ports.get_or_insert(MASQUERADE_PORTS);
    }
    def
}

/// The rules `def` needs on `bridge`; `None` for modes that need none.
pub fn plan(def: &NetworkDef, bridge: &str) -> Option<FirewallPlan> {
    let mode = def.forward_mode();
    if !matches!(mode, None | Some(ForwardMode::Nat | ForwardMode::Route)) {
        return None;
    }
    let forward = def.forward.as_ref();
    let dev = forward.and_then(|f| f.dev()).map(|d| d.as_str().to_owned());
    let nat = forward.and_then(|f| f.nat.as_ref());
    let nat_ipv6 = nat.and_then(|n| n.ipv6) == Some(true);
    let subnets: Vec<Subnet> = def.ips.iter().filter_map(Subnet::of).collect();
    let bridge_in = Condition::InputInterface(bridge.to_owned());
    let bridge_out = Condition::OutputInterface(bridge.to_owned());

    let mut to_bridge = vec![Rule::new(vec![bridge_in.clone()], Action::Return)];
    let mut from_bridge = vec![Rule::new(vec![bridge_out], Action::Accept)];
    let mut nat_rules = Vec::new();
    if mode.is_some() {
        for subnet in &subnets {
            let translated =
                mode == Some(ForwardMode::Nat) && (subnet.family() == IpFamily::V4 || nat_ipv6);
            let mut outbound = vec![Condition::SourceIn(*subnet)];
            outbound.extend(dev.clone().map(Condition::OutputInterface));
            from_bridge.push(Rule::new(outbound, Action::Accept));
            if translated {
                nat_rules.extend(translation(def, *subnet, dev.as_deref()));
            } else {
                // Routed: new connections to the guests are welcome.
                let mut inbound = vec![Condition::DestinationIn(*subnet)];
                inbound.extend(dev.clone().map(Condition::InputInterface));
                to_bridge.push(Rule::new(inbound, Action::Return));
            }
        }
    }
    to_bridge.push(Rule::new(vec![], Action::Reject));
    from_bridge.push(Rule::new(vec![], Action::Reject));
    Some(FirewallPlan {
        bridge: bridge.to_owned(),
        to_bridge,
        from_bridge,
        nat: nat_rules,
        dns_addresses: def.ips.iter().map(|ip| ip.address).collect(),
        outbound_limit: OutboundLimit::of(def),
    })
}

/// Source NAT for one subnet, as libvirt orders it.
fn translation(def: &NetworkDef, subnet: Subnet, dev: Option<&str>) -> Vec<Rule> {
    let nat = def.forward.as_ref().and_then(|f| f.nat.as_ref());
    let mut rules = Vec::new();
    let untranslated: Vec<Subnet> = match subnet.network {
        IpAddr::V4(_) => vec![
            Subnet::new(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 0)), 24),
            Subnet::new(IpAddr::V4(Ipv4Addr::BROADCAST), 32),
            subnet,
        ],
        IpAddr::V6(_) => vec![
            Subnet::new(
                IpAddr::V6(std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0)),
                16,
            ),
            subnet,
        ],
    };
    for destination in untranslated {
        rules.push(Rule::new(
            vec![
                Condition::SourceIn(subnet),
                Condition::DestinationIn(destination),
            ],
            Action::Return,
        ));
    }
    let ports = nat.and_then(|n| n.ports).or(Some(MASQUERADE_PORTS));
    let addresses = nat
        .and_then(|n| n.addresses)
        .filter(|_| subnet.family() == IpFamily::V4);
    let via_dev = |extra: Vec<Condition>| {
        let mut conditions = vec![Condition::SourceIn(subnet)];
        conditions.extend(extra);
        conditions.extend(dev.map(|d| Condition::OutputInterface(d.to_owned())));
        conditions
    };
    let translate = |ports| match addresses {
        Some(addresses) => Action::Snat { addresses, ports },
        None => Action::Masquerade { ports },
    };
    rules.push(Rule::new(
        via_dev(vec![Condition::TcpOrUdp]),
        translate(ports),
    ));
    rules.push(Rule::new(via_dev(vec![]), translate(None)));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(xml: &str) -> NetworkDef {
        NetworkDef::parse(xml).unwrap()
    }

    const NAT: &str = "<network><name>n</name><forward dev='eth9'/>
        <ip address='192.168.122.1' prefix='24'/>
        <ip family='ipv6' address='fd00::1' prefix='64'/></network>";

    #[test]
    fn a_running_nat_network_names_its_masquerade_ports() {
        let ports = |xml: &str| {
            with_masquerade_ports(def(xml))
                .forward
                .and_then(|forward| forward.nat)
                .and_then(|nat| nat.ports)
        };
        assert_eq!(ports(NAT), Some((1024, 65535)));
        let own = NAT.replace(
            "dev='eth9'/>",
            "><nat><port start='2000' end='3000'/></nat></forward>",
        );
        assert_eq!(ports(&own), Some((2000, 3000)));
        let ipv6_only = "<network><name>n</name><forward/>
            <ip family='ipv6' address='fd00::1' prefix='64'/></network>";
        assert_eq!(ports(ipv6_only), None);
        let routed = "<network><name>n</name><forward mode='route'/>
            <ip address='192.168.122.1' prefix='24'/></network>";
        assert_eq!(ports(routed), None);
    }

    #[test]
    fn nat_masquerades_ipv4_and_routes_ipv6() {
        let plan = plan(&def(NAT), "virbr0").unwrap();
        let v4: Subnet = Subnet::new("192.168.122.1".parse().unwrap(), 24);
        let v6: Subnet = Subnet::new("fd00::1".parse().unwrap(), 64);
        assert_eq!(v4.to_string(), "192.168.122.0/24");
        assert_eq!(plan.nat.len(), 5, "three exceptions, TCP/UDP, the rest");
        assert_eq!(
            plan.nat[3],
            Rule::new(
                vec![
                    Condition::SourceIn(v4),
                    Condition::TcpOrUdp,
                    Condition::OutputInterface("eth9".into())
                ],
                Action::Masquerade {
                    ports: Some((1024, 65535))
                }
            )
        );
        assert!(plan.from_bridge.contains(&Rule::new(
            vec![
                Condition::SourceIn(v4),
                Condition::OutputInterface("eth9".into())
            ],
            Action::Accept
        )));
        // IPv6 is routed in nat mode unless <nat ipv6='yes'/>.
        assert!(plan.to_bridge.contains(&Rule::new(
            vec![
                Condition::DestinationIn(v6),
                Condition::InputInterface("eth9".into())
            ],
            Action::Return
        )));
        assert_eq!(plan.to_bridge.last().unwrap().action, Action::Reject);
    }

    #[test]
    fn nat_ipv6_and_address_pool() {
        let xml = "<network><name>n</name><forward><nat ipv6='yes'>
            <address start='10.0.0.5' end='10.0.0.6'/></nat></forward>
            <ip address='192.168.1.1' prefix='24'/><ip family='ipv6' address='fd00::1' prefix='64'/></network>";
        let plan = plan(&def(xml), "br").unwrap();
        assert_eq!(plan.nat.len(), 5 + 4, "IPv4 and IPv6 translated");
        assert!(matches!(plan.nat[3].action, Action::Snat { .. }));
        assert!(matches!(
            plan.nat.last().unwrap().action,
            Action::Masquerade { ports: None }
        ));
        assert_eq!(plan.nat_chain(), "nat_br");
    }

    #[test]
    fn isolated_rejects_everything_routed() {
        let xml = "<network><name>i</name><ip address='10.1.1.1' prefix='24'/></network>";
        let plan = plan(&def(xml), "br").unwrap();
        assert!(plan.nat.is_empty());
        assert_eq!(plan.to_bridge.len(), 2);
        assert_eq!(plan.from_bridge.len(), 2);
    }

    #[test]
    fn outbound_bandwidth_is_a_limit_with_a_burst() {
        let xml = |outbound: &str| {
            format!(
                "<network><name>q</name><bandwidth>{outbound}</bandwidth>
                 <ip address='10.1.1.1' prefix='24'/></network>"
            )
        };
        let planned = |outbound: &str| plan(&def(&xml(outbound)), "br").unwrap();
        assert_eq!(
            planned("<outbound average='500' burst='64'/>").outbound_limit,
            Some(OutboundLimit {
                kbytes_per_second: 500,
                burst_kbytes: 64
            })
        );
        assert_eq!(
            planned("<outbound average='500'/>")
                .outbound_limit
                .map(|limit| limit.burst_kbytes),
            Some(500),
            "one second's worth"
        );
        assert_eq!(planned("<inbound average='500'/>").outbound_limit, None);
        assert_eq!(
            planned("<inbound average='500'/>").limit_chain(),
            "limit_br"
        );
    }

    #[test]
    fn open_and_bridge_modes_have_no_rules() {
        let open = "<network><name>o</name><forward mode='open'/><ip address='10.1.1.1' prefix='24'/></network>";
        assert!(plan(&def(open), "br").is_none());
        let bridge =
            "<network><name>b</name><forward mode='bridge'/><bridge name='br0'/></network>";
        assert!(plan(&def(bridge), "br0").is_none());
    }
}

//! libvirt's networkxml2firewall cases: what virtnet's rules do beside
//! what libvirt's nftables rules do, case by case. Both rule sets are
//! evaluated for the same probe packets (every pairing of the network's
//! bridge, uplinks and another bridge, of guest and outside addresses,
//! protocols and connection states); where their verdicts differ, one of
//! the deliberate differences documented in `plan::firewall` must explain
//! it and say what virtnet does.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use common::{corpus_dir, read_tsv};
use serde_json::{Value, json};
use virtnet::definition::{IpFamily, NetworkDef};
use virtnet::plan::firewall::{self, FirewallPlan, Subnet};

const BRIDGE: &str = "virbr0";
/// The forward `dev` of the corpus's forward-dev case, and another uplink.
const UPLINKS: [&str; 2] = ["enp0s7", "eth1"];
const OTHER_BRIDGE: &str = "virbr9";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Established,
}

/// A packet the forward hook sees.
#[derive(Debug, Clone)]
struct Packet {
    iif: &'static str,
    oif: &'static str,
    source: IpAddr,
    destination: IpAddr,
    protocol: Protocol,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    Reject,
}

/// What source NAT does to the first packet of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Translation {
    None,
    Masquerade(Option<(u16, u16)>),
}

/// One match of a libvirt rule.
#[derive(Debug)]
enum Match {
    Iif(String),
    Oif(String),
    Source { subnet: Subnet, negated: bool },
    Destination { subnet: Subnet, negated: bool },
    Established,
    Protocol(Protocol),
}

#[derive(Debug)]
enum LibvirtVerdict {
    Accept,
    Reject,
    Return,
    Masquerade(Option<(u16, u16)>),
}

#[derive(Debug)]
struct LibvirtRule {
    matches: Vec<Match>,
    verdict: LibvirtVerdict,
}

/// libvirt's rules of one case: per family (`ip`, `ip6`) and chain, in the
/// order the kernel runs them.
#[derive(Default)]
struct LibvirtRules {
    chains: BTreeMap<(String, String), Vec<LibvirtRule>>,
}

impl LibvirtRules {
    /// Reads a `NAME-linux.nftables` file: one argument per line, joined
    /// with ` \`. Every rule is inserted at the head of its chain, so a
    /// chain runs its rules in the reverse of the file's order.
    fn parse(text: &str) -> Self {
        let mut rules = Self::default();
        let mut command: Vec<String> = Vec::new();
        for line in text.lines() {
            let (words, continued) = match line.strip_suffix(" \\") {
                Some(words) => (words, true),
                None => (line, false),
            };
            command.extend(words.split_whitespace().map(str::to_owned));
            if !continued {
                rules.add(&command);
                command.clear();
            }
        }
        rules
    }

    fn add(&mut self, command: &[String]) {
        let words: Vec<&str> = command.iter().map(String::as_str).collect();
        let [
            "nft",
            "-ae",
            "insert",
            "rule",
            family,
            "libvirt_network",
            chain,
            rule @ ..,
        ] = words.as_slice()
        else {
            assert!(
                matches!(words.first(), Some(&"tc")),
                "unexpected command {words:?}"
            );
            return;
        };
        self.chains
            .entry(((*family).to_owned(), (*chain).to_owned()))
            .or_default()
            .insert(0, parse_rule(rule));
    }

    fn chain(&self, family: &str, chain: &str) -> &[LibvirtRule] {
        self.chains
            .get(&(family.to_owned(), chain.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    /// The forward hook: libvirt's base chain jumps to guest_cross,
    /// guest_input and guest_output in turn; its policy accepts.
    fn forward(&self, packet: &Packet) -> Verdict {
        let family = family_of(&packet.source);
        for chain in ["guest_cross", "guest_input", "guest_output"] {
            match first_verdict(self.chain(family, chain), packet) {
                Some(LibvirtVerdict::Accept) => return Verdict::Accept,
                Some(LibvirtVerdict::Reject) => return Verdict::Reject,
                Some(other) => panic!("{other:?} in a filter chain"),
                None => {}
            }
        }
        Verdict::Accept
    }

    fn translation(&self, packet: &Packet) -> Translation {
        match first_verdict(self.chain(family_of(&packet.source), "guest_nat"), packet) {
            Some(LibvirtVerdict::Masquerade(ports)) => Translation::Masquerade(*ports),
            Some(LibvirtVerdict::Return) | None => Translation::None,
            Some(other) => panic!("{other:?} in the NAT chain"),
        }
    }
}

fn family_of(address: &IpAddr) -> &'static str {
    match address {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    }
}

fn first_verdict<'a>(rules: &'a [LibvirtRule], packet: &Packet) -> Option<&'a LibvirtVerdict> {
    rules
        .iter()
        .find(|rule| rule.matches.iter().all(|m| matches_packet(m, packet)))
        .map(|rule| &rule.verdict)
}

fn matches_packet(condition: &Match, packet: &Packet) -> bool {
    match condition {
        Match::Iif(name) => packet.iif == name,
        Match::Oif(name) => packet.oif == name,
        Match::Source { subnet, negated } => {
            same_family(subnet, &packet.source) && subnet.contains(&packet.source) != *negated
        }
        Match::Destination { subnet, negated } => {
            same_family(subnet, &packet.destination)
                && subnet.contains(&packet.destination) != *negated
        }
        Match::Established => packet.state == State::Established,
        Match::Protocol(protocol) => packet.protocol == *protocol,
    }
}

/// An `ip` or `ip6` match only sees packets of its family.
fn same_family(subnet: &Subnet, address: &IpAddr) -> bool {
    subnet.family() == IpFamily::of(address)
}

fn parse_rule(words: &[&str]) -> LibvirtRule {
    let mut matches = Vec::new();
    let mut rest = words;
    loop {
        match rest {
            ["iif" | "iifname", name, tail @ ..] => {
                matches.push(Match::Iif((*name).to_owned()));
                rest = tail;
            }
            ["oif" | "oifname", name, tail @ ..] => {
                matches.push(Match::Oif((*name).to_owned()));
                rest = tail;
            }
            ["ip" | "ip6", field @ ("saddr" | "daddr"), tail @ ..] => {
                let (negated, cidr, tail) = match tail {
                    ["'!='", cidr, tail @ ..] => (true, cidr, tail),
                    [cidr, tail @ ..] => (false, cidr, tail),
                    [] => panic!("no address in {words:?}"),
                };
                let subnet = parse_cidr(cidr);
                matches.push(if *field == "saddr" {
                    Match::Source { subnet, negated }
                } else {
                    Match::Destination { subnet, negated }
                });
                rest = tail;
            }
            ["ct", "state", "related,established", tail @ ..] => {
                matches.push(Match::Established);
                rest = tail;
            }
            ["meta", "l4proto", protocol, tail @ ..] => {
                matches.push(Match::Protocol(match *protocol {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    other => panic!("protocol {other} in {words:?}"),
                }));
                rest = tail;
            }
            ["counter", tail @ ..] => rest = tail,
            [verdict, tail @ ..] => {
                let verdict = match (*verdict, tail) {
                    ("accept", []) => LibvirtVerdict::Accept,
                    ("reject", []) => LibvirtVerdict::Reject,
                    ("return", []) => LibvirtVerdict::Return,
                    ("masquerade", []) => LibvirtVerdict::Masquerade(None),
                    ("masquerade", ["to", ports]) => {
                        let (low, high) = ports
                            .strip_prefix(':')
                            .and_then(|range| range.split_once('-'))
                            .unwrap_or_else(|| panic!("port range {ports}"));
                        LibvirtVerdict::Masquerade(Some((
                            low.parse().unwrap(),
                            high.parse().unwrap(),
                        )))
                    }
                    _ => panic!("unknown rule words {rest:?} in {words:?}"),
                };
                return LibvirtRule { matches, verdict };
            }
            [] => panic!("no verdict in {words:?}"),
        }
    }
}

fn parse_cidr(cidr: &str) -> Subnet {
    let (address, prefix) = cidr.split_once('/').expect("address/prefix");
    Subnet::new(address.parse().unwrap(), prefix.parse().unwrap())
}

/// virtnet's table as the transaction that makes it for one network says
/// (the skeleton and the network's own objects, rendered as virtnet
/// applies them): chains with their rules, verdict maps with their
/// elements.
struct VirtnetTable {
    chains: BTreeMap<String, Vec<Value>>,
    maps: BTreeMap<String, BTreeMap<String, Value>>,
}

/// Where evaluating a rule or a chain leaves a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// On to the next rule (or, at a chain's end, back to its caller).
    Next,
    /// Back to the calling chain.
    Return,
    Accept,
    Reject,
    Drop,
    Masquerade(Option<(u16, u16)>),
}

impl VirtnetTable {
    fn of(plan: &FirewallPlan) -> Self {
        let document: Value =
            serde_json::from_str(&virtnet::apply::firewall::whole_table([plan]).to_json()).unwrap();
        let mut table = Self {
            chains: BTreeMap::new(),
            maps: BTreeMap::new(),
        };
        for command in document["nftables"].as_array().unwrap() {
            let Some(added) = command.get("add") else {
                continue;
            };
            if let Some(rule) = added.get("rule") {
                let chain = rule["chain"].as_str().unwrap().to_owned();
                table
                    .chains
                    .entry(chain)
                    .or_default()
                    .push(rule["expr"].clone());
            }
            if let Some(element) = added.get("element") {
                let name = element["name"].as_str().unwrap().to_owned();
                for pair in element["elem"].as_array().unwrap() {
                    // Map elements are [key, verdict]; set elements are keys.
                    if let Some([key, verdict]) = pair.as_array().map(Vec::as_slice) {
                        table
                            .maps
                            .entry(name.clone())
                            .or_default()
                            .insert(key.as_str().unwrap().to_owned(), verdict.clone());
                    }
                }
            }
        }
        table
    }

    /// The forward hook's verdict: its base chain's policy accepts.
    fn forward(&self, packet: &Packet) -> Verdict {
        match self.run("forward", packet) {
            Outcome::Next | Outcome::Return | Outcome::Accept => Verdict::Accept,
            Outcome::Reject | Outcome::Drop => Verdict::Reject,
            Outcome::Masquerade(_) => panic!("masquerade in a filter chain"),
        }
    }

    /// What the postrouting hook does to a connection's first packet.
    fn translation(&self, packet: &Packet) -> Translation {
        match self.run("postrouting", packet) {
            Outcome::Masquerade(ports) => Translation::Masquerade(ports),
            Outcome::Next | Outcome::Return | Outcome::Accept => Translation::None,
            other => panic!("{other:?} in the NAT chain"),
        }
    }

    fn run(&self, chain: &str, packet: &Packet) -> Outcome {
        for rule in self
            .chains
            .get(chain)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            match self.rule(rule.as_array().unwrap(), packet) {
                Outcome::Next => {}
                Outcome::Return => return Outcome::Next,
                decided => return decided,
            }
        }
        Outcome::Next
    }

    fn rule(&self, statements: &[Value], packet: &Packet) -> Outcome {
        for statement in statements {
            let (kind, body) = statement.as_object().unwrap().iter().next().unwrap();
            match kind.as_str() {
                "match" => {
                    if !self.matches(body, packet) {
                        return Outcome::Next;
                    }
                }
                "vmap" => {
                    let key = field(&body["key"], packet).expect("a vmap on an interface");
                    let map = body["data"].as_str().unwrap().trim_start_matches('@');
                    let Some(verdict) = self.maps.get(map).and_then(|map| map.get(&key)) else {
                        return Outcome::Next;
                    };
                    let target = verdict["jump"]["target"].as_str().expect("a jump");
                    return self.run(target, packet);
                }
                "accept" => return Outcome::Accept,
                "reject" => return Outcome::Reject,
                "drop" => return Outcome::Drop,
                "return" => return Outcome::Return,
                "masquerade" => {
                    let ports = body["port"]["range"].as_array().map(|range| {
                        let port = |at: usize| u16::try_from(range[at].as_u64().unwrap()).unwrap();
                        (port(0), port(1))
                    });
                    return Outcome::Masquerade(ports);
                }
                other => panic!("statement {other} in virtnet's forward or NAT rules"),
            }
        }
        Outcome::Next
    }

    fn matches(&self, body: &Value, packet: &Packet) -> bool {
        // An `ip` or `ip6` match only sees packets of its family.
        let Some(found) = field(&body["left"], packet) else {
            return false;
        };
        let right = &body["right"];
        let contained = match right {
            Value::String(value) => *value == found,
            Value::Array(values) => values.iter().any(|value| *value == json!(found)),
            Value::Object(object) => match (object.get("prefix"), object.get("set")) {
                (Some(prefix), _) => found.parse::<IpAddr>().is_ok_and(|address| {
                    Subnet::new(
                        prefix["addr"].as_str().unwrap().parse().unwrap(),
                        u8::try_from(prefix["len"].as_u64().unwrap()).unwrap(),
                    )
                    .contains(&address)
                }),
                (None, Some(Value::Array(values))) => {
                    values.iter().any(|value| *value == json!(found))
                }
                _ => panic!("right side {right}"),
            },
            other => panic!("right side {other}"),
        };
        match body["op"].as_str().unwrap() {
            "==" | "in" => contained,
            "!=" => !contained,
            other => panic!("operator {other}"),
        }
    }
}

/// The packet's value for a rule's left side; `None` for an address of the
/// other family.
fn field(left: &Value, packet: &Packet) -> Option<String> {
    if let Some(key) = left["meta"]["key"].as_str() {
        return Some(match key {
            "iifname" => packet.iif.to_owned(),
            "oifname" => packet.oif.to_owned(),
            "l4proto" => match packet.protocol {
                Protocol::Tcp => "tcp".into(),
                Protocol::Udp => "udp".into(),
                Protocol::Icmp => "icmp".into(),
            },
            other => panic!("meta {other}"),
        });
    }
    if left["ct"]["key"] == json!("state") {
        return Some(match packet.state {
            State::New => "new".into(),
            State::Established => "established".into(),
        });
    }
    let payload = &left["payload"];
    let address = match payload["field"].as_str() {
        Some("saddr") => packet.source,
        Some("daddr") => packet.destination,
        _ => panic!("left side {left}"),
    };
    (payload["protocol"].as_str() == Some(family_of(&address))).then(|| address.to_string())
}

/// The `n`th address of `subnet`.
fn nth(subnet: &Subnet, n: u32) -> IpAddr {
    match subnet.network {
        IpAddr::V4(network) => IpAddr::V4(Ipv4Addr::from(u32::from(network) + n)),
        IpAddr::V6(network) => IpAddr::V6(Ipv6Addr::from(u128::from(network) + u128::from(n))),
    }
}

/// Probe packets of one family: the network's subnets of that family (or,
/// without any, a subnet of none of the network's), outside addresses,
/// multicast and broadcast, over every pairing of interfaces.
fn probes(subnets: &[Subnet], v4: bool) -> Vec<Packet> {
    let stray = if v4 {
        parse_cidr("10.123.0.0/24")
    } else {
        parse_cidr("2001:db8:aaaa::/64")
    };
    let guests: Vec<IpAddr> = if subnets.is_empty() {
        vec![nth(&stray, 5), nth(&stray, 6)]
    } else {
        subnets
            .iter()
            .flat_map(|subnet| [nth(subnet, 5), nth(subnet, 6)])
            .collect()
    };
    let outside: Vec<IpAddr> = if v4 {
        ["198.51.100.7", "203.0.113.9"]
    } else {
        ["2001:db8:ffff::7", "2001:db8:eeee::9"]
    }
    .iter()
    .map(|address| address.parse().unwrap())
    .collect();
    let special: Vec<IpAddr> = if v4 {
        ["224.0.0.1", "255.255.255.255"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect()
    } else {
        vec!["ff02::1".parse().unwrap()]
    };
    let sources: Vec<IpAddr> = guests.iter().chain(&outside).copied().collect();
    let destinations: Vec<IpAddr> = guests
        .iter()
        .chain(&outside)
        .chain(&special)
        .copied()
        .collect();
    let mut interfaces = vec![
        (BRIDGE, BRIDGE),
        (OTHER_BRIDGE, BRIDGE),
        (BRIDGE, OTHER_BRIDGE),
    ];
    for uplink in UPLINKS {
        interfaces.push((BRIDGE, uplink));
        interfaces.push((uplink, BRIDGE));
    }
    let mut packets = Vec::new();
    for &(iif, oif) in &interfaces {
        for &source in &sources {
            for &destination in &destinations {
                for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Icmp] {
                    for state in [State::New, State::Established] {
                        packets.push(Packet {
                            iif,
                            oif,
                            source,
                            destination,
                            protocol,
                            state,
                        });
                    }
                }
            }
        }
    }
    packets
}

/// A deliberate difference documented in `plan::firewall` that explains
/// why virtnet's verdict on `packet` is not libvirt's, and what virtnet
/// decides instead; `None` when nothing explains a difference.
fn documented_difference(subnets: &[Subnet], packet: &Packet) -> Option<(&'static str, Verdict)> {
    if packet.state == State::Established {
        return Some((
            "established and related traffic is accepted before any per-network check",
            Verdict::Accept,
        ));
    }
    let family_served = subnets
        .iter()
        .any(|subnet| same_family(subnet, &packet.source));
    if !family_served {
        return Some((
            "one inet table: the bridge rejects unexpected traffic of both families",
            Verdict::Reject,
        ));
    }
    None
}

/// Compares the two rule sets of case `name`; returns how many probes
/// differ as documented, or what differs otherwise.
fn run_case(data: &Path, name: &str) -> Result<usize, String> {
    let xml = std::fs::read_to_string(data.join(format!("{name}.xml"))).unwrap();
    let def = NetworkDef::parse(&xml).map_err(|e| format!("parse: {e}"))?;
    let plan = firewall::plan(&def, BRIDGE).ok_or("virtnet plans no rules")?;
    let virtnet = VirtnetTable::of(&plan);
    let libvirt = LibvirtRules::parse(
        &std::fs::read_to_string(data.join(format!("{name}-linux.nftables"))).unwrap(),
    );
    let subnets: Vec<Subnet> = def.ips.iter().filter_map(Subnet::of).collect();
    let mut documented = 0;
    let mut failures = Vec::new();
    for v4 in [true, false] {
        let family: Vec<Subnet> = subnets
            .iter()
            .filter(|subnet| subnet.network.is_ipv4() == v4)
            .copied()
            .collect();
        for packet in probes(&family, v4) {
            let theirs = libvirt.forward(&packet);
            let ours = virtnet.forward(&packet);
            if theirs != ours {
                match documented_difference(&subnets, &packet) {
                    Some((_, expected)) if expected == ours => documented += 1,
                    Some((difference, expected)) => failures.push(format!(
                        "{packet:?}: libvirt {theirs:?}, virtnet {ours:?}; \"{difference}\" says {expected:?}"
                    )),
                    None => failures.push(format!(
                        "{packet:?}: libvirt {theirs:?}, virtnet {ours:?}"
                    )),
                }
                continue;
            }
            // Source NAT sees a connection's first packet, once let through.
            if packet.state == State::New && ours == Verdict::Accept {
                let theirs = libvirt.translation(&packet);
                let ours = virtnet.translation(&packet);
                if theirs != ours {
                    failures.push(format!(
                        "{packet:?}: libvirt translates {theirs:?}, virtnet {ours:?}"
                    ));
                }
            }
        }
    }
    if failures.is_empty() {
        Ok(documented)
    } else {
        let shown = failures.len().min(5);
        Err(format!(
            "{} probes differ, e.g.:\n{}",
            failures.len(),
            failures[..shown].join("\n")
        ))
    }
}

#[test]
fn networkxml2firewall_cases_mean_the_same() {
    let Some(corpus) = corpus_dir("networkxml2firewall_cases_mean_the_same") else {
        return;
    };
    let data = corpus.join("networkxml2firewalldata");
    let cases = read_tsv(&corpus.join("networkxml2firewall-cases.tsv"));
    assert_eq!(cases.len(), 11, "libvirt 11.3's networkxml2firewall cases");
    let mut failures = Vec::new();
    for case in &cases {
        let [name] = case.as_slice() else {
            panic!("malformed case line {case:?}");
        };
        match run_case(&data, name) {
            Ok(documented) => {
                println!("{name}: same meaning; {documented} probes differ as documented")
            }
            Err(failure) => failures.push(format!("{name}: {failure}")),
        }
    }
    println!(
        "networkxml2firewall: {}/{} cases mean the same",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The evaluator can tell rule sets apart: a libvirt rule set that lets
/// new connections into a NATed network is caught.
#[test]
fn a_changed_libvirt_rule_is_noticed() {
    let def = NetworkDef::parse(
        "<network><name>n</name><forward/><bridge name='virbr0'/>
         <ip address='192.168.122.1' prefix='24'/></network>",
    )
    .unwrap();
    let plan = firewall::plan(&def, BRIDGE).unwrap();
    let permissive = LibvirtRules::parse(
        "nft \\\n-ae insert \\\nrule \\\nip \\\nlibvirt_network \\\nguest_input \\\noif \\\nvirbr0 \\\ncounter \\\naccept",
    );
    let inbound = Packet {
        iif: "eth1",
        oif: BRIDGE,
        source: "198.51.100.7".parse().unwrap(),
        destination: "192.168.122.5".parse().unwrap(),
        protocol: Protocol::Tcp,
        state: State::New,
    };
    assert_eq!(permissive.forward(&inbound), Verdict::Accept);
    let mut virtnet = VirtnetTable::of(&plan);
    assert_eq!(virtnet.forward(&inbound), Verdict::Reject);
    // And it sees virtnet's own rules: without the reject ending the
    // bridge's inbound chain, the connection gets in.
    virtnet
        .chains
        .get_mut("to_virbr0")
        .unwrap()
        .retain(|rule| rule[0].get("reject").is_none());
    assert_eq!(virtnet.forward(&inbound), Verdict::Accept);
    let subnets: Vec<Subnet> = def.ips.iter().filter_map(Subnet::of).collect();
    assert_eq!(documented_difference(&subnets, &inbound), None);
}

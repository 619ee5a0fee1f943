//! [`FirewallPlan`]s rendered as nftables objects: the skeleton shared by
//! all networks (table, verdict maps, sets, base chains) and each
//! network's own chains and map elements.
//!
//! Commands are the `nftables` crate's typed objects, except the map and
//! set declarations, which its schema cannot express (no `verdict` data
//! type); those are written as JSON in `transaction` and checked by a unit
//! test.

use std::borrow::Cow;
use std::net::IpAddr;

use nftables::expr::{
    CT, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, Range, SetItem,
    Verdict,
};
use nftables::schema::{Chain, Element, NfListObject};
use nftables::stmt::{JumpTarget, Limit, Match, NAT, NATFamily, Operator, Statement, VerdictMap};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::plan::firewall::{Action, Condition, FirewallPlan, Rule, Subnet, TABLE};

use super::transaction::{Transaction, chain, rule, table};

/// Verdict maps from a bridge name to the chains of its network.
const FROM_BRIDGE: &str = "from_bridge";
const TO_BRIDGE: &str = "to_bridge";
const NAT_FROM_BRIDGE: &str = "nat_from_bridge";
/// Sets of the addresses where dnsmasq answers DNS, alone and with their bridge.
const DNS_ADDRESSES4: &str = "dns_addresses4";
const DNS_ADDRESSES6: &str = "dns_addresses6";
const DNS_ON_BRIDGE4: &str = "dns_on_bridge4";
const DNS_ON_BRIDGE6: &str = "dns_on_bridge6";
const INPUT: &str = "input";
const FORWARD: &str = "forward";
const POSTROUTING: &str = "postrouting";

fn base_chain(name: &str, kind: NfChainType, hook: NfHook, priority: i32) -> Chain<'static> {
    Chain {
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(priority),
        policy: Some(NfChainPolicy::Accept),
        ..chain(name.to_owned())
    }
}

/// Where the outbound limit sits among the bridge's ingress hooks: first.
const LIMIT_PRIORITY: i32 = -500;

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn equals(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn prefix(subnet: &Subnet) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(subnet.network.to_string().into())),
        len: u32::from(subnet.prefix),
    }))
}

fn address_field(subnet: &Subnet, field: &'static str) -> Expression<'static> {
    match subnet.network {
        IpAddr::V4(_) => payload("ip", field),
        IpAddr::V6(_) => payload("ip6", field),
    }
}

fn range(low: Expression<'static>, high: Expression<'static>) -> Expression<'static> {
    Expression::Range(Box::new(Range { range: [low, high] }))
}

fn port_range(ports: Option<(u16, u16)>) -> Option<Expression<'static>> {
    ports.map(|(low, high)| {
        range(
            Expression::Number(u32::from(low)),
            Expression::Number(u32::from(high)),
        )
    })
}

fn tcp_or_udp() -> Expression<'static> {
    Expression::Named(NamedExpression::Set(vec![
        SetItem::Element(Expression::String("tcp".into())),
        SetItem::Element(Expression::String("udp".into())),
    ]))
}

fn jump(target: String) -> Expression<'static> {
    Expression::Verdict(Verdict::Jump(JumpTarget {
        target: target.into(),
    }))
}

/// The nftables rules of a planned rule: a TCP-or-UDP rule becomes one rule
/// per protocol, because an anonymous set (`{ tcp, udp }`) in each network's
/// chain would make nft read a thousand sets before every transaction.
fn rendered(rule: &Rule) -> Vec<Vec<Statement<'static>>> {
    if rule.conditions.contains(&Condition::TcpOrUdp) {
        ["tcp", "udp"]
            .into_iter()
            .map(|protocol| statements(rule, Some(protocol)))
            .collect()
    } else {
        vec![statements(rule, None)]
    }
}

/// The statements of `rule`, matching `protocol` for its TCP-or-UDP
/// condition (a rule without one has no protocol).
fn statements(rule: &Rule, protocol: Option<&'static str>) -> Vec<Statement<'static>> {
    let mut statements: Vec<Statement<'static>> = rule
        .conditions
        .iter()
        .filter_map(|condition| match condition {
            Condition::SourceIn(subnet) => {
                Some(equals(address_field(subnet, "saddr"), prefix(subnet)))
            }
            Condition::DestinationIn(subnet) => {
                Some(equals(address_field(subnet, "daddr"), prefix(subnet)))
            }
            Condition::InputInterface(name) => Some(equals(
                meta(MetaKey::Iifname),
                Expression::String(name.clone().into()),
            )),
            Condition::OutputInterface(name) => Some(equals(
                meta(MetaKey::Oifname),
                Expression::String(name.clone().into()),
            )),
            Condition::TcpOrUdp => protocol.map(|protocol| {
                equals(meta(MetaKey::L4proto), Expression::String(protocol.into()))
            }),
        })
        .collect();
    statements.push(match &rule.action {
        Action::Accept => Statement::Accept(None),
        Action::Reject => Statement::Reject(None),
        Action::Return => Statement::Return(None),
        Action::Masquerade { ports } => Statement::Masquerade(Some(NAT {
            addr: None,
            family: None,
            port: port_range(*ports),
            flags: None,
        })),
        Action::Snat { addresses, ports } => Statement::SNAT(Some(NAT {
            addr: Some(range(
                Expression::String(addresses.0.to_string().into()),
                Expression::String(addresses.1.to_string().into()),
            )),
            family: Some(NATFamily::IP),
            port: port_range(*ports),
            flags: None,
        })),
    });
    statements
}

/// Declares (or restores) the table skeleton shared by all networks: the
/// table, its verdict maps, and its two base chains, refilled.
pub(super) fn add_skeleton(batch: &mut Transaction) {
    batch.add(NfListObject::Table(table()));
    for name in [FROM_BRIDGE, TO_BRIDGE, NAT_FROM_BRIDGE] {
        batch.declare_verdict_map(name);
    }
    for (name, key) in [
        (DNS_ADDRESSES4, &["ipv4_addr"][..]),
        (DNS_ADDRESSES6, &["ipv6_addr"][..]),
        (DNS_ON_BRIDGE4, &["ipv4_addr", "ifname"][..]),
        (DNS_ON_BRIDGE6, &["ipv6_addr", "ifname"][..]),
    ] {
        batch.declare_set(name, key);
    }
    let forward = base_chain(FORWARD, NfChainType::Filter, NfHook::Forward, 0);
    let postrouting = base_chain(POSTROUTING, NfChainType::NAT, NfHook::Postrouting, 100);
    let input = base_chain(INPUT, NfChainType::Filter, NfHook::Input, 0);
    for base in [forward, postrouting, input] {
        let name = base.name.to_string();
        batch.add(NfListObject::Chain(base));
        batch.flush_chain(name);
    }
    // Established traffic first: one lookup, whatever the number of networks.
    batch.add(rule(
        FORWARD,
        vec![
            Statement::Match(Match {
                left: Expression::Named(NamedExpression::CT(CT {
                    key: "state".into(),
                    family: None,
                    dir: None,
                })),
                right: Expression::List(vec![
                    Expression::String("established".into()),
                    Expression::String("related".into()),
                ]),
                op: Operator::IN,
            }),
            Statement::Accept(None),
        ],
    ));
    // The destination network decides first, so that one network's
    // guests cannot reach another isolated or NATed network.
    for (key, map) in [
        (MetaKey::Oifname, TO_BRIDGE),
        (MetaKey::Iifname, FROM_BRIDGE),
    ] {
        batch.add(rule(
            FORWARD,
            vec![Statement::VerdictMap(VerdictMap {
                key: meta(key),
                data: Expression::String(format!("@{map}").into()),
            })],
        ));
    }
    batch.add(rule(
        POSTROUTING,
        vec![Statement::VerdictMap(VerdictMap {
            key: meta(MetaKey::Iifname),
            data: Expression::String(format!("@{NAT_FROM_BRIDGE}").into()),
        })],
    ));
    for (family, addresses, on_bridge) in [
        ("ip", DNS_ADDRESSES4, DNS_ON_BRIDGE4),
        ("ip6", DNS_ADDRESSES6, DNS_ON_BRIDGE6),
    ] {
        batch.add(rule(
            INPUT,
            vec![
                Statement::Match(Match {
                    left: meta(MetaKey::L4proto),
                    right: tcp_or_udp(),
                    op: Operator::IN,
                }),
                equals(payload("th", "dport"), Expression::Number(53)),
                equals(
                    payload(family, "daddr"),
                    Expression::String(format!("@{addresses}").into()),
                ),
                Statement::Match(Match {
                    left: Expression::Named(NamedExpression::Concat(vec![
                        payload(family, "daddr"),
                        meta(MetaKey::Iifname),
                    ])),
                    right: Expression::String(format!("@{on_bridge}").into()),
                    op: Operator::NEQ,
                }),
                Statement::Drop(None),
            ],
        ));
    }
}

pub(super) fn elements(plan: &FirewallPlan) -> Vec<Element<'static>> {
    let element = |map: &'static str, key: Expression<'static>, chain: String| Element {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: map.into(),
        elem: Cow::Owned(vec![Expression::List(vec![key, jump(chain)])]),
    };
    let bridge = || Expression::String(plan.bridge.clone().into());
    let mut elements = vec![
        element(FROM_BRIDGE, bridge(), plan.from_bridge_chain()),
        element(TO_BRIDGE, bridge(), plan.to_bridge_chain()),
    ];
    if !plan.nat.is_empty() {
        elements.push(element(NAT_FROM_BRIDGE, bridge(), plan.nat_chain()));
    }
    for address in &plan.dns_addresses {
        let (addresses, on_bridge) = match address {
            IpAddr::V4(_) => (DNS_ADDRESSES4, DNS_ON_BRIDGE4),
            IpAddr::V6(_) => (DNS_ADDRESSES6, DNS_ON_BRIDGE6),
        };
        let address = || Expression::String(address.to_string().into());
        let set_element = |set: &'static str, key: Expression<'static>| Element {
            family: NfFamily::INet,
            table: TABLE.into(),
            name: set.into(),
            elem: Cow::Owned(vec![key]),
        };
        elements.push(set_element(addresses, address()));
        elements.push(set_element(
            on_bridge,
            Expression::Named(NamedExpression::Concat(vec![address(), bridge()])),
        ));
    }
    elements
}

/// A network's chain with the statements of its nftables rules.
pub(super) struct NetworkChain {
    /// A regular chain, or the base chain of the outbound limit.
    chain: Chain<'static>,
    rules: Vec<Vec<Statement<'static>>>,
}

impl NetworkChain {
    pub(super) fn name(&self) -> String {
        self.chain.name.to_string()
    }
}

/// The network's chains.
pub(super) fn chains(plan: &FirewallPlan) -> Vec<NetworkChain> {
    let mut regular = vec![
        (plan.from_bridge_chain(), &plan.from_bridge),
        (plan.to_bridge_chain(), &plan.to_bridge),
    ];
    if !plan.nat.is_empty() {
        regular.push((plan.nat_chain(), &plan.nat));
    }
    let mut chains: Vec<NetworkChain> = regular
        .into_iter()
        .map(|(name, rules)| NetworkChain {
            chain: chain(name),
            rules: rules.iter().flat_map(rendered).collect(),
        })
        .collect();
    if let Some(limit) = plan.outbound_limit {
        let (rate, rate_unit) = nft_quantity(limit.kbytes_per_second);
        let (burst, burst_unit) = nft_quantity(limit.burst_kbytes);
        chains.push(NetworkChain {
            chain: Chain {
                dev: Some(plan.bridge.clone().into()),
                ..base_chain(
                    &plan.limit_chain(),
                    NfChainType::Filter,
                    NfHook::Ingress,
                    LIMIT_PRIORITY,
                )
            },
            rules: vec![vec![
                Statement::Limit(Limit {
                    rate,
                    rate_unit: Some(rate_unit.into()),
                    per: Some("second".into()),
                    burst: Some(burst),
                    burst_unit: Some(burst_unit.into()),
                    inv: Some(true),
                }),
                Statement::Drop(None),
            ]],
        });
    }
    chains
}

/// libvirt's kilobytes (1000 bytes, as tc counts) as nftables takes them:
/// a 32-bit number of bytes, or of its kbytes or mbytes (1024 and 1024²
/// bytes) when too large, rounded up.
fn nft_quantity(kbytes: u64) -> (u32, &'static str) {
    let bytes = kbytes.saturating_mul(1000);
    [("bytes", 1), ("kbytes", 1 << 10), ("mbytes", 1 << 20)]
        .into_iter()
        .find_map(|(unit, size)| Some((u32::try_from(bytes.div_ceil(size)).ok()?, unit)))
        .unwrap_or((u32::MAX, "mbytes"))
}

/// The transaction that installs one network's rules.
pub fn start_batch(plan: &FirewallPlan) -> Transaction {
    let mut batch = Transaction::default();
    for NetworkChain { chain, rules } in chains(plan) {
        let name = chain.name.to_string();
        batch.add(NfListObject::Chain(chain));
        // A chain left by an interrupted run is emptied, not duplicated.
        batch.flush_chain(name.clone());
        for statements in rules {
            batch.add(rule(&name, statements));
        }
    }
    for element in elements(plan) {
        batch.add(NfListObject::Element(element));
    }
    batch
}

/// The transaction that removes one network's rules and nothing else.
pub fn stop_batch(plan: &FirewallPlan) -> Transaction {
    let mut batch = Transaction::default();
    for element in elements(plan) {
        batch.delete(NfListObject::Element(element));
    }
    for name in chains(plan).iter().map(NetworkChain::name) {
        batch.flush_chain(name.clone());
        batch.delete(NfListObject::Chain(chain(name)));
    }
    batch
}

/// The whole table as it is with `plans` running: the skeleton and every
/// network's chains and elements, in one transaction.
pub fn whole_table<'a>(plans: impl IntoIterator<Item = &'a FirewallPlan>) -> Transaction {
    let mut batch = Transaction::default();
    add_skeleton(&mut batch);
    for plan in plans {
        batch.extend(start_batch(plan));
    }
    batch
}

/// The transaction that turns a running network's rules from `old` into
/// `new` (a live update changed them): `new`'s chains refilled and its
/// elements added, what only `old` had removed.
pub(super) fn replace_batch(old: &FirewallPlan, new: &FirewallPlan) -> Transaction {
    let mut batch = start_batch(new);
    let kept_chains: Vec<String> = chains(new).iter().map(NetworkChain::name).collect();
    let kept_elements: Vec<serde_json::Value> = elements(new)
        .iter()
        .filter_map(|element| serde_json::to_value(element).ok())
        .collect();
    for element in elements(old) {
        let value = serde_json::to_value(&element).ok();
        if !value.is_some_and(|value| kept_elements.contains(&value)) {
            batch.delete(NfListObject::Element(element));
        }
    }
    for name in chains(old).iter().map(NetworkChain::name) {
        if !kept_chains.contains(&name) {
            batch.flush_chain(name.clone());
            batch.delete(NfListObject::Chain(chain(name)));
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::NetworkDef;
    use serde_json::{Value, json};

    fn plan(xml: &str) -> FirewallPlan {
        let def = NetworkDef::parse(xml).unwrap();
        crate::plan::firewall::plan(&def, "vbr").unwrap()
    }

    #[test]
    fn limits_are_in_bytes_unless_too_large() {
        assert_eq!(nft_quantity(500), (500_000, "bytes"));
        assert_eq!(nft_quantity(4_294_967), (4_294_967_000, "bytes"));
        assert_eq!(nft_quantity(5_000_000), (4_882_813, "kbytes"));
        assert_eq!(nft_quantity(1 << 40), (1_048_576_000, "mbytes"));
        assert_eq!(nft_quantity(1 << 54), (u32::MAX, "mbytes"));
    }

    #[test]
    fn transactions_declare_verdict_maps_and_touch_one_network() {
        let mut skeleton = Transaction::default();
        add_skeleton(&mut skeleton);
        let skeleton: Value = serde_json::from_str(&skeleton.to_json()).unwrap();
        let commands = skeleton["nftables"].as_array().unwrap();
        assert_eq!(
            commands[1],
            json!({"add": {"map": {"family": "inet", "table": "virtnet",
                "name": "from_bridge", "type": "ifname", "map": "verdict"}}})
        );
        assert_eq!(commands[3]["add"]["map"]["name"], json!("nat_from_bridge"));

        let plan =
            plan("<network><name>n</name><forward/><ip address='10.9.0.1' prefix='24'/></network>");
        let start = start_batch(&plan).to_json();
        for name in ["from_vbr", "to_vbr", "\"nat_vbr\"", "\"nat_from_bridge\""] {
            assert!(start.contains(name), "{name} in {start}");
        }
        assert!(
            !start.contains("\"forward\""),
            "no skeleton in a network's transaction"
        );
        let stop: Value = serde_json::from_str(&stop_batch(&plan).to_json()).unwrap();
        let deletes = stop["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|command| command.get("delete").is_some())
            .count();
        assert_eq!(
            deletes,
            3 + 2 + 3,
            "three map elements, two set elements, three chains"
        );
    }

    #[test]
    fn a_replacement_removes_only_what_the_new_rules_lack() {
        let nat =
            plan("<network><name>n</name><forward/><ip address='10.9.0.1' prefix='24'/></network>");
        let isolated =
            plan("<network><name>n</name><ip address='10.9.0.1' prefix='24'/></network>");
        let replacement: Value =
            serde_json::from_str(&replace_batch(&nat, &isolated).to_json()).unwrap();
        let deleted: Vec<&Value> = replacement["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|command| command.get("delete"))
            .collect();
        assert_eq!(deleted.len(), 2, "{deleted:?}");
        assert_eq!(deleted[0]["element"]["name"], json!("nat_from_bridge"));
        assert_eq!(deleted[1]["chain"]["name"], json!("nat_vbr"));
    }
}

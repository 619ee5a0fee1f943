//! Applies [`FirewallPlan`]s to virtnet's nftables table, one atomic
//! transaction per network start or stop, through `nft -j`.
//!
//! The skeleton shared by all networks (table, verdict maps, base chains)
//! is declared by a transaction of its own, idempotent, which also restores
//! it after `nft flush ruleset`. A network's own transaction then only adds
//! or removes that network's chains and map elements.
//!
//! Commands are the `nftables` crate's typed objects, except the verdict map
//! declarations, which its schema cannot express (no `verdict` data type);
//! those few objects are written as JSON here and checked by a unit test.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use nftables::expr::{
    CT, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, Range, SetItem,
    Verdict,
};
use nftables::schema::{Chain, Element, FlushObject, NfCmd, NfListObject, NfObject, Table};
use nftables::stmt::{JumpTarget, Limit, Match, NAT, NATFamily, Operator, Statement, VerdictMap};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde_json::{Value, json};

use crate::plan::firewall::{Action, Condition, FirewallPlan, Rule, Subnet, TABLE};

mod notifications;

pub use notifications::TableWatch;
use notifications::{Notifications, remember_nft};

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

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("cannot run nft for {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nft refused the transaction for {what}: {message}")]
    Refused { what: String, message: String },
}

fn table() -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: TABLE.into(),
        handle: None,
    }
}

fn chain(name: String) -> Chain<'static> {
    Chain {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: name.into(),
        ..Chain::default()
    }
}

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

/// One nftables transaction: everything in it applies, or nothing does.
#[derive(Debug, Default)]
pub struct Transaction {
    commands: Vec<Value>,
}

impl Transaction {
    fn add(&mut self, object: NfListObject<'static>) {
        self.push(NfObject::CmdObject(NfCmd::Add(object)));
    }

    fn delete(&mut self, object: NfListObject<'static>) {
        self.push(NfObject::CmdObject(NfCmd::Delete(object)));
    }

    fn flush_chain(&mut self, name: String) {
        self.push(NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(
            chain(name),
        ))));
    }

    fn push(&mut self, object: NfObject<'static>) {
        self.commands
            .push(serde_json::to_value(object).unwrap_or(Value::Null));
    }

    /// Declares a map from interface names to verdicts.
    fn declare_verdict_map(&mut self, name: &str) {
        let map = json!({
            "family": "inet",
            "table": TABLE,
            "name": name,
            "type": "ifname",
            "map": "verdict",
        });
        self.commands.push(json!({ "add": { "map": map } }));
    }

    /// Declares a set of `key` (one type, or several concatenated).
    fn declare_set(&mut self, name: &str, key: &[&str]) {
        let key = match key {
            [single] => json!(single),
            several => json!(several),
        };
        self.commands.push(json!({ "add": { "set": {
            "family": "inet",
            "table": TABLE,
            "name": name,
            "type": key,
        } } }));
    }

    /// The document `nft -j -f -` reads.
    pub fn to_json(&self) -> String {
        json!({ "nftables": self.commands }).to_string()
    }
}

fn rule(chain: &str, statements: Vec<Statement<'static>>) -> NfListObject<'static> {
    NfListObject::Rule(nftables::schema::Rule {
        family: NfFamily::INet,
        table: TABLE.into(),
        chain: chain.to_owned().into(),
        expr: Cow::Owned(statements),
        handle: None,
        index: None,
        comment: None,
    })
}

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
fn add_skeleton(batch: &mut Transaction) {
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

fn elements(plan: &FirewallPlan) -> Vec<Element<'static>> {
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
struct NetworkChain {
    /// A regular chain, or the base chain of the outbound limit.
    chain: Chain<'static>,
    rules: Vec<Vec<Statement<'static>>>,
}

impl NetworkChain {
    fn name(&self) -> String {
        self.chain.name.to_string()
    }
}

/// The network's chains.
fn chains(plan: &FirewallPlan) -> Vec<NetworkChain> {
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

/// What this process knows of the table; the lock also serializes its
/// transactions, so that removing the table once its last network is gone
/// cannot race with a network being added.
#[derive(Default)]
struct TableState {
    /// The skeleton was declared (it may since have been flushed by others).
    declared: bool,
    /// Bridges whose rules this process installed or adopted.
    bridges: BTreeSet<String>,
}

/// Table states by network namespace (the one of the calling thread), as
/// one process may work in several (tests do).
static STATES: tokio::sync::Mutex<BTreeMap<u64, TableState>> =
    tokio::sync::Mutex::const_new(BTreeMap::new());

fn current_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").map_or(0, |metadata| metadata.ino())
}

async fn declare_skeleton(state: &mut TableState) -> Result<(), FirewallError> {
    let mut skeleton = Transaction::default();
    add_skeleton(&mut skeleton);
    apply(&skeleton, "declaring virtnet's table").await?;
    state.declared = true;
    Ok(())
}

/// Installs a network's rules in one transaction.
///
/// The shared skeleton comes first in that same transaction when this
/// process has not declared it yet (one nft run, not two). Declared, it
/// stays out of networks' transactions, keeping those small; when a
/// network's transaction fails because someone removed the skeleton
/// (`nft flush ruleset`), it is declared again and the network retried.
pub async fn start(plan: &FirewallPlan) -> Result<(), FirewallError> {
    let mut states = STATES.lock().await;
    let state = states.entry(current_namespace()).or_default();
    let what = format!("starting bridge {}", plan.bridge);
    let network = start_batch(plan);
    let mut first = Transaction::default();
    if !state.declared {
        add_skeleton(&mut first);
    }
    first.commands.extend(network.commands.iter().cloned());
    if apply(&first, &what).await.is_err() {
        declare_skeleton(state).await?;
        apply(&network, &what).await?;
    }
    state.declared = true;
    state.bridges.insert(plan.bridge.clone());
    Ok(())
}

/// Removes a network's rules, and only those; the table goes with the last
/// network (checked against the table itself, so networks this process did
/// not start are never cut off).
pub async fn stop(plan: &FirewallPlan) -> Result<(), FirewallError> {
    let mut states = STATES.lock().await;
    let state = states.entry(current_namespace()).or_default();
    let what = format!("stopping bridge {}", plan.bridge);
    let mut batch = stop_batch(plan);
    state.bridges.remove(&plan.bridge);
    // The last network this process knows of: the table goes in the same
    // transaction when the listing confirms nobody else's chains are in it
    // (nftables deletions each wait for a grace period: one is cheaper).
    let last = state.bridges.is_empty()
        && network_chains()
            .await
            .is_some_and(|chains| chains == chains_of(plan));
    if last {
        batch.delete(NfListObject::Table(table()));
    }
    if let Err(error) = apply(&batch, &what).await {
        state.bridges.insert(plan.bridge.clone());
        return Err(error);
    }
    if last {
        state.declared = false;
    }
    Ok(())
}

/// How many chains a network has in the table.
fn chains_of(plan: &FirewallPlan) -> usize {
    chains(plan).len()
}

/// Forgets the network and removes the table if no network is left in it.
async fn stop_if_last(plan: &FirewallPlan) -> Result<(), FirewallError> {
    let mut states = STATES.lock().await;
    let state = states.entry(current_namespace()).or_default();
    state.bridges.remove(&plan.bridge);
    remove_table_if_unused(state).await
}

async fn remove_table_if_unused(state: &mut TableState) -> Result<(), FirewallError> {
    if state.bridges.is_empty() && network_chains().await == Some(0) {
        let mut transaction = Transaction::default();
        transaction.delete(NfListObject::Table(table()));
        apply(&transaction, "removing virtnet's empty table").await?;
        state.declared = false;
    }
    Ok(())
}

/// What virtnet's table holds, read with one listing: enough to tell
/// whether a network's rules are all there.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Chains with the number of rules in each.
    chains: BTreeMap<String, usize>,
    /// Elements by map or set, written as in the plan (`a . b` for a
    /// concatenation).
    elements: BTreeSet<(String, String)>,
}

impl Inventory {
    /// Reads the table; an absent table is an empty inventory.
    pub async fn read() -> Self {
        match nft(&["-j", "list", "table", "inet", TABLE], "", "listing").await {
            Ok(listing) => Self::parse(&listing),
            Err(_) => Self::default(),
        }
    }

    fn parse(listing: &str) -> Self {
        /// Only what the inventory needs: serde skips the rest (rule
        /// expressions above all) without building it.
        #[derive(serde::Deserialize)]
        struct Listing {
            nftables: Vec<Listed>,
        }
        #[derive(serde::Deserialize)]
        struct Listed {
            chain: Option<Named>,
            rule: Option<InChain>,
            map: Option<Container>,
            set: Option<Container>,
        }
        #[derive(serde::Deserialize)]
        struct Named {
            name: String,
        }
        #[derive(serde::Deserialize)]
        struct InChain {
            chain: String,
        }
        #[derive(serde::Deserialize)]
        struct Container {
            name: String,
            #[serde(default)]
            elem: Vec<Value>,
        }
        let mut inventory = Self::default();
        let Ok(listing) = serde_json::from_str::<Listing>(listing) else {
            return inventory;
        };
        for object in listing.nftables {
            if let Some(chain) = object.chain {
                inventory.chains.entry(chain.name).or_default();
            }
            if let Some(rule) = object.rule {
                *inventory.chains.entry(rule.chain).or_default() += 1;
            }
            for (container, is_map) in [(object.map, true), (object.set, false)] {
                for element in container.iter().flat_map(|c| &c.elem) {
                    // A map element is [key, value]; a set element is the key.
                    let key = if is_map { &element[0] } else { element };
                    let name = container
                        .as_ref()
                        .map(|c| c.name.clone())
                        .unwrap_or_default();
                    inventory.elements.insert((name, element_key(key)));
                }
            }
        }
        inventory
    }

    /// Whether every chain (with all its rules) and element of `plan` is there.
    pub fn holds(&self, plan: &FirewallPlan) -> bool {
        chains(plan)
            .iter()
            .all(|planned| self.chains.get(&planned.name()) == Some(&planned.rules.len()))
            && elements(plan).iter().all(|element| {
                self.elements
                    .contains(&(element.name.to_string(), element_key(&planned_key(element))))
            })
    }
}

/// The key of a planned element, as JSON (how nft lists it).
fn planned_key(element: &Element<'static>) -> Value {
    let key = match element.elem.first() {
        Some(Expression::List(pair)) => pair.first(),
        other => other,
    };
    key.and_then(|key| serde_json::to_value(key).ok())
        .unwrap_or(Value::Null)
}

fn element_key(key: &Value) -> String {
    match key {
        Value::String(text) => text.clone(),
        Value::Object(object) => match object.get("concat").and_then(Value::as_array) {
            Some(parts) => parts
                .iter()
                .map(element_key)
                .collect::<Vec<_>>()
                .join(" . "),
            None => key.to_string(),
        },
        other => other.to_string(),
    }
}

/// Takes over the rules of a network started by an earlier run: nothing is
/// touched when they are all there; otherwise the network's chains are
/// refilled and its elements added, in one transaction. Returns whether
/// anything was repaired.
pub async fn adopt(plan: &FirewallPlan, inventory: &Inventory) -> Result<bool, FirewallError> {
    let mut states = STATES.lock().await;
    let state = states.entry(current_namespace()).or_default();
    let intact = inventory.holds(plan);
    if !intact {
        if !inventory.chains.contains_key(FORWARD) {
            declare_skeleton(state).await?;
        }
        apply(
            &start_batch(plan),
            &format!("repairing bridge {}", plan.bridge),
        )
        .await?;
    }
    state.declared = true;
    state.bridges.insert(plan.bridge.clone());
    Ok(!intact)
}

/// Removes whatever is left of a network's rules (after an interrupted
/// start or stop): only the objects that are there.
pub async fn remove_leftovers(plan: &FirewallPlan) -> Result<(), FirewallError> {
    let inventory = Inventory::read().await;
    let mut batch = Transaction::default();
    for element in elements(plan) {
        if inventory.elements.contains(&(
            element.name.to_string(),
            element_key(&planned_key(&element)),
        )) {
            batch.delete(NfListObject::Element(element));
        }
    }
    for name in chains(plan).iter().map(NetworkChain::name) {
        if inventory.chains.contains_key(&name) {
            batch.flush_chain(name.clone());
            batch.delete(NfListObject::Chain(chain(name)));
        }
    }
    if !batch.commands.is_empty() {
        apply(&batch, &format!("cleaning up bridge {}", plan.bridge)).await?;
    }
    stop_if_last(plan).await
}

/// Replaces a running network's rules by `new` in one transaction (a live
/// update changed them).
pub async fn replace(old: &FirewallPlan, new: &FirewallPlan) -> Result<(), FirewallError> {
    let _states = STATES.lock().await;
    let mut batch = start_batch(new);
    let kept_chains: Vec<String> = chains(new).iter().map(NetworkChain::name).collect();
    let kept_elements: Vec<(String, String)> = elements(new)
        .iter()
        .map(|element| (element.name.to_string(), element_key(&planned_key(element))))
        .collect();
    for element in elements(old) {
        let key = (
            element.name.to_string(),
            element_key(&planned_key(&element)),
        );
        if !kept_elements.contains(&key) {
            batch.delete(NfListObject::Element(element));
        }
    }
    for name in chains(old).iter().map(NetworkChain::name) {
        if !kept_chains.contains(&name) {
            batch.flush_chain(name.clone());
            batch.delete(NfListObject::Chain(chain(name)));
        }
    }
    apply(&batch, &format!("updating bridge {}", new.bridge)).await
}

/// How many chains of networks the table holds (`None` when it is absent).
async fn network_chains() -> Option<usize> {
    // nft refuses to list a table that does not exist.
    let listing = nft(&["-j", "list", "table", "inet", TABLE], "", "listing")
        .await
        .ok()?;
    let document: Value = serde_json::from_str(&listing).unwrap_or(Value::Null);
    let chains = document["nftables"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|object| object.get("chain")?.get("name")?.as_str())
        .filter(|name| ![FORWARD, POSTROUTING, INPUT].contains(name))
        .count();
    Some(chains)
}

/// Runs the transaction with `nft -j -f -`. It is done once the kernel
/// announces the generation nft committed: after a deletion, nft's exit
/// waits for an RCU grace period (the kernel frees the deleted objects
/// before it lets go of nft's socket), and that wait goes on in the
/// background. Without the announcement (notifications lost), nft's exit
/// decides.
async fn apply(batch: &Transaction, what: &str) -> Result<(), FirewallError> {
    let notifications = Notifications::open()
        .inspect_err(|error| tracing::debug!("nftables' notifications unavailable: {error}"))
        .ok();
    let (pid, finished) = launch_nft(&["-j", "-f", "-"], &batch.to_json(), what).await?;
    // A task of its own, so that nft is reaped even when not awaited.
    let finished = tokio::spawn(finished);
    let finished = async {
        finished.await.unwrap_or_else(|error| {
            Err(FirewallError::Spawn {
                what: what.to_owned(),
                source: std::io::Error::other(error),
            })
        })
    };
    let (Some(mut notifications), Some(pid)) = (notifications, pid) else {
        return finished.await.map(drop);
    };
    let applied = tokio::select! {
        output = finished => output.map(drop),
        () = notifications.commit_by(pid) => Ok(()),
    };
    // Closing a netfilter socket waits, as nft's exit does, until the
    // kernel has freed what was deleted: not on the runtime's thread.
    drop(tokio::task::spawn_blocking(move || drop(notifications)));
    applied
}

/// Runs nft with `input` on its standard input; returns its output.
async fn nft(arguments: &[&str], input: &str, what: &str) -> Result<String, FirewallError> {
    launch_nft(arguments, input, what).await?.1.await
}

/// Starts nft with `input` on its standard input: its pid, and its output
/// once it has finished.
async fn launch_nft(
    arguments: &[&str],
    input: &str,
    what: &str,
) -> Result<
    (
        Option<u32>,
        impl Future<Output = Result<String, FirewallError>> + Send + 'static,
    ),
    FirewallError,
> {
    use tokio::io::AsyncWriteExt;
    let what = what.to_owned();
    let spawn_error = |what: &str, source| FirewallError::Spawn {
        what: what.to_owned(),
        source,
    };
    let mut child = tokio::process::Command::new("nft")
        .args(arguments)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| spawn_error(&what, source))?;
    let pid = child.id();
    if let Some(pid) = pid {
        remember_nft(pid);
    }
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|source| spawn_error(&what, source))?;
    }
    let finished = async move {
        let output = child
            .wait_with_output()
            .await
            .map_err(|source| spawn_error(&what, source))?;
        if !output.status.success() {
            return Err(FirewallError::Refused {
                what,
                message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    Ok((pid, finished))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::NetworkDef;

    #[test]
    fn inventory_reads_chains_rules_and_elements_from_a_listing() {
        let listing = r#"{"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "virtnet", "handle": 1}},
            {"map": {"family": "inet", "name": "from_bridge", "table": "virtnet", "type": "ifname",
                     "handle": 2, "map": "verdict",
                     "elem": [["vbr", {"jump": {"target": "from_vbr"}}]]}},
            {"set": {"family": "inet", "name": "dns_on_bridge4", "table": "virtnet",
                     "type": ["ipv4_addr", "ifname"], "handle": 3,
                     "elem": [{"concat": ["10.9.0.1", "vbr"]}]}},
            {"set": {"family": "inet", "name": "dns_addresses6", "table": "virtnet",
                     "type": "ipv6_addr", "handle": 4}},
            {"chain": {"family": "inet", "table": "virtnet", "name": "from_vbr", "handle": 5}},
            {"rule": {"family": "inet", "table": "virtnet", "chain": "from_vbr", "handle": 6,
                      "expr": [{"accept": null}]}},
            {"rule": {"family": "inet", "table": "virtnet", "chain": "from_vbr", "handle": 7,
                      "expr": [{"reject": null}]}}
        ]}"#;
        let inventory = Inventory::parse(listing);
        assert_eq!(inventory.chains.get("from_vbr"), Some(&2));
        assert!(
            inventory
                .elements
                .contains(&("from_bridge".into(), "vbr".into()))
        );
        assert!(
            inventory
                .elements
                .contains(&("dns_on_bridge4".into(), "10.9.0.1 . vbr".into()))
        );
        assert_eq!(inventory.elements.len(), 2);
        assert!(Inventory::parse("not json").chains.is_empty());
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

        let def = NetworkDef::parse(
            "<network><name>n</name><forward/><ip address='10.9.0.1' prefix='24'/></network>",
        )
        .unwrap();
        let plan = crate::plan::firewall::plan(&def, "vbr").unwrap();
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
}

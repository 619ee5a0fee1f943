//! What virtnet's table holds, object by object: read from nft's listing,
//! or from the transaction that creates the table as it should be. Two
//! contents compare equal when every chain has the same declaration and
//! the same rules in the same order, and every map and set the same
//! declaration and elements; [`Contents::repair`] gives the one
//! transaction that turns the one into the other.
//!
//! nft lists a few statements in another form than the one virtnet writes
//! (a plain `reject` as `reject with icmpx port-unreachable`, a /32 prefix
//! as an address, a rate in the largest unit that divides it, …): both
//! sides are brought to one form first, see [`canonical`]. A test in a
//! network namespace checks that a table virtnet makes reads back equal
//! to its plan.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::transaction::{Transaction, element, locate};

/// The objects of one table, without handles.
#[derive(Debug, Default)]
pub(super) struct Contents {
    exists: bool,
    /// The table has flags (`dormant` switches all its chains off).
    flagged: bool,
    chains: BTreeMap<String, ChainContents>,
    sets: BTreeMap<String, SetContents>,
    /// Objects of kinds virtnet never makes (counters, flowtables, …).
    strangers: Vec<String>,
}

#[derive(Debug)]
struct ChainContents {
    /// Where it came in the listing or the transaction: re-created objects
    /// keep their order, so that nft lists a re-created table as it listed
    /// the original.
    position: usize,
    /// Type, hook, priority and policy (none for a regular chain).
    declaration: Value,
    /// The chain as written, to add it again.
    written: Map<String, Value>,
    /// Each rule's statements: canonical form, and as written when planned
    /// (to add them again), both as JSON text.
    rules: Vec<(String, Option<String>)>,
}

#[derive(Debug)]
struct SetContents {
    position: usize,
    /// `map` or `set`.
    kind: String,
    /// Key type, map data type and flags.
    declaration: Value,
    written: Map<String, Value>,
    /// Elements by canonical text, as written (a map element is
    /// `[key, data]`).
    elements: BTreeMap<String, Value>,
}

impl SetContents {
    /// The key of an element as written, which names it for deletion.
    fn key(&self, element: &Value) -> Value {
        match (self.kind.as_str(), element) {
            ("map", Value::Array(pair)) => pair.first().cloned().unwrap_or(Value::Null),
            _ => element.clone(),
        }
    }
}

/// What [`Contents::repair`] found out of place, in words, and the
/// transaction that puts it right.
#[derive(Debug, Default)]
pub(super) struct Repair {
    pub(super) found: Vec<String>,
    pub(super) transaction: Transaction,
}

/// The declaration of a chain or set: only what defines it.
fn declaration(object: &Map<String, Value>, keys: &[&str]) -> Value {
    Value::Object(
        keys.iter()
            .filter_map(|key| Some(((*key).to_owned(), object.get(*key)?.clone())))
            .collect(),
    )
}

const CHAIN_KEYS: [&str; 4] = ["type", "hook", "prio", "policy"];
const SET_KEYS: [&str; 3] = ["type", "map", "flags"];

impl Contents {
    /// Reads `nft -j list table` output; `None` (no table) is empty.
    pub(super) fn listed(listing: Option<&str>) -> Result<Self, serde_json::Error> {
        let mut contents = Self::default();
        if let Some(listing) = listing {
            let mut reader = serde_json::Deserializer::from_str(listing);
            serde::de::DeserializeSeed::deserialize(Listing(&mut contents), &mut reader)?;
            reader.end()?;
        }
        Ok(contents)
    }

    /// Takes in one object of a listing.
    fn take_listed(&mut self, object: Value) {
        let Value::Object(object) = object else {
            return;
        };
        for (kind, body) in object {
            let Value::Object(body) = body else {
                self.strangers.push(kind);
                continue;
            };
            match kind.as_str() {
                "metainfo" => {}
                "table" => {
                    self.exists = true;
                    self.flagged = body.contains_key("flags");
                }
                _ => self.take(&kind, body, false),
            }
        }
    }

    /// What `batches` make of an empty table, taken in one at a time (a
    /// whole table's transaction is large).
    pub(super) fn planned(batches: impl IntoIterator<Item = Transaction>) -> Self {
        let mut contents = Self::default();
        for batch in batches {
            contents.take_planned(&batch);
        }
        contents
    }

    fn take_planned(&mut self, batch: &Transaction) {
        let contents = self;
        for command in &batch.commands {
            let Some(Value::Object(added)) = command.get("add") else {
                continue;
            };
            for (kind, body) in added {
                let Value::Object(body) = body else { continue };
                match kind.as_str() {
                    "table" => contents.exists = true,
                    _ => contents.take(kind, body.clone(), true),
                }
            }
        }
    }

    /// Takes in one chain, rule, map, set or element; a rule's statements
    /// as written are kept when `planned` (to add them again).
    fn take(&mut self, kind: &str, mut body: Map<String, Value>, planned: bool) {
        let name = body
            .get(if kind == "rule" { "chain" } else { "name" })
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let position = self.chains.len() + self.sets.len();
        match kind {
            "chain" => {
                body.remove("handle");
                self.chains.insert(
                    name,
                    ChainContents {
                        position,
                        declaration: declaration(&body, &CHAIN_KEYS),
                        written: body,
                        rules: Vec::new(),
                    },
                );
            }
            "rule" => {
                let statements = body.remove("expr").unwrap_or(Value::Null);
                let rules = &mut self
                    .chains
                    .entry(name)
                    .or_insert_with(|| ChainContents {
                        position,
                        declaration: json!({}),
                        written: Map::new(),
                        rules: Vec::new(),
                    })
                    .rules;
                let text = canonical(&statements).to_string();
                rules.push((text, planned.then(|| statements.to_string())));
            }
            "map" | "set" => {
                let elements = match body.remove("elem") {
                    Some(Value::Array(elements)) => elements,
                    _ => Vec::new(),
                };
                body.remove("handle");
                let set = self.sets.entry(name).or_insert_with(|| SetContents {
                    position,
                    kind: kind.to_owned(),
                    declaration: declaration(&body, &SET_KEYS),
                    written: body,
                    elements: BTreeMap::new(),
                });
                set.add_elements(elements);
            }
            "element" => {
                if let (Some(set), Some(Value::Array(elements))) =
                    (self.sets.get_mut(&name), body.remove("elem"))
                {
                    set.add_elements(elements);
                }
            }
            other => self.strangers.push(format!("{other} {name}")),
        }
    }

    /// Whether the table is what `planned` says.
    #[cfg(test)]
    pub(super) fn matches(&self, planned: &Contents) -> bool {
        self.repair(planned, Transaction::default).is_none()
    }

    /// The transaction that turns this table into `planned`, or `None` when
    /// it already is. `creation` makes `planned` from nothing: it rebuilds
    /// the table when an object must change in a way that cannot be done
    /// in place (an object of a kind virtnet never makes, a chain or set
    /// declared otherwise).
    pub(super) fn repair(
        &self,
        planned: &Contents,
        creation: impl FnOnce() -> Transaction,
    ) -> Option<Repair> {
        let mut repair = Repair::default();
        if !planned.exists {
            if self.exists {
                repair.found.push("a table without networks".into());
                repair
                    .transaction
                    .add(nftables::schema::NfListObject::Table(
                        super::transaction::table(),
                    ));
                repair
                    .transaction
                    .delete(nftables::schema::NfListObject::Table(
                        super::transaction::table(),
                    ));
                return Some(repair);
            }
            return None;
        }
        let redeclared = self.chains.iter().any(|(name, chain)| {
            planned
                .chains
                .get(name)
                .is_some_and(|wanted| wanted.declaration != chain.declaration)
        }) || self.sets.iter().any(|(name, set)| {
            planned.sets.get(name).is_some_and(|wanted| {
                wanted.declaration != set.declaration || wanted.kind != set.kind
            })
        });
        if redeclared || !self.strangers.is_empty() {
            repair.found.push(if redeclared {
                "a chain or set declared otherwise".into()
            } else {
                format!("objects virtnet never makes: {}", self.strangers.join(", "))
            });
            let table = || nftables::schema::NfListObject::Table(super::transaction::table());
            repair.transaction.add(table());
            repair.transaction.delete(table());
            repair.transaction.extend(creation());
            return Some(repair);
        }
        self.in_place(planned, &mut repair);
        (!repair.found.is_empty()).then_some(repair)
    }

    /// The repair when every object that is there is declared right: in
    /// the order the kernel checks references in (rules that use a set or
    /// jump to a chain go before it, elements that jump to a chain too).
    fn in_place(&self, planned: &Contents, repair: &mut Repair) {
        let found = &mut repair.found;
        let batch = &mut repair.transaction;
        if !self.exists {
            found.push("the table".into());
        } else if self.flagged {
            found.push("the table's flags (dormant)".into());
        }
        batch.add(nftables::schema::NfListObject::Table(
            super::transaction::table(),
        ));
        // Chains whose rules go: those that differ, and those not planned.
        let mut refill = BTreeSet::new();
        for (name, chain) in &self.chains {
            let wanted = planned.chains.get(name);
            let same = wanted.is_some_and(|wanted| {
                wanted.rules.len() == chain.rules.len()
                    && wanted
                        .rules
                        .iter()
                        .zip(&chain.rules)
                        .all(|(wanted, found)| wanted.0 == found.0)
            });
            if same {
                continue;
            }
            if !chain.rules.is_empty() {
                batch.raw("flush", "chain", locate(name));
            }
            match wanted {
                Some(_) => {
                    found.push(format!("the rules of chain {name}"));
                    refill.insert(name.clone());
                }
                None => found.push(format!("chain {name}, not virtnet's")),
            }
        }
        // Elements and sets that go.
        let mut missing_elements: Vec<(&String, &SetContents, Vec<&Value>)> = Vec::new();
        for (name, set) in &self.sets {
            let Some(wanted) = planned.sets.get(name) else {
                found.push(format!("{} {name}, not virtnet's", set.kind));
                batch.raw("delete", &set.kind, locate(name));
                continue;
            };
            let extra: Vec<Value> = set
                .elements
                .iter()
                .filter(|(text, _)| !wanted.elements.contains_key(*text))
                .map(|(_, written)| set.key(written))
                .collect();
            if !extra.is_empty() {
                found.push(format!("{} elements of {} {name}", extra.len(), set.kind));
                batch.raw("delete", "element", element(name, extra));
            }
            let missing: Vec<&Value> = wanted
                .elements
                .iter()
                .filter(|(text, _)| !set.elements.contains_key(*text))
                .map(|(_, written)| written)
                .collect();
            if !missing.is_empty() {
                found.push(format!(
                    "{} missing elements of {} {name}",
                    missing.len(),
                    set.kind
                ));
                missing_elements.push((name, wanted, missing));
            }
        }
        for name in self.chains.keys() {
            if !planned.chains.contains_key(name) {
                batch.raw("delete", "chain", locate(name));
            }
        }
        // What comes back: sets and chains (in their planned order), rules,
        // then elements.
        let mut missing: Vec<(usize, &String, Option<&SetContents>, Option<&ChainContents>)> =
            planned
                .sets
                .iter()
                .filter(|(name, _)| !self.sets.contains_key(*name))
                .map(|(name, set)| (set.position, name, Some(set), None))
                .chain(
                    planned
                        .chains
                        .iter()
                        .filter(|(name, _)| !self.chains.contains_key(*name))
                        .map(|(name, chain)| (chain.position, name, None, Some(chain))),
                )
                .collect();
        missing.sort_by_key(|(position, ..)| *position);
        let mut refill: Vec<&String> = refill.iter().collect();
        for (_, name, set, chain) in missing {
            if let Some(wanted) = set {
                found.push(format!("{} {name}", wanted.kind));
                batch.raw("add", &wanted.kind, wanted.written.clone());
                if !wanted.elements.is_empty() {
                    missing_elements.push((name, wanted, wanted.elements.values().collect()));
                }
            }
            if let Some(wanted) = chain {
                found.push(format!("chain {name}"));
                batch.raw("add", "chain", wanted.written.clone());
                refill.push(name);
            }
        }
        for name in refill {
            for statements in planned.chains[name]
                .rules
                .iter()
                .filter_map(|rule| rule.1.as_ref())
            {
                let mut rule = Map::new();
                rule.insert("family".into(), json!("inet"));
                rule.insert("table".into(), json!(crate::plan::firewall::TABLE));
                rule.insert("chain".into(), json!(name));
                let statements = serde_json::from_str(statements).unwrap_or(Value::Null);
                rule.insert("expr".into(), statements);
                batch.raw("add", "rule", rule);
            }
        }
        for (name, _, elements) in missing_elements {
            batch.raw(
                "add",
                "element",
                element(name, elements.into_iter().cloned().collect()),
            );
        }
    }
}

impl SetContents {
    fn add_elements(&mut self, elements: Vec<Value>) {
        for written in elements {
            // nft wraps an element with options (a timeout, a comment).
            let written = match written.get("elem").and_then(|inner| inner.get("val")) {
                Some(value) if written.as_object().is_some_and(|o| o.len() == 1) => value.clone(),
                _ => written,
            };
            self.elements
                .insert(canonical(&written).to_string(), written);
        }
    }
}

/// A listing, `{"nftables": [objects]}`, read one object at a time into
/// contents: a large table's listing is never whole in memory as values.
struct Listing<'a>(&'a mut Contents);

/// The listing's array of objects.
struct Objects<'a>(&'a mut Contents);

impl<'de> serde::de::DeserializeSeed<'de> for Listing<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, reader: D) -> Result<(), D::Error> {
        reader.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Listing<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("nft's JSON listing")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "nftables" {
                map.next_value_seed(Objects(&mut *self.0))?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Objects<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, reader: D) -> Result<(), D::Error> {
        reader.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Objects<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("the objects of nft's JSON listing")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut objects: A) -> Result<(), A::Error> {
        while let Some(object) = objects.next_element::<Value>()? {
            self.0.take_listed(object);
        }
        Ok(())
    }
}

/// One form for statements nft lists otherwise than virtnet writes them.
pub(super) fn canonical(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        Value::Object(object) if object.len() == 1 => {
            let (kind, body) = object.iter().next().expect("one entry");
            let body = canonical(body);
            let body = match kind.as_str() {
                "reject" if body == json!({"type": "icmpx", "expr": "port-unreachable"}) => {
                    Value::Null
                }
                "masquerade" | "snat" | "dnat" | "redirect"
                    if body.as_object().is_some_and(Map::is_empty) =>
                {
                    Value::Null
                }
                "prefix" => {
                    if let Some(address) = whole_prefix(&body) {
                        return address;
                    }
                    body
                }
                "limit" => canonical_limit(body),
                "match" => canonical_match(body),
                _ => body,
            };
            json!({ kind: body })
        }
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, value)| (key.clone(), canonical(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A prefix as long as its address: the address alone, as nft lists it.
fn whole_prefix(prefix: &Value) -> Option<Value> {
    let address: std::net::IpAddr = prefix.get("addr")?.as_str()?.parse().ok()?;
    let length = prefix.get("len")?.as_u64()?;
    let full = if address.is_ipv4() { 32 } else { 128 };
    (length == full).then(|| json!(address.to_string()))
}

/// `in` a set is `==` it, as nft lists it.
fn canonical_match(mut body: Value) -> Value {
    let over_set = body
        .get("right")
        .is_some_and(|right| right.get("set").is_some());
    if over_set && body.get("op") == Some(&json!("in")) {
        body["op"] = json!("==");
    }
    body
}

/// A byte rate and burst in bytes, whatever unit nft lists them in.
fn canonical_limit(mut body: Value) -> Value {
    let bytes = |unit: Option<&Value>| match unit.and_then(Value::as_str) {
        Some("bytes") | None => Some(1u64),
        Some("kbytes") => Some(1 << 10),
        Some("mbytes") => Some(1 << 20),
        Some(_) => None,
    };
    let Some(object) = body.as_object_mut() else {
        return body;
    };
    if object.get("rate_unit").and_then(Value::as_str).is_none() {
        // A packet rate: nothing to convert.
        return body;
    }
    for (quantity, unit) in [("rate", "rate_unit"), ("burst", "burst_unit")] {
        let size = bytes(object.get(unit));
        let amount = object.get(quantity).and_then(Value::as_u64).unwrap_or(0);
        if let Some(size) = size {
            object.insert(quantity.into(), json!(amount * size));
            object.insert(unit.into(), json!("bytes"));
        }
    }
    if object.get("burst") == Some(&json!(0)) {
        object.remove("burst");
        object.remove("burst_unit");
    }
    if object.get("inv") == Some(&json!(false)) {
        object.remove("inv");
    }
    body
}

#[cfg(test)]
#[path = "contents_tests.rs"]
mod tests;

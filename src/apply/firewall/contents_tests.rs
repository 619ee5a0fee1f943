use serde_json::{Value, json};

use super::*;
use crate::apply::firewall::render;
use crate::definition::NetworkDef;
use crate::plan::firewall::FirewallPlan;

/// What nft 1.0.6 listed for the table of [`rich_plan`], verbatim.
const LISTING: &str = include_str!("../../../tests/fixtures/nft-1.0.6-listing.json");

/// A network with every kind of statement virtnet writes: NAT to an
/// address and port range, IPv6 translated, a forward device, an outbound
/// limit.
fn rich_plan() -> FirewallPlan {
    let def = NetworkDef::parse(
        "<network><name>n</name><forward dev='eth9'><nat ipv6='yes'>
         <address start='10.0.0.5' end='10.0.0.6'/><port start='2000' end='3000'/></nat></forward>
         <bandwidth><outbound average='1024' burst='64'/></bandwidth>
         <ip address='10.9.0.1' prefix='24'/><ip family='ipv6' address='fd00::1' prefix='64'/></network>",
    )
    .unwrap();
    crate::plan::firewall::plan(&def, "vbr").unwrap()
}

fn planned() -> (Contents, Transaction) {
    let creation = render::whole_table([&rich_plan()]);
    (Contents::planned([creation.clone()]), creation)
}

/// The listing with `change` made to its objects.
fn damaged(change: impl FnOnce(&mut Vec<Value>)) -> Contents {
    let mut document: Value = serde_json::from_str(LISTING).unwrap();
    let objects = document["nftables"].as_array_mut().unwrap();
    change(objects);
    Contents::listed(Some(&document.to_string())).unwrap()
}

/// The commands of the repair of `listed`, as `verb kind name` lines.
fn repair_of(listed: &Contents) -> Vec<String> {
    let (planned, creation) = planned();
    let repair = listed
        .repair(&planned, || creation.clone())
        .expect("something to repair");
    repair
        .transaction
        .commands
        .iter()
        .map(|command| {
            let (verb, body) = command.as_object().unwrap().iter().next().unwrap();
            let (kind, object) = body.as_object().unwrap().iter().next().unwrap();
            let name = object
                .get("name")
                .or_else(|| object.get("chain"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            format!("{verb} {kind} {name}")
        })
        .collect()
}

fn is_rule_of(object: &Value, chain: &str) -> bool {
    object["rule"]["chain"] == json!(chain)
}

#[test]
fn the_table_nft_lists_is_the_table_planned() {
    let listed = Contents::listed(Some(LISTING)).unwrap();
    let (planned, creation) = planned();
    assert!(
        listed.repair(&planned, || creation.clone()).is_none(),
        "{:?}",
        listed.repair(&planned, || creation.clone())
    );
}

#[test]
fn a_flushed_chain_is_refilled_and_nothing_else_touched() {
    let listed = damaged(|objects| objects.retain(|object| !is_rule_of(object, "forward")));
    assert_eq!(
        repair_of(&listed),
        [
            "add table virtnet",
            "add rule forward",
            "add rule forward",
            "add rule forward",
        ]
    );
}

#[test]
fn a_missing_or_extra_rule_refills_its_chain() {
    let missing = damaged(|objects| {
        let last = objects
            .iter()
            .rposition(|object| is_rule_of(object, "to_vbr"))
            .unwrap();
        objects.remove(last);
    });
    assert_eq!(
        repair_of(&missing),
        [
            "add table virtnet",
            "flush chain to_vbr",
            "add rule to_vbr",
            "add rule to_vbr"
        ]
    );
    let extra = damaged(|objects| {
        objects.push(json!({"rule": {"family": "inet", "table": "virtnet",
            "chain": "from_vbr", "handle": 99, "expr": [{"accept": null}]}}));
    });
    assert_eq!(repair_of(&extra)[1], "flush chain from_vbr");
    let altered = damaged(|objects| {
        let rule = objects
            .iter_mut()
            .find(|object| is_rule_of(object, "nat_vbr"))
            .unwrap();
        rule["rule"]["expr"][0]["match"]["right"]["prefix"]["len"] = json!(16);
    });
    assert_eq!(repair_of(&altered)[1], "flush chain nat_vbr");
}

#[test]
fn elements_are_put_back_and_taken_out_one_by_one() {
    let listed = damaged(|objects| {
        for object in objects.iter_mut() {
            if object["map"]["name"] == json!("to_bridge") {
                object["map"]["elem"] = json!([["eth0", {"accept": null}]]);
            }
            if object["set"]["name"] == json!("dns_addresses4") {
                object["set"].as_object_mut().unwrap().remove("elem");
            }
        }
    });
    let (planned, creation) = planned();
    let repair = listed.repair(&planned, || creation.clone()).unwrap();
    let commands: Vec<Value> = repair.transaction.commands;
    assert_eq!(
        commands[1],
        json!({"delete": {"element": {"family": "inet", "table": "virtnet",
            "name": "to_bridge", "elem": ["eth0"]}}})
    );
    assert_eq!(
        commands[2..],
        [
            json!({"add": {"element": {"family": "inet", "table": "virtnet",
                "name": "dns_addresses4", "elem": ["10.9.0.1"]}}}),
            json!({"add": {"element": {"family": "inet", "table": "virtnet",
                "name": "to_bridge", "elem": [["vbr", {"jump": {"target": "to_vbr"}}]]}}}),
        ]
    );
    assert_eq!(repair.found.len(), 3, "{:?}", repair.found);
}

#[test]
fn missing_chains_and_sets_come_back_before_what_uses_them() {
    let listed = damaged(|objects| {
        objects.retain(|object| {
            object["chain"]["name"] != json!("nat_vbr")
                && !is_rule_of(object, "nat_vbr")
                && object["map"]["name"] != json!("nat_from_bridge")
                && !is_rule_of(object, "postrouting")
        });
    });
    let commands = repair_of(&listed);
    assert_eq!(
        commands[..3],
        [
            "add table virtnet",
            "add map nat_from_bridge",
            "add chain nat_vbr",
        ]
    );
    let rules = &commands[3..commands.len() - 1];
    assert!(
        rules.iter().all(|command| command.starts_with("add rule")),
        "{rules:?}"
    );
    assert!(commands.contains(&"add rule postrouting".to_owned()));
    assert_eq!(commands.last().unwrap(), "add element nat_from_bridge");
}

#[test]
fn what_virtnet_does_not_plan_goes() {
    let listed = damaged(|objects| {
        objects.push(json!({"chain": {"family": "inet", "table": "virtnet",
            "name": "sneaky", "handle": 98}}));
        objects.push(json!({"rule": {"family": "inet", "table": "virtnet",
            "chain": "sneaky", "handle": 99, "expr": [{"accept": null}]}}));
        objects.push(json!({"set": {"family": "inet", "table": "virtnet",
            "name": "extra", "type": "ipv4_addr", "handle": 97}}));
    });
    assert_eq!(
        repair_of(&listed),
        [
            "add table virtnet",
            "flush chain sneaky",
            "delete set extra",
            "delete chain sneaky"
        ]
    );
}

#[test]
fn a_dormant_table_is_woken_and_a_stranger_rebuilds_it() {
    let dormant = damaged(|objects| objects[1]["table"]["flags"] = json!("dormant"));
    assert_eq!(repair_of(&dormant), ["add table virtnet"]);
    let redeclared = damaged(|objects| {
        for object in objects.iter_mut() {
            if object["chain"]["name"] == json!("forward") {
                object["chain"]["policy"] = json!("drop");
            }
        }
    });
    let (_, creation) = planned();
    let rebuild = repair_of(&redeclared);
    assert_eq!(
        rebuild[..3],
        [
            "add table virtnet",
            "delete table virtnet",
            "add table virtnet"
        ]
    );
    assert_eq!(rebuild.len(), creation.commands.len() + 2);
    let counter = damaged(|objects| {
        objects.push(json!({"counter": {"family": "inet", "table": "virtnet",
            "name": "c", "handle": 5, "packets": 0, "bytes": 0}}));
    });
    assert_eq!(repair_of(&counter)[1], "delete table virtnet");
}

#[test]
fn without_networks_the_table_goes() {
    let listed = Contents::listed(Some(LISTING)).unwrap();
    let repair = listed
        .repair(&Contents::default(), Transaction::default)
        .unwrap();
    assert_eq!(
        repair.transaction.commands[1],
        json!({"delete": {"table": {"family": "inet", "name": "virtnet"}}})
    );
    let absent = Contents::listed(None).unwrap();
    assert!(
        absent
            .repair(&Contents::default(), Transaction::default)
            .is_none()
    );
    let (planned, creation) = planned();
    let whole = absent.repair(&planned, || creation.clone()).unwrap();
    assert_eq!(whole.found[0], "the table");
    assert!(Contents::planned([whole.transaction]).matches(&planned));
}

#[test]
fn canonical_forms_are_those_nft_lists() {
    assert_eq!(
        canonical(&json!({"reject": {"type": "icmpx", "expr": "port-unreachable"}})),
        json!({"reject": null})
    );
    assert_eq!(
        canonical(&json!({"reject": {"type": "icmp", "expr": "host-unreachable"}})),
        json!({"reject": {"type": "icmp", "expr": "host-unreachable"}}),
        "another reject stays another"
    );
    assert_eq!(
        canonical(&json!({"prefix": {"addr": "255.255.255.255", "len": 32}})),
        json!("255.255.255.255")
    );
    assert_eq!(
        canonical(&json!({"prefix": {"addr": "10.0.0.0", "len": 8}})),
        json!({"prefix": {"addr": "10.0.0.0", "len": 8}})
    );
    assert_eq!(
        canonical(
            &json!({"limit": {"rate": 1000, "rate_unit": "kbytes", "per": "second",
            "burst": 64, "burst_unit": "kbytes", "inv": true}})
        ),
        canonical(
            &json!({"limit": {"rate": 1_024_000, "rate_unit": "bytes", "per": "second",
            "burst": 65536, "burst_unit": "bytes", "inv": true}})
        )
    );
    assert_eq!(
        canonical(&json!({"match": {"op": "in", "left": 1, "right": {"set": [1, 2]}}})),
        json!({"match": {"op": "==", "left": 1, "right": {"set": [1, 2]}}})
    );
    assert_eq!(
        canonical(&json!({"match": {"op": "in", "left": 1, "right": ["a", "b"]}})),
        json!({"match": {"op": "in", "left": 1, "right": ["a", "b"]}}),
        "flags keep their operator"
    );
}

/// A table made again from nothing: sets and chains in the order the
/// creation makes them (so nft lists it as before), and no empty element
/// list for a set no network fills (nft refuses one).
#[test]
fn a_table_made_again_keeps_its_order_and_skips_empty_sets() {
    let def = NetworkDef::parse(
        "<network><name>n</name><forward/><ip address='10.9.0.1' prefix='24'/></network>",
    )
    .unwrap();
    let plan = crate::plan::firewall::plan(&def, "vbr").unwrap();
    let creation = render::whole_table([&plan]);
    let planned = Contents::planned([creation.clone()]);
    let repair = Contents::listed(None)
        .unwrap()
        .repair(&planned, || creation.clone())
        .unwrap();
    let declared = |commands: &[Value]| -> Vec<String> {
        commands
            .iter()
            .filter_map(|command| {
                let added = command.get("add")?;
                ["map", "set", "chain"]
                    .iter()
                    .find_map(|kind| added.get(*kind)?.get("name")?.as_str())
                    .map(str::to_owned)
            })
            .collect()
    };
    assert_eq!(
        declared(&repair.transaction.commands),
        declared(&creation.commands)
    );
    assert!(
        repair
            .transaction
            .commands
            .iter()
            .all(|command| command["add"]["element"]["elem"] != json!([])),
        "{:?}",
        repair.transaction.commands
    );
}

use super::*;
use crate::apply::openings::survey::{Dropping, Family, Removal};
use crate::definition::IpFamily;
use crate::plan::openings::{HostService, Protocol};

fn nat_needs(network: &str, bridge: &str) -> OpeningNeeds {
    OpeningNeeds {
        network: network.into(),
        bridge: bridge.into(),
        families: vec![IpFamily::V4],
        forward: true,
        services: vec![HostService {
            protocol: Protocol::Udp,
            port: 67,
            family: Some(IpFamily::V4),
        }],
    }
}

fn chain(family: Family, table: &str, name: &str, hook: Hook, docker: bool) -> DroppingChain {
    DroppingChain {
        family,
        table: table.into(),
        chain: name.into(),
        hook,
        dropping: Dropping::Policy,
        iptables: table == "filter",
        docker_user: docker,
    }
}

fn ours(network: &str, purpose: &str, place: Place, handle: u64) -> OurRule {
    OurRule {
        network: network.into(),
        purpose: purpose.into(),
        place,
        removal: Removal::Handle(handle),
    }
}

fn docker_user() -> Place {
    Place::Iptables {
        family: Family::Ip,
        chain: "DOCKER-USER".into(),
    }
}

#[test]
fn dockers_forward_chain_gets_accepts_in_docker_user() {
    let survey = Survey {
        dropping: vec![chain(Family::Ip, "filter", "FORWARD", Hook::Forward, true)],
        ours: vec![],
    };
    let decision = decide(&survey, &[nat_needs("n", "virbr9")], true);
    let added: Vec<(String, String)> = decision
        .add
        .iter()
        .map(|opening| (opening.place.describe(), opening.comment()))
        .collect();
    assert_eq!(
        added,
        [
            (
                "table ip filter, chain DOCKER-USER".to_owned(),
                "virtnet network n: forward from bridge".to_owned()
            ),
            (
                "table ip filter, chain DOCKER-USER".to_owned(),
                "virtnet network n: forward to bridge".to_owned()
            ),
        ]
    );
    assert!(decision.remove.is_empty() && decision.blocked.is_empty());
    assert_eq!(blocked(&survey, &[nat_needs("n", "virbr9")]).len(), 1);
}

#[test]
fn accepts_in_place_stay_and_stale_ones_go() {
    let place = docker_user();
    let survey = Survey {
        dropping: vec![chain(Family::Ip, "filter", "FORWARD", Hook::Forward, true)],
        ours: vec![
            ours("n", "forward from bridge", place.clone(), 1),
            ours("n", "forward to bridge", place.clone(), 2),
            ours("gone", "forward to bridge", place.clone(), 3),
        ],
    };
    let needs = [nat_needs("n", "virbr9")];
    let decision = decide(&survey, &needs, true);
    assert!(decision.add.is_empty());
    assert_eq!(decision.remove, [survey.ours[2].clone()]);
    assert!(blocked(&survey, &needs).is_empty());
}

#[test]
fn an_input_chain_gets_the_services_and_an_ip6_chain_nothing_for_ipv4() {
    let survey = Survey {
        dropping: vec![
            chain(Family::Inet, "hostfw", "input", Hook::Input, false),
            chain(Family::Ip6, "filter", "FORWARD", Hook::Forward, false),
        ],
        ours: vec![],
    };
    let decision = decide(&survey, &[nat_needs("n", "virbr9")], true);
    let added: Vec<String> = decision.add.iter().map(Opening::comment).collect();
    assert_eq!(added, ["virtnet network n: udp 67"]);
    assert_eq!(
        decision.add[0].place,
        Place::Nft {
            family: Family::Inet,
            table: "hostfw".into(),
            chain: "input".into()
        }
    );
}

#[test]
fn without_opening_everything_of_virtnets_goes_and_the_drops_are_reported() {
    let place = docker_user();
    let survey = Survey {
        dropping: vec![chain(Family::Ip, "filter", "FORWARD", Hook::Forward, true)],
        ours: vec![ours("n", "forward from bridge", place, 1)],
    };
    let decision = decide(&survey, &[nat_needs("n", "virbr9")], false);
    assert!(decision.add.is_empty());
    assert_eq!(decision.remove, survey.ours);
    assert_eq!(decision.blocked.len(), 1);
    assert_eq!(
        decision.blocked[0].describe(),
        "table ip filter, chain FORWARD (policy drop) drops the traffic of bridge virbr9 \
         (forward from bridge, forward to bridge)"
    );
}

#[test]
fn no_dropping_chain_means_nothing_to_do_but_clean_up() {
    let survey = Survey {
        dropping: vec![],
        ours: vec![ours("n", "forward from bridge", docker_user(), 1)],
    };
    let decision = decide(&survey, &[nat_needs("n", "virbr9")], true);
    assert!(decision.add.is_empty() && decision.blocked.is_empty());
    assert_eq!(
        decision.remove.len(),
        1,
        "an accept no chain needs any more"
    );
}

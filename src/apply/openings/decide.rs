//! Which accepts of virtnet's other tables must gain or lose, from a
//! [`Survey`] and what the running networks need: pure, so every case is
//! a unit test.

use crate::plan::openings::{OpeningNeeds, Passage, comment};

use super::survey::{DroppingChain, Hook, OurRule, Place, Survey};

/// An accept to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    pub place: Place,
    pub network: String,
    pub bridge: String,
    pub passage: Passage,
}

impl Opening {
    pub fn comment(&self) -> String {
        comment(&self.network, self.passage)
    }
}

/// A chain that drops a network's traffic, with no accept of virtnet's in
/// place for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub network: String,
    pub bridge: String,
    pub chain: DroppingChain,
    /// What it drops: the purposes of the missing accepts.
    pub missing: Vec<Passage>,
}

impl Blocked {
    pub fn describe(&self) -> String {
        let missing: Vec<String> = self.missing.iter().map(|p| p.purpose()).collect();
        format!(
            "{} drops the traffic of bridge {} ({})",
            self.chain.describe(),
            self.bridge,
            missing.join(", ")
        )
    }
}

/// What to change.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub add: Vec<Opening>,
    pub remove: Vec<OurRule>,
    /// What stays blocked after the change (all of it when opening is off).
    pub blocked: Vec<Blocked>,
}

/// Where the accepts for `chain` go: Docker's `DOCKER-USER` for Docker's
/// forward chain (dockerd keeps that chain's rules and jumps to it first),
/// the chain itself otherwise (through iptables for iptables' chains).
fn place_for(chain: &DroppingChain) -> Place {
    match (
        chain.iptables,
        chain.docker_user && chain.hook == Hook::Forward,
    ) {
        (true, true) => Place::Iptables {
            family: chain.family,
            chain: "DOCKER-USER".to_owned(),
        },
        (true, false) => Place::Iptables {
            family: chain.family,
            chain: chain.chain.clone(),
        },
        (false, _) => Place::Nft {
            family: chain.family,
            table: chain.table.clone(),
            chain: chain.chain.clone(),
        },
    }
}

/// A dropping chain and a network, with what of the network's accepts are
/// there and what are missing.
struct Gap<'a> {
    place: Place,
    /// Every accept the network needs on the chain.
    passages: Vec<Passage>,
    present: Vec<&'a OurRule>,
    blocked: Blocked,
}

fn gaps<'a>(survey: &'a Survey, needs: &[OpeningNeeds]) -> Vec<Gap<'a>> {
    let mut gaps = Vec::new();
    for chain in &survey.dropping {
        let place = place_for(chain);
        for network in needs {
            let mut gap = Gap {
                place: place.clone(),
                passages: network.passages(chain.family.ip_family(), chain.hook == Hook::Forward),
                present: Vec::new(),
                blocked: Blocked {
                    network: network.network.clone(),
                    bridge: network.bridge.clone(),
                    chain: chain.clone(),
                    missing: Vec::new(),
                },
            };
            for passage in gap.passages.clone() {
                let present = survey.ours.iter().find(|rule| {
                    rule.place == place
                        && rule.network == network.network
                        && rule.purpose == passage.purpose()
                });
                match present {
                    Some(rule) => gap.present.push(rule),
                    None => gap.blocked.missing.push(passage),
                }
            }
            gaps.push(gap);
        }
    }
    gaps
}

/// The dropping chains that drop some of the networks' traffic now, with
/// no accept of virtnet's for it.
pub fn blocked(survey: &Survey, needs: &[OpeningNeeds]) -> Vec<Blocked> {
    gaps(survey, needs)
        .into_iter()
        .map(|gap| gap.blocked)
        .filter(|blocked| !blocked.missing.is_empty())
        .collect()
}

/// Brings the accepts in other tables in line with `needs`: with `open`,
/// every dropping chain gets each running network's missing accepts;
/// every accept of virtnet's that no running network needs there (any,
/// without `open`) goes.
pub fn decide(survey: &Survey, needs: &[OpeningNeeds], open: bool) -> Decision {
    let mut decision = Decision::default();
    let mut kept: Vec<&OurRule> = Vec::new();
    for mut gap in gaps(survey, needs) {
        if open {
            kept.append(&mut gap.present);
            let blocked = gap.blocked;
            decision
                .add
                .extend(blocked.missing.iter().map(|passage| Opening {
                    place: gap.place.clone(),
                    network: blocked.network.clone(),
                    bridge: blocked.bridge.clone(),
                    passage: *passage,
                }));
        } else {
            // Every accept of virtnet's goes: all the network needs is blocked.
            let mut blocked = gap.blocked;
            blocked.missing = gap.passages;
            if !blocked.missing.is_empty() {
                decision.blocked.push(blocked);
            }
        }
    }
    decision.remove = survey
        .ours
        .iter()
        .filter(|rule| !kept.contains(rule))
        .cloned()
        .collect();
    decision
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;

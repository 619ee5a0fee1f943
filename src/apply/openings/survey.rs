//! What other tables on the host would do to the networks' traffic, read
//! from `nft -j list ruleset` and, for iptables' own tables, from
//! `iptables -S` (iptables-nft keeps a rule's comment where nft's listing
//! cannot show it).

use serde_json::Value;

use crate::definition::IpFamily;
use crate::plan::firewall::TABLE;
use crate::plan::openings::parse_comment;

/// An nftables family whose chains see IP traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    Ip,
    Ip6,
    Inet,
}

impl Family {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "ip" => Some(Self::Ip),
            "ip6" => Some(Self::Ip6),
            "inet" => Some(Self::Inet),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Ip6 => "ip6",
            Self::Inet => "inet",
        }
    }

    /// The one address family it sees, or `None` for both.
    pub fn ip_family(self) -> Option<IpFamily> {
        match self {
            Self::Ip => Some(IpFamily::V4),
            Self::Ip6 => Some(IpFamily::V6),
            Self::Inet => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    Input,
    Forward,
}

/// Why a base chain drops what no rule of it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropping {
    /// `policy drop`.
    Policy,
    /// Its last rule drops or rejects everything that reaches it.
    LastRule { handle: u64, verdict: String },
}

/// A filter chain of someone else's on the input or forward hook that
/// drops what it does not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppingChain {
    pub family: Family,
    pub table: String,
    pub chain: String,
    pub hook: Hook,
    pub dropping: Dropping,
    /// The chain belongs to iptables (iptables-nft's `filter` table):
    /// rules go in through iptables, where its users expect them.
    pub iptables: bool,
    /// Docker's chain for the administrator's own rules exists in the table.
    pub docker_user: bool,
}

impl DroppingChain {
    /// How an administrator names the chain: `table ip filter, chain FORWARD`.
    pub fn describe(&self) -> String {
        let why = match &self.dropping {
            Dropping::Policy => "policy drop".to_owned(),
            Dropping::LastRule { handle, verdict } => {
                format!("its last rule (handle {handle}) is '{verdict}'")
            }
        };
        format!(
            "table {} {}, chain {} ({why})",
            self.family.as_str(),
            self.table,
            self.chain
        )
    }
}

/// An accept of virtnet's in someone else's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurRule {
    pub network: String,
    pub purpose: String,
    pub place: Place,
    /// How to delete it again.
    pub removal: Removal,
}

/// Where an accept goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// A chain of iptables' `filter` table, changed with iptables or
    /// ip6tables.
    Iptables { family: Family, chain: String },
    /// A chain of a native nftables table, changed with nft.
    Nft {
        family: Family,
        table: String,
        chain: String,
    },
}

impl Place {
    pub fn describe(&self) -> String {
        match self {
            Self::Iptables { family, chain } => {
                format!("table {} filter, chain {chain}", family.as_str())
            }
            Self::Nft {
                family,
                table,
                chain,
            } => format!("table {} {table}, chain {chain}", family.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// `nft delete rule FAMILY TABLE CHAIN handle N`.
    Handle(u64),
    /// `iptables -D` with the rule's specification as `iptables -S` gives it.
    Specification(Vec<String>),
}

/// What the host's other tables hold that matters to virtnet's networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Survey {
    pub dropping: Vec<DroppingChain>,
    pub ours: Vec<OurRule>,
}

impl Survey {
    /// Reads `nft -j list ruleset`.
    #[cfg(test)]
    pub fn from_ruleset(listing: &str) -> Result<Self, serde_json::Error> {
        Self::from_listings(&[listing.to_owned()])
    }

    /// Reads nft's listings of tables (`nft -j list table …`).
    pub fn from_listings(listings: &[String]) -> Result<Self, serde_json::Error> {
        let mut objects = Vec::new();
        for listing in listings {
            let mut document: Value = serde_json::from_str(listing)?;
            if let Some(Value::Array(listed)) = document.get_mut("nftables").map(Value::take) {
                objects.extend(listed);
            }
        }
        let mut survey = Survey::default();
        let mut chains: Vec<(DroppingChain, bool)> = Vec::new();
        let mut last_rules: Vec<((Family, String, String), Option<Dropping>)> = Vec::new();
        let mut docker_user_tables = Vec::new();
        let mut firewalld_tables = Vec::new();
        for object in &objects {
            if let Some(chain) = object.get("chain") {
                let Some((family, table, name)) = locate(chain, "name") else {
                    continue;
                };
                if name == "DOCKER-USER" {
                    docker_user_tables.push((family, table.clone()));
                }
                if FIREWALLD_CHAINS.contains(&name.as_str()) {
                    firewalld_tables.push((family, table.clone()));
                }
                let hook = match chain.get("hook").and_then(Value::as_str) {
                    Some("input") => Hook::Input,
                    Some("forward") => Hook::Forward,
                    _ => continue,
                };
                if chain.get("type").and_then(Value::as_str) != Some("filter")
                    || (family == Family::Inet && table == TABLE)
                {
                    continue;
                }
                let iptables = matches!(family, Family::Ip | Family::Ip6)
                    && table == "filter"
                    && matches!(name.as_str(), "INPUT" | "FORWARD");
                let policy_drop = chain.get("policy").and_then(Value::as_str) == Some("drop");
                chains.push((
                    DroppingChain {
                        family,
                        table,
                        chain: name,
                        hook,
                        dropping: Dropping::Policy,
                        iptables,
                        docker_user: false,
                    },
                    policy_drop,
                ));
            } else if let Some(rule) = object.get("rule") {
                let Some((family, table, chain)) = locate(rule, "chain") else {
                    continue;
                };
                if let Some((network, purpose)) = rule
                    .get("comment")
                    .and_then(Value::as_str)
                    .and_then(parse_comment)
                    && let Some(handle) = rule.get("handle").and_then(Value::as_u64)
                {
                    survey.ours.push(OurRule {
                        network: network.to_owned(),
                        purpose: purpose.to_owned(),
                        place: Place::Nft {
                            family,
                            table: table.clone(),
                            chain: chain.clone(),
                        },
                        removal: Removal::Handle(handle),
                    });
                }
                let key = (family, table, chain);
                let verdict = final_verdict(rule);
                match last_rules.iter_mut().find(|(known, _)| *known == key) {
                    Some((_, last)) => *last = verdict,
                    None => last_rules.push((key, verdict)),
                }
            }
        }
        chains
            .retain(|(chain, _)| !firewalld_tables.contains(&(chain.family, chain.table.clone())));
        for (mut chain, policy_drop) in chains {
            chain.docker_user = docker_user_tables
                .iter()
                .any(|(family, table)| *family == chain.family && *table == chain.table);
            let key = (chain.family, chain.table.clone(), chain.chain.clone());
            let last = last_rules
                .iter()
                .find(|(known, _)| *known == key)
                .and_then(|(_, last)| last.clone());
            if let Some(dropping) = last {
                chain.dropping = dropping;
            } else if !policy_drop {
                continue;
            }
            survey.dropping.push(chain);
        }
        Ok(survey)
    }

    /// Adds virtnet's accepts found in `iptables -S` (or `ip6tables -S`) of
    /// `family`.
    pub fn add_iptables_listing(&mut self, family: Family, listing: &str) {
        for line in listing.lines() {
            let words = split_words(line);
            let [append, chain, specification @ ..] = words.as_slice() else {
                continue;
            };
            if append != "-A" {
                continue;
            }
            let comment = specification
                .windows(2)
                .find(|pair| pair[0] == "--comment")
                .map(|pair| pair[1].as_str());
            if let Some((network, purpose)) = comment.and_then(parse_comment) {
                let mut removal = vec![chain.clone()];
                removal.extend(specification.iter().cloned());
                self.ours.push(OurRule {
                    network: network.to_owned(),
                    purpose: purpose.to_owned(),
                    place: Place::Iptables {
                        family,
                        chain: chain.clone(),
                    },
                    removal: Removal::Specification(removal),
                });
            }
        }
    }
}

/// firewalld's tables with its nftables backend: firewalld is not given
/// accepts, its zones are (`apply::firewalld`).
const FIREWALLD_TABLE: &str = "firewalld";

/// Chains firewalld's iptables backend makes in iptables' filter table.
const FIREWALLD_CHAINS: [&str; 2] = ["INPUT_ZONES", "FORWARD_IN_ZONES"];

/// The tables of `nft -j list tables` that are someone else's and may
/// hold chains that see IP traffic, firewalld's left out: (family, name).
pub fn other_tables(listing: &str) -> Result<Vec<(Family, String)>, serde_json::Error> {
    let document: Value = serde_json::from_str(listing)?;
    let objects = document
        .get("nftables")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    Ok(objects
        .iter()
        .filter_map(|object| {
            let table = object.get("table")?;
            let family = Family::parse(table.get("family")?.as_str()?)?;
            let name = table.get("name")?.as_str()?;
            let ours = family == Family::Inet && name == TABLE;
            (!ours && name != FIREWALLD_TABLE).then(|| (family, name.to_owned()))
        })
        .collect())
}

/// The family, table and name (under `key`) an object of the listing
/// belongs to, for the families that see IP traffic.
fn locate(object: &Value, key: &str) -> Option<(Family, String, String)> {
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    Some((
        Family::parse(text("family")?)?,
        text("table")?.to_owned(),
        text(key)?.to_owned(),
    ))
}

/// The verdict of a rule that drops or rejects whatever reaches it (no
/// match before the verdict): such a rule ends its chain.
fn final_verdict(rule: &Value) -> Option<Dropping> {
    let handle = rule.get("handle").and_then(Value::as_u64)?;
    let statements = rule.get("expr")?.as_array()?;
    let (verdict, before) = statements.split_last()?;
    if !before
        .iter()
        .all(|statement| statement.get("counter").is_some())
    {
        return None;
    }
    let name = verdict.as_object()?.keys().next()?.as_str();
    let verdict = match name {
        "drop" | "reject" => name.to_owned(),
        "xt" => {
            let target = verdict.pointer("/xt/name")?.as_str()?;
            let is_target = verdict.pointer("/xt/type")?.as_str()? == "target";
            if !is_target || !matches!(target, "REJECT" | "DROP") {
                return None;
            }
            target.to_owned()
        }
        _ => return None,
    };
    Some(Dropping::LastRule { handle, verdict })
}

/// Splits a line of `iptables -S` into words: iptables quotes a word that
/// holds spaces with double quotes, escaping `"` and `\` with `\`.
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut characters = line.chars();
    while let Some(character) = characters.next() {
        match character {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => {
                word.extend(characters.next());
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            _ => {
                word.push(character);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[cfg(test)]
#[path = "survey_tests.rs"]
mod tests;

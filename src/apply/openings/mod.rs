//! Accepts of virtnet's in other tools' firewalls (see `plan::openings`):
//! Docker's `DOCKER-USER`, the top of iptables' `FORWARD` and `INPUT` (ufw
//! and others), the top of a native nftables chain that drops.
//!
//! [`Openings`] keeps what the running networks need and brings the host in
//! line with it as a whole ([`Openings::reconcile`]): after each start and
//! stop, at daemon start, and whenever nftables announces that someone
//! changed a table (dockerd restarting, `ufw reload`), so the accepts come
//! back when their owner rebuilds its chains, and an accept of a network
//! that no longer runs (a daemon killed half-way) goes.

mod decide;
mod survey;

use std::collections::BTreeMap;

use crate::apply::firewall::OwnProcesses;
use crate::plan::openings::{OpeningNeeds, Passage};

pub use decide::{Blocked, Decision, Opening, blocked, decide};
pub use survey::{DroppingChain, Family, Place, Removal, Survey};

/// What virtnet does about other tables that drop its networks' traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ForeignFirewalls {
    /// Add the accepts the networks need, as iptables-era libvirt did.
    #[default]
    Open,
    /// Only warn (and let `doctor` tell).
    Warn,
}

#[derive(Debug, thiserror::Error)]
pub enum OpeningsError {
    #[error("cannot run {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} {arguments} failed: {message}")]
    Refused {
        program: String,
        arguments: String,
        message: String,
    },
    #[error("cannot read nft's listing of the ruleset")]
    Listing(#[source] serde_json::Error),
}

/// What [`Openings::reconcile`] changed, and what stays blocked that the
/// previous one did not find.
#[derive(Debug, Default)]
pub struct Reconciled {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub blocked: Vec<Blocked>,
}

/// Whether a reconcile may use the tables as the last one read them.
#[derive(Clone, Copy)]
enum Reading {
    Kept,
    Fresh,
}

/// The accepts the running networks need in other tables.
pub struct Openings {
    mode: ForeignFirewalls,
    /// nft and iptables processes of virtnet's, whose changes nftables'
    /// notifications then do not report as someone else's.
    own: OwnProcesses,
    /// The lock also serializes reconciles.
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By network name.
    needs: BTreeMap<String, OpeningNeeds>,
    /// What the last reconcile found blocked: only news are reported.
    blocked: Vec<String>,
    /// The other tables as the last reconcile left them, while nobody is
    /// known to have changed them since: a start or stop on a host where
    /// nothing drops traffic then runs no process at all. Announced
    /// changes bring a [`Openings::reconcile`], which reads them again.
    survey: Option<Survey>,
}

impl Openings {
    pub fn new(mode: ForeignFirewalls, own: OwnProcesses) -> Self {
        Self {
            mode,
            own,
            state: tokio::sync::Mutex::default(),
        }
    }

    /// Records what a network that runs now needs (`None`: nothing), and
    /// brings the host in line.
    pub async fn set(
        &self,
        network: &str,
        needs: Option<OpeningNeeds>,
    ) -> Result<Reconciled, OpeningsError> {
        let mut state = self.state.lock().await;
        match needs {
            Some(needs) => state.needs.insert(network.to_owned(), needs),
            None => state.needs.remove(network),
        };
        self.reconcile_locked(&mut state, Reading::Kept).await
    }

    /// Records the networks found running at daemon start, without
    /// changing anything yet.
    pub async fn adopt(&self, needs: OpeningNeeds) {
        let mut state = self.state.lock().await;
        state.needs.insert(needs.network.clone(), needs);
    }

    /// Brings the accepts in other tables in line with what the running
    /// networks need, reading the tables afresh.
    pub async fn reconcile(&self) -> Result<Reconciled, OpeningsError> {
        let mut state = self.state.lock().await;
        self.reconcile_locked(&mut state, Reading::Fresh).await
    }

    /// What drops the running networks' traffic now, with no accept of
    /// virtnet's for it.
    pub async fn blocked(&self) -> Result<Vec<Blocked>, OpeningsError> {
        let state = self.state.lock().await;
        let needs: Vec<OpeningNeeds> = state.needs.values().cloned().collect();
        Ok(blocked(&self.survey().await?, &needs))
    }

    async fn reconcile_locked(
        &self,
        state: &mut State,
        reading: Reading,
    ) -> Result<Reconciled, OpeningsError> {
        let needs: Vec<OpeningNeeds> = state.needs.values().cloned().collect();
        let survey = match (reading, state.survey.take()) {
            (Reading::Kept, Some(survey)) => survey,
            _ => self.survey().await?,
        };
        let decision = decide(&survey, &needs, self.mode == ForeignFirewalls::Open);
        if decision.add.is_empty() && decision.remove.is_empty() {
            state.survey = Some(survey);
        }
        let blocked: Vec<String> = decision.blocked.iter().map(Blocked::describe).collect();
        let news = decision
            .blocked
            .into_iter()
            .filter(|found| !state.blocked.contains(&found.describe()))
            .collect();
        state.blocked = blocked;
        let mut reconciled = Reconciled {
            blocked: news,
            ..Reconciled::default()
        };
        // Every change is tried; the first failure is reported.
        let mut failure = None;
        for rule in &decision.remove {
            let what = format!("'{}' in {}", rule.purpose, rule.place.describe());
            match self.remove(&rule.place, &rule.removal).await {
                Ok(()) => reconciled.removed.push(what),
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        for opening in &decision.add {
            let what = format!("'{}' in {}", opening.comment(), opening.place.describe());
            match self.add(opening).await {
                Ok(()) => reconciled.added.push(what),
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(reconciled),
        }
    }

    /// Reads the other tables (a clean host's survey is one nft run), and
    /// iptables' own where it has a `filter` table.
    async fn survey(&self) -> Result<Survey, OpeningsError> {
        let tables = self.run("nft", &["-j", "list", "tables"]).await?;
        let tables = survey::other_tables(&tables).map_err(OpeningsError::Listing)?;
        let mut listings = Vec::with_capacity(tables.len());
        for (family, table) in &tables {
            match self
                .run("nft", &["-j", "list", "table", family.as_str(), table])
                .await
            {
                Ok(listing) => listings.push(listing),
                // Deleted since: its owner's change is announced, and
                // brings another survey.
                Err(OpeningsError::Refused { message, .. })
                    if message.contains("No such file or directory") => {}
                Err(error) => return Err(error),
            }
        }
        let mut survey = Survey::from_listings(&listings).map_err(OpeningsError::Listing)?;
        for family in [Family::Ip, Family::Ip6] {
            if tables.contains(&(family, "filter".to_owned())) {
                let listing = self.run(iptables(family), &["-w", "-S"]).await?;
                survey.add_iptables_listing(family, &listing);
            }
        }
        Ok(survey)
    }

    async fn add(&self, opening: &Opening) -> Result<(), OpeningsError> {
        let comment = opening.comment();
        match &opening.place {
            Place::Iptables { family, chain } => {
                let mut arguments = vec!["-w".to_owned(), "-I".into(), chain.clone(), "1".into()];
                arguments.extend(iptables_match(&opening.bridge, opening.passage));
                arguments.extend(
                    ["-m", "comment", "--comment", &comment, "-j", "ACCEPT"].map(String::from),
                );
                self.run_owned(iptables(*family), &arguments).await
            }
            Place::Nft {
                family,
                table,
                chain,
            } => {
                let rule = format!(
                    "insert rule {} {table} {chain} {} accept comment {}",
                    family.as_str(),
                    nft_match(&opening.bridge, opening.passage),
                    nft_string(&comment),
                );
                self.run("nft", &[&rule]).await.map(drop)
            }
        }
    }

    async fn remove(&self, place: &Place, removal: &Removal) -> Result<(), OpeningsError> {
        match (place, removal) {
            (Place::Iptables { family, .. }, Removal::Specification(specification)) => {
                let mut arguments = vec!["-w".to_owned(), "-D".into()];
                arguments.extend(specification.iter().cloned());
                self.run_owned(iptables(*family), &arguments).await
            }
            (
                Place::Nft {
                    family,
                    table,
                    chain,
                },
                Removal::Handle(handle),
            ) => {
                let handle = handle.to_string();
                let arguments = [
                    "delete",
                    "rule",
                    family.as_str(),
                    table,
                    chain,
                    "handle",
                    &handle,
                ];
                self.run("nft", &arguments).await.map(drop)
            }
            (place, _) => Err(OpeningsError::Refused {
                program: "virtnet".into(),
                arguments: place.describe(),
                message: "a rule found in one kind of table cannot be removed as another".into(),
            }),
        }
    }

    async fn run_owned(&self, program: &str, arguments: &[String]) -> Result<(), OpeningsError> {
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        self.run(program, &arguments).await.map(drop)
    }

    /// Runs `program`, remembering it as virtnet's; its standard output.
    async fn run(&self, program: &str, arguments: &[&str]) -> Result<String, OpeningsError> {
        let child = tokio::process::Command::new(program)
            .args(arguments)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| OpeningsError::Spawn {
                program: program.to_owned(),
                source,
            })?;
        if let Some(pid) = child.id() {
            self.own.remember(pid);
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|source| OpeningsError::Spawn {
                program: program.to_owned(),
                source,
            })?;
        if !output.status.success() {
            return Err(OpeningsError::Refused {
                program: program.to_owned(),
                arguments: arguments.join(" "),
                message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

fn iptables(family: Family) -> &'static str {
    match family {
        Family::Ip6 => "ip6tables",
        Family::Ip | Family::Inet => "iptables",
    }
}

/// iptables' match for what `passage` lets through on `bridge`.
fn iptables_match(bridge: &str, passage: Passage) -> Vec<String> {
    let words: Vec<String> = match passage {
        Passage::FromBridge => vec!["-i".into(), bridge.into()],
        Passage::ToBridge => vec!["-o".into(), bridge.into()],
        Passage::Service(service) => {
            let protocol = service.protocol.as_str();
            vec![
                "-i".into(),
                bridge.into(),
                "-p".into(),
                protocol.into(),
                "-m".into(),
                protocol.into(),
                "--dport".into(),
                service.port.to_string(),
            ]
        }
    };
    words
}

/// nft's match for what `passage` lets through on `bridge`.
fn nft_match(bridge: &str, passage: Passage) -> String {
    let bridge = nft_string(bridge);
    match passage {
        Passage::FromBridge => format!("iifname {bridge}"),
        Passage::ToBridge => format!("oifname {bridge}"),
        Passage::Service(service) => format!(
            "iifname {bridge} {} dport {}",
            service.protocol.as_str(),
            service.port
        ),
    }
}

/// A quoted string in nft's syntax (bridge and network names hold no `"`:
/// the definition refuses it in bridge names, and comments drop it).
fn nft_string(text: &str) -> String {
    format!("\"{}\"", text.replace('"', ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::openings::{HostService, Protocol};

    #[test]
    fn matches_say_the_same_in_both_syntaxes() {
        let dns = Passage::Service(HostService {
            protocol: Protocol::Tcp,
            port: 53,
            family: None,
        });
        assert_eq!(
            iptables_match("virbr9", dns).join(" "),
            "-i virbr9 -p tcp -m tcp --dport 53"
        );
        assert_eq!(nft_match("virbr9", dns), "iifname \"virbr9\" tcp dport 53");
        assert_eq!(
            iptables_match("virbr9", Passage::ToBridge).join(" "),
            "-o virbr9"
        );
        assert_eq!(
            nft_match("virbr9", Passage::FromBridge),
            "iifname \"virbr9\""
        );
    }
}

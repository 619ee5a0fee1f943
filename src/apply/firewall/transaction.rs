//! nftables transactions and the nft runs that apply them: `nft -j -f -`
//! reads a whole transaction, which the kernel applies entirely or not at
//! all.

use std::borrow::Cow;

use nftables::schema::{Chain, FlushObject, NfCmd, NfListObject, NfObject, Table};
use nftables::types::NfFamily;
use serde_json::{Value, json};

use crate::plan::firewall::TABLE;

use super::FirewallError;
use super::notifications::{Notifications, OwnProcesses};

pub(super) fn table() -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: TABLE.into(),
        handle: None,
    }
}

pub(super) fn chain(name: String) -> Chain<'static> {
    Chain {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: name.into(),
        ..Chain::default()
    }
}

/// Where an object of virtnet's table is: its family, table and name, as
/// nft's JSON names an object to act on.
pub(super) fn locate(name: &str) -> serde_json::Map<String, Value> {
    let mut object = serde_json::Map::new();
    object.insert("family".into(), json!("inet"));
    object.insert("table".into(), json!(TABLE));
    object.insert("name".into(), json!(name));
    object
}

/// One nftables transaction: everything in it applies, or nothing does.
#[derive(Debug, Default, Clone)]
pub struct Transaction {
    pub(super) commands: Vec<Value>,
}

impl Transaction {
    pub(super) fn add(&mut self, object: NfListObject<'static>) {
        self.push(NfObject::CmdObject(NfCmd::Add(object)));
    }

    pub(super) fn delete(&mut self, object: NfListObject<'static>) {
        self.push(NfObject::CmdObject(NfCmd::Delete(object)));
    }

    pub(super) fn flush_chain(&mut self, name: String) {
        self.push(NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(
            chain(name),
        ))));
    }

    fn push(&mut self, object: NfObject<'static>) {
        self.commands
            .push(serde_json::to_value(object).unwrap_or(Value::Null));
    }

    /// A command the `nftables` crate's schema cannot express: `verb` on an
    /// object of `kind` (`map`, `set`, `element`, …).
    pub(super) fn raw(&mut self, verb: &str, kind: &str, object: serde_json::Map<String, Value>) {
        self.commands.push(json!({ verb: { kind: object } }));
    }

    /// Declares a map from interface names to verdicts.
    pub(super) fn declare_verdict_map(&mut self, name: &str) {
        let mut map = locate(name);
        map.insert("type".into(), json!("ifname"));
        map.insert("map".into(), json!("verdict"));
        self.raw("add", "map", map);
    }

    /// Declares a set of `key` (one type, or several concatenated).
    pub(super) fn declare_set(&mut self, name: &str, key: &[&str]) {
        let mut set = locate(name);
        set.insert(
            "type".into(),
            match key {
                [single] => json!(single),
                several => json!(several),
            },
        );
        self.raw("add", "set", set);
    }

    /// Appends the commands of `other`.
    pub(super) fn extend(&mut self, other: Transaction) {
        self.commands.extend(other.commands);
    }

    /// The document `nft -j -f -` reads.
    pub fn to_json(&self) -> String {
        json!({ "nftables": self.commands }).to_string()
    }
}

/// Runs nft for one [`super::Firewall`], remembering the processes it ran:
/// nftables' notifications name the process that asked for a change, so
/// virtnet's own changes are told from everyone else's.
#[derive(Clone, Default)]
pub(super) struct Nft {
    pub(super) own: OwnProcesses,
}

impl Nft {
    /// Runs the transaction with `nft -j -f -`. It is done once the kernel
    /// announces the generation nft committed: after a deletion, nft's exit
    /// waits for an RCU grace period (the kernel frees the deleted objects
    /// before it lets go of nft's socket), and that wait goes on in the
    /// background. Without the announcement (notifications lost), nft's
    /// exit decides.
    pub(super) async fn apply(&self, batch: &Transaction, what: &str) -> Result<(), FirewallError> {
        let notifications = Notifications::open()
            .inspect_err(|error| tracing::debug!("nftables' notifications unavailable: {error}"))
            .ok();
        let (pid, finished) = self
            .launch(&["-j", "-f", "-"], &batch.to_json(), what)
            .await?;
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

    /// `nft -j list table inet virtnet`; `None` when there is no such table.
    pub(super) async fn list_table(&self) -> Result<Option<String>, FirewallError> {
        let what = "listing virtnet's table";
        match self
            .launch(&["-j", "list", "table", "inet", TABLE], "", what)
            .await?
            .1
            .await
        {
            Ok(listing) => Ok(Some(listing)),
            Err(FirewallError::Refused { message, .. })
                if message.contains("No such file or directory") =>
            {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Starts nft with `input` on its standard input: its pid, and its
    /// output once it has finished.
    async fn launch(
        &self,
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
            self.own.remember(pid);
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
}

/// A reference to the element `key` of set or map `name`, to delete it.
pub(super) fn element(name: &str, keys: Vec<Value>) -> serde_json::Map<String, Value> {
    let mut element = locate(name);
    element.insert("elem".into(), Value::Array(keys));
    element
}

/// The statements of an nftables rule in virtnet's `chain`.
pub(super) fn rule(
    chain: &str,
    statements: Vec<nftables::stmt::Statement<'static>>,
) -> NfListObject<'static> {
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

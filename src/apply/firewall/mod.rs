//! Applies [`FirewallPlan`]s to virtnet's nftables table, one atomic
//! transaction per network start or stop, through `nft -j`.
//!
//! A [`Firewall`] knows what the table must hold: the skeleton shared by
//! all networks (table, verdict maps, sets, base chains) and the chains
//! and map elements of every network it runs. A network's start or stop is
//! one small transaction of that network's objects. [`Firewall::reconcile`]
//! compares the whole table with what it must hold, object by object (every
//! chain with its exact rules, every map and set with exactly the running
//! networks' elements, the table's flags), and puts right whatever is
//! missing, extra or altered in one transaction; virtnetd runs it whenever
//! nftables announces that someone else changed the table ([`TableWatch`]),
//! at start, and on `reload-firewall`.

mod contents;
mod notifications;
mod render;
mod transaction;

use std::collections::BTreeMap;

use crate::plan::firewall::FirewallPlan;

pub use notifications::{Change, OwnProcesses, TableWatch};
pub use render::{start_batch, stop_batch, whole_table};
pub use transaction::Transaction;

use contents::Contents;
use transaction::Nft;

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
    #[error("cannot read nft's listing of virtnet's table")]
    Listing(#[source] serde_json::Error),
}

/// virtnet's nftables table in one network namespace (the one of the
/// threads that call it): what it must hold, and the nft runs that make it
/// so. The lock serializes every transaction, so that the table and this
/// record of it change together.
#[derive(Default)]
pub struct Firewall {
    nft: Nft,
    table: tokio::sync::Mutex<Record>,
}

#[derive(Default)]
struct Record {
    /// The skeleton was made by this firewall (someone may have removed it
    /// since; a failed transaction tells).
    declared: bool,
    /// The rules of every network whose rules are in the table, by bridge.
    networks: BTreeMap<String, FirewallPlan>,
}

impl Record {
    /// The table as it must be.
    fn planned(&self) -> Contents {
        if self.networks.is_empty() {
            return Contents::default();
        }
        let skeleton = std::iter::once_with(|| {
            let mut skeleton = Transaction::default();
            render::add_skeleton(&mut skeleton);
            skeleton
        });
        Contents::planned(skeleton.chain(self.networks.values().map(start_batch)))
    }
}

/// What [`Firewall::reconcile`] found out of place and put right; empty
/// when the table was as it must be.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Repaired(pub Vec<String>);

impl Repaired {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Firewall {
    pub fn new() -> Self {
        Self::default()
    }

    /// The nft processes this firewall runs, to which others may add
    /// theirs: changes they make are not reported as someone else's.
    pub fn own_processes(&self) -> OwnProcesses {
        self.nft.own.clone()
    }

    /// Follows changes others make to the table, and to other tables (in
    /// the namespace of the calling thread).
    pub fn watch(&self) -> std::io::Result<TableWatch> {
        TableWatch::open(self.nft.own.clone())
    }

    /// Installs a network's rules in one transaction.
    ///
    /// The shared skeleton comes first in that same transaction when this
    /// firewall has not made it yet (one nft run, not two). Made, it stays
    /// out of networks' transactions, keeping those small; when a network's
    /// transaction fails because someone changed the table, the table is
    /// put right and the network tried again.
    pub async fn start(&self, plan: &FirewallPlan) -> Result<(), FirewallError> {
        let mut record = self.table.lock().await;
        let what = format!("starting bridge {}", plan.bridge);
        let network = start_batch(plan);
        let mut first = Transaction::default();
        if !record.declared {
            render::add_skeleton(&mut first);
        }
        first.extend(network.clone());
        if self.nft.apply(&first, &what).await.is_err() {
            self.reconcile_locked(&mut record).await?;
            self.nft.apply(&network, &what).await?;
        }
        record.declared = true;
        record.networks.insert(plan.bridge.clone(), plan.clone());
        Ok(())
    }

    /// Removes a network's rules, and only those; the table goes with the
    /// last network. If someone removed part of them already, the table is
    /// put right without them.
    pub async fn stop(&self, plan: &FirewallPlan) -> Result<(), FirewallError> {
        let mut record = self.table.lock().await;
        let what = format!("stopping bridge {}", plan.bridge);
        record.networks.remove(&plan.bridge);
        let mut batch = stop_batch(plan);
        let last = record.networks.is_empty();
        if last {
            // nftables deletions each wait for a grace period: one is cheaper.
            batch.delete(nftables::schema::NfListObject::Table(transaction::table()));
        }
        match self.nft.apply(&batch, &what).await {
            Ok(()) => {
                record.declared = !last;
                Ok(())
            }
            Err(_) => self.reconcile_locked(&mut record).await.map(drop),
        }
    }

    /// Replaces a running network's rules by `new` in one transaction (a
    /// live update changed them).
    pub async fn replace(
        &self,
        old: &FirewallPlan,
        new: &FirewallPlan,
    ) -> Result<(), FirewallError> {
        let mut record = self.table.lock().await;
        let what = format!("updating bridge {}", new.bridge);
        if let Err(error) = self
            .nft
            .apply(&render::replace_batch(old, new), &what)
            .await
        {
            // Not applied: the table is as it was, unless someone changed it.
            self.reconcile_locked(&mut record).await?;
            return Err(error);
        }
        record.networks.insert(new.bridge.clone(), new.clone());
        Ok(())
    }

    /// Takes over the rules of a network an earlier run started: they are
    /// checked, with the rest of the table, by the next [`Firewall::reconcile`].
    pub async fn adopt(&self, plan: &FirewallPlan) {
        let mut record = self.table.lock().await;
        record.declared = true;
        record.networks.insert(plan.bridge.clone(), plan.clone());
    }

    /// Makes the table exactly what the running networks need, in one
    /// transaction, touching nothing that is right; returns what was not.
    pub async fn reconcile(&self) -> Result<Repaired, FirewallError> {
        let mut record = self.table.lock().await;
        self.reconcile_locked(&mut record).await
    }

    /// What is out of place in the table, as [`Firewall::reconcile`] would
    /// name it, changing nothing (for `virtnet doctor`); empty when the
    /// table is as the running networks need it.
    pub async fn inspect(&self) -> Result<Vec<String>, FirewallError> {
        let record = self.table.lock().await;
        let listing = self.nft.list_table().await?;
        let listed = Contents::listed(listing.as_deref()).map_err(FirewallError::Listing)?;
        // The rebuild a repair may need is never applied here: not made.
        let repair = listed.repair(&record.planned(), Transaction::default);
        Ok(repair.map(|repair| repair.found).unwrap_or_default())
    }

    async fn reconcile_locked(&self, record: &mut Record) -> Result<Repaired, FirewallError> {
        let listing = self.nft.list_table().await?;
        let listed = Contents::listed(listing.as_deref()).map_err(FirewallError::Listing)?;
        let planned = record.planned();
        let creation = || whole_table(record.networks.values());
        let Some(repair) = listed.repair(&planned, creation) else {
            return Ok(Repaired::default());
        };
        self.nft
            .apply(&repair.transaction, "putting virtnet's table right")
            .await?;
        record.declared = !record.networks.is_empty();
        Ok(Repaired(repair.found))
    }
}

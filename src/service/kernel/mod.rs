//! The kernel driver: networks realized on the host (through `apply`),
//! definitions and status kept on disk (through `state::store`). Every
//! kernel change is preceded by a status record of what is about to
//! happen, so that a daemon killed half-way finishes or undoes it at its
//! next start.
//!
//! A stop returns once nothing of the network is left under its names: its
//! dnsmasq has exited, its rules are gone, and its bridge is gone or
//! retired (down, without addresses, renamed to a name of virtnet's) until
//! it is deleted in the background (`teardown`): a bridge's deletion waits
//! in the kernel for an RCU barrier, tens of milliseconds, while it holds
//! the kernel's RTNL lock, which every other network's start needs.
//!
//! What a failed start or stop could not remove is remembered (and its
//! status record kept): it is tried again before that network starts, and
//! at the next daemon start.
//!
//! When firewalld runs, each bridge is put into its firewalld zone once
//! the network is up (a bridge that cannot be fails the start, which is
//! undone), taken out at stop, and put back after firewalld reloads
//! (`apply::firewalld`).

mod recovery;
mod teardown;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::apply::RunningNetwork;
use crate::apply::firewall::{Firewall, TableWatch};
use crate::apply::firewalld::{Firewalld, FirewalldError};
use crate::apply::netlink::Netlink;
use crate::apply::openings::{ForeignFirewalls, Openings, OpeningsError, Reconciled};
use crate::apply::recover::Healed;
use crate::apply::watch::LinkWatch;
use crate::apply::{self, Environment, FailedStart, StopError, inspect, recover};
use crate::definition::{FormatFlags, NetworkDef, Uuid, error_chain};
use crate::killpoint;
use crate::plan::firewalld::ZoneRequest;
use crate::plan::openings::OpeningNeeds;
use crate::state::record::port::StoredPort;
use crate::state::store::{NetworkStatus, Phase, Store, StoredNetwork};

use super::driver::{Driver, FailedUpdate, Healing, Loaded};
use super::error::{Result, ServiceError};
use teardown::Teardowns;

pub struct Kernel {
    env: Environment,
    store: Store,
    /// virtnet's nftables table; shared with the teardowns in the background.
    firewall: Arc<Firewall>,
    /// The accepts the networks need in other tools' tables.
    openings: Openings,
    teardowns: Teardowns,
    /// The running networks' bridges in firewalld's zones.
    firewalld: Firewalld,
    /// Networks whose failed start or stop left something on the host, by
    /// name: removed before the network starts again.
    leftovers: std::sync::Mutex<HashMap<String, Leftover>>,
}

/// What a network left on the host: the definition names it, the index
/// tells its bridge from a link someone made since.
#[derive(Clone)]
struct Leftover {
    def: NetworkDef,
    ifindex: Option<u32>,
}

impl Kernel {
    pub fn new(env: Environment, store: Store, foreign_firewalls: ForeignFirewalls) -> Self {
        let firewall = Arc::new(Firewall::new());
        let openings = Openings::new(foreign_firewalls, firewall.own_processes());
        Self {
            env,
            store,
            firewall,
            openings,
            teardowns: Teardowns::default(),
            firewalld: Firewalld::default(),
            leftovers: std::sync::Mutex::default(),
        }
    }

    fn leftovers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Leftover>> {
        // One insert or remove at a time: a poisoned map is whole.
        self.leftovers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn save_status(
        &self,
        def: &NetworkDef,
        phase: Phase,
        running: Option<&RunningNetwork>,
    ) -> Result<()> {
        let status = NetworkStatus {
            phase,
            definition: def.to_xml(FormatFlags { inactive: false }),
            running: running.cloned(),
        };
        let name = def.name.to_string();
        Ok(on_disk(&self.store, move |store| store.save_status(&name, &status)).await?)
    }

    async fn delete_status(&self, name: &str) {
        let network = name.to_owned();
        if let Err(error) = on_disk(&self.store, move |store| store.delete_status(&network)).await {
            tracing::error!(network = name, "{}", error_chain(&error));
        }
    }

    /// Remembers that `failure` left part of network `def` on the host; its
    /// status record stays, for the next daemon start.
    fn left_over(&self, def: &NetworkDef, ifindex: Option<u32>, failure: &StopError) {
        tracing::error!(network = %def.name, "{}", error_chain(failure));
        self.leftovers().insert(
            def.name.to_string(),
            Leftover {
                def: def.clone(),
                ifindex,
            },
        );
    }

    /// Removes what an earlier failure left of network `name`, if anything.
    async fn remove_leftovers(&self, name: &str) -> Result<()> {
        let Some(leftover) = self.leftovers().get(name).cloned() else {
            return Ok(());
        };
        let mut errors = recover::clean_up(&leftover.def, &self.env, leftover.ifindex).await;
        if let Err(error) = self.firewall.reconcile().await {
            errors.push(error.into());
        }
        if !errors.is_empty() {
            let failure = StopError {
                network: name.to_owned(),
                errors,
            };
            tracing::error!(network = name, "{}", error_chain(&failure));
            return Err(ServiceError::Leftovers(failure));
        }
        self.leftovers().remove(name);
        self.delete_status(name).await;
        Ok(())
    }

    async fn start_network(&self, def: &NetworkDef, reserved: &[String]) -> Result<RunningNetwork> {
        let _busy = self.teardowns.busy();
        let name = def.name.as_str();
        self.teardowns.settle(name).await;
        self.remove_leftovers(name).await?;
        self.save_status(def, Phase::Starting, None).await?;
        killpoint::reached("start:recorded");
        let running = match apply::start(def, &self.env, &self.firewall, reserved).await {
            Ok(running) => running,
            Err(FailedStart { error, leftovers }) => {
                match leftovers {
                    Some(failure) => self.left_over(def, None, &failure),
                    None => self.delete_status(name).await,
                }
                return Err(error.into());
            }
        };
        if let Err(error) = self.join_zone(def, &running).await {
            self.undo_start(def, &running).await;
            return Err(apply::StartError::from(error).into());
        }
        if let Err(error) = self.save_status(def, Phase::Running, Some(&running)).await {
            self.leave_zone(def, &running).await;
            self.undo_start(def, &running).await;
            return Err(error);
        }
        killpoint::reached("start:running");
        self.open_host_firewalls(def, &running).await;
        Ok(running)
    }

    /// Takes away a network whose start failed after it was realized.
    async fn undo_start(&self, def: &NetworkDef, running: &RunningNetwork) {
        match apply::stop(running, &self.firewall).await {
            Ok(()) => self.delete_status(def.name.as_str()).await,
            Err(failure) => self.left_over(def, bridge_index(running), &failure),
        }
    }

    /// Puts the network's bridge into its firewalld zone, when firewalld
    /// runs (or the definition names a zone).
    async fn join_zone(
        &self,
        def: &NetworkDef,
        running: &RunningNetwork,
    ) -> Result<(), FirewalldError> {
        let Some(bridge) = &running.bridge else {
            return Ok(());
        };
        let request = ZoneRequest::of(def);
        self.firewalld
            .join(def.name.as_str(), &bridge.name, &request)
            .await
    }

    /// Takes the network's bridge out of its firewalld zone.
    async fn leave_zone(&self, def: &NetworkDef, running: &RunningNetwork) {
        if let Some(bridge) = &running.bridge {
            self.leave_zone_of(def, &bridge.name).await;
        }
    }

    /// Takes `bridge`, network `def`'s, out of its firewalld zone; a
    /// failure is only logged, as libvirt does: the network goes all the
    /// same.
    async fn leave_zone_of(&self, def: &NetworkDef, bridge: &str) {
        let request = ZoneRequest::of(def);
        if let Err(error) = self.firewalld.leave(bridge, &request).await {
            tracing::warn!(network = %def.name, "{}", error_chain(&error));
        }
    }

    /// Takes the network away; a retired bridge is deleted in the
    /// background (the status file, kept until then, lets a restarted
    /// daemon finish the job if this one dies first).
    async fn stop_network(&self, def: &NetworkDef, running: &RunningNetwork) -> Result<()> {
        let _busy = self.teardowns.busy();
        let name = def.name.to_string();
        self.save_status(def, Phase::Stopping, Some(running))
            .await?;
        killpoint::reached("stop:recorded");
        self.leave_zone(def, running).await;
        let taken_down = apply::take_down(running, &self.firewall).await;
        if taken_down.is_ok() {
            log_openings(&name, self.openings.set(&name, None).await);
        }
        match taken_down {
            Ok(None) => self.delete_status(&name).await,
            Ok(Some(retired)) => {
                let store = self.store.clone();
                let task_name = name.clone();
                self.teardowns.schedule(name, async move {
                    match apply::remove_retired(retired).await {
                        Ok(()) => {
                            killpoint::reached("stop:deleted");
                            let name = task_name.clone();
                            let deleted = on_disk(&store, move |store| store.delete_status(&name));
                            if let Err(error) = deleted.await {
                                tracing::error!(network = task_name, "{}", error_chain(&error));
                            }
                        }
                        Err(error) => {
                            tracing::error!(network = task_name, "{}", error_chain(&error));
                        }
                    }
                });
            }
            Err(failure) => {
                self.left_over(def, bridge_index(running), &failure);
                return Err(failure.into());
            }
        }
        Ok(())
    }

    /// A live update. The status records the new definition first: a
    /// daemon killed half-way brings the network in line with it at its
    /// next start. A failed update is undone, and the status says so.
    async fn update_network(
        &self,
        old: &NetworkDef,
        def: &NetworkDef,
        running: &RunningNetwork,
    ) -> Result<RunningNetwork, FailedUpdate> {
        let _busy = self.teardowns.busy();
        let failed = |error: ServiceError, running: &RunningNetwork| FailedUpdate {
            error,
            running: running.clone(),
        };
        self.save_status(def, Phase::Running, Some(running))
            .await
            .map_err(|error| failed(error, running))?;
        killpoint::reached("update:recorded");
        match apply::refresh(old, def, running, &self.env, &self.firewall).await {
            Ok(refreshed) => match self
                .save_status(def, Phase::Running, Some(&refreshed))
                .await
            {
                Ok(()) => {
                    killpoint::reached("update:saved");
                    self.open_host_firewalls(def, &refreshed).await;
                    Ok(refreshed)
                }
                // The kernel has the update; only its record is stale, and
                // a restart brings the network in line with the record.
                Err(error) => Err(failed(error, &refreshed)),
            },
            Err(apply::StartError::UpdateUndone {
                error,
                running: back,
            }) => {
                if let Err(error) = self.save_status(old, Phase::Running, Some(&back)).await {
                    tracing::error!(network = %def.name, "{}", error_chain(&error));
                }
                Err(failed(ServiceError::Start(*error), &back))
            }
            Err(error) => {
                // Neither new nor old for sure: recorded as the service
                // keeps it, the old definition, which a restart restores.
                if let Err(error) = self.save_status(old, Phase::Running, Some(running)).await {
                    tracing::error!(network = %def.name, "{}", error_chain(&error));
                }
                Err(failed(error.into(), running))
            }
        }
    }

    async fn heal_network(&self, def: &NetworkDef, running: &RunningNetwork) -> Result<Healing> {
        let _busy = self.teardowns.busy();
        let mut healed = running.clone();
        match recover::heal(def, &mut healed, &self.env, &self.firewall).await? {
            Healed::Whole { repaired } if repaired.is_empty() => Ok(Healing::Whole),
            Healed::Whole { repaired } => {
                self.save_status(def, Phase::Running, Some(&healed)).await?;
                Ok(Healing::Repaired {
                    running: Box::new(healed),
                    repaired,
                })
            }
            Healed::Gone { leftovers } => {
                self.leave_zone(def, running).await;
                let name = def.name.as_str();
                log_openings(name, self.openings.set(name, None).await);
                match leftovers {
                    Some(failure) => self.left_over(def, bridge_index(running), &failure),
                    None => self.delete_status(def.name.as_str()).await,
                }
                Ok(Healing::Gone)
            }
        }
    }

    /// Makes virtnet's table exactly what the running networks need, and
    /// their accepts in other tables too; returns whether anything was out
    /// of place (and logs what).
    async fn reconcile_rules(&self) -> Result<bool> {
        let repaired = self
            .firewall
            .reconcile()
            .await
            .map_err(apply::StartError::from)?;
        if !repaired.is_empty() {
            tracing::warn!(
                "put virtnet's nftables table right: {}",
                repaired.0.join("; ")
            );
        }
        let reconciled = self.openings.reconcile().await;
        let opened = reconciled
            .as_ref()
            .is_ok_and(|reconciled| !reconciled.added.is_empty());
        log_openings("", reconciled);
        Ok(!repaired.is_empty() || opened)
    }

    /// Lets network `def` through other tools' tables that would drop its
    /// traffic. A failure is logged, not fatal: the network runs, and
    /// `doctor` names what still drops its traffic.
    async fn open_host_firewalls(&self, def: &NetworkDef, running: &RunningNetwork) {
        let name = def.name.as_str();
        let needs = running
            .bridge
            .as_ref()
            .and_then(|bridge| OpeningNeeds::of(def, &bridge.name));
        log_openings(name, self.openings.set(name, needs).await);
    }
}

/// Logs what a reconcile of the accepts in other tables did, and what
/// still drops traffic (`network` empty: for all networks).
fn log_openings(network: &str, reconciled: std::result::Result<Reconciled, OpeningsError>) {
    match reconciled {
        Ok(reconciled) => {
            for added in &reconciled.added {
                tracing::info!(network, "added the accept {added}");
            }
            for removed in &reconciled.removed {
                tracing::info!(network, "removed the accept {removed}");
            }
            for blocked in &reconciled.blocked {
                tracing::warn!(
                    network = blocked.network,
                    "{}; its guests lose connectivity (virtnetd --foreign-firewalls=open lets it through)",
                    blocked.describe()
                );
            }
        }
        Err(error) => tracing::error!(
            network,
            "cannot let the network through other firewalls on the host: {}",
            error_chain(&error)
        ),
    }
}

/// Runs `work` on the store off the runtime's thread: its files are
/// written and synced (fsync), which waits on the disk.
async fn on_disk<T: Send + 'static>(
    store: &Store,
    work: impl FnOnce(&Store) -> T + Send + 'static,
) -> T {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || work(&store)).await {
        Ok(done) => done,
        // Blocking tasks are not cancelled: only a panic ends one early.
        Err(failure) => std::panic::resume_unwind(failure.into_panic()),
    }
}

fn bridge_index(running: &RunningNetwork) -> Option<u32> {
    running.bridge.as_ref().map(|bridge| bridge.ifindex)
}

impl Driver for Kernel {
    fn load(&self) -> BoxFuture<'_, Result<Loaded>> {
        self.load_all().boxed()
    }

    fn load_configs(&self) -> BoxFuture<'_, Vec<StoredNetwork>> {
        async {
            let (stored, errors) = on_disk(&self.store, Store::load_networks).await;
            for error in &errors {
                tracing::error!("{}", error_chain(error));
            }
            stored
        }
        .boxed()
    }

    fn names_bridges(&self) -> bool {
        true
    }

    fn host_links(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        async {
            let netlink = Netlink::connect().map_err(ServiceError::Host)?;
            netlink.link_names().await.map_err(ServiceError::Host)
        }
        .boxed()
    }

    fn save_config(&self, def: &NetworkDef) -> BoxFuture<'_, Result<()>> {
        let def = def.clone();
        async move { Ok(on_disk(&self.store, move |store| store.save_config(&def)).await?) }.boxed()
    }

    fn delete_config(&self, name: &str) -> BoxFuture<'_, Result<()>> {
        let name = name.to_owned();
        async move { Ok(on_disk(&self.store, move |store| store.delete_config(&name)).await?) }
            .boxed()
    }

    fn set_autostart(&self, name: &str, autostart: bool) -> BoxFuture<'_, Result<()>> {
        let name = name.to_owned();
        async move {
            let set = move |store: &Store| store.set_autostart(&name, autostart);
            Ok(on_disk(&self.store, set).await?)
        }
        .boxed()
    }

    fn start<'a>(
        &'a self,
        def: &'a NetworkDef,
        reserved: &'a [String],
    ) -> BoxFuture<'a, Result<Option<RunningNetwork>>> {
        async move { self.start_network(def, reserved).await.map(Some) }.boxed()
    }

    fn stop<'a>(
        &'a self,
        def: &'a NetworkDef,
        running: &'a RunningNetwork,
    ) -> BoxFuture<'a, Result<()>> {
        self.stop_network(def, running).boxed()
    }

    fn refresh<'a>(
        &'a self,
        old: &'a NetworkDef,
        def: &'a NetworkDef,
        running: &'a RunningNetwork,
    ) -> BoxFuture<'a, Result<RunningNetwork, FailedUpdate>> {
        self.update_network(old, def, running).boxed()
    }

    fn save_port(&self, port: &StoredPort) -> BoxFuture<'_, Result<()>> {
        let port = port.clone();
        async move { Ok(on_disk(&self.store, move |store| store.save_port(&port)).await?) }.boxed()
    }

    fn delete_port(&self, network: &str, uuid: &Uuid) -> BoxFuture<'_, Result<()>> {
        let (network, uuid) = (network.to_owned(), *uuid);
        let delete = move |store: &Store| store.delete_port(&network, &uuid);
        async move { Ok(on_disk(&self.store, delete).await?) }.boxed()
    }

    fn delete_ports(&self, network: &str) -> BoxFuture<'_, Result<()>> {
        let network = network.to_owned();
        let delete = move |store: &Store| store.delete_ports(&network);
        async move { Ok(on_disk(&self.store, delete).await?) }.boxed()
    }

    fn settle(&self) -> BoxFuture<'_, ()> {
        self.teardowns.settle_all().boxed()
    }

    fn restore_rules(&self) -> BoxFuture<'_, Result<bool>> {
        self.reconcile_rules().boxed()
    }

    fn restore_zones(&self) -> BoxFuture<'_, ()> {
        self.firewalld.restore().boxed()
    }

    fn watch_rules(&self) -> Option<std::io::Result<TableWatch>> {
        Some(self.firewall.watch())
    }

    fn watch_links(&self) -> Option<std::io::Result<LinkWatch>> {
        Some(LinkWatch::open())
    }

    fn heal<'a>(
        &'a self,
        def: &'a NetworkDef,
        running: &'a RunningNetwork,
    ) -> BoxFuture<'a, Result<Healing>> {
        self.heal_network(def, running).boxed()
    }

    fn diagnose<'a>(
        &'a self,
        networks: &'a [(NetworkDef, RunningNetwork)],
    ) -> BoxFuture<'a, Result<Vec<crate::plan::diagnosis::Finding>>> {
        async move { Ok(inspect::diagnose(networks, &self.env, &self.firewall, &self.openings).await?) }.boxed()
    }
}

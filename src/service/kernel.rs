//! The kernel driver: networks realized on the host (through `apply`),
//! definitions and status kept on disk (through `state::store`). Every
//! kernel change is preceded by a status record of what is about to
//! happen, so that a daemon killed half-way finishes or undoes it at its
//! next start.
//!
//! A stop takes the network out of service at once (dnsmasq stopped,
//! bridge down) and removes its rules and bridge in the background: a
//! bridge's deletion waits in the kernel for an RCU barrier, tens of
//! milliseconds, while it holds the kernel's RTNL lock, which every other
//! network's start needs. So the removals wait until no start or stop has
//! been under way for `QUIET` (50 ms), and go one at a time.
//! Anything that needs the network's name or bridge again has its
//! teardown done first, at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::sync::Notify;

use crate::apply::firewall::{Firewall, TableWatch};
use crate::apply::netlink::Netlink;
use crate::apply::recover::{self, Adoption, HostSnapshot};
use crate::apply::{self, Environment};
use crate::definition::{FormatFlags, NetworkDef, error_chain};
use crate::state::RunningNetwork;
use crate::state::store::{NetworkStatus, Phase, Store, StoredNetwork};

use super::error::{Result, ServiceError};

/// How long the kernel driver must have been idle before a teardown in
/// the background begins.
const QUIET: Duration = Duration::from_millis(50);

/// How many teardowns may wait for a quiet moment; beyond, the oldest
/// begins at once (a daemon that is never idle still cleans up).
const MOST_WAITING: usize = 16;

/// A stopped network's removal from the kernel, pending or under way.
struct Teardown {
    /// The bridge it frees.
    bridge: Option<String>,
    /// Makes it begin at once, without waiting for a quiet moment.
    urgent: Arc<Notify>,
    /// Told to begin at once: it waits no more.
    hurried: bool,
    /// When the network stopped.
    since: Instant,
    done: Shared<BoxFuture<'static, ()>>,
}

impl Teardown {
    fn finished(&self) -> bool {
        self.done.peek().is_some()
    }

    /// Makes it begin now.
    fn begin_now(&mut self) {
        self.urgent.notify_one();
        self.hurried = true;
    }

    /// Makes it begin now; the future ends when it is done.
    fn hurry(&mut self) -> Shared<BoxFuture<'static, ()>> {
        self.begin_now();
        self.done.clone()
    }
}

/// Has the oldest teardowns begin when more than [`MOST_WAITING`] wait.
fn begin_overdue(teardowns: &mut HashMap<String, Teardown>) {
    let mut waiting: Vec<&mut Teardown> = teardowns
        .values_mut()
        .filter(|teardown| !teardown.hurried)
        .collect();
    let overdue = waiting.len().saturating_sub(MOST_WAITING);
    waiting.sort_by_key(|teardown| teardown.since);
    for teardown in waiting.into_iter().take(overdue) {
        teardown.begin_now();
    }
}

/// When the kernel driver last started or stopped a network, and how many
/// of those are under way.
#[derive(Default)]
struct Activity {
    busy: AtomicUsize,
    last: std::sync::Mutex<Option<Instant>>,
    /// Held by the background teardown that runs.
    turn: tokio::sync::Mutex<()>,
}

/// One start or stop under way.
struct Busy<'a>(&'a Activity);

impl Activity {
    fn begin(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self)
    }

    fn idle_for(&self) -> Duration {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map_or(Duration::MAX, |last| last.elapsed())
    }

    /// The turn to tear a network down, once nothing else happens.
    async fn quiet_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        let turn = self.turn.lock().await;
        loop {
            let idle = self.idle_for();
            if idle >= QUIET {
                return turn;
            }
            tokio::time::sleep(QUIET - idle).await;
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        *self
            .0
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Kernel {
    env: Environment,
    store: Store,
    /// virtnet's nftables table; shared with the teardowns in the background.
    firewall: Arc<Firewall>,
    /// Teardowns in the background, by network name.
    teardowns: std::sync::Mutex<HashMap<String, Teardown>>,
    activity: Arc<Activity>,
}

/// A network found active at daemon start, taken over.
pub struct Adopted {
    pub def: NetworkDef,
    pub running: RunningNetwork,
}

impl Kernel {
    pub fn new(env: Environment, store: Store) -> Self {
        Self {
            env,
            store,
            firewall: Arc::default(),
            teardowns: std::sync::Mutex::default(),
            activity: Arc::default(),
        }
    }

    fn teardowns(&self) -> std::sync::MutexGuard<'_, HashMap<String, Teardown>> {
        // Each change is one insert or retain: a poisoned map is whole.
        self.teardowns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bridges of networks other than `network` whose removal has not
    /// finished yet.
    pub fn bridges_being_removed(&self, network: &str) -> Vec<String> {
        self.teardowns()
            .iter()
            .filter(|(name, teardown)| name.as_str() != network && !teardown.finished())
            .filter_map(|(_, teardown)| teardown.bridge.clone())
            .collect()
    }

    /// Has the teardowns of network `name`, or of `bridge`, done now.
    async fn settle(&self, name: &str, bridge: Option<&str>) {
        let pending: Vec<_> = self
            .teardowns()
            .iter_mut()
            .filter(|(network, teardown)| {
                network.as_str() == name
                    || (bridge.is_some() && teardown.bridge.as_deref() == bridge)
            })
            .map(|(_, teardown)| teardown.hurry())
            .collect();
        futures_util::future::join_all(pending).await;
        self.teardowns().retain(|_, teardown| !teardown.finished());
    }

    /// Has every teardown in the background done now.
    pub async fn settle_all(&self) {
        let pending: Vec<_> = self.teardowns().values_mut().map(Teardown::hurry).collect();
        futures_util::future::join_all(pending).await;
        self.teardowns().clear();
    }

    pub async fn host_links(&self) -> Result<Vec<String>> {
        let netlink = Netlink::connect().map_err(ServiceError::Host)?;
        netlink.link_names().await.map_err(ServiceError::Host)
    }

    fn save_status(
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
        Ok(self.store.save_status(def.name.as_str(), &status)?)
    }

    pub async fn start(&self, def: &NetworkDef, reserved: &[String]) -> Result<RunningNetwork> {
        let _busy = self.activity.begin();
        let bridge = def.bridge.name.as_ref().map(ToString::to_string);
        self.settle(def.name.as_str(), bridge.as_deref()).await;
        self.save_status(def, Phase::Starting, None)?;
        match apply::start(def, &self.env, &self.firewall, reserved).await {
            Ok(running) => match self.save_status(def, Phase::Running, Some(&running)) {
                Ok(()) => Ok(running),
                Err(error) => {
                    let _ = apply::stop(&running, &self.firewall).await;
                    let _ = self.store.delete_status(def.name.as_str());
                    Err(error)
                }
            },
            Err(error) => {
                // apply::start rolled back what it did.
                let _ = self.store.delete_status(def.name.as_str());
                Err(error.into())
            }
        }
    }

    /// Takes the network out of service now; its rules and bridge go in
    /// the background (the status file, kept until then, lets a restarted
    /// daemon finish the job if this one dies first).
    pub async fn stop(&self, def: &NetworkDef, running: &RunningNetwork) -> Result<()> {
        let _busy = self.activity.begin();
        self.save_status(def, Phase::Stopping, Some(running))?;
        let shut_down = apply::shut_down(running).await;
        let name = def.name.to_string();
        let store = self.store.clone();
        let task_running = running.clone();
        let task_name = name.clone();
        let urgent = Arc::new(Notify::new());
        let task_urgent = Arc::clone(&urgent);
        let activity = Arc::clone(&self.activity);
        let firewall = Arc::clone(&self.firewall);
        let task = tokio::spawn(async move {
            let _turn = tokio::select! {
                () = task_urgent.notified() => None,
                turn = activity.quiet_turn() => Some(turn),
            };
            match apply::stop(&task_running, &firewall).await {
                Ok(()) => {
                    if let Err(error) = store.delete_status(&task_name) {
                        tracing::error!(network = task_name, "{}", error_chain(&error));
                    }
                }
                Err(error) => tracing::error!(network = task_name, "{}", error_chain(&error)),
            }
        });
        let done = async move {
            let _ = task.await;
        }
        .boxed()
        .shared();
        let teardown = Teardown {
            bridge: running.bridge.as_ref().map(|bridge| bridge.name.clone()),
            urgent,
            hurried: false,
            since: Instant::now(),
            done,
        };
        let mut teardowns = self.teardowns();
        // Finished ones are forgotten here, so the map stays small.
        teardowns.retain(|_, teardown| !teardown.finished());
        teardowns.insert(name, teardown);
        begin_overdue(&mut teardowns);
        drop(teardowns);
        Ok(shut_down?)
    }

    /// Applies an updated live definition to the running network.
    pub async fn refresh(
        &self,
        def: &NetworkDef,
        running: &RunningNetwork,
    ) -> Result<RunningNetwork> {
        let _busy = self.activity.begin();
        let refreshed = recover::refresh(def, running, &self.env, &self.firewall).await?;
        self.save_status(def, Phase::Running, Some(&refreshed))?;
        Ok(refreshed)
    }

    pub fn save_config(&self, def: &NetworkDef) -> Result<()> {
        Ok(self.store.save_config(def)?)
    }

    pub fn delete_config(&self, name: &str) -> Result<()> {
        Ok(self.store.delete_config(name)?)
    }

    pub fn set_autostart(&self, name: &str, autostart: bool) -> Result<()> {
        Ok(self.store.set_autostart(name, autostart)?)
    }

    /// Makes virtnet's table exactly what the running networks need;
    /// returns whether anything was out of place (and logs what).
    pub async fn restore_rules(&self) -> Result<bool> {
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
        Ok(!repaired.is_empty())
    }

    /// Follows the changes others make to virtnet's table.
    pub fn watch_rules(&self) -> std::io::Result<TableWatch> {
        self.firewall.watch()
    }

    /// Reads the persistent networks, and takes over the networks an
    /// earlier run left active: those intact are adopted as they are (only
    /// missing objects are re-created); those whose bridge vanished, and
    /// interrupted starts and stops, are cleaned up. Then virtnet's table
    /// is made exactly what the adopted networks need. Problems are logged.
    pub async fn load(&self) -> Result<(Vec<StoredNetwork>, Vec<Adopted>)> {
        let loaded = self.load_networks().await?;
        if let Err(error) = self.restore_rules().await {
            tracing::error!(
                "cannot check virtnet's nftables table: {}",
                error_chain(&error)
            );
        }
        Ok(loaded)
    }

    async fn load_networks(&self) -> Result<(Vec<StoredNetwork>, Vec<Adopted>)> {
        self.store.prepare()?;
        if let Err(error) = self.env.remove_temporaries() {
            tracing::error!("cannot clean up dnsmasq's directories: {error}");
        }
        let (stored, errors) = self.store.load_networks();
        for error in &errors {
            tracing::error!("{}", error_chain(error));
        }
        let (statuses, errors) = self.store.load_statuses();
        for error in &errors {
            tracing::error!("{}", error_chain(error));
        }
        if statuses.is_empty() {
            return Ok((stored, Vec::new()));
        }
        let host = HostSnapshot::read().await?;
        let mut adopted = Vec::new();
        for status in statuses {
            let def = match NetworkDef::parse(&status.definition) {
                Ok(def) => def,
                Err(error) => {
                    tracing::error!("ignoring a status file: {}", error_chain(&error));
                    continue;
                }
            };
            if let Some(found) = self.recover(def, status, &host).await {
                adopted.push(found);
            }
        }
        Ok((stored, adopted))
    }

    async fn recover(
        &self,
        def: NetworkDef,
        status: NetworkStatus,
        host: &HostSnapshot,
    ) -> Option<Adopted> {
        let name = def.name.to_string();
        let known_bridge = status
            .running
            .as_ref()
            .and_then(|running| running.bridge.as_ref())
            .map(|bridge| bridge.ifindex);
        if let (Phase::Running, Some(mut running)) = (status.phase, status.running) {
            match recover::adopt(&def, &mut running, &self.env, &self.firewall, host).await {
                Ok(Adoption::Adopted { repaired }) => {
                    if repaired.is_empty() {
                        tracing::info!(network = name, "network taken over, intact");
                    } else {
                        tracing::warn!(
                            network = name,
                            "network taken over; re-created {}",
                            repaired.join(", ")
                        );
                        if let Err(error) = self.save_status(&def, Phase::Running, Some(&running)) {
                            tracing::error!(network = name, "{}", error_chain(&error));
                        }
                    }
                    return Some(Adopted { def, running });
                }
                Ok(Adoption::BridgeVanished) => {
                    tracing::warn!(
                        network = name,
                        "the network's bridge is gone; marking it inactive"
                    );
                }
                Err(error) => {
                    tracing::error!(
                        network = name,
                        "cannot take the network over, stopping it: {}",
                        error_chain(&error)
                    );
                }
            }
        } else {
            tracing::warn!(
                network = name,
                "finishing an interrupted {}",
                match status.phase {
                    Phase::Starting => "start (undoing it)",
                    _ => "stop",
                }
            );
        }
        for error in recover::clean_up(&def, &self.env, known_bridge).await {
            tracing::error!(network = name, "{error}");
        }
        if let Err(error) = self.store.delete_status(&name) {
            tracing::error!(network = name, "{}", error_chain(&error));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_teardowns_begin_when_too_many_wait() {
        let start = Instant::now();
        let mut teardowns: HashMap<String, Teardown> = (0..=MOST_WAITING + 1)
            .map(|age| {
                let teardown = Teardown {
                    bridge: None,
                    urgent: Arc::new(Notify::new()),
                    hurried: false,
                    since: start + Duration::from_millis(age as u64),
                    done: futures_util::future::pending().boxed().shared(),
                };
                (format!("n{age}"), teardown)
            })
            .collect();
        teardowns.get_mut("n5").unwrap().hurried = true;
        begin_overdue(&mut teardowns);
        let hurried: Vec<&str> = {
            let mut names: Vec<&str> = teardowns
                .iter()
                .filter(|(_, teardown)| teardown.hurried)
                .map(|(name, _)| name.as_str())
                .collect();
            names.sort_unstable();
            names
        };
        assert_eq!(hurried, ["n0", "n5"], "one over the limit, the oldest");
        begin_overdue(&mut teardowns);
        assert_eq!(
            teardowns
                .values()
                .filter(|teardown| teardown.hurried)
                .count(),
            2,
            "at the limit, the rest wait"
        );
    }
}

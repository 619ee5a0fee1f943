//! Running networks kept as they were made while the daemon runs: when
//! someone kills a network's dnsmasq, sets its bridge down, removes one of
//! its addresses or deletes its bridge, the driver puts back what is
//! missing (or, for a deleted bridge, takes the rest away and the network
//! stops, with a STOPPED event). dnsmasq's end is seen through a pidfd, the
//! bridges' harm through the kernel's link and address announcements.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::AbortHandle;

use crate::apply::dnsmasq::DnsmasqInstance;
use crate::definition::{Uuid, error_chain};

use super::driver::Healing;
use super::{Event, Service};

/// What happened to a network.
#[derive(Debug, Clone, Copy)]
enum Harm {
    /// Its bridge (this index) was deleted, set down or lost an address.
    Bridge(u32),
    /// Its dnsmasq (this pid) ended.
    Dnsmasq(u32),
}

/// The dnsmasq processes watched, by network: the pid and its watcher.
type Watched = HashMap<Uuid, (u32, AbortHandle)>;

impl Service {
    /// Keeps the running networks whole, until the link announcements end.
    pub async fn supervise(self: Arc<Self>) {
        let mut links = match self.driver.watch_links() {
            Some(Ok(links)) => links,
            Some(Err(error)) => {
                tracing::error!(
                    "cannot follow the host's links; harm done to networks stays: {error}"
                );
                return;
            }
            None => return,
        };
        let (ended, mut endings) = tokio::sync::mpsc::unbounded_channel();
        let mut watched = Watched::new();
        loop {
            self.watch_dnsmasqs(&mut watched, &ended);
            let (uuid, harm) = tokio::select! {
                index = links.next() => {
                    let Some(index) = index else {
                        tracing::error!("the host's link announcements ended; harm done to networks stays");
                        return;
                    };
                    match self.network_on_bridge(index) {
                        Some(uuid) => (uuid, Harm::Bridge(index)),
                        None => continue,
                    }
                }
                Some((uuid, pid)) = endings.recv() => (uuid, Harm::Dnsmasq(pid)),
                () = self.changes.notified() => continue,
            };
            self.heal(uuid, harm).await;
        }
    }

    /// Watches the dnsmasq of every running network: new ones, and those
    /// that changed, get a watcher; the watchers of those gone are ended.
    fn watch_dnsmasqs(&self, watched: &mut Watched, ended: &UnboundedSender<(Uuid, u32)>) {
        let running: HashMap<Uuid, DnsmasqInstance> = self
            .registry()
            .slots
            .values()
            .filter_map(|slot| Some((slot.entry.uuid, slot.held.dnsmasq.clone()?)))
            .collect();
        watched.retain(|uuid, (pid, watcher)| {
            let same = running.get(uuid).is_some_and(|dnsmasq| dnsmasq.pid == *pid);
            if !same {
                watcher.abort();
            }
            same
        });
        for (uuid, dnsmasq) in running {
            if watched.contains_key(&uuid) {
                continue;
            }
            let ended = ended.clone();
            let pid = dnsmasq.pid;
            let watcher = tokio::spawn(async move {
                if let Err(error) = dnsmasq.ended().await {
                    tracing::warn!(pid, "cannot watch dnsmasq: {error}");
                    return;
                }
                let _ = ended.send((uuid, pid));
            });
            watched.insert(uuid, (pid, watcher.abort_handle()));
        }
    }

    /// The running network whose bridge has index `index`.
    fn network_on_bridge(&self, index: u32) -> Option<Uuid> {
        self.registry()
            .slots
            .values()
            .find(|slot| slot.held.bridge == Some(index))
            .map(|slot| slot.entry.uuid)
    }

    /// Has the driver put network `uuid` right after `harm`, unless the
    /// network changed meanwhile (stopped, updated) so that the harm is
    /// its own doing.
    async fn heal(&self, uuid: Uuid, harm: Harm) {
        let Ok((entry, mut state)) = self.lock(&uuid).await else {
            return;
        };
        let Some(live) = state.live.as_mut() else {
            return;
        };
        let Some(running) = live.running.as_ref() else {
            return;
        };
        let still = match harm {
            Harm::Bridge(index) => running.bridge.as_ref().map(|b| b.ifindex) == Some(index),
            Harm::Dnsmasq(pid) => running.dnsmasq.as_ref().map(|d| d.pid) == Some(pid),
        };
        if !still {
            return;
        }
        match self.driver.heal(&live.def, running).await {
            Ok(Healing::Whole) => {}
            Ok(Healing::Repaired { running, repaired }) => {
                tracing::warn!(
                    network = entry.name,
                    "something happened to the network; put back {}",
                    repaired.join(", ")
                );
                live.running = Some(*running);
                self.publish(&entry, &mut state);
            }
            Ok(Healing::Gone) => {
                tracing::warn!(
                    network = entry.name,
                    "the network's bridge was deleted; the network is down"
                );
                state.live = None;
                self.forget_ports(&entry.name, &mut state).await;
                self.publish(&entry, &mut state);
                self.emit(entry.uuid, Event::Stopped);
            }
            Err(error) => tracing::error!(
                network = entry.name,
                "cannot put the network right: {}",
                error_chain(&error)
            ),
        }
    }
}

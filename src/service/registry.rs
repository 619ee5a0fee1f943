//! The registry of networks: each network's state behind its own lock,
//! and the summary listings and properties show.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::apply::RunningNetwork;
use crate::apply::dnsmasq::DnsmasqInstance;
use crate::definition::port::NetworkPortDef;
use crate::definition::{NetworkDef, Uuid};

use super::error::{Result, ServiceError};
use super::{Service, Summary};

pub(super) struct Live {
    pub(super) def: NetworkDef,
    /// What the kernel driver made (none in the test driver).
    pub(super) running: Option<RunningNetwork>,
}

#[derive(Default)]
pub(super) struct State {
    /// The persistent definition (for an active network: the one its next
    /// start uses). `None` for a transient network.
    pub(super) config: Option<NetworkDef>,
    pub(super) live: Option<Live>,
    pub(super) autostart: bool,
    /// The ports of the running network, by UUID.
    pub(super) ports: BTreeMap<Uuid, NetworkPortDef>,
    /// Removed from the registry: operations that waited for the lock fail.
    pub(super) gone: bool,
}

impl State {
    pub(super) fn current(&self) -> Option<&NetworkDef> {
        self.live
            .as_ref()
            .map(|live| &live.def)
            .or(self.config.as_ref())
    }
}

pub(super) struct Entry {
    pub(super) name: String,
    pub(super) uuid: Uuid,
    pub(super) state: Arc<tokio::sync::Mutex<State>>,
}

pub(super) struct Slot {
    pub(super) entry: Arc<Entry>,
    pub(super) summary: Summary,
    /// Bridge names the network holds (live and persistent definitions).
    pub(super) bridges: Vec<String>,
    /// What the running network holds that others may harm.
    pub(super) held: Held,
}

/// The bridge (by index) and the dnsmasq a running network holds.
#[derive(Default, Clone)]
pub(super) struct Held {
    pub(super) bridge: Option<u32>,
    pub(super) dnsmasq: Option<DnsmasqInstance>,
}

impl Held {
    fn of(state: &State) -> Self {
        let running = state.live.as_ref().and_then(|live| live.running.as_ref());
        Self {
            bridge: running
                .and_then(|running| running.bridge.as_ref())
                .map(|bridge| bridge.ifindex),
            dnsmasq: running.and_then(|running| running.dnsmasq.clone()),
        }
    }
}

#[derive(Default)]
pub(super) struct Registry {
    /// By name, so listings come sorted.
    pub(super) slots: BTreeMap<String, Slot>,
}

impl Registry {
    pub(super) fn by_uuid(&self, uuid: &Uuid) -> Option<&Slot> {
        self.slots.values().find(|slot| slot.summary.uuid == *uuid)
    }

    /// Bridge names held by networks other than `name`.
    pub(super) fn bridges_except(&self, name: &str) -> Vec<String> {
        self.slots
            .iter()
            .filter(|(other, _)| other.as_str() != name)
            .flat_map(|(_, slot)| slot.bridges.iter().cloned())
            .collect()
    }

    /// libvirt's rules for a new definition: a uuid names one network and
    /// a name one uuid. `live` is a create, which an active network refuses.
    pub(super) fn check_assignable(&self, def: &NetworkDef, live: bool) -> Result<()> {
        if let Some(slot) = self.by_uuid(&def.uuid) {
            if slot.summary.name != def.name.as_str() {
                return Err(ServiceError::OperationFailed(format!(
                    "network '{}' is already defined with uuid {}",
                    slot.summary.name, slot.summary.uuid
                )));
            }
            if live && slot.summary.active {
                return Err(ServiceError::OperationInvalid(format!(
                    "network is already active as '{}'",
                    slot.summary.name
                )));
            }
        } else if let Some(slot) = self.slots.get(def.name.as_str()) {
            return Err(ServiceError::OperationFailed(format!(
                "network '{}' already exists with uuid {}",
                def.name, slot.summary.uuid
            )));
        }
        Ok(())
    }
}

impl Service {
    /// Registers a network found at load.
    pub(super) fn insert(&self, state: State) {
        let Some(def) = state.current() else {
            return;
        };
        let (name, uuid) = (def.name.to_string(), def.uuid);
        let bridges = bridges_of(&state);
        let summary = summarize(&name, uuid, &state);
        let held = Held::of(&state);
        let entry = Arc::new(Entry {
            name: name.clone(),
            uuid,
            state: Arc::new(tokio::sync::Mutex::new(state)),
        });
        self.registry().slots.insert(
            name,
            Slot {
                entry,
                summary,
                bridges,
                held,
            },
        );
        self.changes.notify_one();
    }

    /// Records the network's new state in the registry (or removes it).
    pub(super) fn publish(&self, entry: &Arc<Entry>, state: &mut State) {
        let mut registry = self.registry();
        if state.config.is_none() && state.live.is_none() {
            state.gone = true;
            registry.slots.remove(&entry.name);
        } else {
            registry.slots.insert(
                entry.name.clone(),
                Slot {
                    entry: entry.clone(),
                    summary: summarize(&entry.name, entry.uuid, state),
                    bridges: bridges_of(state),
                    held: Held::of(state),
                },
            );
        }
        self.changes.notify_one();
    }

    pub fn list(&self, flags: u32) -> Vec<Summary> {
        self.registry()
            .slots
            .values()
            .map(|slot| slot.summary.clone())
            .filter(|summary| summary.matches(flags))
            .collect()
    }

    pub fn lookup_by_name(&self, name: &str) -> Result<Summary> {
        self.registry()
            .slots
            .get(name)
            .map(|slot| slot.summary.clone())
            .ok_or_else(|| ServiceError::NoSuchName(name.to_owned()))
    }

    /// `uuid` as libvirt accepts it (with or without dashes).
    pub fn lookup_by_uuid(&self, uuid: &str) -> Result<Summary> {
        let parsed: Uuid = uuid
            .parse()
            .map_err(|_| ServiceError::NoSuchUuid(uuid.to_owned()))?;
        self.summary(&parsed)
    }

    pub fn summary(&self, uuid: &Uuid) -> Result<Summary> {
        self.registry()
            .by_uuid(uuid)
            .map(|slot| slot.summary.clone())
            .ok_or_else(|| ServiceError::NoSuchUuid(uuid.to_string()))
    }

    /// Every network, for work that visits them all.
    pub(super) fn entries(&self) -> Vec<Arc<Entry>> {
        self.registry()
            .slots
            .values()
            .map(|slot| slot.entry.clone())
            .collect()
    }

    pub(super) fn entry(&self, uuid: &Uuid) -> Result<Arc<Entry>> {
        self.registry()
            .by_uuid(uuid)
            .map(|slot| slot.entry.clone())
            .ok_or_else(|| ServiceError::NoSuchUuid(uuid.to_string()))
    }

    /// The network's state, locked for one operation.
    pub(super) async fn lock(
        &self,
        uuid: &Uuid,
    ) -> Result<(Arc<Entry>, tokio::sync::OwnedMutexGuard<State>)> {
        let entry = self.entry(uuid)?;
        let guard = lock_state(&entry).await;
        if guard.gone {
            return Err(ServiceError::NoSuchUuid(uuid.to_string()));
        }
        Ok((entry, guard))
    }
}

pub(super) async fn lock_state(entry: &Entry) -> tokio::sync::OwnedMutexGuard<State> {
    entry.state.clone().lock_owned().await
}

pub(super) fn summarize(name: &str, uuid: Uuid, state: &State) -> Summary {
    Summary {
        name: name.to_owned(),
        uuid,
        active: state.live.is_some(),
        persistent: state.config.is_some(),
        autostart: state.autostart,
        bridge: state
            .current()
            .and_then(|def| def.bridge.name.as_ref())
            .map(ToString::to_string),
    }
}

pub(super) fn bridges_of(state: &State) -> Vec<String> {
    let mut bridges: Vec<String> = state
        .live
        .iter()
        .map(|live| &live.def)
        .chain(&state.config)
        .filter_map(|def| def.bridge.name.as_ref())
        .filter(|name| !name.is_template())
        .map(ToString::to_string)
        .collect();
    bridges.dedup();
    bridges
}

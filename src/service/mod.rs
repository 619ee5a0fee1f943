//! The network service: every network virtnet knows (persistent or
//! transient, active or not) and the verbs on them, with the semantics of
//! libvirt's network driver. The D-Bus API and the daemon sit on top.
//!
//! Operations on one network are serialized by that network's lock;
//! different networks proceed in parallel. A summary of each network
//! (what listings and properties show) lives in the registry, so reads
//! never wait for an operation in progress.

pub mod error;
#[cfg(feature = "libvirt")]
pub mod import;
pub mod kernel;
pub mod neighbour;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::apply::Environment;
use crate::definition::{
    BridgeName, FormatFlags, ForwardMode, MacAddr, NetworkDef, UpdateCommand, UpdateSection, Uuid,
};
use crate::state::RunningNetwork;
use crate::state::store::Store;

pub use self::error::{Result, ServiceError};
use self::kernel::Kernel;
use self::neighbour::{ForeignNetwork, Neighbour};

/// libvirt's network lifecycle events (virNetworkEventLifecycleType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Defined = 0,
    Undefined = 1,
    Started = 2,
    Stopped = 3,
}

#[derive(Debug, Clone)]
pub struct NetworkEvent {
    pub uuid: Uuid,
    pub event: Event,
}

/// What listings and properties show of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub name: String,
    pub uuid: Uuid,
    pub active: bool,
    pub persistent: bool,
    pub autostart: bool,
    /// The bridge of the live definition when active, else of the
    /// persistent one.
    pub bridge: Option<String>,
}

/// virConnectListAllNetworksFlags.
pub mod list_flags {
    pub const INACTIVE: u32 = 1;
    pub const ACTIVE: u32 = 2;
    pub const PERSISTENT: u32 = 4;
    pub const TRANSIENT: u32 = 8;
    pub const AUTOSTART: u32 = 16;
    pub const NO_AUTOSTART: u32 = 32;
}

/// virNetworkUpdateFlags.
pub mod update_flags {
    pub const LIVE: u32 = 1;
    pub const CONFIG: u32 = 2;
}

impl Summary {
    /// Whether the network passes libvirt's list filter: each pair of
    /// opposite flags filters only when one of the two is given.
    pub fn matches(&self, flags: u32) -> bool {
        use list_flags::*;
        let pass = |yes: u32, no: u32, value: bool| {
            flags & (yes | no) == 0 || (value && flags & yes != 0) || (!value && flags & no != 0)
        };
        pass(ACTIVE, INACTIVE, self.active)
            && pass(PERSISTENT, TRANSIENT, self.persistent)
            && pass(AUTOSTART, NO_AUTOSTART, self.autostart)
    }
}

/// One DHCP lease as virNetworkDHCPLease has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub interface: String,
    pub expiry_time: i64,
    pub ipv6: bool,
    pub mac: String,
    pub iaid: String,
    pub address: String,
    pub prefix: u32,
    pub hostname: String,
    pub client_id: String,
}

/// Where networks are realized and kept.
pub enum Driver {
    /// On the host's kernel, with definitions and status on disk.
    Kernel(Box<Kernel>),
    /// In memory only, like libvirt's `test:///default`: touches no kernel
    /// and no file; starts with libvirt's test network `default`.
    Test,
}

impl Driver {
    pub fn kernel(env: Environment, store: Store) -> Self {
        Self::Kernel(Box::new(Kernel::new(env, store)))
    }
}

struct Live {
    def: NetworkDef,
    /// What the kernel driver made (none in the test driver).
    running: Option<RunningNetwork>,
}

#[derive(Default)]
struct State {
    /// The persistent definition (for an active network: the one its next
    /// start uses). `None` for a transient network.
    config: Option<NetworkDef>,
    live: Option<Live>,
    autostart: bool,
    /// Removed from the registry: operations that waited for the lock fail.
    gone: bool,
}

impl State {
    fn current(&self) -> Option<&NetworkDef> {
        self.live
            .as_ref()
            .map(|live| &live.def)
            .or(self.config.as_ref())
    }
}

struct Entry {
    name: String,
    uuid: Uuid,
    state: Arc<tokio::sync::Mutex<State>>,
}

struct Slot {
    entry: Arc<Entry>,
    summary: Summary,
    /// Bridge names the network holds (live and persistent definitions).
    bridges: Vec<String>,
}

#[derive(Default)]
struct Registry {
    /// By name, so listings come sorted.
    slots: BTreeMap<String, Slot>,
}

impl Registry {
    fn by_uuid(&self, uuid: &Uuid) -> Option<&Slot> {
        self.slots.values().find(|slot| slot.summary.uuid == *uuid)
    }

    /// Bridge names held by networks other than `name`.
    fn bridges_except(&self, name: &str) -> Vec<String> {
        self.slots
            .iter()
            .filter(|(other, _)| other.as_str() != name)
            .flat_map(|(_, slot)| slot.bridges.iter().cloned())
            .collect()
    }

    /// libvirt's rules for a new definition: a uuid names one network and
    /// a name one uuid. `live` is a create, which an active network refuses.
    fn check_assignable(&self, def: &NetworkDef, live: bool) -> Result<()> {
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

/// What [`Service::claim_locked`] gives: the definition, its network
/// (new or not) and that network's lock.
struct Claimed {
    def: NetworkDef,
    entry: Arc<Entry>,
    created: bool,
    state: tokio::sync::OwnedMutexGuard<State>,
}

pub struct Service {
    driver: Driver,
    registry: Mutex<Registry>,
    events: broadcast::Sender<NetworkEvent>,
    neighbour: Option<Arc<dyn Neighbour>>,
}

/// A neighbour's networks at one moment, with the neighbour's name.
struct Foreign {
    label: String,
    networks: Vec<ForeignNetwork>,
}

impl Foreign {
    /// The bridges of the neighbour's other networks: taken, even while
    /// down or not yet created.
    fn bridges_except(&self, uuid: &Uuid) -> Vec<String> {
        self.networks
            .iter()
            .filter(|network| network.uuid != *uuid)
            .filter_map(|network| network.bridge.clone())
            .collect()
    }
}

/// libvirt's default template when a definition names no bridge.
const DEFAULT_BRIDGE_TEMPLATE: &str = "virbr%d";
/// libvirt gives up after this many candidate names.
const MAX_BRIDGE_ID: u32 = 256;

impl Service {
    pub fn new(driver: Driver) -> Self {
        Self {
            driver,
            registry: Mutex::new(Registry::default()),
            events: broadcast::channel(1024).0,
            neighbour: None,
        }
    }

    /// Checks every define and start against the networks `neighbour`
    /// manages.
    pub fn with_neighbour(mut self, neighbour: Arc<dyn Neighbour>) -> Self {
        self.neighbour = Some(neighbour);
        self
    }

    async fn foreign(&self) -> Option<Foreign> {
        let neighbour = self.neighbour.as_ref()?;
        let networks = neighbour.networks().await?;
        Some(Foreign {
            label: neighbour.label().to_string(),
            networks,
        })
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the map half-changed
        // (each change is one insert or remove), so a poisoned lock is used.
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<NetworkEvent> {
        self.events.subscribe()
    }

    fn emit(&self, uuid: Uuid, event: Event) {
        // Nobody listening is fine.
        let _ = self.events.send(NetworkEvent { uuid, event });
    }

    /// Loads what the driver has (the test driver: its `default` network;
    /// the kernel driver: definitions on disk, and the networks an earlier
    /// run left active, taken over).
    pub async fn load(&self) -> Result<()> {
        match &self.driver {
            Driver::Test => {
                let def = NetworkDef::parse(TEST_DEFAULT_NETWORK)?;
                let state = State {
                    config: Some(def.clone()),
                    live: Some(Live { def, running: None }),
                    ..State::default()
                };
                self.insert(state);
            }
            Driver::Kernel(kernel) => {
                let (stored, adopted) = kernel.load().await?;
                let mut states: BTreeMap<String, State> = stored
                    .into_iter()
                    .map(|stored| {
                        let state = State {
                            config: Some(stored.def),
                            autostart: stored.autostart,
                            ..State::default()
                        };
                        (
                            state
                                .config
                                .as_ref()
                                .map(|d| d.name.to_string())
                                .unwrap_or_default(),
                            state,
                        )
                    })
                    .collect();
                for found in adopted {
                    let state = states.entry(found.def.name.to_string()).or_default();
                    state.live = Some(Live {
                        def: found.def,
                        running: Some(found.running),
                    });
                }
                for state in states.into_values() {
                    self.insert(state);
                }
            }
        }
        Ok(())
    }

    /// Starts the autostart networks that are not running. A network that
    /// fails to start is logged and does not hold up the others.
    pub async fn autostart(&self) {
        let autostart: Vec<(Uuid, String)> = self
            .registry()
            .slots
            .values()
            .filter(|slot| slot.summary.autostart && !slot.summary.active)
            .map(|slot| (slot.summary.uuid, slot.summary.name.clone()))
            .collect();
        for (uuid, name) in autostart {
            match self.start(&uuid).await {
                Ok(()) => tracing::info!(network = name, "autostarted"),
                Err(error) => tracing::error!(
                    network = name,
                    "cannot autostart network: {}",
                    crate::definition::error_chain(&error)
                ),
            }
        }
    }

    /// Registers a network found at load.
    fn insert(&self, state: State) {
        let Some(def) = state.current() else {
            return;
        };
        let (name, uuid) = (def.name.to_string(), def.uuid);
        let bridges = bridges_of(&state);
        let summary = summarize(&name, uuid, &state);
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
            },
        );
    }

    /// Records the network's new state in the registry (or removes it).
    fn publish(&self, entry: &Arc<Entry>, state: &mut State) {
        let mut registry = self.registry();
        if state.config.is_none() && state.live.is_none() {
            state.gone = true;
            registry.slots.remove(&entry.name);
            return;
        }
        registry.slots.insert(
            entry.name.clone(),
            Slot {
                entry: entry.clone(),
                summary: summarize(&entry.name, entry.uuid, state),
                bridges: bridges_of(state),
            },
        );
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
    fn entries(&self) -> Vec<Arc<Entry>> {
        self.registry()
            .slots
            .values()
            .map(|slot| slot.entry.clone())
            .collect()
    }

    fn entry(&self, uuid: &Uuid) -> Result<Arc<Entry>> {
        self.registry()
            .by_uuid(uuid)
            .map(|slot| slot.entry.clone())
            .ok_or_else(|| ServiceError::NoSuchUuid(uuid.to_string()))
    }

    /// The network's state, locked for one operation.
    async fn lock(&self, uuid: &Uuid) -> Result<(Arc<Entry>, tokio::sync::OwnedMutexGuard<State>)> {
        let entry = self.entry(uuid)?;
        let guard = lock_state(&entry).await;
        if guard.gone {
            return Err(ServiceError::NoSuchUuid(uuid.to_string()));
        }
        Ok((entry, guard))
    }

    /// Parses and checks a definition as net-define and net-create do; the
    /// kernel driver names the bridge and its MAC now (as libvirt does),
    /// so that `net-dumpxml` shows them.
    async fn prepare(&self, xml: &str) -> Result<(NetworkDef, Vec<String>, Option<Foreign>)> {
        let def = NetworkDef::parse(xml)?;
        def.validate()?;
        let foreign = self.foreign().await;
        // Only a name still to choose needs the host's links (an explicit
        // name is checked against them at start, as libvirt does).
        let choosing = def.bridge.name.as_ref().is_none_or(BridgeName::is_template);
        let mut links = match &self.driver {
            Driver::Kernel(kernel)
                if choosing && ForwardMode::has_own_bridge(def.forward_mode()) =>
            {
                kernel.host_links().await?
            }
            _ => Vec::new(),
        };
        if let Some(foreign) = &foreign {
            links.extend(foreign.bridges_except(&def.uuid));
        }
        Ok((def, links, foreign))
    }

    /// Names the bridge (libvirt's networkSetBridgeName) and its MAC.
    fn assign_bridge(
        &self,
        registry: &Registry,
        def: &mut NetworkDef,
        links: &[String],
    ) -> Result<()> {
        if matches!(self.driver, Driver::Test) || !ForwardMode::has_own_bridge(def.forward_mode()) {
            return Ok(());
        }
        let mut taken = registry.bridges_except(def.name.as_str());
        if let Driver::Kernel(kernel) = &self.driver {
            taken.extend(kernel.bridges_being_removed(def.name.as_str()));
        }
        let template = match &def.bridge.name {
            Some(name) if !name.is_template() => {
                if taken.iter().any(|other| other == name.as_str()) {
                    return Err(ServiceError::Internal(format!(
                        "bridge name '{name}' already in use."
                    )));
                }
                None
            }
            Some(template) => Some(template.clone()),
            None => Some(
                BridgeName::new(DEFAULT_BRIDGE_TEMPLATE)
                    .map_err(|_| ServiceError::Internal("bad bridge template".into()))?,
            ),
        };
        if let Some(template) = template {
            let name = (0..MAX_BRIDGE_ID)
                .filter_map(|index| template.instantiate(index))
                .find(|name| {
                    !links
                        .iter()
                        .chain(&taken)
                        .any(|other| other == name.as_str())
                })
                .ok_or_else(|| {
                    ServiceError::Internal(format!(
                        "Bridge generation exceeded max id {MAX_BRIDGE_ID}"
                    ))
                })?;
            def.bridge.name = Some(
                BridgeName::new(name.as_str())
                    .map_err(|_| ServiceError::Internal(format!("bad bridge name {name}")))?,
            );
        }
        if def.mac.is_none() {
            def.mac = Some(generate_mac()?);
        }
        Ok(())
    }

    /// Registers a definition: a new entry, or the existing one of that
    /// uuid. Returns the entry and whether it is new.
    fn claim(
        &self,
        def: &mut NetworkDef,
        links: &[String],
        foreign: Option<&Foreign>,
        live: bool,
    ) -> Result<(Arc<Entry>, bool)> {
        let mut registry = self.registry();
        registry.check_assignable(def, live)?;
        self.assign_bridge(&registry, def, links)?;
        if let Some(foreign) = foreign {
            neighbour::check(def, live, &foreign.label, &foreign.networks)?;
        }
        if let Some(slot) = registry.slots.get_mut(def.name.as_str()) {
            slot.bridges
                .extend(def.bridge.name.as_ref().map(ToString::to_string));
            return Ok((slot.entry.clone(), false));
        }
        let entry = Arc::new(Entry {
            name: def.name.to_string(),
            uuid: def.uuid,
            state: Arc::default(),
        });
        registry.slots.insert(
            entry.name.clone(),
            Slot {
                entry: entry.clone(),
                summary: Summary {
                    name: entry.name.clone(),
                    uuid: def.uuid,
                    active: false,
                    persistent: !live,
                    autostart: false,
                    bridge: def.bridge.name.as_ref().map(ToString::to_string),
                },
                bridges: def.bridge.name.iter().map(ToString::to_string).collect(),
            },
        );
        Ok((entry, true))
    }

    /// A definition from XML, prepared and claimed, with its network
    /// locked (define, and create with `live`).
    async fn claim_locked(&self, xml: &str, live: bool) -> Result<Claimed> {
        let (mut def, links, foreign) = self.prepare(xml).await?;
        let (entry, created) = self.claim(&mut def, &links, foreign.as_ref(), live)?;
        let state = lock_state(&entry).await;
        if state.gone {
            return Err(ServiceError::NoSuchUuid(def.uuid.to_string()));
        }
        Ok(Claimed {
            def,
            entry,
            created,
            state,
        })
    }

    /// Forgets an entry [`claim`](Self::claim) made when the operation
    /// that needed it failed.
    fn unclaim(&self, entry: &Arc<Entry>, state: &mut State) {
        state.gone = true;
        self.registry().slots.remove(&entry.name);
    }

    /// net-define: a new persistent network, or the new persistent
    /// definition of an existing one (used from its next start when active).
    pub async fn define(&self, xml: &str) -> Result<Summary> {
        let Claimed {
            def,
            entry,
            created,
            mut state,
        } = self.claim_locked(xml, false).await?;
        if let Driver::Kernel(kernel) = &self.driver
            && let Err(error) = kernel.save_config(&def)
        {
            if created {
                self.unclaim(&entry, &mut state);
            }
            return Err(error);
        }
        state.config = Some(def);
        self.publish(&entry, &mut state);
        self.emit(entry.uuid, Event::Defined);
        self.summary(&entry.uuid)
    }

    /// net-create: starts a transient network (or an inactive persistent
    /// one with this definition, leaving its persistent one as it is).
    pub async fn create(&self, xml: &str) -> Result<Summary> {
        let Claimed {
            def,
            entry,
            created,
            mut state,
        } = self.claim_locked(xml, true).await?;
        if state.live.is_some() {
            return Err(ServiceError::OperationInvalid(format!(
                "network is already active as '{}'",
                entry.name
            )));
        }
        match self.realize(&entry.name, &def).await {
            Ok(running) => {
                state.live = Some(Live { def, running });
                self.publish(&entry, &mut state);
                self.emit(entry.uuid, Event::Started);
                self.summary(&entry.uuid)
            }
            Err(error) => {
                if created {
                    self.unclaim(&entry, &mut state);
                } else {
                    self.publish(&entry, &mut state);
                }
                Err(error)
            }
        }
    }

    async fn realize(&self, name: &str, def: &NetworkDef) -> Result<Option<RunningNetwork>> {
        match &self.driver {
            Driver::Test => Ok(None),
            Driver::Kernel(kernel) => {
                let reserved = self.registry().bridges_except(name);
                kernel.start(def, &reserved).await.map(Some)
            }
        }
    }

    /// net-start.
    pub async fn start(&self, uuid: &Uuid) -> Result<()> {
        let (entry, mut state) = self.lock(uuid).await?;
        if state.live.is_some() {
            return Err(ServiceError::OperationInvalid(
                "network is already active".into(),
            ));
        }
        let Some(mut def) = state.config.clone() else {
            return Err(ServiceError::NoSuchUuid(uuid.to_string()));
        };
        let foreign = self.foreign().await;
        if def
            .bridge
            .name
            .as_ref()
            .is_none_or(|name| name.is_template())
        {
            // A definition from an older file may still lack its names.
            let mut links = match &self.driver {
                Driver::Kernel(kernel) => kernel.host_links().await?,
                Driver::Test => Vec::new(),
            };
            if let Some(foreign) = &foreign {
                links.extend(foreign.bridges_except(uuid));
            }
            self.assign_bridge(&self.registry(), &mut def, &links)?;
        }
        if let Some(foreign) = &foreign {
            neighbour::check(&def, true, &foreign.label, &foreign.networks)?;
        }
        let running = self.realize(&entry.name, &def).await?;
        state.live = Some(Live { def, running });
        self.publish(&entry, &mut state);
        self.emit(entry.uuid, Event::Started);
        Ok(())
    }

    /// net-destroy. A transient network is gone afterwards.
    pub async fn destroy(&self, uuid: &Uuid) -> Result<()> {
        let (entry, mut state) = self.lock(uuid).await?;
        let Some(live) = state.live.take() else {
            return Err(ServiceError::OperationInvalid(format!(
                "network '{}' is not active",
                entry.name
            )));
        };
        let stopped = match (&self.driver, &live.running) {
            (Driver::Kernel(kernel), Some(running)) => kernel.stop(&live.def, running).await,
            _ => Ok(()),
        };
        // Whatever stopping left behind, the network is down; its status
        // file (kept on failure) lets the next daemon start finish the job.
        self.publish(&entry, &mut state);
        self.emit(entry.uuid, Event::Stopped);
        stopped
    }

    /// net-undefine: an active network stays up, as a transient one.
    pub async fn undefine(&self, uuid: &Uuid) -> Result<()> {
        let (entry, mut state) = self.lock(uuid).await?;
        if state.config.is_none() {
            return Err(ServiceError::OperationInvalid(
                "can't undefine transient network".into(),
            ));
        }
        if let Driver::Kernel(kernel) = &self.driver {
            kernel.delete_config(&entry.name)?;
        }
        state.config = None;
        state.autostart = false;
        self.publish(&entry, &mut state);
        self.emit(entry.uuid, Event::Undefined);
        Ok(())
    }

    pub async fn set_autostart(&self, uuid: &Uuid, autostart: bool) -> Result<()> {
        let (entry, mut state) = self.lock(uuid).await?;
        if state.config.is_none() {
            return Err(ServiceError::OperationInvalid(
                "cannot set autostart for transient network".into(),
            ));
        }
        if let Driver::Kernel(kernel) = &self.driver {
            kernel.set_autostart(&entry.name, autostart)?;
        }
        state.autostart = autostart;
        self.publish(&entry, &mut state);
        Ok(())
    }

    /// The definition network `uuid` runs with; `None` when not running.
    pub async fn live_definition(&self, uuid: &Uuid) -> Option<NetworkDef> {
        let (_, state) = self.lock(uuid).await.ok()?;
        state.live.as_ref().map(|live| live.def.clone())
    }

    /// net-dumpxml: the live definition of an active network, or with
    /// `inactive` the persistent one.
    pub async fn xml(&self, uuid: &Uuid, inactive: bool) -> Result<String> {
        let (_, state) = self.lock(uuid).await?;
        let def = if inactive {
            state.config.as_ref().or(state.current())
        } else {
            state.current()
        };
        def.map(|def| def.to_xml(FormatFlags { inactive }))
            .ok_or_else(|| ServiceError::NoSuchUuid(uuid.to_string()))
    }

    /// net-update, with libvirt's flags: the live network (changed in
    /// place, without restarting it), the persistent definition, or both.
    pub async fn update(
        &self,
        uuid: &Uuid,
        command: u32,
        section: u32,
        parent_index: i32,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        let command = UpdateCommand::from_code(command).ok_or_else(|| {
            ServiceError::InvalidArgument(format!("unrecognized network update command {command}"))
        })?;
        let section = UpdateSection::from_code(section).ok_or_else(|| {
            ServiceError::InvalidArgument(format!("unrecognized network update section {section}"))
        })?;
        let (entry, mut state) = self.lock(uuid).await?;
        let mut flags = flags & (update_flags::LIVE | update_flags::CONFIG);
        if flags == 0 {
            flags = if state.live.is_some() {
                update_flags::LIVE
            } else {
                update_flags::CONFIG
            };
        }
        if flags & update_flags::CONFIG != 0 && state.config.is_none() {
            return Err(ServiceError::OperationInvalid(
                "cannot change persistent config of a transient network".into(),
            ));
        }
        if flags & update_flags::LIVE != 0 && state.live.is_none() {
            return Err(ServiceError::OperationInvalid(
                "network is not running".into(),
            ));
        }
        let config = match (&state.config, flags & update_flags::CONFIG != 0) {
            (Some(config), true) => {
                let mut config = config.clone();
                config.update(command, section, parent_index, xml)?;
                Some(config)
            }
            _ => None,
        };
        let live = match (&state.live, flags & update_flags::LIVE != 0) {
            (Some(live), true) => {
                let mut def = live.def.clone();
                def.update(command, section, parent_index, xml)?;
                Some(def)
            }
            _ => None,
        };
        if let Some(def) = live {
            let running = match (
                &self.driver,
                state.live.as_ref().and_then(|l| l.running.as_ref()),
            ) {
                (Driver::Kernel(kernel), Some(running)) => {
                    Some(kernel.refresh(&def, running).await?)
                }
                _ => None,
            };
            if let Some(neighbour) = &self.neighbour {
                neighbour.live_changed(&def);
            }
            state.live = Some(Live { def, running });
        }
        if let Some(config) = config {
            if let Driver::Kernel(kernel) = &self.driver {
                kernel.save_config(&config)?;
            }
            state.config = Some(config);
        }
        self.publish(&entry, &mut state);
        Ok(())
    }

    /// Waits for the teardowns of stopped networks still running in the
    /// background (before the daemon exits, say).
    pub async fn settle(&self) {
        if let Driver::Kernel(kernel) = &self.driver {
            kernel.settle_all().await;
        }
    }

    /// Brings the lease status file of every active network in line with
    /// its dnsmasq's leases, for those who read these files (libvirt's NSS
    /// module among them).
    pub async fn sync_lease_status(&self) {
        let entries = self.entries();
        for entry in entries {
            let state = lock_state(&entry).await;
            let dnsmasq = state
                .live
                .as_ref()
                .and_then(|live| live.running.as_ref()?.dnsmasq.as_ref());
            if let Some(dnsmasq) = dnsmasq
                && let Err(error) = dnsmasq.paths.sync_lease_status()
            {
                tracing::warn!(network = entry.name, "cannot record DHCP leases: {error}");
            }
        }
    }

    /// Re-applies whatever is missing of the rules of active networks
    /// (after `nft flush ruleset`, say); rules in place are left alone.
    /// Returns whether anything had to be restored.
    pub async fn reload_firewall(&self) -> Result<bool> {
        let Driver::Kernel(kernel) = &self.driver else {
            return Ok(false);
        };
        let entries = self.entries();
        // Each network's lock is held while its rules are checked, so no
        // start or stop of it runs meanwhile.
        let mut guards = Vec::new();
        for entry in &entries {
            guards.push(lock_state(entry).await);
        }
        let running: Vec<RunningNetwork> = guards
            .iter()
            .filter_map(|state| state.live.as_ref()?.running.clone())
            .collect();
        kernel.restore_rules(&running).await
    }

    /// net-dhcp-leases: the leases still valid, optionally of one MAC.
    pub async fn leases(&self, uuid: &Uuid, mac: Option<&str>) -> Result<Vec<LeaseRecord>> {
        let (_, state) = self.lock(uuid).await?;
        let Some(live) = &state.live else {
            return Ok(Vec::new());
        };
        let Some(running) = &live.running else {
            return Ok(Vec::new());
        };
        let interface = running
            .bridge
            .as_ref()
            .map(|bridge| bridge.name.clone())
            .unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
            });
        let wanted = mac.map(str::to_ascii_lowercase);
        Ok(running
            .leases(now)
            .into_iter()
            .filter(|lease| {
                wanted.is_none()
                    || lease.mac_address.as_deref().map(str::to_ascii_lowercase) == wanted
            })
            .map(|lease| {
                let address: Option<std::net::IpAddr> = lease.ip_address.parse().ok();
                let prefix = address
                    .and_then(|address| {
                        live.def.ips.iter().find_map(|ip| {
                            let prefix = ip.effective_prefix()?;
                            crate::definition::in_subnet(&ip.address, prefix, &address)
                                .then_some(u32::from(prefix))
                        })
                    })
                    .unwrap_or(0);
                LeaseRecord {
                    interface: interface.clone(),
                    expiry_time: lease.expiry_time,
                    ipv6: address.is_some_and(|address| address.is_ipv6()),
                    mac: lease.mac_address.unwrap_or_default(),
                    iaid: lease.iaid.unwrap_or_default(),
                    address: lease.ip_address,
                    prefix,
                    hostname: lease.hostname.unwrap_or_default(),
                    client_id: lease.client_id.unwrap_or_default(),
                }
            })
            .collect())
    }
}

async fn lock_state(entry: &Entry) -> tokio::sync::OwnedMutexGuard<State> {
    entry.state.clone().lock_owned().await
}

fn summarize(name: &str, uuid: Uuid, state: &State) -> Summary {
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

fn bridges_of(state: &State) -> Vec<String> {
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

/// A random locally administered MAC in libvirt's 52:54:00 range.
fn generate_mac() -> Result<MacAddr> {
    let mut tail = [0u8; 3];
    crate::random::fill(&mut tail)
        .map_err(|_| ServiceError::Internal("cannot generate a MAC address".into()))?;
    Ok(MacAddr([0x52, 0x54, 0x00, tail[0], tail[1], tail[2]]))
}

/// The network libvirt's test driver starts with (`test:///default`).
const TEST_DEFAULT_NETWORK: &str = "<network>
  <name>default</name>
  <uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid>
  <forward mode='nat'/>
  <bridge name='virbr0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>";

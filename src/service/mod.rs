//! The network service: every network virtnet knows (persistent or
//! transient, active or not) and the verbs on them, with the semantics of
//! libvirt's network driver. The D-Bus API and the daemon sit on top; the
//! driver (`driver`: the kernel or the test driver) sits below.
//!
//! Operations on one network are serialized by that network's lock;
//! different networks proceed in parallel. A summary of each network
//! (what listings and properties show) lives in the registry, so reads
//! never wait for an operation in progress.

mod claim;
mod diagnose;
pub mod driver;
pub mod error;
#[cfg(feature = "libvirt")]
pub mod import;
pub mod kernel;
mod leases;
mod lifecycle;
mod metadata;
pub mod neighbour;
mod ports;
mod registry;
mod supervise;
mod update;

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::definition::{MetadataType, Uuid};

pub use self::diagnose::Diagnosis;
pub use self::driver::{Driver, TestDriver};
pub use self::error::{Result, ServiceError};
use self::neighbour::{ForeignNetwork, Neighbour};
pub use self::ports::port_create_flags;
use self::registry::Registry;

/// libvirt's network events: the lifecycle ones
/// (virNetworkEventLifecycleType) and metadata changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Defined,
    Undefined,
    Started,
    Stopped,
    /// VIR_NETWORK_EVENT_ID_METADATA_CHANGE: what changed, and for an
    /// element its namespace.
    MetadataChanged {
        kind: MetadataType,
        uri: Option<String>,
    },
}

impl Event {
    /// The lifecycle event's virNetworkEventLifecycleType value.
    pub fn lifecycle_code(&self) -> Option<i32> {
        match self {
            Self::Defined => Some(0),
            Self::Undefined => Some(1),
            Self::Started => Some(2),
            Self::Stopped => Some(3),
            Self::MetadataChanged { .. } => None,
        }
    }
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

pub struct Service {
    driver: Box<dyn Driver>,
    registry: Mutex<Registry>,
    events: broadcast::Sender<NetworkEvent>,
    neighbour: Option<Arc<dyn Neighbour>>,
    /// Told whenever the registry changes (what supervision watches).
    changes: tokio::sync::Notify,
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

impl Service {
    pub fn new(driver: impl Driver + 'static) -> Self {
        Self {
            driver: Box::new(driver),
            registry: Mutex::new(Registry::default()),
            events: broadcast::channel(1024).0,
            neighbour: None,
            changes: tokio::sync::Notify::new(),
        }
    }

    /// Checks every define and start against the networks `neighbour`
    /// manages.
    pub fn with_neighbour(mut self, neighbour: Arc<dyn Neighbour>) -> Self {
        self.neighbour = Some(neighbour);
        self
    }

    /// The neighbour's networks; `None` without a neighbour, or when it
    /// cannot be asked now. One that does not answer in time is an error.
    async fn foreign(&self) -> Result<Option<Foreign>> {
        let Some(neighbour) = self.neighbour.as_ref() else {
            return Ok(None);
        };
        let networks = neighbour.networks().await.map_err(ServiceError::Timeout)?;
        Ok(networks.map(|networks| Foreign {
            label: neighbour.label().to_string(),
            networks,
        }))
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
}

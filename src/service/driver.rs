//! Where networks are realized and kept, behind one trait: the kernel
//! driver (`kernel.rs`: the host's kernel, definitions and status on disk)
//! and the test driver (memory only, like libvirt's `test:///default`).

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::apply::RunningNetwork;
use crate::apply::firewall::TableWatch;
use crate::apply::watch::LinkWatch;
use crate::definition::{NetworkDef, Uuid};
use crate::plan::diagnosis::Finding;
use crate::state::record::port::StoredPort;
use crate::state::store::StoredNetwork;

use super::error::{Result, ServiceError};

/// What a driver has when the service starts.
#[derive(Default)]
pub struct Loaded {
    /// Persistent definitions, with their autostart flags.
    pub stored: Vec<StoredNetwork>,
    /// Networks found active.
    pub adopted: Vec<Adopted>,
    /// The ports recorded, of whichever network.
    pub ports: Vec<StoredPort>,
}

/// A network found active when the service starts.
pub struct Adopted {
    pub def: NetworkDef,
    /// What the driver made of it (nothing in the test driver).
    pub running: Option<RunningNetwork>,
}

/// A live update that failed: why, and the network as it runs now (as
/// before the update, unless putting it back failed too).
pub struct FailedUpdate {
    pub error: ServiceError,
    pub running: RunningNetwork,
}

/// The operations the service needs from where networks live. Networks
/// the driver started are handed back to it as it returned them.
pub trait Driver: Send + Sync {
    /// The persistent networks it keeps and the active ones it finds.
    fn load(&self) -> BoxFuture<'_, Result<Loaded>>;

    /// The persistent definitions as they are now (re-read on reload).
    fn load_configs(&self) -> BoxFuture<'_, Vec<StoredNetwork>>;

    /// Whether bridges and their MACs are named at define time, as
    /// libvirt's network driver does (the test driver names none).
    fn names_bridges(&self) -> bool;

    /// The names of the host's links, which a new bridge name must avoid.
    fn host_links(&self) -> BoxFuture<'_, Result<Vec<String>>>;

    fn save_config(&self, def: &NetworkDef) -> BoxFuture<'_, Result<()>>;

    fn delete_config(&self, name: &str) -> BoxFuture<'_, Result<()>>;

    fn set_autostart(&self, name: &str, autostart: bool) -> BoxFuture<'_, Result<()>>;

    /// Realizes `def`; `reserved` are bridge names other networks hold.
    fn start<'a>(
        &'a self,
        def: &'a NetworkDef,
        reserved: &'a [String],
    ) -> BoxFuture<'a, Result<Option<RunningNetwork>>>;

    fn stop<'a>(
        &'a self,
        def: &'a NetworkDef,
        running: &'a RunningNetwork,
    ) -> BoxFuture<'a, Result<()>>;

    /// Brings a running network made from `old` in line with its updated
    /// live definition `def`.
    fn refresh<'a>(
        &'a self,
        old: &'a NetworkDef,
        def: &'a NetworkDef,
        running: &'a RunningNetwork,
    ) -> BoxFuture<'a, Result<RunningNetwork, FailedUpdate>>;

    /// Records a port of a running network (before it is handed out).
    fn save_port(&self, port: &StoredPort) -> BoxFuture<'_, Result<()>>;

    fn delete_port(&self, network: &str, uuid: &Uuid) -> BoxFuture<'_, Result<()>>;

    /// Forgets every port of `network` (it stopped).
    fn delete_ports(&self, network: &str) -> BoxFuture<'_, Result<()>>;

    /// Waits for work still going on in the background.
    fn settle(&self) -> BoxFuture<'_, ()>;

    /// Puts the firewall right; whether anything was out of place.
    fn restore_rules(&self) -> BoxFuture<'_, Result<bool>>;

    /// Puts the running networks' bridges back into their firewalld zones
    /// (after firewalld reloaded or started), where there are any.
    fn restore_zones(&self) -> BoxFuture<'_, ()>;

    /// Follows the changes others make to the firewall, where there is one.
    fn watch_rules(&self) -> Option<std::io::Result<TableWatch>>;

    /// Follows what others do to the host's links, where there are any.
    fn watch_links(&self) -> Option<std::io::Result<LinkWatch>>;

    /// Checks a running network something happened to, and puts back what
    /// is missing; a network whose bridge is gone is taken away.
    fn heal<'a>(
        &'a self,
        def: &'a NetworkDef,
        running: &'a RunningNetwork,
    ) -> BoxFuture<'a, Result<Healing>>;

    /// What keeps the guests of running `networks` (each with its
    /// definition) from their connectivity, each finding with its fix;
    /// changes nothing.
    fn diagnose<'a>(
        &'a self,
        networks: &'a [(NetworkDef, RunningNetwork)],
    ) -> BoxFuture<'a, Result<Vec<Finding>>>;
}

/// What [`Driver::heal`] found.
pub enum Healing {
    Whole,
    /// Whole again; the list names what was put back.
    Repaired {
        running: Box<RunningNetwork>,
        repaired: Vec<String>,
    },
    /// Its bridge is gone: the network is down, and taken away.
    Gone,
}

/// In memory only, like libvirt's `test:///default`: touches no kernel and
/// no file, and starts with libvirt's test network `default`, running.
pub struct TestDriver;

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

impl Driver for TestDriver {
    fn load(&self) -> BoxFuture<'_, Result<Loaded>> {
        async {
            let def = NetworkDef::parse(TEST_DEFAULT_NETWORK)?;
            Ok(Loaded {
                stored: vec![StoredNetwork {
                    def: def.clone(),
                    autostart: false,
                }],
                adopted: vec![Adopted { def, running: None }],
                ports: Vec::new(),
            })
        }
        .boxed()
    }

    fn load_configs(&self) -> BoxFuture<'_, Vec<StoredNetwork>> {
        async { Vec::new() }.boxed()
    }

    fn names_bridges(&self) -> bool {
        false
    }

    fn host_links(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        async { Ok(Vec::new()) }.boxed()
    }

    fn save_config(&self, _def: &NetworkDef) -> BoxFuture<'_, Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn delete_config(&self, _name: &str) -> BoxFuture<'_, Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn set_autostart(&self, _name: &str, _autostart: bool) -> BoxFuture<'_, Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn start<'a>(
        &'a self,
        _def: &'a NetworkDef,
        _reserved: &'a [String],
    ) -> BoxFuture<'a, Result<Option<RunningNetwork>>> {
        async { Ok(None) }.boxed()
    }

    fn stop<'a>(
        &'a self,
        _def: &'a NetworkDef,
        _running: &'a RunningNetwork,
    ) -> BoxFuture<'a, Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn refresh<'a>(
        &'a self,
        _old: &'a NetworkDef,
        _def: &'a NetworkDef,
        running: &'a RunningNetwork,
    ) -> BoxFuture<'a, Result<RunningNetwork, FailedUpdate>> {
        async { Ok(running.clone()) }.boxed()
    }

    fn save_port(&self, _port: &StoredPort) -> BoxFuture<'_, Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn delete_port(&self, _network: &str, _uuid: &Uuid) -> BoxFuture<'_, Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn delete_ports(&self, _network: &str) -> BoxFuture<'_, Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn settle(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }

    fn restore_rules(&self) -> BoxFuture<'_, Result<bool>> {
        async { Ok(false) }.boxed()
    }

    fn restore_zones(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }

    fn watch_rules(&self) -> Option<std::io::Result<TableWatch>> {
        None
    }

    fn watch_links(&self) -> Option<std::io::Result<LinkWatch>> {
        None
    }

    fn heal<'a>(
        &'a self,
        _def: &'a NetworkDef,
        _running: &'a RunningNetwork,
    ) -> BoxFuture<'a, Result<Healing>> {
        async { Ok(Healing::Whole) }.boxed()
    }

    /// Networks in memory have nothing that can go wrong.
    fn diagnose<'a>(
        &'a self,
        _networks: &'a [(NetworkDef, RunningNetwork)],
    ) -> BoxFuture<'a, Result<Vec<Finding>>> {
        async { Ok(Vec::new()) }.boxed()
    }
}

//! Taking libvirt's networks over from a running libvirtd (`virtnet
//! import --uri`): each defined in virtnet as libvirt has it (uuid, MAC,
//! bridge, addresses) with libvirt's autostart; a running one moved: its
//! guests' ports noted, libvirt's copy stopped (the two share the bridge
//! name, so they cannot run at once), virtnet's started and the ports put
//! on its bridge; when virtnet's fails to start, libvirt's runs again with
//! its ports.
//!
//! libvirt's client library blocks: its calls run on blocking threads,
//! each given a time to answer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{Service, ServiceError};
use crate::apply::netlink::{Netlink, NetlinkError};
use crate::definition::{ForwardMode, NetworkDef, error_chain};
use crate::libvirtd::import::{Libvirt, LibvirtError, LibvirtNetwork};

/// How long libvirtd has to answer one call.
const LIBVIRTD_ANSWERS_WITHIN: Duration = Duration::from_secs(30);

/// What `import_from_libvirtd` is asked to do beside importing.
pub mod import_flags {
    /// Undefine libvirt's copies (otherwise they stay, inactive, without
    /// autostart).
    pub const UNDEFINE: u32 = 1;
    /// Say what would be imported; change nothing.
    pub const DRY_RUN: u32 = 2;
}

/// A network import took over (or would, in a dry run).
#[derive(Debug, Clone)]
pub struct Imported {
    /// libvirt's definition (the live one of a transient network).
    pub def: NetworkDef,
    pub autostart: bool,
    /// Running in libvirtd when import found it.
    pub running: bool,
    pub persistent: bool,
    /// libvirt's copy was undefined.
    pub undefined: bool,
    /// Guests' ports moved to virtnet's bridge.
    pub moved_ports: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
    #[error("libvirtd did not answer within {} s", LIBVIRTD_ANSWERS_WITHIN.as_secs())]
    LibvirtdSilent,
    #[error("the call to libvirtd ended abnormally")]
    LibvirtdCall(#[from] tokio::task::JoinError),
    #[error("Failed to define network {name}")]
    Define {
        name: String,
        #[source]
        source: ServiceError,
    },
    #[error("cannot see the bridges of network {name}")]
    Bridges {
        name: String,
        #[source]
        source: NetlinkError,
    },
    #[error("bridge {0} is missing")]
    BridgeMissing(String),
    #[error("cannot look bridge {bridge} up")]
    FindBridge {
        bridge: String,
        #[source]
        source: NetlinkError,
    },
    #[error("cannot move port {port} to {bridge}")]
    MovePort {
        port: String,
        bridge: String,
        #[source]
        source: NetlinkError,
    },
    #[error("Failed to start network {name} ({restored})")]
    Start {
        name: String,
        restored: Restored,
        #[source]
        source: ServiceError,
    },
}

/// What became of libvirt's copy after virtnet's failed to start.
#[derive(Debug)]
pub enum Restored {
    /// Running again, with its guests' ports.
    Running,
    NotStarted(Box<ImportError>),
    PortsNotBack(Box<ImportError>),
}

impl fmt::Display for Restored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Running => f.write_str("libvirt's copy is running again, with its guests' ports"),
            Self::NotStarted(error) => write!(
                f,
                "and libvirt's copy did not start again: {}",
                error_chain(error.as_ref())
            ),
            Self::PortsNotBack(error) => write!(
                f,
                "libvirt's copy is running again, but {}",
                error_chain(error.as_ref())
            ),
        }
    }
}

/// A connection to libvirtd whose calls leave the runtime free.
#[derive(Clone)]
struct Libvirtd(Arc<Libvirt>);

impl Libvirtd {
    async fn open(uri: &str) -> Result<Self, ImportError> {
        let uri = uri.to_owned();
        let libvirt = answer(move || Libvirt::open(&uri)).await?;
        Ok(Self(Arc::new(libvirt)))
    }

    async fn call<T, Call>(&self, call: Call) -> Result<T, ImportError>
    where
        T: Send + 'static,
        Call: FnOnce(&Libvirt) -> Result<T, LibvirtError> + Send + 'static,
    {
        let libvirt = self.0.clone();
        answer(move || call(&libvirt)).await
    }
}

/// `call` on a blocking thread, given its time.
async fn answer<T, Call>(call: Call) -> Result<T, ImportError>
where
    T: Send + 'static,
    Call: FnOnce() -> Result<T, LibvirtError> + Send + 'static,
{
    let task = tokio::task::spawn_blocking(call);
    match tokio::time::timeout(LIBVIRTD_ANSWERS_WITHIN, task).await {
        Ok(finished) => Ok(finished??),
        Err(_) => Err(ImportError::LibvirtdSilent),
    }
}

impl Service {
    /// Takes over the networks of the libvirtd at `uri` named in `names`
    /// (all when empty), in name order; `flags` are [`import_flags`].
    pub async fn import_from_libvirtd(
        &self,
        uri: &str,
        names: &[String],
        flags: u32,
    ) -> Result<Vec<Imported>, ImportError> {
        let libvirtd = Libvirtd::open(uri).await?;
        let names = names.to_vec();
        let networks = libvirtd
            .call(move |libvirt| libvirt.networks(&names))
            .await?;
        let mut imported = Vec::new();
        for network in networks {
            let LibvirtNetwork {
                def,
                xml,
                active,
                persistent,
                autostart,
            } = network;
            let mut taken = Imported {
                def,
                autostart,
                running: active,
                persistent,
                undefined: flags & import_flags::UNDEFINE != 0 && persistent,
                moved_ports: 0,
            };
            if flags & import_flags::DRY_RUN == 0 {
                self.take_over(&libvirtd, &mut taken, &xml).await?;
            }
            imported.push(taken);
        }
        Ok(imported)
    }

    /// Imports one network (a transient one stays transient: created when
    /// moved).
    async fn take_over(
        &self,
        libvirtd: &Libvirtd,
        network: &mut Imported,
        xml: &str,
    ) -> Result<(), ImportError> {
        let name = network.def.name.to_string();
        let uuid = network.def.uuid;
        if network.persistent {
            let defined = async {
                let summary = self.define(xml).await?;
                if network.autostart {
                    self.set_autostart(&summary.uuid, true).await?;
                }
                Ok(())
            };
            defined.await.map_err(|source| ImportError::Define {
                name: name.clone(),
                source,
            })?;
        }
        if network.running {
            network.moved_ports = self.move_running(libvirtd, network, xml).await?;
        } else if network.undefined {
            libvirtd
                .call(move |libvirt| libvirt.undefine(&uuid))
                .await?;
        }
        // Undefining took libvirt's autostart link with it.
        if network.autostart && !network.undefined {
            libvirtd
                .call(move |libvirt| libvirt.set_autostart(&uuid, false))
                .await?;
        }
        Ok(())
    }

    /// Stops libvirt's copy (and undefines it when asked) and starts
    /// virtnet's, then puts the guests' ports on virtnet's bridge. Returns
    /// how many ports moved. When virtnet's fails to start, libvirt's is
    /// defined and started again with its ports.
    ///
    /// The undefining comes before virtnet's start because virtnetd then
    /// publishes its network in libvirtd under the same uuid, and libvirtd
    /// can lose a network created while another client undefines it.
    async fn move_running(
        &self,
        libvirtd: &Libvirtd,
        network: &Imported,
        xml: &str,
    ) -> Result<u32, ImportError> {
        let name = network.def.name.to_string();
        let uuid = network.def.uuid;
        let bridges = |source| ImportError::Bridges {
            name: name.clone(),
            source,
        };
        let netlink = Netlink::connect().map_err(bridges)?;
        let bridge = ForwardMode::has_own_bridge(network.def.forward_mode())
            .then(|| network.def.bridge.name.as_ref().map(ToString::to_string))
            .flatten();
        let ports = match &bridge {
            Some(bridge) => match netlink.link_index(bridge).await.map_err(bridges)? {
                Some(index) => netlink.ports(index).await.map_err(bridges)?,
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        libvirtd.call(move |libvirt| libvirt.stop(&uuid)).await?;
        let started = async {
            if network.undefined {
                libvirtd
                    .call(move |libvirt| libvirt.undefine(&uuid))
                    .await?;
            }
            let result = if network.persistent {
                self.start(&uuid).await
            } else {
                self.create(xml).await.map(drop)
            };
            Ok::<_, ImportError>(result)
        }
        .await?;
        if let Err(source) = started {
            let restored = match self.restore(libvirtd, network, xml).await {
                Err(error) => Restored::NotStarted(Box::new(error)),
                Ok(()) => match reattach(&netlink, bridge.as_deref(), &ports).await {
                    Ok(()) => Restored::Running,
                    Err(error) => Restored::PortsNotBack(Box::new(error)),
                },
            };
            return Err(ImportError::Start {
                name,
                restored,
                source,
            });
        }
        reattach(&netlink, bridge.as_deref(), &ports).await?;
        Ok(u32::try_from(ports.len()).unwrap_or(u32::MAX))
    }

    /// Starts libvirt's copy again, defined again first when it was
    /// undefined.
    async fn restore(
        &self,
        libvirtd: &Libvirtd,
        network: &Imported,
        xml: &str,
    ) -> Result<(), ImportError> {
        let uuid = network.def.uuid;
        let (undefined, autostart, xml) = (network.undefined, network.autostart, xml.to_owned());
        libvirtd
            .call(move |libvirt| {
                if undefined {
                    libvirt.define(&xml)?;
                    if autostart {
                        libvirt.set_autostart(&uuid, true)?;
                    }
                }
                libvirt.start(&uuid)
            })
            .await
    }
}

/// Puts `ports` (those that still exist) on `bridge`.
async fn reattach(
    netlink: &Netlink,
    bridge: Option<&str>,
    ports: &[(u32, String)],
) -> Result<(), ImportError> {
    let Some(bridge) = bridge else {
        return Ok(());
    };
    let index = netlink
        .link_index(bridge)
        .await
        .map_err(|source| ImportError::FindBridge {
            bridge: bridge.to_owned(),
            source,
        })?
        .ok_or_else(|| ImportError::BridgeMissing(bridge.to_owned()))?;
    for (port, name) in ports {
        if netlink.link_index(name).await.ok().flatten() == Some(*port) {
            netlink
                .attach(*port, index)
                .await
                .map_err(|source| ImportError::MovePort {
                    port: name.clone(),
                    bridge: bridge.to_owned(),
                    source,
                })?;
        }
    }
    Ok(())
}

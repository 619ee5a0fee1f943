//! The service side: `org.libvirt.Connect` at the connect path and one
//! `org.libvirt.Network` object per network, as libvirt-dbus declares
//! them (Debian's `/usr/share/dbus-1/interfaces/org.libvirt.*.xml`).

use std::collections::VecDeque;
use std::sync::Arc;

use zbus::object_server::SignalEmitter;
use zbus::{Connection, ObjectServer, OwnedObjectPath, interface};

use super::client::{FindingTuple, ImportedNetwork};
use super::network::{Network, VirtnetNetwork};
use super::{LibvirtError, network_path};
use crate::definition::Uuid;
use crate::service::{Event, NetworkEvent, Service, ServiceError, Summary};

type Result<T> = std::result::Result<T, LibvirtError>;

impl From<ServiceError> for LibvirtError {
    fn from(error: ServiceError) -> Self {
        Self::Error(crate::definition::error_chain(&error))
    }
}

/// `org.libvirt.Connect`.
pub struct Connect {
    service: Arc<Service>,
    path: String,
}

/// The object of the network `summary` describes at the connect path,
/// added when missing (its name brought up to date when kept from an
/// earlier network of that uuid).
async fn ensure_network(
    server: &ObjectServer,
    service: &Arc<Service>,
    connect: &str,
    summary: &Summary,
) -> Result<OwnedObjectPath> {
    let path = network_path(connect, &summary.uuid);
    if let Ok(existing) = server.interface::<_, Network>(path.as_str()).await {
        if existing.get().await.name != summary.name {
            existing.get_mut().await.name.clone_from(&summary.name);
        }
        return Ok(path);
    }
    let object = Network {
        service: service.clone(),
        uuid: summary.uuid,
        name: summary.name.clone(),
    };
    server.at(path.as_str(), object).await?;
    let extensions = VirtnetNetwork {
        service: service.clone(),
        uuid: summary.uuid,
    };
    server.at(path.as_str(), extensions).await?;
    Ok(path)
}

#[interface(name = "org.libvirt.Connect")]
impl Connect {
    #[zbus(property(emits_changed_signal = "const"))]
    fn encrypted(&self) -> bool {
        false
    }

    #[zbus(property(emits_changed_signal = "false"))]
    fn hostname(&self) -> String {
        hostname()
    }

    #[zbus(property(emits_changed_signal = "false"))]
    fn lib_version(&self) -> u64 {
        version_number()
    }

    /// The bus connection is local.
    #[zbus(property(emits_changed_signal = "const"))]
    fn secure(&self) -> bool {
        true
    }

    #[zbus(property(emits_changed_signal = "false"))]
    fn version(&self) -> u64 {
        version_number()
    }

    #[zbus(out_args("networks"))]
    fn list_networks(&self, flags: u32) -> Vec<OwnedObjectPath> {
        self.service
            .list(flags)
            .iter()
            .map(|summary| network_path(&self.path, &summary.uuid))
            .collect()
    }

    #[zbus(name = "NetworkCreateXML", out_args("network"))]
    async fn network_create_xml(
        &self,
        xml: &str,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath> {
        let summary = self.service.create(xml).await?;
        ensure_network(server, &self.service, &self.path, &summary).await
    }

    #[zbus(name = "NetworkDefineXML", out_args("network"))]
    async fn network_define_xml(
        &self,
        xml: &str,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath> {
        let summary = self.service.define(xml).await?;
        ensure_network(server, &self.service, &self.path, &summary).await
    }

    #[zbus(out_args("network"))]
    fn network_lookup_by_name(&self, name: &str) -> Result<OwnedObjectPath> {
        let summary = self.service.lookup_by_name(name)?;
        Ok(network_path(&self.path, &summary.uuid))
    }

    #[zbus(name = "NetworkLookupByUUID", out_args("network"))]
    fn network_lookup_by_uuid(&self, uuid: &str) -> Result<OwnedObjectPath> {
        let summary = self.service.lookup_by_uuid(uuid)?;
        Ok(network_path(&self.path, &summary.uuid))
    }

    #[zbus(signal)]
    async fn network_event(
        emitter: &SignalEmitter<'_>,
        network: OwnedObjectPath,
        event: i32,
    ) -> zbus::Result<()>;
}

/// `org.virtnet.Connect`: what virtnet adds beside libvirt's interfaces,
/// at the same path.
pub struct VirtnetConnect {
    service: Arc<Service>,
}

#[interface(name = "org.virtnet.Connect")]
impl VirtnetConnect {
    /// What `net-list` shows, in one call (libvirt-dbus needs a call per
    /// network): name, UUID, active, persistent, autostart, bridge; the
    /// flags are ListNetworks'.
    #[zbus(out_args("networks"))]
    fn list_network_summaries(
        &self,
        flags: u32,
    ) -> Vec<(String, String, bool, bool, bool, String)> {
        self.service
            .list(flags)
            .into_iter()
            .map(|summary| {
                (
                    summary.name,
                    summary.uuid.to_string(),
                    summary.active,
                    summary.persistent,
                    summary.autostart,
                    summary.bridge.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// A network's metadata changed (libvirt 9.7's metadata-change event):
    /// its title (kind 1), description (0) or element of namespace `uri`
    /// (2). Sent on the driver's connect path, as NetworkEvent.
    #[zbus(signal)]
    async fn network_metadata_change(
        emitter: &SignalEmitter<'_>,
        network: OwnedObjectPath,
        kind: i32,
        uri: &str,
    ) -> zbus::Result<()>;

    /// Puts back whatever is missing of the rules of active networks (after
    /// `nft flush ruleset`); returns whether anything was.
    #[zbus(out_args("restored"))]
    async fn reload_firewall(&self) -> Result<bool> {
        Ok(self.service.reload_firewall().await?)
    }

    /// `virtnet doctor`: what keeps guests of network `network` (a name or
    /// UUID; every active network when empty) from their connectivity.
    /// Returns the networks examined and, for each finding, the network
    /// ("" for what all share), the problem and its fix.
    #[zbus(out_args("networks", "findings"))]
    async fn diagnose(&self, network: &str) -> Result<(Vec<String>, Vec<FindingTuple>)> {
        let diagnosis = self.service.diagnose(network).await?;
        let findings = diagnosis
            .findings
            .into_iter()
            .map(|finding| {
                (
                    finding.network.unwrap_or_default(),
                    finding.problem,
                    finding.fix,
                )
            })
            .collect();
        Ok((diagnosis.examined, findings))
    }

    /// Takes libvirt's networks over from the libvirtd at `uri` (`virtnet
    /// import --uri`): those in `names`, or all. `flags`: 1 undefines
    /// libvirt's copies, 2 only says what would be done. For each network:
    /// name, UUID, bridge and MAC ("" when none), autostart, running in
    /// libvirtd, persistent, libvirt's copy undefined, guests' ports moved.
    #[zbus(name = "ImportFromLibvirt", out_args("networks"))]
    async fn import_from_libvirt(
        &self,
        uri: &str,
        names: Vec<String>,
        flags: u32,
    ) -> Result<Vec<ImportedNetwork>> {
        #[cfg(feature = "libvirt")]
        {
            let imported = self
                .service
                .import_from_libvirtd(uri, &names, flags)
                .await
                .map_err(|error| LibvirtError::Error(crate::definition::error_chain(&error)))?;
            Ok(imported
                .into_iter()
                .map(|network| {
                    let def = network.def;
                    (
                        def.name.to_string(),
                        def.uuid.to_string(),
                        def.bridge
                            .name
                            .map(|name| name.to_string())
                            .unwrap_or_default(),
                        def.mac.map(|mac| mac.to_string()).unwrap_or_default(),
                        network.autostart,
                        network.running,
                        network.persistent,
                        network.undefined,
                        network.moved_ports,
                    )
                })
                .collect())
        }
        #[cfg(not(feature = "libvirt"))]
        {
            let _ = (uri, names, flags);
            Err(LibvirtError::Error(
                "this virtnetd is built without libvirt's library (the libvirt feature)".into(),
            ))
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// The crate's version as libvirt numbers versions: major * 1,000,000 +
/// minor * 1,000 + micro.
fn version_number() -> u64 {
    env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|part| part.parse::<u64>().unwrap_or(0))
        .chain(std::iter::repeat(0))
        .take(3)
        .fold(0, |number, part| number * 1000 + part)
}

/// Serves `service` on `connection` at `connect_path`: the connect object,
/// an object per network, and a task that follows the service's events
/// (adding and removing network objects, emitting `NetworkEvent`).
pub async fn serve(
    service: Arc<Service>,
    connection: &Connection,
    connect_path: &str,
) -> zbus::Result<()> {
    let server = connection.object_server();
    // The driver's path, as libvirt-dbus has it, and virtnet's own, which
    // its clients use whatever the driver (no lookup of which it is).
    for path in [connect_path, super::VIRTNET_CONNECT_PATH] {
        server
            .at(
                path,
                Connect {
                    service: service.clone(),
                    path: connect_path.to_owned(),
                },
            )
            .await?;
        server
            .at(
                path,
                VirtnetConnect {
                    service: service.clone(),
                },
            )
            .await?;
    }
    for summary in service.list(0) {
        ensure_network(server, &service, connect_path, &summary)
            .await
            .map_err(|error| zbus::Error::Failure(format!("{error:?}")))?;
    }
    let events = service.subscribe();
    tokio::spawn(follow_events(
        service,
        connection.clone(),
        connect_path.to_owned(),
        events,
    ));
    Ok(())
}

/// How many removed networks keep their object, the most recent ones: a
/// client that looked one up just before it went then gets libvirt's
/// "Network not found" from its call, as from libvirt-dbus, rather than
/// D-Bus's UnknownObject.
const KEPT_GONE: usize = 256;

async fn follow_events(
    service: Arc<Service>,
    connection: Connection,
    connect_path: String,
    mut events: tokio::sync::broadcast::Receiver<NetworkEvent>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let server = connection.object_server();
    let mut gone: VecDeque<Uuid> = VecDeque::new();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "network events were dropped");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let path = network_path(&connect_path, &event.uuid);
        gone.retain(|uuid| *uuid != event.uuid);
        if let Ok(summary) = service.summary(&event.uuid) {
            let _ = ensure_network(server, &service, &connect_path, &summary).await;
        } else {
            gone.push_back(event.uuid);
            if gone.len() > KEPT_GONE
                && let Some(oldest) = gone.pop_front()
            {
                let oldest = network_path(&connect_path, &oldest);
                let _ = server.remove::<Network, _>(oldest.as_str()).await;
                let _ = server.remove::<VirtnetNetwork, _>(oldest.as_str()).await;
            }
        }
        let Ok(emitter) = SignalEmitter::new(&connection, connect_path.as_str()) else {
            continue;
        };
        let emitted = match (&event.event, event.event.lifecycle_code()) {
            (_, Some(code)) => Connect::network_event(&emitter, path, code).await,
            (Event::MetadataChanged { kind, uri }, None) => {
                let uri = uri.as_deref().unwrap_or_default();
                VirtnetConnect::network_metadata_change(&emitter, path, *kind as i32, uri).await
            }
            _ => Ok(()),
        };
        if let Err(error) = emitted {
            tracing::warn!("cannot emit a network event: {error}");
        }
    }
}

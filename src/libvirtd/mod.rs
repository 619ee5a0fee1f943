//! Living alongside libvirtd: every network virtnet runs is published to
//! libvirtd as a network of the same name and uuid in forward mode
//! `bridge` on virtnet's bridge, so that libvirt's guests
//! (`<source network='NAME'/>`) land on it; libvirtd's own networks are
//! checked for clashes before virtnet defines or starts one.
//!
//! libvirt's client library blocks, so one thread of its own holds the
//! connection; the rest of the daemon talks to it through a channel. A
//! question (libvirtd's networks, before a define or start) waits at most
//! [`ANSWER_TIMEOUT`] for its answer: a libvirtd that hangs, or is stopped,
//! holds up that thread (a blocking call cannot be cancelled) but nothing
//! else; what it is to publish waits in the channel until libvirtd
//! answers again.
//!
//! The uuids published are recorded in a runtime file, so that a daemon
//! started again withdraws the publications of networks that vanished
//! while it was away (a transient network leaves no other trace).

pub mod import;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::sync::{broadcast, oneshot};
use virt::connect::Connect;
use virt::network::Network;

use crate::definition::{ConfigText, ForwardMode, NetworkDef, PortGroup, Uuid, write_bandwidth};
use crate::service::neighbour::{ForeignNetwork, Neighbour, NotAnswering};
use crate::service::{Event, NetworkEvent, Service};
use crate::xml::write::XmlWriter;

/// How often a live connection is checked (libvirtd may restart).
const HEALTH_CHECK: Duration = Duration::from_secs(2);
/// The first and the longest wait before connecting again.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(8);
/// How long a define or start waits for libvirtd's networks.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

enum Command {
    Publish {
        uuid: Uuid,
        xml: String,
    },
    Withdraw {
        uuid: Uuid,
    },
    Networks {
        reply: oneshot::Sender<Option<Vec<ForeignNetwork>>>,
    },
    /// Every network virtnet runs has been published: the others recorded
    /// by an earlier run are withdrawn.
    Reconcile,
}

/// The daemon's side of the link to libvirtd.
pub struct Libvirtd {
    uri: String,
    commands: mpsc::Sender<Command>,
}

impl Libvirtd {
    /// Starts the thread that keeps a connection to `uri`, connecting
    /// again (with growing pauses) whenever libvirtd is absent or restarts.
    /// What is published is recorded in `record`.
    pub fn spawn(uri: String, record: PathBuf) -> std::io::Result<Arc<Self>> {
        let (commands, receiver) = mpsc::channel();
        let worker = Worker::new(uri.clone(), record);
        std::thread::Builder::new()
            .name("libvirtd".into())
            .spawn(move || worker.run(&receiver))?;
        Ok(Arc::new(Self { uri, commands }))
    }

    fn send(&self, command: Command) {
        // The worker only ends with the process.
        let _ = self.commands.send(command);
    }

    /// Publishes the running network `def` (or publishes it again).
    pub fn publish(&self, def: &NetworkDef) {
        self.send(Command::Publish {
            uuid: def.uuid,
            xml: published_xml(def),
        });
    }

    /// Withdraws what [`publish`](Self::publish) made of network `uuid`.
    pub fn withdraw(&self, uuid: Uuid) {
        self.send(Command::Withdraw { uuid });
    }
}

impl Neighbour for Libvirtd {
    fn label(&self) -> &str {
        "libvirtd"
    }

    fn networks(&self) -> BoxFuture<'_, Result<Option<Vec<ForeignNetwork>>, NotAnswering>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.send(Command::Networks { reply });
            match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
                Ok(answer) => Ok(answer.ok().flatten()),
                Err(_) => {
                    let error = NotAnswering {
                        neighbour: self.label().to_owned(),
                        uri: self.uri.clone(),
                        waited: ANSWER_TIMEOUT,
                    };
                    tracing::warn!("{error}");
                    Err(error)
                }
            }
        })
    }

    fn live_changed(&self, def: &NetworkDef) {
        self.publish(def);
    }
}

/// What libvirtd is given for a running network: for the networks with a
/// bridge of virtnet's own, forward mode `bridge` on that bridge, with port
/// isolation and portgroups (their names, default and bandwidth) as
/// defined (libvirt then adds no rules and runs no dnsmasq, isolates the
/// guests' ports when asked to, and finds the portgroups its guests name);
/// for the others, which have no kernel objects of their own, the
/// definition as it is.
pub fn published_xml(def: &NetworkDef) -> String {
    if !ForwardMode::has_own_bridge(def.forward_mode()) {
        return def.to_xml(crate::definition::FormatFlags::default());
    }
    let mut xml = XmlWriter::default();
    xml.tag("network").open();
    xml.text_element("name", def.name.as_str());
    xml.text_element("uuid", &def.uuid.to_string());
    xml.tag("forward").attr("mode", "bridge").empty();
    xml.tag("bridge")
        .attr_opt("name", def.bridge.name.as_ref())
        .empty();
    // libvirt isolates the guests' ports it adds to the bridge.
    if let Some(isolated) = def.port_isolated {
        xml.tag("port")
            .attr("isolated", if isolated { "yes" } else { "no" })
            .empty();
    }
    for group in &def.portgroups {
        write_portgroup(&mut xml, group);
    }
    xml.close("network");
    xml.finish()
}

/// Keeps libvirtd's copy of virtnet's networks in step with them: the
/// running ones published, the others withdrawn, then every start and stop
/// as it happens. `events` must be subscribed before the service starts
/// anything, so that nothing is missed.
pub async fn follow(
    service: Arc<Service>,
    libvirtd: Arc<Libvirtd>,
    mut events: broadcast::Receiver<NetworkEvent>,
) {
    publish_all(&service, &libvirtd).await;
    libvirtd.send(Command::Reconcile);
    loop {
        match events.recv().await {
            Ok(NetworkEvent {
                uuid,
                event: Event::Started,
            }) => {
                // None: stopped again already, and its own event follows.
                if let Some(def) = service.live_definition(&uuid).await {
                    libvirtd.publish(&def);
                }
            }
            Ok(NetworkEvent {
                uuid,
                event: Event::Stopped,
            }) => libvirtd.withdraw(uuid),
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => publish_all(&service, &libvirtd).await,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn publish_all(service: &Service, libvirtd: &Libvirtd) {
    for summary in service.list(0) {
        match service.live_definition(&summary.uuid).await {
            Some(def) => libvirtd.publish(&def),
            None => libvirtd.withdraw(summary.uuid),
        }
    }
}

/// The thread holding the connection.
struct Worker {
    uri: String,
    connection: Option<Connect>,
    /// What libvirtd should have: uuid → published XML.
    published: BTreeMap<Uuid, String>,
    /// The file listing the uuids published.
    record: PathBuf,
    /// Publications of an earlier run still to withdraw (until reconciled:
    /// what an earlier run recorded).
    stale: BTreeSet<Uuid>,
    reconciled: bool,
    next_attempt: Instant,
    retry: Duration,
    /// Whether "not reachable" was said since the last connection.
    absence_told: bool,
}

impl Worker {
    fn new(uri: String, record: PathBuf) -> Self {
        Self {
            uri,
            connection: None,
            published: BTreeMap::new(),
            stale: read_record(&record),
            record,
            reconciled: false,
            next_attempt: Instant::now(),
            retry: FIRST_RETRY,
            absence_told: false,
        }
    }

    fn run(mut self, commands: &mpsc::Receiver<Command>) {
        // libvirt prints every error to stderr by default; they are
        // returned and logged here instead.
        virt::error::clear_error_callback();
        self.connect();
        loop {
            let wait = if self.connection.is_some() {
                HEALTH_CHECK
            } else {
                self.next_attempt.saturating_duration_since(Instant::now())
            };
            match commands.recv_timeout(wait) {
                Ok(command) => self.handle(command),
                Err(mpsc::RecvTimeoutError::Timeout) => self.keep_connected(),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        self.disconnect();
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Publish { uuid, xml } => {
                self.stale.remove(&uuid);
                if self.published.insert(uuid, xml.clone()).is_none() {
                    self.save_record();
                }
                if let Some(connection) = &self.connection
                    && let Err(error) = ensure_published(connection, &uuid, &xml)
                {
                    self.failed(&format!("cannot publish network {uuid}"), &error);
                }
            }
            Command::Withdraw { uuid } => {
                self.stale.remove(&uuid);
                if self.published.remove(&uuid).is_some() {
                    self.save_record();
                }
                if let Some(connection) = &self.connection
                    && let Err(error) = withdraw(connection, &uuid)
                {
                    self.failed(&format!("cannot withdraw network {uuid}"), &error);
                }
            }
            Command::Reconcile => {
                self.reconciled = true;
                self.save_record();
                self.withdraw_stale();
            }
            // The asker gave up waiting (libvirtd hung a while).
            Command::Networks { reply } if reply.is_closed() => {}
            Command::Networks { reply } => {
                if self.connection.is_none() {
                    self.connect();
                }
                let networks = self
                    .connection
                    .as_ref()
                    .map(|connection| foreign_networks(connection, &self.published));
                let networks = match networks {
                    Some(Ok(networks)) => Some(networks),
                    Some(Err(error)) => {
                        self.failed("cannot list libvirtd's networks", &error);
                        None
                    }
                    None => None,
                };
                let _ = reply.send(networks);
            }
        }
    }

    /// Withdraws what an earlier run published of networks that are gone.
    fn withdraw_stale(&mut self) {
        let Some(connection) = self.connection.as_ref().filter(|_| self.reconciled) else {
            return;
        };
        let mut failure = None;
        for uuid in std::mem::take(&mut self.stale) {
            match withdraw(connection, &uuid) {
                Ok(()) => tracing::info!("withdrew network {uuid} from libvirtd: it is gone"),
                Err(error) => {
                    self.stale.insert(uuid);
                    failure = Some((uuid, error));
                }
            }
        }
        if let Some((uuid, error)) = failure {
            self.failed(&format!("cannot withdraw network {uuid}"), &error);
        }
    }

    /// Records the uuids published; until reconciled, an earlier run's too.
    fn save_record(&self) {
        let uuids: String = self
            .published
            .keys()
            .chain(&self.stale)
            .map(|uuid| format!("{uuid}\n"))
            .collect();
        let written =
            crate::files::write_atomically(&self.record, uuids.as_bytes(), crate::files::PRIVATE);
        if let Err(error) = written {
            tracing::warn!(
                path = %self.record.display(),
                "cannot record the networks published in libvirtd: {error}"
            );
        }
    }

    /// A call failed: an error of libvirtd's, or the connection is gone.
    fn failed(&mut self, what: &str, error: &virt::error::Error) {
        let alive = self
            .connection
            .as_ref()
            .is_some_and(|connection| connection.is_alive().unwrap_or(false));
        tracing::warn!("{what} in libvirtd: {}", error.message());
        if !alive {
            self.lost();
        }
    }

    fn keep_connected(&mut self) {
        match &self.connection {
            // A round trip: a closed connection only shows on use.
            Some(connection) if connection.num_of_networks().is_err() => self.lost(),
            Some(_) => {}
            None if Instant::now() >= self.next_attempt => self.connect(),
            None => {}
        }
    }

    fn lost(&mut self) {
        tracing::warn!(
            uri = self.uri,
            "lost the connection to libvirtd; reconnecting"
        );
        self.disconnect();
        self.retry = FIRST_RETRY;
        self.next_attempt = Instant::now() + self.retry;
    }

    fn disconnect(&mut self) {
        if let Some(mut connection) = self.connection.take() {
            let _ = connection.close();
        }
    }

    fn connect(&mut self) {
        match Connect::open(Some(&self.uri)) {
            Ok(connection) => {
                let mut failures = 0;
                for (uuid, xml) in &self.published {
                    if let Err(error) = ensure_published(&connection, uuid, xml) {
                        failures += 1;
                        tracing::warn!(
                            "cannot publish network {uuid} in libvirtd: {}",
                            error.message()
                        );
                    }
                }
                tracing::info!(
                    uri = self.uri,
                    published = self.published.len() - failures,
                    "connected to libvirtd"
                );
                self.connection = Some(connection);
                self.retry = FIRST_RETRY;
                self.absence_told = false;
                self.withdraw_stale();
            }
            Err(error) => {
                if !self.absence_told {
                    tracing::warn!(
                        uri = self.uri,
                        "libvirtd is not reachable ({}); going on without it, its networks \
                         unchecked, and publishing virtnet's networks once it is",
                        error.message()
                    );
                    self.absence_told = true;
                }
                self.next_attempt = Instant::now() + self.retry;
                self.retry = (self.retry * 2).min(LONGEST_RETRY);
            }
        }
    }
}

/// The uuids in the record file (none when it is absent or unreadable).
fn read_record(path: &Path) -> BTreeSet<Uuid> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.parse().ok())
        .collect()
}

/// Makes libvirtd run `xml` as the live definition of network `uuid`: a
/// transient network, or the live state of libvirt's own inactive
/// definition of the same network (after an import that kept it).
fn ensure_published(
    connection: &Connect,
    uuid: &Uuid,
    xml: &str,
) -> Result<(), virt::error::Error> {
    if let Ok(network) = Network::lookup_by_uuid_string(connection, &uuid.to_string()) {
        if !network.is_active()? {
            Network::create_xml(connection, xml)?;
            return Ok(());
        }
        let theirs = network.get_xml_desc(0)?;
        if bridge_of(&theirs) != bridge_of(xml) {
            // An older publication (virtnet restarted it on another bridge).
            network.destroy()?;
            Network::create_xml(connection, xml)?;
        } else {
            // The same, but for portgroups changed live since.
            update_portgroups(&network, &theirs, xml)?;
        }
        return Ok(());
    }
    Network::create_xml(connection, xml).map(drop)
}

/// Makes the portgroups of libvirtd's running network (`theirs`) those of
/// `ours`, through libvirt's live updates: its guests' ports stay.
fn update_portgroups(
    network: &Network,
    theirs: &str,
    ours: &str,
) -> Result<(), virt::error::Error> {
    let (Ok(theirs), Ok(ours)) = (NetworkDef::parse(theirs), NetworkDef::parse(ours)) else {
        return Ok(());
    };
    let update = |command, group: &PortGroup| {
        network.update(
            command,
            virt::sys::VIR_NETWORK_SECTION_PORTGROUP,
            -1,
            &portgroup_xml(group),
            virt::sys::VIR_NETWORK_UPDATE_AFFECT_LIVE,
        )
    };
    let named = |groups: &[PortGroup], name: &ConfigText| {
        groups.iter().find(|group| group.name == *name).cloned()
    };
    for group in &theirs.portgroups {
        if named(&ours.portgroups, &group.name).is_none() {
            update(virt::sys::VIR_NETWORK_UPDATE_COMMAND_DELETE, group)?;
        }
    }
    for group in &ours.portgroups {
        match named(&theirs.portgroups, &group.name) {
            None => update(virt::sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, group)?,
            Some(their_group) if their_group != *group => {
                update(virt::sys::VIR_NETWORK_UPDATE_COMMAND_MODIFY, group)?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A portgroup as published: its name, default and bandwidth (a network
/// with a bridge of its own takes no vlan or virtualport).
fn write_portgroup(xml: &mut XmlWriter, group: &PortGroup) {
    xml.tag("portgroup")
        .attr("name", group.name.as_str())
        .attr_opt("default", group.is_default.then_some("yes"))
        .empty_or_open(group.bandwidth.is_some());
    if let Some(bandwidth) = &group.bandwidth {
        write_bandwidth(xml, bandwidth);
        xml.close("portgroup");
    }
}

fn portgroup_xml(group: &PortGroup) -> String {
    let mut xml = XmlWriter::default();
    write_portgroup(&mut xml, group);
    xml.finish()
}

/// Stops libvirtd's copy of network `uuid`, unless what runs there is
/// libvirt's own network of that uuid (one with a bridge of its own: an
/// imported network's copy that libvirt runs again).
fn withdraw(connection: &Connect, uuid: &Uuid) -> Result<(), virt::error::Error> {
    match Network::lookup_by_uuid_string(connection, &uuid.to_string()) {
        Ok(network) if network.is_active()? => {
            if may_be_publication(&network.get_xml_desc(0)?) {
                network.destroy()
            } else {
                tracing::info!("libvirtd runs its own network of uuid {uuid}; it stays as it is");
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Whether a network running in libvirtd may be one virtnet published:
/// those are in forward mode `bridge`, or have no bridge of their own (and
/// read as virtnet writes them).
fn may_be_publication(xml: &str) -> bool {
    NetworkDef::parse(xml).is_ok_and(|def| {
        def.forward_mode() == Some(ForwardMode::Bridge)
            || !ForwardMode::has_own_bridge(def.forward_mode())
    })
}

fn bridge_of(xml: &str) -> Option<String> {
    NetworkDef::parse(xml)
        .ok()?
        .bridge
        .name
        .map(|name| name.to_string())
}

/// libvirtd's networks, but for the ones virtnet published there.
fn foreign_networks(
    connection: &Connect,
    published: &BTreeMap<Uuid, String>,
) -> Result<Vec<ForeignNetwork>, virt::error::Error> {
    let mut foreign = Vec::new();
    for network in connection.list_all_networks(0)? {
        let active = network.is_active()?;
        let xml = network.get_xml_desc(0)?;
        let Ok(def) = NetworkDef::parse(&xml) else {
            let name = network.get_name()?;
            tracing::warn!("cannot read libvirtd's network '{name}'; checking its name only");
            let Ok(uuid) = network.get_uuid_string()?.parse() else {
                continue;
            };
            foreign.push(ForeignNetwork {
                name,
                uuid,
                active,
                bridge: network.get_bridge_name().ok(),
                subnets: Vec::new(),
            });
            continue;
        };
        if active
            && published.get(&def.uuid).is_some_and(|ours| {
                bridge_of(ours) == def.bridge.name.as_ref().map(ToString::to_string)
            })
        {
            continue;
        }
        foreign.push(ForeignNetwork::of(&def, active));
    }
    Ok(foreign)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_with_its_own_bridge_is_published_in_bridge_mode_on_it() {
        let def = NetworkDef::parse(
            "<network><name>a&amp;b</name><uuid>a6b49429-d5fd-4c7e-8e1a-6d3c1b2e4f50</uuid>\
             <forward mode='nat'/><bridge name='keenbr0'/><mac address='52:54:00:aa:bb:cc'/>\
             <port isolated='yes'/><ip address='192.168.100.1' prefix='24'><dhcp><range start='192.168.100.2' \
             end='192.168.100.9'/></dhcp></ip>\
             <portgroup name='eng' default='yes'><bandwidth><inbound average='500' burst='64'/></bandwidth></portgroup>\
             <portgroup name='ops'/></network>",
        )
        .unwrap();
        assert_eq!(
            published_xml(&def),
            "<network>\n  <name>a&amp;b</name>\n  \
             <uuid>a6b49429-d5fd-4c7e-8e1a-6d3c1b2e4f50</uuid>\n  \
             <forward mode='bridge'/>\n  <bridge name='keenbr0'/>\n  \
             <port isolated='yes'/>\n  \
             <portgroup name='eng' default='yes'>\n    <bandwidth>\n      \
             <inbound average='500' burst='64'/>\n    </bandwidth>\n  </portgroup>\n  \
             <portgroup name='ops'/>\n</network>\n"
        );
    }

    #[test]
    fn only_what_may_be_a_publication_is_withdrawn() {
        let nat = "<network><name>n</name><forward mode='nat'/><bridge name='virbr7'/>\
                   <ip address='10.7.0.1' prefix='24'/></network>";
        assert!(!may_be_publication(nat), "libvirt's own NAT network");
        let published = published_xml(&NetworkDef::parse(nat).unwrap());
        assert!(may_be_publication(&published));
        let macvtap = "<network><name>m</name><forward mode='vepa'><interface dev='eth1'/></forward></network>";
        assert!(may_be_publication(macvtap));
    }

    #[test]
    fn a_network_without_kernel_objects_is_published_as_defined() {
        let def = NetworkDef::parse(
            "<network><name>direct</name><uuid>a6b49429-d5fd-4c7e-8e1a-6d3c1b2e4f51</uuid>\
             <forward mode='vepa'><interface dev='eth1'/><interface dev='eth2'/></forward>\
             </network>",
        )
        .unwrap();
        assert_eq!(
            published_xml(&def),
            def.to_xml(crate::definition::FormatFlags::default())
        );
        assert!(published_xml(&def).contains("<interface dev='eth2'/>"));
    }
}

//! The status record on disk (`RUN/networks/NAME.json`): a schema of its
//! own, versioned, apart from the in-memory types it is converted from and
//! to, so that a change to those cannot change what a later daemon reads.
//!
//! Version 1 is the layout of the records virtnet wrote before records had
//! a version (which read as version 0), with `version` added; a record of
//! a later version than this daemon knows is refused, not misread. A new
//! layout gets a new version, and the conversions from the older ones stay.

mod firewall;
pub mod port;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use self::firewall::FirewallRecord;
use super::store::{NetworkStatus, Phase};
use crate::apply::dnsmasq::{DnsmasqInstance, DnsmasqPaths};
use crate::apply::pool::{InterfacePool, PoolMember};
use crate::apply::{RunningBridge, RunningNetwork};
use crate::definition::{ForwardMode, PciAddress};
use crate::plan::network::HostDevices;

/// The version of the records this daemon writes, and the latest it reads.
pub const STATUS_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a status record")]
    Json(#[from] serde_json::Error),
    #[error(
        "it is of version {found}, written by a later virtnet; this one reads up to version {STATUS_VERSION}"
    )]
    Newer { found: u32 },
}

/// A status record as read, with the version it was written in.
#[derive(Debug)]
pub struct Read {
    pub status: NetworkStatus,
    pub version: u32,
}

/// Reads a status record of this version or an earlier one.
pub fn read(bytes: &[u8]) -> Result<Read, RecordError> {
    let record: StatusRecord = serde_json::from_slice(bytes)?;
    if record.version > STATUS_VERSION {
        return Err(RecordError::Newer {
            found: record.version,
        });
    }
    Ok(Read {
        version: record.version,
        status: record.into(),
    })
}

/// The record of `status`, in this version.
pub fn write(status: &NetworkStatus) -> Result<Vec<u8>, RecordError> {
    Ok(serde_json::to_vec(&StatusRecord::from(status))?)
}

#[derive(Debug, Serialize, Deserialize)]
struct StatusRecord {
    /// Absent from the records of virtnet before versions: 0.
    #[serde(default)]
    version: u32,
    phase: PhaseRecord,
    definition: String,
    running: Option<NetworkRecord>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PhaseRecord {
    Starting,
    Running,
    Stopping,
}

#[derive(Debug, Serialize, Deserialize)]
struct NetworkRecord {
    name: String,
    uuid: String,
    bridge: Option<BridgeRecord>,
    firewall: Option<FirewallRecord>,
    dnsmasq: Option<DnsmasqRecord>,
    host_devices: Option<HostDevicesRecord>,
    pool: Option<PoolRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
struct BridgeRecord {
    name: String,
    ifindex: u32,
    mac: [u8; 6],
}

#[derive(Debug, Serialize, Deserialize)]
struct DnsmasqRecord {
    pid: u32,
    paths: PathsRecord,
}

#[derive(Debug, Serialize, Deserialize)]
struct PathsRecord {
    config: PathBuf,
    pid: PathBuf,
    hosts: PathBuf,
    addn_hosts: PathBuf,
    leases: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
enum HostDevicesRecord {
    Bridge(String),
    Netdevs(Vec<String>),
    PhysicalFunction(String),
    Pci(Vec<PciRecord>),
}

#[derive(Debug, Serialize, Deserialize)]
struct PciRecord {
    domain: u32,
    bus: u32,
    slot: u32,
    function: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct PoolRecord {
    mode: ModeRecord,
    members: Vec<MemberRecord>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ModeRecord {
    Nat,
    Route,
    Open,
    Bridge,
    Private,
    Vepa,
    Passthrough,
    Hostdev,
}

#[derive(Debug, Serialize, Deserialize)]
struct MemberRecord {
    device: String,
    connections: u32,
}

impl From<&NetworkStatus> for StatusRecord {
    fn from(status: &NetworkStatus) -> Self {
        Self {
            version: STATUS_VERSION,
            phase: match status.phase {
                Phase::Starting => PhaseRecord::Starting,
                Phase::Running => PhaseRecord::Running,
                Phase::Stopping => PhaseRecord::Stopping,
            },
            definition: status.definition.clone(),
            running: status.running.as_ref().map(NetworkRecord::from),
        }
    }
}

impl From<StatusRecord> for NetworkStatus {
    fn from(record: StatusRecord) -> Self {
        Self {
            phase: match record.phase {
                PhaseRecord::Starting => Phase::Starting,
                PhaseRecord::Running => Phase::Running,
                PhaseRecord::Stopping => Phase::Stopping,
            },
            definition: record.definition,
            running: record.running.map(RunningNetwork::from),
        }
    }
}

impl From<&RunningNetwork> for NetworkRecord {
    fn from(running: &RunningNetwork) -> Self {
        Self {
            name: running.name.clone(),
            uuid: running.uuid.clone(),
            bridge: running.bridge.as_ref().map(|bridge| BridgeRecord {
                name: bridge.name.clone(),
                ifindex: bridge.ifindex,
                mac: bridge.mac,
            }),
            firewall: running.firewall.as_ref().map(FirewallRecord::from),
            dnsmasq: running.dnsmasq.as_ref().map(|dnsmasq| DnsmasqRecord {
                pid: dnsmasq.pid,
                paths: PathsRecord {
                    config: dnsmasq.paths.config.clone(),
                    pid: dnsmasq.paths.pid.clone(),
                    hosts: dnsmasq.paths.hosts.clone(),
                    addn_hosts: dnsmasq.paths.addn_hosts.clone(),
                    leases: dnsmasq.paths.leases.clone(),
                },
            }),
            host_devices: running.host_devices.as_ref().map(HostDevicesRecord::from),
            pool: running.pool.as_ref().map(|pool| PoolRecord {
                mode: pool.mode.into(),
                members: pool
                    .members
                    .iter()
                    .map(|member| MemberRecord {
                        device: member.device.clone(),
                        connections: member.connections,
                    })
                    .collect(),
            }),
        }
    }
}

impl From<NetworkRecord> for RunningNetwork {
    fn from(record: NetworkRecord) -> Self {
        Self {
            name: record.name,
            uuid: record.uuid,
            bridge: record.bridge.map(|bridge| RunningBridge {
                name: bridge.name,
                ifindex: bridge.ifindex,
                mac: bridge.mac,
            }),
            firewall: record.firewall.map(Into::into),
            dnsmasq: record.dnsmasq.map(|dnsmasq| DnsmasqInstance {
                pid: dnsmasq.pid,
                paths: DnsmasqPaths {
                    config: dnsmasq.paths.config,
                    pid: dnsmasq.paths.pid,
                    hosts: dnsmasq.paths.hosts,
                    addn_hosts: dnsmasq.paths.addn_hosts,
                    leases: dnsmasq.paths.leases,
                },
            }),
            host_devices: record.host_devices.map(Into::into),
            pool: record.pool.map(|pool| InterfacePool {
                mode: pool.mode.into(),
                members: pool
                    .members
                    .into_iter()
                    .map(|member| PoolMember {
                        device: member.device,
                        connections: member.connections,
                    })
                    .collect(),
            }),
        }
    }
}

impl From<&HostDevices> for HostDevicesRecord {
    fn from(devices: &HostDevices) -> Self {
        match devices {
            HostDevices::Bridge(name) => Self::Bridge(name.clone()),
            HostDevices::Netdevs(names) => Self::Netdevs(names.clone()),
            HostDevices::PhysicalFunction(name) => Self::PhysicalFunction(name.clone()),
            HostDevices::Pci(addresses) => Self::Pci(
                addresses
                    .iter()
                    .map(|address| PciRecord {
                        domain: address.domain,
                        bus: address.bus,
                        slot: address.slot,
                        function: address.function,
                    })
                    .collect(),
            ),
        }
    }
}

impl From<HostDevicesRecord> for HostDevices {
    fn from(record: HostDevicesRecord) -> Self {
        match record {
            HostDevicesRecord::Bridge(name) => Self::Bridge(name),
            HostDevicesRecord::Netdevs(names) => Self::Netdevs(names),
            HostDevicesRecord::PhysicalFunction(name) => Self::PhysicalFunction(name),
            HostDevicesRecord::Pci(addresses) => Self::Pci(
                addresses
                    .into_iter()
                    .map(|address| PciAddress {
                        domain: address.domain,
                        bus: address.bus,
                        slot: address.slot,
                        function: address.function,
                    })
                    .collect(),
            ),
        }
    }
}

impl From<ForwardMode> for ModeRecord {
    fn from(mode: ForwardMode) -> Self {
        match mode {
            ForwardMode::Nat => Self::Nat,
            ForwardMode::Route => Self::Route,
            ForwardMode::Open => Self::Open,
            ForwardMode::Bridge => Self::Bridge,
            ForwardMode::Private => Self::Private,
            ForwardMode::Vepa => Self::Vepa,
            ForwardMode::Passthrough => Self::Passthrough,
            ForwardMode::Hostdev => Self::Hostdev,
        }
    }
}

impl From<ModeRecord> for ForwardMode {
    fn from(record: ModeRecord) -> Self {
        match record {
            ModeRecord::Nat => Self::Nat,
            ModeRecord::Route => Self::Route,
            ModeRecord::Open => Self::Open,
            ModeRecord::Bridge => Self::Bridge,
            ModeRecord::Private => Self::Private,
            ModeRecord::Vepa => Self::Vepa,
            ModeRecord::Passthrough => Self::Passthrough,
            ModeRecord::Hostdev => Self::Hostdev,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records of the release before versions, as its daemon wrote
    /// them (tests/fixtures/README.md).
    const PREVIOUS_RELEASE: [&str; 7] = [
        include_str!("../../../tests/fixtures/status-v0/dual-stack.json"),
        include_str!("../../../tests/fixtures/status-v0/host-bridge.json"),
        include_str!("../../../tests/fixtures/status-v0/host-only.json"),
        include_str!("../../../tests/fixtures/status-v0/keennet.json"),
        include_str!("../../../tests/fixtures/status-v0/limited.json"),
        include_str!("../../../tests/fixtures/status-v0/macvtap-vepa.json"),
        include_str!("../../../tests/fixtures/status-v0/open.json"),
    ];

    #[test]
    fn records_of_the_previous_release_are_read_whole() {
        for text in PREVIOUS_RELEASE {
            let old = read(text.as_bytes()).expect("a record of the previous release");
            assert_eq!(old.version, 0);
            // Written again, the record says all the old one said, and its
            // version.
            let again = write(&old.status).unwrap();
            let written: serde_json::Value = serde_json::from_slice(&again).unwrap();
            let mut expected: serde_json::Value = serde_json::from_str(text).unwrap();
            expected["version"] = STATUS_VERSION.into();
            assert_eq!(written, expected);
            assert_eq!(read(&again).unwrap().status, old.status);
        }
    }

    #[test]
    fn every_part_of_a_running_network_is_in_the_fixtures() {
        let statuses: Vec<NetworkStatus> = PREVIOUS_RELEASE
            .iter()
            .map(|text| read(text.as_bytes()).unwrap().status)
            .collect();
        let running: Vec<&RunningNetwork> =
            statuses.iter().filter_map(|s| s.running.as_ref()).collect();
        let rules: Vec<&crate::plan::firewall::Rule> = running
            .iter()
            .filter_map(|network| network.firewall.as_ref())
            .flat_map(|plan| {
                plan.to_bridge
                    .iter()
                    .chain(&plan.from_bridge)
                    .chain(&plan.nat)
            })
            .collect();
        use crate::plan::firewall::{Action, Condition};
        assert!(
            rules
                .iter()
                .any(|rule| matches!(rule.action, Action::Snat { .. }))
        );
        assert!(
            rules
                .iter()
                .any(|rule| matches!(rule.action, Action::Masquerade { .. }))
        );
        assert!(
            rules
                .iter()
                .any(|rule| rule.conditions.contains(&Condition::TcpOrUdp))
        );
        assert!(running.iter().any(|network| {
            network
                .firewall
                .as_ref()
                .is_some_and(|plan| plan.outbound_limit.is_some())
        }));
        assert!(running.iter().any(|network| network.pool.is_some()));
        assert!(
            running
                .iter()
                .any(|network| matches!(network.host_devices, Some(HostDevices::Bridge(_))))
        );
        assert!(running.iter().any(|network| network.dnsmasq.is_some()));
    }

    #[test]
    fn a_record_of_a_later_version_is_refused() {
        let later = PREVIOUS_RELEASE[3].replacen('{', "{\"version\":2,", 1);
        let error = read(later.as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "it is of version 2, written by a later virtnet; this one reads up to version 1"
        );
    }
}

//! What a running network has on the host: everything needed to stop it,
//! or to find it again after a restart (its status record, in
//! `state::record`, keeps it on disk).

use crate::plan::firewall::FirewallPlan;
use crate::plan::network::HostDevices;

use super::dnsmasq::DnsmasqInstance;
use super::dnsmasq::leases;
use super::pool::InterfacePool;

/// The bridge a network created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningBridge {
    pub name: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
}

/// What a running network has on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningNetwork {
    pub name: String,
    pub uuid: String,
    pub bridge: Option<RunningBridge>,
    pub firewall: Option<FirewallPlan>,
    pub dnsmasq: Option<DnsmasqInstance>,
    /// Devices handed to guests, for modes without a bridge of their own.
    pub host_devices: Option<HostDevices>,
    /// Those devices with their connection counts, for port allocation.
    pub pool: Option<InterfacePool>,
}

impl RunningNetwork {
    /// The DHCP leases still valid at `now` (seconds since the epoch), from
    /// the network's lease status file, first brought in line with its
    /// dnsmasq's lease file.
    pub fn leases(&self, now: i64) -> Vec<leases::Lease> {
        let Some(dnsmasq) = &self.dnsmasq else {
            return Vec::new();
        };
        match dnsmasq.paths.sync_lease_status() {
            Ok(leases) => leases
                .into_iter()
                .filter(|lease| lease.is_active(now))
                .collect(),
            Err(error) => {
                tracing::warn!(network = self.name, "cannot read DHCP leases: {error}");
                Vec::new()
            }
        }
    }
}

//! DHCP leases: net-dhcp-leases, and the lease status files kept in step
//! with dnsmasq's.

use crate::definition::Uuid;

use super::error::Result;
use super::registry::lock_state;
use super::{LeaseRecord, Service};

impl Service {
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
                .and_then(|live| live.running.as_ref()?.dnsmasq.clone());
            drop(state);
            if let Some(dnsmasq) = dnsmasq {
                let synced =
                    tokio::task::spawn_blocking(move || dnsmasq.paths.sync_lease_status()).await;
                if let Ok(Err(error)) = synced {
                    tracing::warn!(network = entry.name, "cannot record DHCP leases: {error}");
                }
            }
        }
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
        // The lease files are read (and the status rewritten) off the
        // runtime's thread.
        let reader = running.clone();
        let leases = tokio::task::spawn_blocking(move || reader.leases(now))
            .await
            .unwrap_or_default();
        Ok(leases
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

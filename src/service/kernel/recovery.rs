//! The kernel driver at daemon start: the persistent networks, and the
//! networks an earlier run left active, taken over.

use crate::apply::StopError;
use crate::apply::recover::{self, Adoption, HostSnapshot};
use crate::definition::{NetworkDef, error_chain};
use crate::plan::openings::OpeningNeeds;
use crate::state::store::{NetworkStatus, Phase, StoreError};

use super::super::driver::{Adopted, Loaded};
use super::super::error::Result;
use super::{Kernel, on_disk};

impl Kernel {
    /// Reads the persistent networks, and takes over the networks an
    /// earlier run left active: those intact are adopted as they are (only
    /// missing objects are re-created); those whose bridge vanished, and
    /// interrupted starts and stops, are cleaned up. Then virtnet's table
    /// is made exactly what the adopted networks need. Problems are logged.
    pub(super) async fn load_all(&self) -> Result<Loaded> {
        let loaded = self.load_networks().await?;
        if let Err(error) = self.reconcile_rules().await {
            tracing::error!(
                "cannot check virtnet's nftables table: {}",
                error_chain(&error)
            );
        }
        Ok(loaded)
    }

    async fn load_networks(&self) -> Result<Loaded> {
        let env = self.env.clone();
        let read = on_disk(&self.store, move |store| {
            store.prepare()?;
            if let Err(error) = env.remove_temporaries() {
                tracing::error!("cannot clean up dnsmasq's directories: {error}");
            }
            Ok::<_, StoreError>((
                store.load_networks(),
                store.load_statuses(),
                store.load_ports(),
            ))
        });
        let ((stored, stored_errors), (statuses, errors), (ports, port_errors)) = read.await?;
        for error in stored_errors.iter().chain(&errors).chain(&port_errors) {
            tracing::error!("{}", error_chain(error));
        }
        let mut loaded = Loaded {
            stored,
            adopted: Vec::new(),
            ports,
        };
        if statuses.is_empty() {
            return Ok(loaded);
        }
        let host = HostSnapshot::read().await?;
        for status in statuses {
            let def = match NetworkDef::parse(&status.definition) {
                Ok(def) => def,
                Err(error) => {
                    tracing::error!("ignoring a status file: {}", error_chain(&error));
                    continue;
                }
            };
            if let Some(found) = self.recover(def, status, &host).await {
                loaded.adopted.push(found);
            }
        }
        Ok(loaded)
    }

    async fn recover(
        &self,
        def: NetworkDef,
        status: NetworkStatus,
        host: &HostSnapshot,
    ) -> Option<Adopted> {
        let name = def.name.to_string();
        let known_bridge = status
            .running
            .as_ref()
            .and_then(|running| running.bridge.as_ref())
            .map(|bridge| bridge.ifindex);
        // An interrupted start may have put the bridge into a firewalld
        // zone, which keeps its name after the bridge is gone.
        let bridge_name = status
            .running
            .as_ref()
            .and_then(|running| running.bridge.as_ref())
            .map(|bridge| bridge.name.clone())
            .or_else(|| def.bridge.name.as_ref().map(ToString::to_string));
        if let (Phase::Running, Some(mut running)) = (status.phase, status.running) {
            match recover::adopt(&def, &mut running, &self.env, &self.firewall, host).await {
                Ok(Adoption::Adopted { repaired }) => {
                    if repaired.is_empty() {
                        tracing::info!(network = name, "network taken over, intact");
                    } else {
                        tracing::warn!(
                            network = name,
                            "network taken over; re-created {}",
                            repaired.join(", ")
                        );
                        if let Err(error) =
                            self.save_status(&def, Phase::Running, Some(&running)).await
                        {
                            tracing::error!(network = name, "{}", error_chain(&error));
                        }
                    }
                    // firewalld forgets zone assignments when it restarts:
                    // a network taken over asks again.
                    if let Err(error) = self.join_zone(&def, &running).await {
                        tracing::error!(network = name, "{}", error_chain(&error));
                    }
                    if let Some(needs) = running
                        .bridge
                        .as_ref()
                        .and_then(|bridge| OpeningNeeds::of(&def, &bridge.name))
                    {
                        self.openings.adopt(needs).await;
                    }
                    return Some(Adopted {
                        def,
                        running: Some(running),
                    });
                }
                Ok(Adoption::BridgeVanished) => {
                    tracing::warn!(
                        network = name,
                        "the network's bridge is gone; marking it inactive"
                    );
                }
                Err(error) => {
                    tracing::error!(
                        network = name,
                        "cannot take the network over, stopping it: {}",
                        error_chain(&error)
                    );
                }
            }
        } else {
            tracing::warn!(
                network = name,
                "finishing an interrupted {}",
                match status.phase {
                    Phase::Starting => "start (undoing it)",
                    _ => "stop",
                }
            );
        }
        if let Some(bridge) = &bridge_name {
            self.leave_zone_of(&def, bridge).await;
        }
        let errors = recover::clean_up(&def, &self.env, known_bridge).await;
        if errors.is_empty() {
            self.delete_status(&name).await;
        } else {
            let failure = StopError {
                network: name,
                errors,
            };
            self.left_over(&def, known_bridge, &failure);
        }
        None
    }
}

//! firewalld, when it runs: each network's bridge goes into the zone its
//! definition asks for ([`ZoneRequest`]), as libvirt ≥ 8.10 does. With
//! firewalld's nftables backend, an interface in no zone is in the default
//! zone, whose input chain rejects the guests' DHCP and DNS and whose
//! forward chain rejects everything they send on; nftables accepts a packet
//! only if every table's base chains accept it, so virtnet's own table
//! cannot make up for that. virtnet's table stays as it is.
//!
//! firewalld forgets runtime interface assignments when it reloads, and a
//! firewalld started after virtnetd has none: [`Firewalld`] remembers what
//! each running network asked for, and [`Firewalld::restore`] asks again
//! (virtnetd runs it on firewalld's `Reloaded` signal and when firewalld
//! takes its bus name, see [`FirewalldEvents`]).
//!
//! Errors follow libvirt: without firewalld (no system bus, or nobody owns
//! firewalld's name) a network starts as usual, unless its definition names
//! a zone; with firewalld, a bridge that cannot be put into its zone fails
//! the start.
//!
//! # The zones where libvirt's package is not installed
//!
//! The `libvirt` and `libvirt-routed` zones and their policies come with
//! libvirt's package, in /usr/lib/firewalld. Where they are missing,
//! virtnet adds its own definitions of them (`plan::firewalld`) to
//! firewalld's permanent configuration through its D-Bus API (`addZone2`,
//! `addPolicy`, which firewalld writes to /etc/firewalld) and reloads
//! firewalld, the first time a network needs them. Not shipped as files in
//! virtnet's packages, because:
//! - libvirt's package owns /usr/lib/firewalld/zones/libvirt.xml and the
//!   policies beside it; virtnet's packages shipping the same paths would
//!   conflict with it, and other names would not be the zones libvirt and
//!   its users (`<bridge zone=…>`, firewall-cmd scripts) expect;
//! - firewalld's own API validates the definitions against the running
//!   firewalld (a policy needs firewalld ≥ 0.9) and works for every way of
//!   installing virtnet, and the tests exercise it with the real firewalld;
//! - definitions in /etc/firewalld are the administrator's to change, as
//!   firewalld intends; virtnet never touches a zone that exists.
//!
//! The reload is what `firewall-cmd --reload` does after any permanent
//! change, and happens once: later starts find the zones.

mod bus;
mod events;

use std::collections::BTreeMap;

use zbus::Connection;

use crate::plan::firewalld::{DefaultZone, ZoneRequest};

use bus::FirewalldBus;
pub use events::{FirewalldEvent, FirewalldEvents};

#[derive(Debug, thiserror::Error)]
pub enum FirewalldError {
    /// libvirt's wording (VIR_ERR_INTERNAL_ERROR).
    #[error("zone {zone} requested for network {network} but firewalld is not active")]
    NotActive { zone: String, network: String },
    #[error("cannot put bridge {bridge} into firewalld zone '{zone}'")]
    SetZone {
        zone: String,
        bridge: String,
        #[source]
        source: zbus::Error,
    },
    #[error(
        "firewalld has no zone '{zone}' (it comes with libvirt's package), and adding virtnet's definition of it failed"
    )]
    Install {
        zone: &'static str,
        #[source]
        source: zbus::Error,
    },
    #[error("firewalld still has no zone '{zone}' after virtnet added its definition and reloaded")]
    StillMissing { zone: &'static str },
    #[error("cannot ask firewalld")]
    Bus(#[source] zbus::Error),
}

/// What a running network asked of firewalld, to ask again after a reload.
#[derive(Debug, Clone)]
struct Wanted {
    network: String,
    request: ZoneRequest,
}

/// Puts bridges into firewalld's zones and keeps them there.
#[derive(Default)]
pub struct Firewalld {
    /// One operation at a time: a restore must not put back a bridge that
    /// a stop is taking out.
    inner: tokio::sync::Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The system bus, connected when first needed and again after it
    /// failed.
    connection: Option<Connection>,
    /// By bridge, what each running network asked for.
    wanted: BTreeMap<String, Wanted>,
}

impl Firewalld {
    /// Puts the bridge of `network` into the zone `request` names, when
    /// firewalld runs, and remembers it for [`Firewalld::restore`].
    pub async fn join(
        &self,
        network: &str,
        bridge: &str,
        request: &ZoneRequest,
    ) -> Result<(), FirewalldError> {
        if *request == ZoneRequest::Nothing {
            return Ok(());
        }
        let mut inner = self.inner.lock().await;
        inner.assign(network, bridge, request).await?;
        let wanted = Wanted {
            network: network.to_owned(),
            request: request.clone(),
        };
        inner.wanted.insert(bridge.to_owned(), wanted);
        Ok(())
    }

    /// Takes `bridge` out of its zone (firewalld keeps a name in a zone
    /// after the link is gone, and the next network with that bridge name
    /// may want another zone), and forgets it.
    pub async fn leave(&self, bridge: &str, request: &ZoneRequest) -> Result<(), FirewalldError> {
        let mut inner = self.inner.lock().await;
        inner.wanted.remove(bridge);
        if *request == ZoneRequest::Nothing {
            return Ok(());
        }
        let Some(connection) = inner.running().await else {
            return Ok(());
        };
        FirewalldBus::new(&connection)
            .remove_interface(bridge)
            .await
            .map_err(FirewalldError::Bus)
    }

    /// Puts every running network's bridge back into its zone: after
    /// firewalld reloaded (which empties the zones' runtime interfaces) or
    /// started. Failures are logged, each network on its own.
    pub async fn restore(&self) {
        let mut inner = self.inner.lock().await;
        let wanted: Vec<(String, Wanted)> = inner
            .wanted
            .iter()
            .map(|(bridge, wanted)| (bridge.clone(), wanted.clone()))
            .collect();
        let mut restored = Vec::new();
        for (bridge, wanted) in wanted {
            match inner
                .assign(&wanted.network, &bridge, &wanted.request)
                .await
            {
                Ok(()) => restored.push(bridge),
                Err(error) => tracing::error!(
                    network = wanted.network,
                    "{}",
                    crate::definition::error_chain(&error)
                ),
            }
        }
        if !restored.is_empty() {
            tracing::info!(
                "firewalld: bridges put back into their zones: {}",
                restored.join(", ")
            );
        }
    }
}

impl Inner {
    /// The system bus, when firewalld runs on it.
    async fn running(&mut self) -> Option<Connection> {
        // A connection that fails is made again once: the bus may have
        // restarted since.
        for _ in 0..2 {
            if self.connection.is_none() {
                match Connection::system().await {
                    Ok(connection) => self.connection = Some(connection),
                    Err(error) => {
                        tracing::debug!("no system bus, so no firewalld: {error}");
                        return None;
                    }
                }
            }
            let connection = self.connection.clone()?;
            match FirewalldBus::new(&connection).is_running().await {
                Ok(true) => return Some(connection),
                Ok(false) => return None,
                Err(error) => {
                    tracing::debug!("cannot ask the system bus for firewalld: {error}");
                    self.connection = None;
                }
            }
        }
        None
    }

    async fn assign(
        &mut self,
        network: &str,
        bridge: &str,
        request: &ZoneRequest,
    ) -> Result<(), FirewalldError> {
        let Some(connection) = self.running().await else {
            return match request {
                ZoneRequest::Named(zone) => Err(FirewalldError::NotActive {
                    zone: zone.clone(),
                    network: network.to_owned(),
                }),
                _ => Ok(()),
            };
        };
        let firewalld = FirewalldBus::new(&connection);
        let zone = match request {
            ZoneRequest::Nothing => return Ok(()),
            ZoneRequest::Named(zone) => zone.as_str(),
            ZoneRequest::Default(zone) => {
                install_if_missing(&firewalld, *zone).await?;
                zone.name()
            }
        };
        firewalld
            .change_zone_of_interface(zone, bridge)
            .await
            .map_err(|source| FirewalldError::SetZone {
                zone: zone.to_owned(),
                bridge: bridge.to_owned(),
                source,
            })
    }
}

/// Adds virtnet's definitions of `zone` and its policies to firewalld's
/// permanent configuration, if firewalld does not have them, and reloads.
async fn install_if_missing(
    firewalld: &FirewalldBus<'_>,
    zone: DefaultZone,
) -> Result<(), FirewalldError> {
    let set = zone.definitions();
    let (zones, policies) = runtime_names(firewalld).await?;
    if set.is_installed(&zones, &policies) {
        return Ok(());
    }
    let install = |source| FirewalldError::Install {
        zone: set.zone.name,
        source,
    };
    // The permanent configuration may have them already, not yet loaded.
    let permanent_zones = firewalld.permanent_zones().await.map_err(install)?;
    let permanent_policies = firewalld.permanent_policies().await.map_err(install)?;
    if !permanent_zones.iter().any(|name| name == set.zone.name) {
        firewalld
            .add_permanent_zone(&set.zone)
            .await
            .map_err(install)?;
    }
    for policy in set.policies {
        if !permanent_policies.iter().any(|name| name == policy.name) {
            firewalld
                .add_permanent_policy(policy)
                .await
                .map_err(install)?;
        }
    }
    tracing::info!(
        "firewalld had no zone '{}': added virtnet's definition of it and its policies, reloading firewalld",
        set.zone.name
    );
    firewalld.reload().await.map_err(install)?;
    let (zones, policies) = runtime_names(firewalld).await?;
    if !set.is_installed(&zones, &policies) {
        return Err(FirewalldError::StillMissing {
            zone: set.zone.name,
        });
    }
    Ok(())
}

async fn runtime_names(
    firewalld: &FirewalldBus<'_>,
) -> Result<(Vec<String>, Vec<String>), FirewalldError> {
    let zones = firewalld.zones().await.map_err(FirewalldError::Bus)?;
    let policies = firewalld.policies().await.map_err(FirewalldError::Bus)?;
    Ok((zones, policies))
}

/// What firewalld says of a bridge (for `virtnet doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeZone {
    /// No system bus, or nobody owns firewalld's name on it.
    FirewalldNotRunning,
    /// firewalld runs; the bridge is in no zone of its own (so its traffic
    /// meets the default zone's rules).
    NoZone,
    InZone(String),
}

/// Asks firewalld, over a connection of its own to the bus at `address`
/// (the system bus when `None`), which zone `bridge` is in.
pub async fn bridge_zone(
    address: Option<&str>,
    bridge: &str,
) -> Result<BridgeZone, FirewalldError> {
    let connected = match address {
        None => Connection::system().await,
        Some(address) => zbus::connection::Builder::address(address).build().await,
    };
    let Ok(connection) = connected else {
        return Ok(BridgeZone::FirewalldNotRunning);
    };
    let firewalld = FirewalldBus::new(&connection);
    if !firewalld.is_running().await.map_err(FirewalldError::Bus)? {
        return Ok(BridgeZone::FirewalldNotRunning);
    }
    let zone = firewalld
        .zone_of_interface(bridge)
        .await
        .map_err(FirewalldError::Bus)?;
    Ok(zone.map_or(BridgeZone::NoZone, BridgeZone::InZone))
}

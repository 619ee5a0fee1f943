//! The lifecycle verbs: load and autostart, net-define, net-create,
//! net-start, net-destroy, net-undefine, net-autostart, net-dumpxml.

use std::collections::BTreeMap;

use crate::definition::{FormatFlags, NetworkDef, Uuid};
use crate::plan::firewall;
use crate::state::store::StoredNetwork;

use super::claim::Claimed;
use super::error::{Result, ServiceError};
use super::registry::{Live, State, lock_state};
use super::{Event, Service, Summary, neighbour};

impl Service {
    /// Loads what the driver has (the test driver: its `default` network;
    /// the kernel driver: definitions on disk, and the networks an earlier
    /// run left active, taken over).
    pub async fn load(&self) -> Result<()> {
        let loaded = self.driver.load().await?;
        let mut states: BTreeMap<String, State> = loaded
            .stored
            .into_iter()
            .map(|stored| {
                let name = stored.def.name.to_string();
                let state = State {
                    config: Some(stored.def),
                    autostart: stored.autostart,
                    ..State::default()
                };
                (name, state)
            })
            .collect();
        for found in loaded.adopted {
            let state = states.entry(found.def.name.to_string()).or_default();
            state.live = Some(Live {
                def: found.def,
                running: found.running,
            });
        }
        self.restore_ports(&mut states, loaded.ports).await;
        for state in states.into_values() {
            self.insert(state);
        }
        Ok(())
    }

    /// Starts the autostart networks that are not running. A network that
    /// fails to start is logged and does not hold up the others.
    pub async fn autostart(&self) {
        let autostart: Vec<(Uuid, String)> = self
            .registry()
            .slots
            .values()
            .filter(|slot| slot.summary.autostart && !slot.summary.active)
            .map(|slot| (slot.summary.uuid, slot.summary.name.clone()))
            .collect();
        for (uuid, name) in autostart {
            match self.start(&uuid).await {
                Ok(()) => tracing::info!(network = name, "autostarted"),
                Err(error) => tracing::error!(
                    network = name,
                    "cannot autostart network: {}",
                    crate::definition::error_chain(&error)
                ),
            }
        }
    }

    /// What libvirt's daemon does on SIGHUP: the persistent definitions
    /// are read again (new ones appear, changed ones replace the persistent
    /// definition, which a running network uses from its next start; the
    /// autostart flags follow their links), the firewall is put right (and
    /// the bridges put back into their firewalld zones), and the autostart
    /// networks that are not running are started.
    pub async fn reload(&self) {
        for stored in self.driver.load_configs().await {
            if let Err(error) = self.take_config(stored).await {
                tracing::error!(
                    "cannot take a definition in: {}",
                    crate::definition::error_chain(&error)
                );
            }
        }
        if let Err(error) = self.reload_firewall().await {
            tracing::error!(
                "cannot put virtnet's nftables table right: {}",
                crate::definition::error_chain(&error)
            );
        }
        self.restore_firewalld_zones().await;
        self.autostart().await;
    }

    /// A persistent definition read from disk, with its autostart flag.
    async fn take_config(&self, stored: StoredNetwork) -> Result<()> {
        let def = stored.def;
        let existing = self
            .registry()
            .slots
            .get(def.name.as_str())
            .map(|slot| slot.entry.clone());
        let Some(entry) = existing else {
            self.registry().check_assignable(&def, false)?;
            self.insert(State {
                config: Some(def),
                autostart: stored.autostart,
                ..State::default()
            });
            return Ok(());
        };
        if entry.uuid != def.uuid {
            return Err(ServiceError::OperationFailed(format!(
                "network '{}' already exists with uuid {}",
                def.name, entry.uuid
            )));
        }
        let mut state = lock_state(&entry).await;
        if state.gone {
            return Ok(());
        }
        state.config = Some(def);
        state.autostart = stored.autostart;
        self.publish(&entry, &mut state);
        Ok(())
    }

    /// net-define: a new persistent network, or the new persistent
    /// definition of an existing one (used from its next start when active).
    pub async fn define(&self, xml: &str) -> Result<Summary> {
        let Claimed {
            def,
            entry,
            created,
            mut state,
        } = self.claim_locked(xml, false).await?;
        if let Err(error) = self.driver.save_config(&def).await {
            if created {
                self.unclaim(&entry, &mut state);
            }
            return Err(error);
        }
        state.config = Some(def);
        self.publish(&entry, &mut state);
        self.emit(entry.uuid, Event::Defined);
        self.summary(&entry.uuid)
    }

    /// net-create: starts a transient network (or an inactive persistent
    /// one with this definition, leaving its persistent one as it is).
    pub async fn create(&self, xml: &str) -> Result<Summary> {
        let Claimed {
            def,
            entry,
            created,
            mut state,
        } = self.claim_locked(xml, true).await?;
        if state.live.is_some() {
            return Err(ServiceError::OperationInvalid(format!(
                "network is already active as '{}'",
                entry.name
            )));
        }
        match self.realize(&entry.name, def).await {
            Ok(live) => {
                state.live = Some(live);
                self.publish(&entry, &mut state);
                self.emit(entry.uuid, Event::Started);
                self.summary(&entry.uuid)
            }
            Err(error) => {
                if created {
                    self.unclaim(&entry, &mut state);
                } else {
                    self.publish(&entry, &mut state);
                }
                Err(error)
            }
        }
    }

    /// Starts `def`; the network as it then runs.
    async fn realize(&self, name: &str, def: NetworkDef) -> Result<Live> {
        let reserved = self.registry().bridges_except(name);
        let running = self.driver.start(&def, &reserved).await?;
        // What the kernel realized shows in the live XML as libvirt's does.
        let def = match running {
            Some(_) => firewall::with_masquerade_ports(def),
            None => def,
        };
        Ok(Live { def, running })
    }

    /// net-start.
    pub async fn start(&self, uuid: &Uuid) -> Result<()> {
        let (entry, mut state) = self.lock(uuid).await?;
        if state.live.is_some() {
            return Err(ServiceError::OperationInvalid(
                "network is already active".into(),
            ));
        }
        let Some(mut def) = state.config.clone() else {
            return Err(ServiceError::NoSuchUuid(uuid.to_string()));
        };
        let foreign = self.foreign().await?;
        if def
            .bridge
            .name
            .as_ref()
            .is_none_or(|name| name.is_template())
        {
            // A definition from an older file may still lack its names.
            let mut links = self.driver.host_links().await?;
            if let Some(foreign) = &foreign {
                links.extend(foreign.bridges_except(uuid));
            }
            self.assign_bridge(&self.registry(), &mut def, &links)?;
        }
        if let Some(foreign) = &foreign {
            neighbour::check(&def, true, &foreign.label, &foreign.networks)?;
        }
        state.live = Some(self.realize(&entry.name, def).await?);
        self.publish(&entry, &mut state);
        self.emit(entry.uuid, Event::Started);
        Ok(())
    }

    /// net-destroy. A transient network is gone afterwards.
    pub async fn destroy(&self, uuid: &Uuid) -> Result<()> {
        let (entry, mut state) = self.lock(uuid).await?;
        let Some(live) = state.live.take() else {
            return Err(ServiceError::OperationInvalid(format!(
                "network '{}' is not active",
                entry.name
            )));
        };
        let stopped = match &live.running {
            Some(running) => self.driver.stop(&live.def, running).await,
            None => Ok(()),
        };
        self.forget_ports(&entry.name, &mut state).await;
        // Whatever stopping left behind, the network is down; its status
        // file (kept on failure) lets the next daemon start finish the job.
        self.publish(&entry, &mut state);
        self.emit(entry.uuid, Event::Stopped);
        stopped
    }

    /// net-undefine: an active network stays up, as a transient one.
    pub async fn undefine(&self, uuid: &Uuid) -> Result<()> {
        let (entry, mut state) = self.lock(uuid).await?;
        if state.config.is_none() {
            return Err(ServiceError::OperationInvalid(
                "can't undefine transient network".into(),
            ));
        }
        self.driver.delete_config(&entry.name).await?;
        state.config = None;
        state.autostart = false;
        self.publish(&entry, &mut state);
        self.emit(entry.uuid, Event::Undefined);
        Ok(())
    }

    pub async fn set_autostart(&self, uuid: &Uuid, autostart: bool) -> Result<()> {
        let (entry, mut state) = self.lock(uuid).await?;
        if state.config.is_none() {
            return Err(ServiceError::OperationInvalid(
                "cannot set autostart for transient network".into(),
            ));
        }
        self.driver.set_autostart(&entry.name, autostart).await?;
        state.autostart = autostart;
        self.publish(&entry, &mut state);
        Ok(())
    }

    /// The definition network `uuid` runs with; `None` when not running.
    pub async fn live_definition(&self, uuid: &Uuid) -> Option<NetworkDef> {
        let (_, state) = self.lock(uuid).await.ok()?;
        state.live.as_ref().map(|live| live.def.clone())
    }

    /// net-dumpxml: the live definition of an active network, or with
    /// `inactive` the persistent one.
    pub async fn xml(&self, uuid: &Uuid, inactive: bool) -> Result<String> {
        let (_, state) = self.lock(uuid).await?;
        let def = if inactive {
            state.config.as_ref().or(state.current())
        } else {
            state.current()
        };
        def.map(|def| def.to_xml(FormatFlags { inactive }))
            .ok_or_else(|| ServiceError::NoSuchUuid(uuid.to_string()))
    }

    /// Waits for the teardowns of stopped networks still running in the
    /// background (before the daemon exits, say).
    pub async fn settle(&self) {
        self.driver.settle().await;
    }
}

//! net-update on the live network and the persistent definition, and the
//! firewall kept right.

use std::sync::Arc;

use crate::definition::{NetworkDef, UpdateCommand, UpdateSection, Uuid};

use super::error::{Result, ServiceError};
use super::registry::{Entry, Live, State};
use super::{Service, update_flags};

impl Service {
    /// net-update, with libvirt's flags: the live network (changed in
    /// place, without restarting it), the persistent definition, or both.
    pub async fn update(
        &self,
        uuid: &Uuid,
        command: u32,
        section: u32,
        parent_index: i32,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        let command = UpdateCommand::from_code(command).ok_or_else(|| {
            ServiceError::InvalidArgument(format!("unrecognized network update command {command}"))
        })?;
        let section = UpdateSection::from_code(section).ok_or_else(|| {
            ServiceError::InvalidArgument(format!("unrecognized network update section {section}"))
        })?;
        let (entry, mut state) = self.lock(uuid).await?;
        let flags = affected(&state, flags)?;
        let config = match (&state.config, flags & update_flags::CONFIG != 0) {
            (Some(config), true) => {
                let mut config = config.clone();
                config.update(command, section, parent_index, xml)?;
                Some(config)
            }
            _ => None,
        };
        let live = match (&state.live, flags & update_flags::LIVE != 0) {
            (Some(live), true) => {
                let mut def = live.def.clone();
                def.update(command, section, parent_index, xml)?;
                Some(def)
            }
            _ => None,
        };
        self.replace_definitions(&entry, &mut state, live, config)
            .await
    }

    /// Puts `live` in place of the running network's definition (the
    /// network brought in line with it) and `config` in place of the
    /// persistent one (saved), each when given.
    pub(super) async fn replace_definitions(
        &self,
        entry: &Arc<Entry>,
        state: &mut State,
        live: Option<NetworkDef>,
        config: Option<NetworkDef>,
    ) -> Result<()> {
        if let Some(def) = live {
            let running = match state.live.as_mut() {
                Some(Live {
                    def: old,
                    running: Some(running),
                }) => match self.driver.refresh(old, &def, running).await {
                    Ok(refreshed) => Some(refreshed),
                    Err(failed) => {
                        *running = failed.running;
                        return Err(failed.error);
                    }
                },
                _ => None,
            };
            if let Some(neighbour) = &self.neighbour {
                neighbour.live_changed(&def);
            }
            state.live = Some(Live { def, running });
        }
        if let Some(config) = config {
            self.driver.save_config(&config).await?;
            state.config = Some(config);
        }
        self.publish(entry, state);
        Ok(())
    }

    /// Makes virtnet's table exactly what the active networks need (after
    /// `nft flush ruleset`, a rule removed or added by hand, say): whatever
    /// is missing, extra or altered is put right in one transaction, what
    /// is right is left alone. Returns whether anything was out of place.
    pub async fn reload_firewall(&self) -> Result<bool> {
        self.driver.restore_rules().await
    }

    /// Puts the running networks' bridges back into their firewalld zones,
    /// which firewalld empties when it reloads or restarts.
    pub async fn restore_firewalld_zones(&self) {
        self.driver.restore_zones().await;
    }

    /// Follows the changes others make to virtnet's table; `None` for the
    /// test driver, which has none.
    pub fn watch_firewall(&self) -> Option<std::io::Result<crate::apply::firewall::TableWatch>> {
        self.driver.watch_rules()
    }
}

/// The definitions a change with libvirt's `flags` affects (LIVE, CONFIG,
/// or, with neither, the live one when active, else the persistent one),
/// refused as libvirt refuses them when they are not there.
pub(super) fn affected(state: &State, flags: u32) -> Result<u32> {
    let mut flags = flags & (update_flags::LIVE | update_flags::CONFIG);
    if flags == 0 {
        flags = if state.live.is_some() {
            update_flags::LIVE
        } else {
            update_flags::CONFIG
        };
    }
    if flags & update_flags::CONFIG != 0 && state.config.is_none() {
        return Err(ServiceError::OperationInvalid(
            "cannot change persistent config of a transient network".into(),
        ));
    }
    if flags & update_flags::LIVE != 0 && state.live.is_none() {
        return Err(ServiceError::OperationInvalid(
            "network is not running".into(),
        ));
    }
    Ok(flags)
}

//! New definitions (net-define, net-create): parsed, checked, their bridge
//! and MAC named, and registered under their network's lock.

use std::sync::Arc;

use crate::definition::{BridgeName, ForwardMode, NetworkDef};
use crate::plan::naming::{self, Requested};

use super::error::{Result, ServiceError};
use super::registry::{Entry, Held, Registry, Slot, State, lock_state};
use super::{Foreign, Service, Summary, neighbour};

/// What [`Service::claim_locked`] gives: the definition, its network
/// (new or not) and that network's lock.
pub(super) struct Claimed {
    pub(super) def: NetworkDef,
    pub(super) entry: Arc<Entry>,
    pub(super) created: bool,
    pub(super) state: tokio::sync::OwnedMutexGuard<State>,
}

impl Service {
    /// Parses and checks a definition as net-define and net-create do; the
    /// kernel driver names the bridge and its MAC now (as libvirt does),
    /// so that `net-dumpxml` shows them.
    pub(super) async fn prepare(
        &self,
        xml: &str,
    ) -> Result<(NetworkDef, Vec<String>, Option<Foreign>)> {
        let def = NetworkDef::parse(xml)?;
        def.validate()?;
        let foreign = self.foreign().await?;
        // Only a name still to choose needs the host's links (an explicit
        // name is checked against them at start, as libvirt does).
        let choosing = def.bridge.name.as_ref().is_none_or(BridgeName::is_template);
        let mut links = if choosing && ForwardMode::has_own_bridge(def.forward_mode()) {
            self.driver.host_links().await?
        } else {
            Vec::new()
        };
        if let Some(foreign) = &foreign {
            links.extend(foreign.bridges_except(&def.uuid));
        }
        Ok((def, links, foreign))
    }

    /// Names the bridge (libvirt's networkSetBridgeName) and its MAC.
    pub(super) fn assign_bridge(
        &self,
        registry: &Registry,
        def: &mut NetworkDef,
        links: &[String],
    ) -> Result<()> {
        if !self.driver.names_bridges() || !ForwardMode::has_own_bridge(def.forward_mode()) {
            return Ok(());
        }
        let taken = registry.bridges_except(def.name.as_str());
        let requested = Requested::of(def.bridge.name.as_ref());
        // A name of its own is checked against the host's links at start,
        // and against the neighbour's by `neighbour::check`, in its words.
        let links = match requested {
            Requested::Fixed(_) => &[][..],
            Requested::Template(_) => links,
        };
        let name = requested.choose(|name| taken.iter().chain(links).any(|other| other == name))?;
        if let Requested::Template(_) = requested {
            let name = BridgeName::new(name).map_err(|_| naming::NamingError::Exhausted)?;
            def.bridge.name = Some(name);
        }
        if def.mac.is_none() {
            def.mac = Some(naming::generate_mac()?);
        }
        Ok(())
    }

    /// Registers a definition: a new entry, or the existing one of that
    /// uuid. Returns the entry and whether it is new.
    pub(super) fn claim(
        &self,
        def: &mut NetworkDef,
        links: &[String],
        foreign: Option<&Foreign>,
        live: bool,
    ) -> Result<(Arc<Entry>, bool)> {
        let mut registry = self.registry();
        registry.check_assignable(def, live)?;
        self.assign_bridge(&registry, def, links)?;
        if let Some(foreign) = foreign {
            neighbour::check(def, live, &foreign.label, &foreign.networks)?;
        }
        if let Some(slot) = registry.slots.get_mut(def.name.as_str()) {
            slot.bridges
                .extend(def.bridge.name.as_ref().map(ToString::to_string));
            return Ok((slot.entry.clone(), false));
        }
        let entry = Arc::new(Entry {
            name: def.name.to_string(),
            uuid: def.uuid,
            state: Arc::default(),
        });
        registry.slots.insert(
            entry.name.clone(),
            Slot {
                entry: entry.clone(),
                summary: Summary {
                    name: entry.name.clone(),
                    uuid: def.uuid,
                    active: false,
                    persistent: !live,
                    autostart: false,
                    bridge: def.bridge.name.as_ref().map(ToString::to_string),
                },
                bridges: def.bridge.name.iter().map(ToString::to_string).collect(),
                held: Held::default(),
            },
        );
        Ok((entry, true))
    }

    /// A definition from XML, prepared and claimed, with its network
    /// locked (define, and create with `live`).
    pub(super) async fn claim_locked(&self, xml: &str, live: bool) -> Result<Claimed> {
        let (mut def, links, foreign) = self.prepare(xml).await?;
        let (entry, created) = self.claim(&mut def, &links, foreign.as_ref(), live)?;
        let state = lock_state(&entry).await;
        if state.gone {
            return Err(ServiceError::NoSuchUuid(def.uuid.to_string()));
        }
        Ok(Claimed {
            def,
            entry,
            created,
            state,
        })
    }

    /// Forgets an entry [`claim`](Self::claim) made when the operation
    /// that needed it failed.
    pub(super) fn unclaim(&self, entry: &Arc<Entry>, state: &mut State) {
        state.gone = true;
        self.registry().slots.remove(&entry.name);
    }
}

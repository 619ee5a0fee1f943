//! Network metadata (libvirt 9.7's virNetworkGetMetadata and
//! virNetworkSetMetadata): read from, and set in, the live or persistent
//! definition as libvirt's flags say, with the metadata-change event.

use crate::definition::{MetadataType, Uuid};

use super::error::{Result, ServiceError};
use super::update::affected;
use super::{Event, Service, update_flags};

fn metadata_type(code: i32) -> Result<MetadataType> {
    MetadataType::from_code(code)
        .ok_or_else(|| ServiceError::InvalidArgument(format!("unknown metadata type '{code}'")))
}

impl Service {
    /// The title, description or element (of namespace `uri`) of the live
    /// definition or the persistent one (`flags`, as net-update's).
    pub async fn metadata(
        &self,
        uuid: &Uuid,
        kind: i32,
        uri: Option<&str>,
        flags: u32,
    ) -> Result<String> {
        let kind = metadata_type(kind)?;
        let (_entry, state) = self.lock(uuid).await?;
        let flags = affected(&state, flags)?;
        if flags == update_flags::LIVE | update_flags::CONFIG {
            return Err(ServiceError::InvalidArgument(
                "flags 'affect live' and 'affect config' are mutually exclusive".into(),
            ));
        }
        let def = match (&state.live, &state.config) {
            (Some(live), _) if flags == update_flags::LIVE => &live.def,
            (_, Some(config)) => config,
            // `affected` checked that the definition asked for is there.
            (Some(live), None) => &live.def,
            (None, None) => return Err(ServiceError::NoSuchUuid(uuid.to_string())),
        };
        Ok(def.metadata_of(kind, uri)?)
    }

    /// Sets (an empty or no `value` removes) the title, description or
    /// element (of namespace `uri`, written with prefix `key`) in the live
    /// definition, the persistent one or both (`flags`, as net-update's),
    /// and tells who listens.
    pub async fn set_metadata(
        &self,
        uuid: &Uuid,
        kind: i32,
        value: Option<&str>,
        key: Option<&str>,
        uri: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        let kind = metadata_type(kind)?;
        let (entry, mut state) = self.lock(uuid).await?;
        let flags = affected(&state, flags)?;
        let changed = |def: &crate::definition::NetworkDef| -> Result<_> {
            let mut def = def.clone();
            def.set_metadata(kind, value, key, uri)?;
            Ok(def)
        };
        let live = match &state.live {
            Some(live) if flags & update_flags::LIVE != 0 => Some(changed(&live.def)?),
            _ => None,
        };
        let config = match &state.config {
            Some(config) if flags & update_flags::CONFIG != 0 => Some(changed(config)?),
            _ => None,
        };
        self.replace_definitions(&entry, &mut state, live, config)
            .await?;
        let uri = (kind == MetadataType::Element)
            .then(|| uri.map(str::to_owned))
            .flatten();
        self.emit(entry.uuid, Event::MetadataChanged { kind, uri });
        Ok(())
    }
}

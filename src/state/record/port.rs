//! The port record on disk (`RUN/ports/NETWORK/UUID.json`): the network the
//! port belongs to and the port as `net-port-dumpxml` prints it (libvirt's
//! own port status is that XML), in a versioned record like the status
//! records. Version 1 is the first; a record of a later version is
//! refused, not misread.

use serde::{Deserialize, Serialize};

use crate::definition::port::NetworkPortDef;

/// The version of the port records this daemon writes, and the latest it
/// reads.
pub const PORT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PortRecordError {
    #[error("not a port record")]
    Json(#[from] serde_json::Error),
    #[error(
        "it is of version {found}, written by a later virtnet; this one reads up to version {PORT_VERSION}"
    )]
    Newer { found: u32 },
    #[error("its port does not read back")]
    Port(#[from] crate::definition::DefinitionError),
}

/// A port of a network, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPort {
    pub network: String,
    pub port: NetworkPortDef,
}

#[derive(Debug, Serialize, Deserialize)]
struct PortRecord {
    version: u32,
    network: String,
    port: String,
}

pub fn read(bytes: &[u8]) -> Result<StoredPort, PortRecordError> {
    let record: PortRecord = serde_json::from_slice(bytes)?;
    if record.version > PORT_VERSION {
        return Err(PortRecordError::Newer {
            found: record.version,
        });
    }
    Ok(StoredPort {
        network: record.network,
        port: NetworkPortDef::parse(&record.port)?,
    })
}

pub fn write(stored: &StoredPort) -> Result<Vec<u8>, PortRecordError> {
    Ok(serde_json::to_vec(&PortRecord {
        version: PORT_VERSION,
        network: stored.network.clone(),
        port: stored.port.to_xml(),
    })?)
}

/// A port on virbr0, for the tests of its record and of the store.
#[cfg(test)]
pub(crate) fn sample_port() -> NetworkPortDef {
    NetworkPortDef::parse(
        "<networkport><uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207d</uuid>\
         <owner><name>g</name><uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid></owner>\
         <mac address='52:54:00:7b:35:93'/><plug type='network' bridge='virbr0'/>\
         </networkport>",
    )
    .expect("a valid port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_round_trips_and_a_later_version_is_refused() {
        let port = sample_port();
        let stored = StoredPort {
            network: "default".into(),
            port,
        };
        let bytes = write(&stored).unwrap();
        assert_eq!(read(&bytes).unwrap(), stored);
        let later = String::from_utf8(bytes)
            .unwrap()
            .replace("\"version\":1", "\"version\":2");
        assert_eq!(
            read(later.as_bytes()).unwrap_err().to_string(),
            "it is of version 2, written by a later virtnet; this one reads up to version 1"
        );
    }
}

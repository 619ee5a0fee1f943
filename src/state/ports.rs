//! Port records on disk: `RUN/ports/NETWORK/UUID.json`, one per port of an
//! active network ([`record::port`](super::record::port)), written
//! atomically before a port is handed out, removed when the port is
//! deleted or its network stops.

use std::path::{Path, PathBuf};

use super::record::port::{self, PortRecordError, StoredPort};
use super::store::{Store, StoreError};
use crate::definition::Uuid;
use crate::files::{PRIVATE, create_dirs, remove, write_runtime};

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

fn record(path: &Path) -> impl FnOnce(PortRecordError) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Port { path, source }
}

impl Store {
    fn network_ports_dir(&self, network: &str) -> PathBuf {
        self.ports_dir.join(network)
    }

    fn port_path(&self, network: &str, uuid: &Uuid) -> PathBuf {
        self.network_ports_dir(network).join(format!("{uuid}.json"))
    }

    pub fn save_port(&self, stored: &StoredPort) -> Result<(), StoreError> {
        let dir = self.network_ports_dir(&stored.network);
        create_dirs(&dir).map_err(io("create", &dir))?;
        let path = self.port_path(&stored.network, &stored.port.uuid);
        let bytes = port::write(stored).map_err(record(&path))?;
        write_runtime(&path, &bytes, PRIVATE).map_err(io("write", &path))
    }

    pub fn delete_port(&self, network: &str, uuid: &Uuid) -> Result<(), StoreError> {
        let path = self.port_path(network, uuid);
        remove(&path).map(drop).map_err(io("remove", &path))
    }

    /// Removes every port record of `network`.
    pub fn delete_ports(&self, network: &str) -> Result<(), StoreError> {
        let dir = self.network_ports_dir(network);
        match std::fs::remove_dir_all(&dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(io("remove", &dir)(error))
            }
            _ => Ok(()),
        }
    }

    /// Every port recorded; records that cannot be read are reported and
    /// skipped.
    pub fn load_ports(&self) -> (Vec<StoredPort>, Vec<StoreError>) {
        let mut ports = Vec::new();
        let mut errors = Vec::new();
        let networks = match std::fs::read_dir(&self.ports_dir) {
            Ok(entries) => entries.filter_map(Result::ok).map(|entry| entry.path()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return (ports, errors),
            Err(error) => return (ports, vec![io("list", &self.ports_dir)(error)]),
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for dir in networks.filter(|path| path.is_dir()) {
            match std::fs::read_dir(&dir) {
                Ok(entries) => files.extend(
                    entries
                        .filter_map(Result::ok)
                        .map(|entry| entry.path())
                        .filter(|path| {
                            path.extension().is_some_and(|found| found == "json")
                                && !path
                                    .file_name()
                                    .is_some_and(|name| name.to_string_lossy().starts_with('.'))
                        }),
                ),
                Err(error) => errors.push(io("list", &dir)(error)),
            }
        }
        files.sort();
        for path in files {
            let read = std::fs::read(&path)
                .map_err(io("read", &path))
                .and_then(|bytes| port::read(&bytes).map_err(record(&path)));
            match read {
                Ok(stored) => ports.push(stored),
                Err(error) => errors.push(error),
            }
        }
        (ports, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_saved_loaded_and_deleted() {
        let dir = std::env::temp_dir().join(format!("virtnet-ports-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::new(&dir.join("etc"), &dir.join("run"));
        store.prepare().unwrap();
        let port = port::sample_port();
        let stored = StoredPort {
            network: "n.json".into(),
            port,
        };
        store.save_port(&stored).unwrap();
        let (ports, errors) = store.load_ports();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(ports, std::slice::from_ref(&stored));
        store.delete_port("n.json", &stored.port.uuid).unwrap();
        assert!(store.load_ports().0.is_empty());
        store.save_port(&stored).unwrap();
        store.delete_ports("n.json").unwrap();
        store.delete_ports("n.json").unwrap();
        assert!(store.load_ports().0.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Definitions and status on disk, in libvirt's layout: `NAME.xml` per
//! persistent network and `autostart/NAME.xml` links in the configuration
//! directory, and one status file per active network in the runtime
//! directory. Every change is atomic (see [`files`](super::files));
//! definitions are also synced to disk, status files (which a reboot makes
//! moot, as it takes the networks down) are not. Status files are
//! versioned records ([`record`](super::record)).

use std::path::{Path, PathBuf};

use super::record::{self, RecordError, STATUS_VERSION};
use crate::apply::RunningNetwork;
use crate::definition::{DefinitionError, FormatFlags, NetworkDef};
use crate::files::{
    PRIVATE, create_dirs, remove, remove_temporaries, symlink_atomically, write_atomically,
    write_runtime,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read network configuration {path}")]
    Definition {
        path: PathBuf,
        #[source]
        source: DefinitionError,
    },
    #[error("Network config filename '{path}' does not match network name '{name}'")]
    WrongName { path: PathBuf, name: String },
    #[error("cannot read network status {path}")]
    Status {
        path: PathBuf,
        #[source]
        source: RecordError,
    },
    #[error("cannot read or write network port record {path}")]
    Port {
        path: PathBuf,
        #[source]
        source: record::port::PortRecordError,
    },
    #[error("cannot write network status {path}")]
    WriteStatus {
        path: PathBuf,
        #[source]
        source: RecordError,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// Where a network stands on the host. The status file is written before
/// each change of the kernel, so that a daemon killed half-way knows what
/// to finish or undo when it comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Start began; some of its objects may exist.
    Starting,
    /// Everything in `running` exists.
    Running,
    /// Stop began; some objects may be left.
    Stopping,
}

/// The runtime status of one active network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkStatus {
    pub phase: Phase,
    /// The live definition, as `net-dumpxml` prints it.
    pub definition: String,
    pub running: Option<RunningNetwork>,
}

/// A persistent network as found on disk.
#[derive(Debug)]
pub struct StoredNetwork {
    pub def: NetworkDef,
    pub autostart: bool,
}

const HEADER: &str = "<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n\
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:\n  virtnet net-edit ";

#[derive(Debug, Clone)]
pub struct Store {
    config_dir: PathBuf,
    autostart_dir: PathBuf,
    status_dir: PathBuf,
    /// The port records, a directory per network (`ports`).
    pub(super) ports_dir: PathBuf,
}

impl Store {
    pub fn new(config_dir: &Path, run_dir: &Path) -> Self {
        Self {
            config_dir: config_dir.to_owned(),
            autostart_dir: config_dir.join("autostart"),
            status_dir: run_dir.join("networks"),
            ports_dir: run_dir.join("ports"),
        }
    }

    /// Creates the directories, and removes what writes interrupted by a
    /// crash left there.
    pub fn prepare(&self) -> Result<(), StoreError> {
        for dir in [
            &self.config_dir,
            &self.autostart_dir,
            &self.status_dir,
            &self.ports_dir,
        ] {
            create_dirs(dir).map_err(io("create", dir))?;
            remove_temporaries(dir).map_err(io("clean up", dir))?;
        }
        Ok(())
    }

    fn config_path(&self, name: &str) -> PathBuf {
        self.config_dir.join(format!("{name}.xml"))
    }

    fn autostart_path(&self, name: &str) -> PathBuf {
        self.autostart_dir.join(format!("{name}.xml"))
    }

    fn status_path(&self, name: &str) -> PathBuf {
        self.status_dir.join(format!("{name}.json"))
    }

    /// Every persistent network; files that cannot be read are reported
    /// and skipped. Autostart links whose network is gone are removed.
    pub fn load_networks(&self) -> (Vec<StoredNetwork>, Vec<StoreError>) {
        let mut networks = Vec::new();
        let mut errors = Vec::new();
        for path in xml_files(&self.config_dir, "xml", &mut errors) {
            match read_definition(&path) {
                Ok(def) => {
                    let autostart = self.autostart_path(def.name.as_str()).exists();
                    networks.push(StoredNetwork { def, autostart });
                }
                Err(error) => errors.push(error),
            }
        }
        for link in xml_files(&self.autostart_dir, "xml", &mut errors) {
            // `exists` follows the link: false for a dangling one.
            if !link.exists()
                && let Err(error) = remove(&link)
            {
                errors.push(io("remove", &link)(error));
            }
        }
        (networks, errors)
    }

    pub fn save_config(&self, def: &NetworkDef) -> Result<(), StoreError> {
        let name = def.name.as_str();
        let path = self.config_path(name);
        let xml = def.to_xml(FormatFlags { inactive: true });
        let contents =
            format!("{HEADER}{name}\nor other application using the virtnet API.\n-->\n\n{xml}");
        write_atomically(&path, contents.as_bytes(), PRIVATE).map_err(io("write", &path))
    }

    /// Removes the configuration and its autostart link (the link first,
    /// so that no link is ever left pointing nowhere).
    pub fn delete_config(&self, name: &str) -> Result<(), StoreError> {
        let link = self.autostart_path(name);
        remove(&link).map_err(io("remove", &link))?;
        let path = self.config_path(name);
        remove(&path).map(drop).map_err(io("remove", &path))
    }

    pub fn set_autostart(&self, name: &str, autostart: bool) -> Result<(), StoreError> {
        let link = self.autostart_path(name);
        if autostart {
            symlink_atomically(&self.config_path(name), &link).map_err(io("create", &link))
        } else {
            remove(&link).map(drop).map_err(io("remove", &link))
        }
    }

    /// The status of every network that was active (or on its way).
    /// Records of an earlier version are written again in this one.
    pub fn load_statuses(&self) -> (Vec<NetworkStatus>, Vec<StoreError>) {
        let mut statuses = Vec::new();
        let mut errors = Vec::new();
        for path in xml_files(&self.status_dir, "json", &mut errors) {
            let read = std::fs::read(&path)
                .map_err(io("read", &path))
                .and_then(|bytes| {
                    record::read(&bytes).map_err(|source| StoreError::Status {
                        path: path.clone(),
                        source,
                    })
                });
            match read {
                Ok(read) => {
                    if read.version < STATUS_VERSION
                        && let Err(error) = write_status(&path, &read.status)
                    {
                        errors.push(error);
                    }
                    statuses.push(read.status);
                }
                Err(error) => errors.push(error),
            }
        }
        (statuses, errors)
    }

    pub fn save_status(&self, name: &str, status: &NetworkStatus) -> Result<(), StoreError> {
        write_status(&self.status_path(name), status)
    }

    pub fn delete_status(&self, name: &str) -> Result<(), StoreError> {
        let path = self.status_path(name);
        remove(&path).map(drop).map_err(io("remove", &path))
    }
}

fn write_status(path: &Path, status: &NetworkStatus) -> Result<(), StoreError> {
    let bytes = record::write(status).map_err(|source| StoreError::WriteStatus {
        path: path.to_owned(),
        source,
    })?;
    write_runtime(path, &bytes, PRIVATE).map_err(io("write", path))
}

/// The files of `dir` ending in `.extension`, sorted; temporary files of
/// an interrupted write (dot files) are skipped.
fn xml_files(dir: &Path, extension: &str, errors: &mut Vec<StoreError>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => {
            errors.push(io("list", dir)(error));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension().is_some_and(|found| found == extension)
                && !path
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    paths
}

fn read_definition(path: &Path) -> Result<NetworkDef, StoreError> {
    let text = std::fs::read_to_string(path).map_err(io("read", path))?;
    let def = NetworkDef::parse(&text).map_err(|source| StoreError::Definition {
        path: path.to_owned(),
        source,
    })?;
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    if stem != def.name.as_str() {
        return Err(StoreError::WrongName {
            path: path.to_owned(),
            name: def.name.to_string(),
        });
    }
    Ok(def)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("virtnet-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn configurations_and_autostart_round_trip() {
        let dir = scratch("config");
        let store = Store::new(&dir.join("etc"), &dir.join("run"));
        store.prepare().unwrap();
        let def = NetworkDef::parse(
            "<network><name>keen</name><uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid></network>",
        )
        .unwrap();
        store.save_config(&def).unwrap();
        store.set_autostart("keen", true).unwrap();
        let (networks, errors) = store.load_networks();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(networks.len(), 1);
        assert_eq!(networks[0].def, def);
        assert!(networks[0].autostart);

        store.delete_config("keen").unwrap();
        let (networks, errors) = store.load_networks();
        assert!(networks.is_empty() && errors.is_empty());
        assert_eq!(
            std::fs::read_dir(dir.join("etc/autostart"))
                .unwrap()
                .count(),
            0
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_named_after_another_network_is_refused() {
        let dir = scratch("wrong");
        let store = Store::new(&dir.join("etc"), &dir.join("run"));
        store.prepare().unwrap();
        std::fs::write(
            dir.join("etc/other.xml"),
            "<network><name>keen</name></network>",
        )
        .unwrap();
        let (networks, errors) = store.load_networks();
        assert!(networks.is_empty());
        assert_eq!(
            errors[0].to_string(),
            format!(
                "Network config filename '{}' does not match network name 'keen'",
                dir.join("etc/other.xml").display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn status_round_trips() {
        let dir = scratch("status");
        let store = Store::new(&dir.join("etc"), &dir.join("run"));
        store.prepare().unwrap();
        let status = NetworkStatus {
            phase: Phase::Starting,
            definition: "<network/>".into(),
            running: None,
        };
        store.save_status("keen", &status).unwrap();
        let (statuses, errors) = store.load_statuses();
        assert!(errors.is_empty());
        assert_eq!(statuses, [status]);
        store.delete_status("keen").unwrap();
        assert!(store.load_statuses().0.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_status_of_an_earlier_version_is_written_again_in_this_one() {
        let dir = scratch("versions");
        let store = Store::new(&dir.join("etc"), &dir.join("run"));
        store.prepare().unwrap();
        let path = dir.join("run/networks/keennet.json");
        let previous = include_str!("../../tests/fixtures/status-v0/keennet.json");
        std::fs::write(&path, previous).unwrap();
        let (statuses, errors) = store.load_statuses();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(statuses.len(), 1);
        let again: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(again["version"], STATUS_VERSION);

        let later = previous.replacen('{', "{\"version\":9,", 1);
        std::fs::write(&path, &later).unwrap();
        let (statuses, errors) = store.load_statuses();
        assert!(statuses.is_empty());
        assert_eq!(
            crate::definition::error_chain(&errors[0]),
            format!(
                "cannot read network status {}: it is of version 9, written by a later \
                 virtnet; this one reads up to version 1",
                path.display()
            )
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            later,
            "left as it is"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

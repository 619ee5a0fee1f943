//! Runs one dnsmasq per network: writes its files, starts it (it detaches
//! and drops to an unprivileged user, as dnsmasq does by default), and stops
//! exactly that process again, found by the pid it recorded, or, after a
//! start cut short, by its command line ([`process`]).

mod groups;
pub mod leases;
mod process;

use self::process::Process;

use std::path::{Path, PathBuf};

use self::leases::{Lease, from_status_json, parse_dnsmasq, to_status_json};
use crate::files::{self, PRIVATE, READABLE, write_runtime};
use crate::plan::dnsmasq::DnsmasqPlan;

#[derive(Debug, thiserror::Error)]
pub enum DnsmasqError {
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare directory {path}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {binary}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dnsmasq refused to start: {0}")]
    Failed(String),
    #[error("dnsmasq started but its pid file {0} holds no pid")]
    NoPid(PathBuf),
    #[error("dnsmasq (pid {pid}) did not exit after SIGTERM and SIGKILL")]
    StillRunning { pid: u32 },
    #[error("cannot look for dnsmasq's processes in /proc")]
    Processes(#[source] std::io::Error),
    #[error("cannot signal dnsmasq (pid {pid})")]
    Signal {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}

/// Where a network's dnsmasq keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsmasqPaths {
    pub config: PathBuf,
    pub pid: PathBuf,
    pub hosts: PathBuf,
    pub addn_hosts: PathBuf,
    pub leases: PathBuf,
}

impl DnsmasqPaths {
    /// Files the network owns, all removed when it stops.
    fn owned(&self) -> [PathBuf; 6] {
        [
            self.config.clone(),
            self.pid.clone(),
            self.hosts.clone(),
            self.addn_hosts.clone(),
            self.leases.clone(),
            self.lease_status(),
        ]
    }

    /// Makes the directories of the files, each mode 0755: dnsmasq, once it
    /// has given root up, looks its hosts files up there. Those that exist,
    /// and the state and run directories holding them, are given that mode
    /// too, whatever the umask they were made under.
    fn prepare_directories(&self) -> Result<(), DnsmasqError> {
        for file in [&self.config, &self.hosts, &self.leases] {
            let Some(dir) = file.parent() else { continue };
            let failed = |path: &Path| {
                let path = path.to_owned();
                move |source| DnsmasqError::Directory { path, source }
            };
            files::create_dirs(dir).map_err(failed(dir))?;
            for owned in std::iter::once(dir).chain(dir.parent()) {
                files::set_dir_mode(owned).map_err(failed(owned))?;
            }
        }
        Ok(())
    }

    fn remove_files(&self) {
        for path in self.owned() {
            let _ = std::fs::remove_file(&path);
        }
    }

    /// The leases in libvirt's status format (`BRIDGE.status`, beside
    /// dnsmasq's `BRIDGE.leases`), as libvirt's NSS module and
    /// net-dhcp-leases read them.
    pub fn lease_status(&self) -> PathBuf {
        self.leases.with_extension("status")
    }

    /// Brings the status file in line with dnsmasq's lease file when that
    /// changed since; returns the leases it holds.
    pub fn sync_lease_status(&self) -> std::io::Result<Vec<Lease>> {
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let status = self.lease_status();
        let Some(leases_changed) = modified(&self.leases) else {
            return Ok(Vec::new());
        };
        if modified(&status).is_some_and(|written| written >= leases_changed)
            && let Ok(leases) = from_status_json(&std::fs::read_to_string(&status)?)
        {
            return Ok(leases);
        }
        let leases = parse_dnsmasq(&std::fs::read_to_string(&self.leases)?);
        write_runtime(&status, to_status_json(&leases).as_bytes(), READABLE)?;
        Ok(leases)
    }
}

/// A running dnsmasq, as recorded in a network's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsmasqInstance {
    pub pid: u32,
    pub paths: DnsmasqPaths,
}

pub async fn start(
    plan: &DnsmasqPlan,
    paths: &DnsmasqPaths,
    binary: &Path,
) -> Result<DnsmasqInstance, DnsmasqError> {
    let started = launch(plan, paths, binary).await;
    if started.is_err() {
        // Nothing of a failed start may stay behind: a dnsmasq may run that
        // wrote no pid file.
        if let Err(error) = stop_all(paths).await {
            tracing::error!("{}", crate::definition::error_chain(&error));
        }
    }
    started
}

async fn launch(
    plan: &DnsmasqPlan,
    paths: &DnsmasqPaths,
    binary: &Path,
) -> Result<DnsmasqInstance, DnsmasqError> {
    paths.prepare_directories()?;
    // dnsmasq reads its configuration as root, and its hosts files again
    // (on SIGHUP) after giving root up.
    for (path, contents, mode) in [
        (&paths.hosts, &plan.hosts_file, READABLE),
        (&paths.addn_hosts, &plan.addn_hosts, READABLE),
        (&paths.config, &plan.config, PRIVATE),
    ] {
        write_runtime(path, contents.as_bytes(), mode).map_err(|source| DnsmasqError::Write {
            path: path.clone(),
            source,
        })?;
    }
    let _ = std::fs::remove_file(&paths.pid);
    // dnsmasq forks, and its first process exits only once the daemon is
    // set up (or with the reason it could not be).
    let output = tokio::process::Command::new(binary)
        .arg(format!("--conf-file={}", paths.config.display()))
        .output()
        .await
        .map_err(|source| DnsmasqError::Spawn {
            binary: binary.to_owned(),
            source,
        })?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(DnsmasqError::Failed(message));
    }
    let pid = std::fs::read_to_string(&paths.pid)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| DnsmasqError::NoPid(paths.pid.clone()))?;
    if !plan.groups_to_leave.is_empty() {
        let left = match Process::of(pid, &paths.config) {
            Some(process) => groups::leave_groups(&process, &plan.groups_to_leave),
            None => Err(groups::GroupsError::Gone { pid }),
        };
        if let Err(error) = left {
            tracing::warn!(
                pid,
                "dnsmasq keeps waking for every address and route change: {}",
                crate::definition::error_chain(&error)
            );
        }
    }
    Ok(DnsmasqInstance {
        pid,
        paths: paths.clone(),
    })
}

impl DnsmasqInstance {
    /// The dnsmasq its pid file names, when that one runs with its
    /// configuration (one a daemon killed before it recorded the pid).
    pub fn named_by_pid_file(paths: &DnsmasqPaths) -> Option<Self> {
        let pid = std::fs::read_to_string(&paths.pid)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let instance = Self {
            pid,
            paths: paths.clone(),
        };
        instance.is_running().then_some(instance)
    }

    /// The process is alive and is this network's dnsmasq (not a reused pid).
    pub fn is_running(&self) -> bool {
        process::runs_config(self.pid, &self.paths.config)
    }

    /// Returns once the process has ended, whoever ended it (at once when
    /// it is not running).
    pub async fn ended(&self) -> std::io::Result<()> {
        // Two small reads in /proc, as `is_running` makes: not worth a
        // thread of their own (a thread each, for every network at once,
        // would cost each its allocator arena).
        match Process::of(self.pid, &self.paths.config) {
            Some(process) => process.ended().await,
            None => Ok(()),
        }
    }

    /// Rewrites the hosts files and makes dnsmasq re-read them (SIGHUP).
    pub fn reload_hosts(&self, plan: &DnsmasqPlan) -> Result<(), DnsmasqError> {
        for (path, contents) in [
            (&self.paths.hosts, &plan.hosts_file),
            (&self.paths.addn_hosts, &plan.addn_hosts),
        ] {
            write_runtime(path, contents.as_bytes(), READABLE).map_err(|source| {
                DnsmasqError::Write {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        match Process::of(self.pid, &self.paths.config) {
            Some(process) => process.signal(rustix::process::Signal::HUP),
            None => Ok(()),
        }
    }

    /// Stops the process (SIGTERM, then SIGKILL if it does not end) and
    /// removes the network's dnsmasq files.
    pub async fn stop(&self) -> Result<(), DnsmasqError> {
        if let Some(process) = Process::of(self.pid, &self.paths.config) {
            process.terminate().await?;
        }
        self.paths.remove_files();
        Ok(())
    }
}

/// Stops every process of the dnsmasq of `paths` in this namespace, pid
/// file or not, and removes its files: for a start that did not finish.
/// A process forked while the others end is found by the next look.
pub async fn stop_all(paths: &DnsmasqPaths) -> Result<(), DnsmasqError> {
    loop {
        let config = paths.config.clone();
        let found = tokio::task::spawn_blocking(move || Process::all_of(&config))
            .await
            .unwrap_or_else(|error| Err(std::io::Error::other(error)))
            .map_err(DnsmasqError::Processes)?;
        if found.is_empty() {
            break;
        }
        for process in found {
            tracing::info!(pid = process.pid(), "stopping a dnsmasq left by a start");
            process.terminate().await?;
        }
    }
    paths.remove_files();
    Ok(())
}

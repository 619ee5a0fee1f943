//! Finding and stopping a network's dnsmasq processes.
//!
//! dnsmasq forks twice before it writes its pid file, so the pid of the
//! daemon is known only once it has written that file: a start cut short
//! before (the daemon killed while it waits) leaves processes that no pid
//! file names. Every process of one network's dnsmasq, though, runs with
//! `--conf-file=PATH` on its command line from its exec on (the first
//! process, the one in between, the daemon), and that path is the
//! network's own under virtnet's run directory. So the processes are found
//! by their command line in /proc, in this network namespace, at any
//! point; each is then held by a pidfd, so that no signal can reach a
//! process that took over the pid of one that ended.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use super::DnsmasqError;

/// How long a process has to end after SIGTERM, and after SIGKILL: the
/// delays of libvirt's networkKillDaemon.
const TERM_GRACE: Duration = Duration::from_secs(3);
const KILL_GRACE: Duration = Duration::from_secs(2);

/// The argument every process of the dnsmasq of `config` carries.
fn config_argument(config: &Path) -> Vec<u8> {
    let mut argument = b"--conf-file=".to_vec();
    argument.extend_from_slice(config.as_os_str().as_bytes());
    argument
}

/// Whether process `pid` runs with the configuration `config`.
pub(super) fn runs_config(pid: u32, config: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argument = config_argument(config);
    cmdline
        .split(|byte| *byte == 0)
        .any(|found| found == argument.as_slice())
}

/// Whether process `pid` lives in the calling thread's network namespace.
/// Telling needs the right to inspect the process (CAP_SYS_PTRACE for a
/// dnsmasq that gave root up); without it, the command line decides alone.
fn in_own_namespace(pid: u32) -> bool {
    let own = std::fs::read_link("/proc/thread-self/ns/net");
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net"));
    match (own, theirs) {
        (Ok(own), Ok(theirs)) => own == theirs,
        (_, Err(error)) if error.kind() == std::io::ErrorKind::NotFound => false,
        _ => true,
    }
}

/// One process of a network's dnsmasq.
pub(super) struct Process {
    pid: u32,
    pidfd: OwnedFd,
}

impl Process {
    /// Process `pid`, when it is the dnsmasq of `config` in this namespace.
    pub(super) fn of(pid: u32, config: &Path) -> Option<Self> {
        // The cheap look first: most processes are not it.
        if !runs_config(pid, config) {
            return None;
        }
        let raw_pid = libc::pid_t::try_from(pid).ok().filter(|pid| *pid > 0)?;
        // SAFETY: pidfd_open(2) takes a pid and flags, and returns a new
        // descriptor or -1.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` was just opened, for us alone.
        let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
        // Checked again once the pidfd is open: if `pid` was another
        // process's then, that one has ended, and the pidfd reaches no one.
        (runs_config(pid, config) && in_own_namespace(pid)).then_some(Self { pid, pidfd })
    }

    /// Every process of the dnsmasq of `config` in this namespace.
    pub(super) fn all_of(config: &Path) -> std::io::Result<Vec<Self>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc")? {
            let name = entry?.file_name();
            let Some(pid) = pid_of(&name) else { continue };
            if let Some(process) = Self::of(pid, config) {
                found.push(process);
            }
        }
        Ok(found)
    }

    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// A copy of the process's descriptor `number` (pidfd_getfd(2): the
    /// same open file, shared).
    pub(super) fn descriptor(&self, number: RawFd) -> std::io::Result<OwnedFd> {
        // SAFETY: pidfd_getfd(2) takes a pidfd, a descriptor number of that
        // process and flags, and returns a new descriptor or -1.
        let copy =
            unsafe { libc::syscall(libc::SYS_pidfd_getfd, self.pidfd.as_raw_fd(), number, 0) };
        if copy < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `copy` was just made, for us alone.
        Ok(unsafe { OwnedFd::from_raw_fd(copy as RawFd) })
    }

    pub(super) fn signal(&self, signal: libc::c_int) -> Result<(), DnsmasqError> {
        // SAFETY: pidfd_send_signal(2) takes a pidfd, a signal number, a
        // null siginfo and flags.
        let result = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if result < 0 {
            let source = std::io::Error::last_os_error();
            // It has ended already.
            if source.raw_os_error() != Some(libc::ESRCH) {
                return Err(DnsmasqError::Signal {
                    pid: self.pid,
                    source,
                });
            }
        }
        Ok(())
    }

    /// Whether the process ends within `limit` (its pidfd becomes readable).
    fn ends_within(&self, limit: Duration) -> bool {
        let mut poll = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let millis = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
            // SAFETY: poll(2) on one pollfd that lives across the call.
            let ready = unsafe { libc::poll(&mut poll, 1, millis) };
            match ready {
                1.. => return true,
                0 => return false,
                _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
                _ => return false,
            }
        }
    }

    /// SIGTERM; SIGKILL if it has not ended after [`TERM_GRACE`]. Blocks.
    fn terminate_blocking(&self) -> Result<(), DnsmasqError> {
        self.signal(libc::SIGTERM)?;
        if self.ends_within(TERM_GRACE) {
            return Ok(());
        }
        tracing::warn!(pid = self.pid, "dnsmasq ignored SIGTERM; killing it");
        self.signal(libc::SIGKILL)?;
        if self.ends_within(KILL_GRACE) {
            return Ok(());
        }
        Err(DnsmasqError::StillRunning { pid: self.pid })
    }

    /// Returns once the process has ended (its pidfd becomes readable).
    pub(super) async fn ended(self) -> std::io::Result<()> {
        // SAFETY: the pidfd is an OwnedFd, open and owned by the AsyncFd
        // until it drops, and always the same descriptor.
        let pidfd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                self.pidfd,
                tokio::io::Interest::READABLE,
            )
        }
        .map_err(std::io::Error::from)?;
        pidfd.readable().await?.retain_ready();
        Ok(())
    }

    /// Ends the process: SIGTERM, then SIGKILL if it does not end.
    pub(super) async fn terminate(self) -> Result<(), DnsmasqError> {
        let pid = self.pid;
        tokio::task::spawn_blocking(move || self.terminate_blocking())
            .await
            .unwrap_or(Err(DnsmasqError::StillRunning { pid }))
    }
}

fn pid_of(name: &OsStr) -> Option<u32> {
    name.to_str()?.parse().ok()
}

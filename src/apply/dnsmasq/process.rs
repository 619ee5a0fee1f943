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
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, Signal};

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
        let target = Pid::from_raw(i32::try_from(pid).ok()?)?;
        let pidfd = rustix::process::pidfd_open(target, PidfdFlags::empty()).ok()?;
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
        Ok(rustix::process::pidfd_getfd(
            &self.pidfd,
            number,
            PidfdGetfdFlags::empty(),
        )?)
    }

    pub(super) fn signal(&self, signal: Signal) -> Result<(), DnsmasqError> {
        match rustix::process::pidfd_send_signal(&self.pidfd, signal) {
            // ESRCH: it has ended already.
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(errno) => Err(DnsmasqError::Signal {
                pid: self.pid,
                source: errno.into(),
            }),
        }
    }

    /// Whether the process ends within `limit` (its pidfd becomes readable).
    fn ends_within(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(timeout) = Timespec::try_from(left) else {
                return false;
            };
            let mut pidfd = [PollFd::new(&self.pidfd, PollFlags::IN)];
            match poll(&mut pidfd, Some(&timeout)) {
                Ok(1..) => return true,
                Ok(0) => return false,
                Err(Errno::INTR) => {}
                Err(_) => return false,
            }
        }
    }

    /// SIGTERM; SIGKILL if it has not ended after [`TERM_GRACE`]. Blocks.
    fn terminate_blocking(&self) -> Result<(), DnsmasqError> {
        self.signal(Signal::TERM)?;
        if self.ends_within(TERM_GRACE) {
            return Ok(());
        }
        tracing::warn!(pid = self.pid, "dnsmasq ignored SIGTERM; killing it");
        self.signal(Signal::KILL)?;
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

#[cfg(test)]
pub(super) mod tests {
    use std::process::{Child, Command, Stdio};

    use super::*;

    /// A child that runs with `--conf-file=CONFIG` on its command line
    /// until its standard input closes (with the test process, whatever
    /// happens), and the process found by that configuration.
    pub(in crate::apply::dnsmasq) fn stand_in(config: &Path) -> (Child, Process) {
        let child = Command::new("sh")
            .args(["-c", "read line", "sh"])
            .arg(format!("--conf-file={}", config.display()))
            .stdin(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let process = found(child.id(), config);
        (child, process)
    }

    /// Process `pid` once its command line shows `config`, as it does once
    /// the exec has set it up.
    fn found(pid: u32, config: &Path) -> Process {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(process) = Process::of(pid, config) {
                return process;
            }
            assert!(
                Instant::now() < deadline,
                "the child runs that configuration"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_process_that_ended_is_seen_to_end_and_a_signal_to_it_is_no_error() {
        let config = Path::new("/nonexistent/virtnet-process-test.conf");
        let (mut child, process) = stand_in(config);
        assert!(Process::of(child.id(), Path::new("/nonexistent/other.conf")).is_none());
        assert!(!process.ends_within(Duration::from_millis(50)));
        child.kill().expect("the child is ours");
        child.wait().expect("the child ends");
        assert!(process.ends_within(Duration::ZERO));
        // ESRCH: the process ended and was waited for.
        process
            .signal(Signal::TERM)
            .expect("a process that ended needs no signal");
    }
}

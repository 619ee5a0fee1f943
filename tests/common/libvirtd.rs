//! A real libvirtd 9.0 of the test's own: in the test's network namespace
//! and in a private mount namespace where its directories (/etc/libvirt,
//! /var/lib/libvirt, /run/libvirt, …) are the test's, so it sees none of
//! the host's configuration and the host never sees its files. Its socket
//! is reachable from outside at `DIR/run/libvirt-sock`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::netns::Netns;
use super::project_dir;

const LIBVIRTD_CONF: &str = "auth_unix_ro = \"none\"\n\
    auth_unix_rw = \"none\"\n\
    log_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n";

/// No virtlogd (qemu's output goes to a file), no cgroups, no security
/// driver, no private /dev: a sandbox has none of them.
const QEMU_CONF: &str = "stdio_handler = \"file\"\n\
    user = \"root\"\n\
    group = \"root\"\n\
    dynamic_ownership = 0\n\
    remember_owner = 0\n\
    security_driver = \"none\"\n\
    cgroup_controllers = [ ]\n\
    namespaces = [ ]\n";

/// Each step execs the next, so the spawned process is libvirtd itself.
const START: &str = "set -e; S=$1
mount -t tmpfs -o mode=0755 vt-run /run
mkdir -p /run/libvirt
mount --bind \"$S/run\" /run/libvirt
mount --bind \"$S/etc\" /etc/libvirt
mount --bind \"$S/lib\" /var/lib/libvirt
mount --bind \"$S/cache\" /var/cache/libvirt
mount --bind \"$S/log\" /var/log/libvirt
exec libvirtd --pid-file \"$S/libvirtd.pid\"";

/// The qemu `scripts/setup` unpacks for these tests.
pub fn qemu() -> PathBuf {
    let qemu = project_dir().join("target/qemu/usr/bin/qemu-system-x86_64");
    assert!(
        qemu.exists(),
        "{} is missing: scripts/setup unpacks it",
        qemu.display()
    );
    qemu
}

pub struct Libvirtd {
    child: Option<Child>,
    dir: PathBuf,
    pub uri: String,
}

impl Libvirtd {
    /// Starts libvirtd in `ns` with its directories under `dir` (kept
    /// between starts, as a host keeps them across restarts).
    pub fn start(ns: &Netns, dir: &Path) -> Self {
        for sub in ["etc", "lib", "run", "cache", "log"] {
            std::fs::create_dir_all(dir.join(sub)).expect("libvirtd directory");
        }
        std::fs::write(dir.join("etc/libvirtd.conf"), LIBVIRTD_CONF).expect("libvirtd.conf");
        std::fs::write(dir.join("etc/qemu.conf"), QEMU_CONF).expect("qemu.conf");
        let output = std::fs::File::create(dir.join("libvirtd.out")).expect("libvirtd output");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .args([
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                START,
                "sh",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(output)
            .spawn()
            .expect("libvirtd starts");
        let libvirtd = Self {
            child: Some(child),
            dir: dir.to_owned(),
            uri: format!(
                "qemu+unix:///system?socket={}",
                dir.join("run/libvirt-sock").display()
            ),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !libvirtd.virsh(&["uri"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "libvirtd does not answer; its log:\n{}",
                libvirtd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        libvirtd
    }

    pub fn virsh(&self, args: &[&str]) -> Output {
        Command::new("virsh")
            .args(["-q", "-c", &self.uri])
            .args(args)
            .output()
            .expect("virsh runs")
    }

    /// virsh, panicking unless it succeeds; its standard output.
    pub fn virsh_ok(&self, args: &[&str]) -> String {
        let output = self.virsh(args);
        assert!(
            output.status.success(),
            "virsh {args:?} failed: {}{}\nlibvirtd's log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("log/libvirtd.log")).unwrap_or_default();
        let out = std::fs::read_to_string(self.dir.join("libvirtd.out")).unwrap_or_default();
        format!("{out}{log}")
    }

    /// The pids of the guests libvirt started that still run.
    fn guests(&self) -> Vec<libc::pid_t> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("run/qemu")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "pid"))
            .filter_map(|entry| {
                std::fs::read_to_string(entry.path())
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            })
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.starts_with("qemu-system"))
            })
            .collect()
    }

    /// Stops libvirtd (SIGSTOP) until the guard is dropped (SIGCONT): its
    /// socket still takes connections, and nothing answers.
    pub fn pause(&self) -> Paused<'_> {
        let child = self.child.as_ref().expect("libvirtd runs");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // Each step of the start script execs the next: the child is libvirtd.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert_eq!(comm.trim(), "libvirtd", "pid {pid} is libvirtd");
        // SAFETY: kill(2) on the pid of our own child, not reaped yet.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        Paused {
            pid,
            _libvirtd: self,
        }
    }

    /// SIGTERM, as a service manager stops it; guests keep running.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: kill(2) on the pid of our own child, not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                // SAFETY: as above; the child is still not reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A stopped libvirtd, let go on when dropped.
pub struct Paused<'a> {
    pid: libc::pid_t,
    _libvirtd: &'a Libvirtd,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        // SAFETY: kill(2) on libvirtd's pid: the borrow keeps the child
        // unreaped, so the pid is still libvirtd's.
        unsafe { libc::kill(self.pid, libc::SIGCONT) };
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        // Guests outlive libvirtd: they go first, by the pids libvirt
        // recorded (checked against /proc), and they are not our children,
        // so their end is awaited in /proc.
        for pid in self.guests() {
            // SAFETY: kill(2) on a qemu of this test's libvirtd, found by
            // its pid file and checked to be qemu just now.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.stop();
    }
}

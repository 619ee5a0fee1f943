//! Network namespaces for tests: each test makes its own, and the guard
//! removes it (killing what runs inside, by pid) on success and failure.

use std::future::Future;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};

/// A network namespace named `vt-<label>-<random>`.
pub struct Netns {
    pub name: String,
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 4];
    virtnet::random::fill(&mut bytes).expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs a command, panicking with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

impl Netns {
    pub fn new(label: &str) -> Self {
        let name = format!("vt-{label}-{}", random_suffix());
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs a program inside the namespace; the output is returned whether
    /// or not it succeeded.
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("ip netns exec runs")
    }

    /// Like [`Netns::exec`], panicking unless the program succeeds.
    pub fn exec_ok(&self, args: &[&str]) -> String {
        let output = self.exec(args);
        assert!(
            output.status.success(),
            "{args:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `future` on a thread that lives in this namespace, so its
    /// netlink sockets, /proc/sys writes and child processes are all here.
    pub fn block_on<F, T>(&self, future: F) -> T
    where
        F: Future<Output = T> + Send,
        T: Send,
    {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.enter();
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime")
                        .block_on(future)
                })
                .join()
                .expect("namespace thread")
        })
    }

    /// Like [`Netns::block_on`] for plain code.
    pub fn run_in<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.enter();
                    f()
                })
                .join()
                .expect("namespace thread")
        })
    }

    fn enter(&self) {
        let file = std::fs::File::open(format!("/run/netns/{}", self.name)).expect("netns file");
        // SAFETY: setns(2) with a valid namespace file descriptor affects only
        // the calling thread, which is dedicated to this namespace.
        let result = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(result, 0, "setns: {}", std::io::Error::last_os_error());
    }

    /// Pids of the dnsmasq processes running in the namespace.
    pub fn dnsmasqs(&self) -> Vec<String> {
        self.pids()
            .into_iter()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "dnsmasq")
            })
            .collect()
    }

    /// Pids of the processes running in the namespace.
    pub fn pids(&self) -> Vec<String> {
        let output = run("ip", &["netns", "pids", &self.name]);
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids() {
            if let Ok(pid) = pid.parse::<libc::pid_t>() {
                // SAFETY: kill(2) on a pid that `ip netns pids` reported for
                // this test's own namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Connects `inner` (in `ns`) to `outer` (in `host`) with a veth pair.
pub fn veth(host: &Netns, outer: &str, ns: &Netns, inner: &str) {
    host.ip(&[
        "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", &ns.name,
    ]);
    host.ip(&["link", "set", outer, "up"]);
    ns.ip(&["link", "set", inner, "up"]);
}

/// A host namespace and an "outside" one beyond its uplink: the host is
/// 10.255.0.1 on `uplink`, the outside machine 10.255.0.2, and the host's
/// default route goes there.
pub fn host_and_outside(label: &str) -> (Netns, Netns) {
    let host = Netns::new(&format!("{label}h"));
    let outside = Netns::new(&format!("{label}o"));
    veth(&host, "uplink", &outside, "eth0");
    host.ip(&["addr", "add", "10.255.0.1/24", "dev", "uplink"]);
    outside.ip(&["addr", "add", "10.255.0.2/24", "dev", "eth0"]);
    host.ip(&["route", "add", "default", "via", "10.255.0.2"]);
    (host, outside)
}

/// A guest: a namespace `label` whose `eth0` is a veth port of `bridge` in
/// `host` (the host side is named `port`), with `mac` when given.
pub fn plug_guest(host: &Netns, bridge: &str, label: &str, port: &str, mac: Option<&str>) -> Netns {
    let guest = Netns::new(label);
    host.ip(&[
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &guest.name,
    ]);
    if let Some(mac) = mac {
        guest.ip(&["link", "set", "eth0", "address", mac]);
    }
    host.ip(&["link", "set", port, "master", bridge, "up"]);
    guest.ip(&["link", "set", "eth0", "up"]);
    guest
}

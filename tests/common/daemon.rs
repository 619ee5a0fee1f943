//! A private bus and virtnetd for tests, both inside the test's namespace
//! (so the namespace guard kills them by pid, whatever happens); the bus
//! listens on a socket path, reachable from any namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::netns::Netns;

/// A bus without service activation, open to everyone; `LISTEN` stands
/// for its address.
const OPEN_BUS: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>LISTEN</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

/// A dbus-daemon running in a test's namespace; killed and reaped when
/// dropped.
pub struct Bus {
    pub address: String,
    child: Child,
}

/// Starts a dbus-daemon in `ns`, where everyone may do everything (and
/// nothing is started on demand: the machine's session service files would
/// start the real libvirt-dbus for `org.libvirt`), or with the
/// configuration file given.
pub fn start_bus(ns: &Netns, dir: &Path, config: Option<&Path>) -> Bus {
    let socket = dir.join("bus");
    let address = format!("unix:path={}", socket.display());
    let open_config = dir.join("bus.conf");
    let config = config.unwrap_or_else(|| {
        let text = OPEN_BUS.replace("LISTEN", &address);
        std::fs::write(&open_config, text).expect("bus configuration");
        &open_config
    });
    let config_arg = format!("--config-file={}", config.display());
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "dbus-daemon", &config_arg])
        .arg(format!("--address={address}"))
        .args(["--nofork", "--nopidfile"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon starts");
    let bus = Bus { address, child };
    wait_for(|| socket.exists(), "the private bus socket");
    bus
}

/// A bus configuration as Debian's system bus has it (method calls denied
/// but for the bus's own interfaces, replies and signals allowed),
/// listening at `listen`, with `extra` (policies, includes) added.
pub fn system_bus_config(listen: &str, extra: &str) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>{listen}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
{extra}</busconfig>
"#
    )
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running virtnetd; killed (SIGKILL) when dropped unless stopped.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

pub struct DaemonConfig<'a> {
    pub ns: &'a Netns,
    pub bus: &'a str,
    pub bus_name: &'a str,
    /// `None`: the test driver; else the kernel driver with its
    /// directories under this one.
    pub dirs: Option<PathBuf>,
    pub log: PathBuf,
    /// More arguments for virtnetd.
    pub args: &'a [&'a str],
    /// More environment for virtnetd (`VIRTNET_KILL_POINT`, `PATH`, …).
    pub env: &'a [(&'a str, &'a str)],
}

impl<'a> DaemonConfig<'a> {
    /// The kernel driver, with its directories (`virtnet/`) and its log
    /// (`virtnetd.log`) in `scratch`.
    pub fn kernel(
        ns: &'a Netns,
        bus: &'a str,
        bus_name: &'a str,
        scratch: &Path,
        args: &'a [&'a str],
    ) -> Self {
        Self {
            ns,
            bus,
            bus_name,
            dirs: Some(scratch.join("virtnet")),
            log: scratch.join("virtnetd.log"),
            args,
            env: &[],
        }
    }
}

impl Daemon {
    pub fn start(config: &DaemonConfig<'_>) -> Self {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &config.ns.name])
            .arg(env!("CARGO_BIN_EXE_virtnetd"))
            .args(["--bus-address", config.bus, "--bus-name", config.bus_name]);
        match &config.dirs {
            None => {
                command.args(["--driver", "test"]);
            }
            Some(dir) => {
                command
                    .arg("--config-dir")
                    .arg(dir.join("etc"))
                    .arg("--state-dir")
                    .arg(dir.join("lib"))
                    .arg("--run-dir")
                    .arg(dir.join("run"));
            }
        }
        command.args(config.args);
        // The machine's system bus is not the test's: a firewalld there
        // must not get the test's bridges (a test may point it elsewhere).
        command.env("DBUS_SYSTEM_BUS_ADDRESS", config.bus);
        command.envs(config.env.iter().copied());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.log)
            .expect("daemon log");
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("virtnetd starts");
        let daemon = Self {
            child: Some(child),
            log: config.log.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let output = client(config.bus, config.bus_name, &["net-list", "--all"]);
            if output.status.success() {
                return daemon;
            }
            assert!(
                Instant::now() < deadline,
                "virtnetd did not answer: {}\nits log:\n{}",
                String::from_utf8_lossy(&output.stderr),
                daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn signal(&mut self, signal: libc::c_int) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: kill(2) on the pid of the child this guard spawned and
        // has not reaped yet, so the pid cannot have been reused.
        unsafe { libc::kill(pid, signal) };
        child.wait().ok()
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM).expect("daemon was running")
    }

    /// Waits up to `limit` for the daemon to end by itself; its exit
    /// status, or `None` (it is killed when dropped).
    pub fn ended(mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// Runs the `virtnet` client against `bus`.
pub fn client(bus: &str, bus_name: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_virtnet"))
        .args(["--bus-address", bus, "--bus-name", bus_name])
        .args(args)
        .output()
        .expect("virtnet runs")
}

/// virtnetd's test driver in a namespace of its own, on a private bus.
pub struct TestDriver {
    // Field order is drop order: the daemon and bus go before the namespace.
    pub daemon: Daemon,
    pub bus: String,
    _bus_daemon: Bus,
    pub scratch: super::ScratchDir,
    pub ns: Netns,
}

impl TestDriver {
    /// A namespace with a private bus (configured by `bus_config`, given
    /// the scratch directory; the session policy when it returns `None`)
    /// and virtnetd's test driver owning `bus_name` on it.
    pub fn start(
        label: &str,
        bus_name: &str,
        bus_config: impl FnOnce(&Path) -> Option<PathBuf>,
    ) -> Self {
        let ns = Netns::new(label);
        let scratch = super::ScratchDir::new(label);
        let config = bus_config(&scratch.0);
        let bus_daemon = start_bus(&ns, &scratch.0, config.as_deref());
        let bus = bus_daemon.address.clone();
        let daemon = Daemon::start(&DaemonConfig {
            ns: &ns,
            bus: &bus,
            bus_name,
            dirs: None,
            log: scratch.0.join("virtnetd.log"),
            args: &[],
            env: &[],
        });
        Self {
            daemon,
            bus,
            _bus_daemon: bus_daemon,
            scratch,
            ns,
        }
    }
}

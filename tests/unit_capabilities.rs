//! virtnetd as the packaged systemd unit runs it: root with exactly the
//! unit's `CapabilityBoundingSet=` (read from
//! packaging/systemd/virtnetd.service), in the test's namespace. A network
//! starts, and its dnsmasq is out of the rtnetlink event groups it does
//! not need: reaching its sockets through /proc/PID/fd works with the
//! unit's capabilities.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{client, start_bus};
use common::netns::Netns;
use common::{ScratchDir, project_dir};

const BUS_NAME: &str = "org.virtnet";

/// The capabilities of the unit's `CapabilityBoundingSet=`, lowercase and
/// without `cap_`, as setpriv takes them.
fn unit_capabilities() -> Vec<String> {
    let unit = std::fs::read_to_string(project_dir().join("packaging/systemd/virtnetd.service"))
        .expect("the unit");
    let line = unit
        .lines()
        .find_map(|line| line.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets a bounding set");
    line.split_whitespace()
        .map(|cap| {
            cap.to_ascii_lowercase()
                .strip_prefix("cap_")
                .expect("a capability name")
                .to_owned()
        })
        .collect()
}

/// The number of capability `name` (setpriv's spelling), as
/// linux/capability.h defines it (a stable ABI).
fn capability_number(name: &str) -> u32 {
    const NUMBERS: [(&str, u32); 12] = [
        ("chown", 0),
        ("dac_override", 1),
        ("dac_read_search", 2),
        ("fowner", 3),
        ("kill", 5),
        ("setgid", 6),
        ("setuid", 7),
        ("net_bind_service", 10),
        ("net_admin", 12),
        ("net_raw", 13),
        ("sys_ptrace", 19),
        ("sys_admin", 21),
    ];
    NUMBERS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, number)| *number)
        .unwrap_or_else(|| panic!("the number of capability {name}"))
}

/// A capability set line of /proc/PID/status (`CapBnd:` …) as a mask.
fn capability_mask(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .expect("a capability line");
    u64::from_str_radix(value.trim(), 16).expect("a hexadecimal mask")
}

/// virtnetd under setpriv with the unit's bounding set; killed when
/// dropped (the namespace's guard would too).
struct UnitDaemon(Child);

impl Drop for UnitDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The rtnetlink groups dnsmasq's one rtnetlink socket is in.
fn event_groups(pid: u32) -> u32 {
    let sockets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("dnsmasq's descriptors")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let inode = target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?;
            Some(inode.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/netlink")).expect("netlink");
    let groups: Vec<u32> = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|columns| columns[1] == "0" && sockets.iter().any(|s| s == columns[9]))
        .map(|columns| u32::from_str_radix(columns[3], 16).expect("a group mask"))
        .collect();
    assert_eq!(groups.len(), 1, "one rtnetlink socket in dnsmasq");
    groups[0]
}

/// Runs virtnetd under setpriv with `capabilities` as its bounding set,
/// starts keennet; returns the event groups of its dnsmasq and the
/// daemon's log.
fn start_keennet_with(capabilities: &[String]) -> (u32, String) {
    let host = Netns::new("unit");
    let scratch = ScratchDir::new("unit");
    let bus = start_bus(&host, &scratch.0, None);
    let dirs = scratch.0.join("virtnet");
    let log_path = scratch.0.join("virtnetd.log");
    let log = std::fs::File::create(&log_path).expect("daemon log");
    let bounding = std::iter::once("-all".to_owned())
        .chain(capabilities.iter().map(|cap| format!("+{cap}")))
        .collect::<Vec<_>>()
        .join(",");
    let daemon = UnitDaemon(
        Command::new("ip")
            .args(["netns", "exec", &host.name, "setpriv"])
            .args(["--bounding-set", &bounding, "--inh-caps", "-all", "--"])
            .arg(env!("CARGO_BIN_EXE_virtnetd"))
            .args(["--bus-address", &bus.address, "--bus-name", BUS_NAME])
            .arg("--config-dir")
            .arg(dirs.join("etc"))
            .arg("--state-dir")
            .arg(dirs.join("lib"))
            .arg("--run-dir")
            .arg(dirs.join("run"))
            // Not the machine's system bus, nor a firewalld on it.
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("setpriv runs"),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let cli = |args: &[&str]| client(&bus.address, BUS_NAME, args);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cli(&["net-list", "--all"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "virtnetd did not answer:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The daemon runs with these capabilities and no other (ip and
    // setpriv exec it: the child is virtnetd).
    let pid = daemon.0.id();
    let expected = capabilities
        .iter()
        .fold(0u64, |mask, cap| mask | 1 << capability_number(cap));
    assert_eq!(capability_mask(pid, "CapBnd:"), expected);
    assert_eq!(capability_mask(pid, "CapEff:"), expected);

    let keennet = project_dir().join("xml-samples/keennet.xml");
    for args in [
        vec!["net-define", keennet.to_str().expect("utf-8 path")],
        vec!["net-start", "keennet"],
    ] {
        let output = cli(&args);
        assert!(
            output.status.success(),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            log()
        );
    }
    let dnsmasq: u32 = std::fs::read_to_string(dirs.join("run/dnsmasq/keenbr0.pid"))
        .expect("dnsmasq's pid file")
        .trim()
        .parse()
        .expect("a pid");
    let groups = event_groups(dnsmasq);
    let output = cli(&["net-destroy", "keennet"]);
    assert!(output.status.success(), "{}", log());
    drop(daemon);
    (groups, log())
}

#[test]
fn dnsmasq_leaves_the_event_groups_under_the_units_capabilities() {
    let capabilities = unit_capabilities();
    let (groups, log) = start_keennet_with(&capabilities);
    assert_eq!(
        groups, 0,
        "dnsmasq wakes for no address or route event; daemon log:\n{log}"
    );
    assert!(!log.contains("keeps waking"), "{log}");

    // Without CAP_SYS_PTRACE, dnsmasq's descriptors are out of reach, and
    // the daemon says so.
    let without: Vec<String> = capabilities
        .into_iter()
        .filter(|cap| cap != "sys_ptrace")
        .collect();
    let (groups, log) = start_keennet_with(&without);
    assert_ne!(groups, 0);
    assert!(
        log.contains("dnsmasq keeps waking for every address and route change")
            && log.contains("this needs CAP_SYS_PTRACE"),
        "{log}"
    );
}

//! Guests: namespaces configured by real DHCP (busybox udhcpc).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::netns::Netns;

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    ;;
esac
exit 0
"#;

/// Writes udhcpc's event script into `dir`; returns its path.
pub fn udhcpc_script(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("udhcpc.script");
    std::fs::write(&script, UDHCPC_SCRIPT).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Runs real DHCP in the guest; returns the address it was given.
pub fn dhcp(guest: &Netns, script: &Path) -> Ipv4Addr {
    guest.exec_ok(&[
        "busybox",
        "udhcpc",
        "-i",
        "eth0",
        "-n",
        "-q",
        "-t",
        "30",
        "-T",
        "1",
        "-s",
        script.to_str().unwrap(),
    ]);
    ipv4_of(guest)
}

pub fn ipv4_of(ns: &Netns) -> Ipv4Addr {
    let output = ns.exec_ok(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    output
        .split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("no IPv4 address in {output}"))
}

/// With STP on (libvirt's default) a new port learns for a while before
/// it forwards.
pub fn wait_forwarding(host: &Netns, port: &str) {
    for _ in 0..200 {
        let state = host.exec_ok(&["bridge", "link", "show", "dev", port]);
        if state.contains("state forwarding") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("port {port} never forwarded");
}

pub fn pings(ns: &Netns, address: &str) -> bool {
    ns.exec(&["busybox", "ping", "-c", "1", "-W", "2", address])
        .status
        .success()
}

/// Pings `target` from `guest` every `interval` seconds, `count` times, in
/// the background; its standard output is piped.
pub fn ping_flood(guest: &Netns, target: &str, count: u32, interval: &str) -> std::process::Child {
    std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &guest.name,
            "busybox",
            "ping",
            "-q",
            "-i",
            interval,
        ])
        .args(["-c", &count.to_string(), target])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ping runs")
}

/// Packets sent and received, from ping's summary.
pub fn ping_summary(output: &str) -> Option<(u32, u32)> {
    let line = output
        .lines()
        .find(|line| line.contains("packets transmitted"))?;
    let numbers: Vec<u32> = line
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    Some((*numbers.first()?, *numbers.get(1)?))
}

/// Every file under `dir`.
pub fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

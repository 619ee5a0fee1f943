//! Networks realized on a real kernel, proven with real traffic. Everything
//! runs in namespaces made for the test: `host` is where virtnet works (the
//! hypervisor), `outside` is a machine beyond the host's uplink, guests are
//! namespaces plugged into the bridge with a veth and configured by DHCP.

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;

use common::netns::{Netns, veth};
use common::{ScratchDir, project_dir};
use virtnet::apply::{self, Environment, StartError};
use virtnet::definition::NetworkDef;
use virtnet::state::RunningNetwork;

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

/// A host namespace with an uplink to an `outside` namespace, and the
/// files virtnet works with.
struct Lab {
    host: Netns,
    outside: Netns,
    scratch: ScratchDir,
    env: Environment,
    script: PathBuf,
    guests: u32,
}

impl Lab {
    fn new(label: &str) -> Self {
        let host = Netns::new(&format!("{label}h"));
        let outside = Netns::new(&format!("{label}o"));
        veth(&host, "uplink", &outside, "eth0");
        host.ip(&["addr", "add", "10.255.0.1/24", "dev", "uplink"]);
        outside.ip(&["addr", "add", "10.255.0.2/24", "dev", "eth0"]);
        host.ip(&["route", "add", "default", "via", "10.255.0.2"]);
        let scratch = ScratchDir::new(label);
        let env = Environment {
            state_dir: scratch.0.join("state"),
            run_dir: scratch.0.join("run"),
            dnsmasq: "dnsmasq".into(),
            tc: "tc".into(),
        };
        let script = scratch.0.join("udhcpc.script");
        std::fs::write(&script, UDHCPC_SCRIPT).unwrap();
        std::process::Command::new("chmod")
            .args(["755", script.to_str().unwrap()])
            .status()
            .unwrap();
        Self {
            host,
            outside,
            scratch,
            env,
            script,
            guests: 0,
        }
    }

    fn start(&self, xml: &str) -> Result<RunningNetwork, StartError> {
        let def = NetworkDef::parse(xml).expect("test definitions parse");
        def.validate().expect("test definitions are valid");
        self.host.block_on(apply::start(&def, &self.env, &[]))
    }

    fn stop(&self, running: &RunningNetwork) {
        self.host
            .block_on(apply::stop(running))
            .expect("stop removes everything");
    }

    /// What the host looks like, to compare before start and after stop.
    fn snapshot(&self) -> String {
        let links = self.host.exec_ok(&["ip", "-d", "link"]);
        let rules = self.host.exec_ok(&["nft", "list", "ruleset"]);
        let mut pids = self.host.pids();
        pids.sort();
        let mut files: Vec<String> = walk(&self.scratch.0)
            .into_iter()
            .filter(|path| !path.ends_with("udhcpc.script"))
            .collect();
        files.sort();
        format!("links:\n{links}\nrules:\n{rules}\npids: {pids:?}\nfiles: {files:?}\n")
    }

    /// State of the host and a guest, for failure messages.
    fn diagnose(&self, guest: &Netns) -> String {
        let show = |ns: &Netns, args: &[&str]| {
            let output = ns.exec(args);
            format!(
                "{} {args:?}:\n{}{}",
                ns.name,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        };
        [
            show(guest, &["ip", "addr"]),
            show(guest, &["ip", "route"]),
            show(&self.host, &["ip", "addr"]),
            show(&self.host, &["bridge", "link"]),
            show(&self.host, &["nft", "list", "ruleset"]),
        ]
        .join("\n")
    }

    /// A guest namespace plugged into `bridge` (MAC optional).
    fn guest(&mut self, bridge: &str, mac: Option<&str>) -> Netns {
        self.guests += 1;
        let guest = Netns::new(&format!("g{}", self.guests));
        let port = format!("vg{}{}", self.guests, &guest.name[guest.name.len() - 4..]);
        self.host.ip(&[
            "link",
            "add",
            &port,
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
        self.host
            .ip(&["link", "set", &port, "master", bridge, "up"]);
        guest.ip(&["link", "set", "eth0", "up"]);
        guest
    }

    /// Runs real DHCP in the guest; returns the address it was given.
    fn dhcp(&self, guest: &Netns) -> Ipv4Addr {
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
            self.script.to_str().unwrap(),
        ]);
        ipv4_of(guest)
    }
}

fn walk(dir: &std::path::Path) -> Vec<String> {
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

fn ipv4_of(ns: &Netns) -> Ipv4Addr {
    let output = ns.exec_ok(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    output
        .split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("no IPv4 address in {output}"))
}

fn pings(ns: &Netns, address: &str) -> bool {
    ns.exec(&["busybox", "ping", "-c", "1", "-W", "2", address])
        .status
        .success()
}

/// Opens a TCP connection from `guest` to `outside` and returns the peer
/// address the outside host saw.
fn source_seen_outside(lab: &Lab, guest: &Netns) -> Ipv4Addr {
    let listener = lab
        .outside
        .run_in(|| TcpListener::bind("10.255.0.2:9000").expect("listen in outside"));
    listener.set_nonblocking(false).unwrap();
    let client = std::thread::scope(|scope| {
        let accept = scope.spawn(|| {
            let (mut stream, peer) = listener.accept().expect("connection from the guest");
            let mut buffer = [0u8; 16];
            let _ = stream.read(&mut buffer);
            peer
        });
        let output = guest.exec(&["sh", "-c", "echo hello | busybox nc -w 3 10.255.0.2 9000"]);
        assert!(output.status.success(), "nc from the guest: {output:?}");
        accept.join().expect("accept thread")
    });
    match client.ip() {
        std::net::IpAddr::V4(v4) => v4,
        other => panic!("unexpected peer {other}"),
    }
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(project_dir().join("xml-samples").join(name)).unwrap()
}

#[test]
fn nat_keennet_guest_gets_a_lease_and_is_masqueraded() {
    let mut lab = Lab::new("nat");
    let before = lab.snapshot();
    let running = lab.start(&sample("keennet.xml")).expect("keennet starts");
    assert_eq!(running.bridge.as_ref().unwrap().name, "keenbr0");

    let guest = lab.guest("keenbr0", None);
    let address = lab.dhcp(&guest);
    let octets = address.octets();
    assert_eq!(
        &octets[..3],
        &[192, 168, 132],
        "lease {address} in the subnet"
    );
    assert!(
        (2..=254).contains(&octets[3]),
        "lease {address} in the range"
    );

    assert!(
        pings(&guest, "192.168.132.1"),
        "guest reaches its gateway\n{}",
        lab.diagnose(&guest)
    );
    assert!(
        pings(&guest, "10.255.0.2"),
        "guest reaches the outside host"
    );
    assert_eq!(
        source_seen_outside(&lab, &guest),
        Ipv4Addr::new(10, 255, 0, 1),
        "the outside host sees the host's address, not the guest's"
    );
    lab.outside
        .ip(&["route", "add", "192.168.132.0/24", "via", "10.255.0.1"]);
    assert!(
        !pings(&lab.outside, &address.to_string()),
        "new connections from outside do not reach a NATed guest"
    );

    drop(guest);
    lab.stop(&running);
    assert_eq!(before, lab.snapshot(), "stop leaves the host as it was");
}

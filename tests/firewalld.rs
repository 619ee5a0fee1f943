//! virtnetd beside the real firewalld (Debian's package, nftables backend,
//! its default configuration), both in the test's host namespace on a
//! private bus with the system bus's policy. firewalld runs in a mount
//! namespace of its own, where /etc/firewalld, /usr/lib/firewalld (without
//! libvirt's zones, so that virtnet installs its own), /run and /var/log
//! are the test's directories: nothing of the machine's is read or written.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::daemon::{Bus, Daemon, DaemonConfig, client, start_bus, system_bus_config};
use common::guest::{dhcp, dns_answers, peer_seen, pings, udhcpc_script, wait_forwarding};
use common::netns::{Netns, host_and_outside, plug_guest};
use common::{ScratchDir, project_dir};
use virtnet::apply::firewalld::{self, BridgeZone};

const BUS_NAME: &str = "org.virtnet";

/// Added to the system bus's policy (`system_bus_config`): firewalld's own
/// policy file, without service activation; root may also own and call
/// virtnetd's name, as the packaged policy lets it.
const SYSTEM_BUS_POLICIES: &str = r#"  <policy user="root">
    <allow own="org.virtnet"/>
    <allow send_destination="org.virtnet"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
"#;

/// A firewalld in `host`'s namespace; killed (by pid) when dropped.
struct Firewalld {
    child: Child,
    bus: String,
}

impl Firewalld {
    /// Starts firewalld with a fresh copy of the package's configuration
    /// under `dir`, the first time; later starts keep what it holds.
    fn start(host: &Netns, bus: &str, dir: &Path) -> Self {
        let etc = dir.join("etc");
        let defaults = dir.join("defaults");
        let log = dir.join("log");
        if !etc.exists() {
            copy_tree(Path::new("/etc/firewalld"), &etc, |_| true);
            copy_tree(Path::new("/usr/lib/firewalld"), &defaults, |name| {
                !name.starts_with("libvirt")
            });
            std::fs::create_dir_all(&log).unwrap();
        }
        // `unshare --mount` makes mounts private to firewalld; each step
        // execs the next, so the pid is firewalld's.
        let script = format!(
            "mount --bind {etc} /etc/firewalld && mount --bind {defaults} /usr/lib/firewalld \
             && mount -t tmpfs tmpfs /run && mkdir /run/firewalld && mount --bind {log} /var/log \
             && exec firewalld --nofork --nopid",
            etc = etc.display(),
            defaults = defaults.display(),
            log = log.display(),
        );
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("firewalld.out"))
            .unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &host.name,
                "unshare",
                "--mount",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", &script])
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .expect("firewalld starts");
        let firewalld = Self {
            child,
            bus: bus.to_owned(),
        };
        wait_until(Duration::from_secs(30), "firewalld to run", || {
            firewalld.cmd(&["--state"]).status.success()
        });
        firewalld
    }

    /// firewall-cmd against this firewalld.
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("firewall-cmd")
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus)
            .output()
            .expect("firewall-cmd runs")
    }

    fn cmd_ok(&self, args: &[&str]) -> String {
        let output = self.cmd(args);
        assert!(
            output.status.success(),
            "firewall-cmd {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn interfaces_of(&self, zone: &str) -> Vec<String> {
        self.cmd_ok(&["--zone", zone, "--list-interfaces"])
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// SIGTERM, as `systemctl stop firewalld`: firewalld removes its rules.
    fn stop(mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) on the pid of the child this guard spawned and has
        // not reaped yet, so the pid cannot have been reused.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let _ = self.child.wait();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Firewalld {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies the tree `from` to `to`, skipping the files `keep` refuses.
fn copy_tree(from: &Path, to: &Path, keep: impl Fn(&str) -> bool + Copy) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name), keep);
        } else if keep(&name) {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Lab {
    // Field order is drop order: processes before their namespaces.
    daemon: Daemon,
    firewalld: Option<Firewalld>,
    bus: String,
    _bus_daemon: Bus,
    scratch: ScratchDir,
    outside: Netns,
    host: Netns,
}

impl Lab {
    fn new(label: &str) -> Self {
        assert!(
            Path::new("/usr/sbin/firewalld").exists(),
            "firewalld is not installed: scripts/setup installs it"
        );
        let (host, outside) = host_and_outside(label);
        let scratch = ScratchDir::new(label);
        let config = scratch.0.join("system-bus.conf");
        let address = format!("unix:path={}", scratch.0.join("bus").display());
        std::fs::write(&config, system_bus_config(&address, SYSTEM_BUS_POLICIES)).unwrap();
        let bus_daemon = start_bus(&host, &scratch.0, Some(&config));
        let bus = bus_daemon.address.clone();
        let firewalld = Firewalld::start(&host, &bus, &scratch.0.join("firewalld"));
        let daemon = Daemon::start(&DaemonConfig {
            env: &[("DBUS_SYSTEM_BUS_ADDRESS", bus.as_str())],
            ..DaemonConfig::kernel(&host, &bus, BUS_NAME, &scratch.0, &[])
        });
        Self {
            daemon,
            firewalld: Some(firewalld),
            bus,
            _bus_daemon: bus_daemon,
            scratch,
            outside,
            host,
        }
    }

    fn firewalld(&self) -> &Firewalld {
        self.firewalld.as_ref().expect("firewalld runs")
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = client(&self.bus, BUS_NAME, args);
        assert!(
            output.status.success(),
            "virtnet {args:?} failed:\n{}{}\ndaemon log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.daemon.log_text()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn in_zone(&self, zone: &str, bridge: &str) -> bool {
        self.firewalld()
            .interfaces_of(zone)
            .iter()
            .any(|name| name == bridge)
    }

    /// What virtnet's own question (for `virtnet doctor`) gets.
    fn bridge_zone(&self, bridge: &str) -> BridgeZone {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(firewalld::bridge_zone(Some(&self.bus), bridge))
            .expect("firewalld answers")
    }

    fn wait_in_zone(&self, zone: &str, bridge: &str, why: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.in_zone(zone, bridge) {
            assert!(
                Instant::now() < deadline,
                "{bridge} is not in zone {zone} {why}; daemon log:\n{}",
                self.daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether a new TCP connection from `client` to `address` in `server`
/// gets through.
fn connects(server: &Netns, client: &Netns, address: SocketAddr) -> bool {
    let _listener = server.run_in(|| TcpListener::bind(address).expect("listen in the server"));
    client
        .exec(&[
            "sh",
            "-c",
            &format!(
                "echo x | busybox nc -w 2 {} {}",
                address.ip(),
                address.port()
            ),
        ])
        .status
        .success()
}

/// The guest works: a lease (or its renewal), DNS from the network's
/// dnsmasq, NAT to the outside, and no new connection from the outside.
fn guest_works(lab: &Lab, guest: &Netns, script: &Path, when: &str) -> Ipv4Addr {
    let address = dhcp(guest, script);
    assert_eq!(address.octets()[..3], [192, 168, 132], "lease {when}");
    let gateway = IpAddr::V4(Ipv4Addr::new(192, 168, 132, 1));
    assert!(dns_answers(guest, gateway), "DNS answers {when}");
    assert!(
        pings(guest, "10.255.0.2"),
        "the guest reaches the outside {when}"
    );
    let seen = peer_seen(&lab.outside, guest, "10.255.0.2:7001".parse().unwrap());
    assert_eq!(
        seen.ip(),
        IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
        "NAT {when}"
    );
    let inbound = SocketAddr::new(IpAddr::V4(address), 7002);
    assert!(
        !connects(guest, &lab.outside, inbound),
        "a new connection from the outside reaches the guest {when}"
    );
    address
}

#[test]
fn bridges_go_into_firewalld_zones_and_stay_there() {
    let mut lab = Lab::new("fwd");
    let sample = project_dir().join("xml-samples/keennet.xml");
    lab.cli(&["net-define", sample.to_str().unwrap()]);
    lab.cli(&["net-start", "keennet"]);

    lab.outside
        .ip(&["route", "add", "192.168.132.0/24", "via", "10.255.0.1"]);
    let script = udhcpc_script(&lab.scratch.0);
    let guest = plug_guest(&lab.host, "keenbr0", "fwdg", "vpfwd0", None);
    wait_forwarding(&lab.host, "vpfwd0");
    guest_works(&lab, &guest, &script, "at start");
    // firewalld's zones, not accepts of virtnet's in its table, let the
    // guest through.
    let ruleset = lab.host.exec_ok(&["nft", "list", "ruleset"]);
    assert!(
        ruleset.contains("table inet firewalld") && !ruleset.contains("virtnet network"),
        "{ruleset}"
    );

    // libvirt's zone was missing: virtnet added its own definitions to
    // firewalld's permanent configuration (in the test's /etc/firewalld).
    let etc = lab.scratch.0.join("firewalld/etc");
    assert!(
        etc.join("zones/libvirt.xml").exists(),
        "virtnet's zone is installed"
    );
    assert!(etc.join("policies/virtnet-guests-out.xml").exists());
    assert_eq!(
        lab.firewalld()
            .cmd_ok(&["--get-zone-of-interface", "keenbr0"]),
        "libvirt"
    );
    let zone = lab.firewalld().cmd_ok(&["--info-zone", "libvirt"]);
    assert!(zone.contains("services: dhcp dhcpv6 dns tftp"), "{zone}");
    assert_eq!(
        lab.bridge_zone("keenbr0"),
        BridgeZone::InZone("libvirt".into())
    );

    // A reload empties the zones' runtime interfaces: virtnetd puts the
    // bridge back on firewalld's Reloaded signal.
    lab.firewalld().cmd_ok(&["--reload"]);
    lab.wait_in_zone("libvirt", "keenbr0", "after firewall-cmd --reload");
    guest_works(&lab, &guest, &script, "after firewall-cmd --reload");

    // A firewalld started after virtnetd (here: again) starts with empty
    // zones: virtnetd puts the bridge back when firewalld takes its name.
    lab.firewalld.take().expect("firewalld runs").stop();
    lab.firewalld = Some(Firewalld::start(
        &lab.host,
        &lab.bus,
        &lab.scratch.0.join("firewalld"),
    ));
    lab.wait_in_zone("libvirt", "keenbr0", "after firewalld restarted");
    guest_works(&lab, &guest, &script, "after firewalld restarted");

    // Taken out by hand (firewalld announces nothing): doctor names it.
    assert!(
        client(&lab.bus, BUS_NAME, &["doctor", "keennet"])
            .status
            .success()
    );
    lab.firewalld()
        .cmd_ok(&["--zone=libvirt", "--remove-interface=keenbr0"]);
    let doctor = client(&lab.bus, BUS_NAME, &["doctor", "keennet"]);
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(!doctor.status.success(), "doctor finds it: {said}");
    assert!(
        said.contains("bridge keenbr0 is in no firewalld zone"),
        "doctor names the zone: {said}"
    );
    lab.firewalld()
        .cmd_ok(&["--zone=libvirt", "--add-interface=keenbr0"]);

    lab.cli(&["net-destroy", "keennet"]);
    assert!(
        !lab.in_zone("libvirt", "keenbr0"),
        "the stopped network's bridge is still in the zone; daemon log:\n{}",
        lab.daemon.log_text()
    );
    let zone = lab.firewalld().cmd(&["--get-zone-of-interface", "keenbr0"]);
    assert_eq!(String::from_utf8_lossy(&zone.stderr).trim(), "no zone");
    assert_eq!(lab.bridge_zone("keenbr0"), BridgeZone::NoZone);
    drop(guest);
}

#[test]
fn a_zone_firewalld_lacks_fails_the_start_naming_zone_and_bridge() {
    let lab = Lab::new("fwz");
    let xml = lab.scratch.0.join("zoned.xml");
    std::fs::write(
        &xml,
        "<network><name>zoned</name><bridge name='zonebr0' zone='nosuchzone'/>\
         <ip address='192.168.133.1' netmask='255.255.255.0'/></network>",
    )
    .unwrap();
    lab.cli(&["net-define", xml.to_str().unwrap()]);
    let output = client(&lab.bus, BUS_NAME, &["net-start", "zoned"]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("cannot put bridge zonebr0 into firewalld zone 'nosuchzone'"),
        "{error}"
    );
    assert!(error.contains("INVALID_ZONE"), "{error}");
    // Undone: no bridge, and the network is inactive.
    let links = lab.host.exec_ok(&["ip", "-o", "link"]);
    assert!(!links.contains("zonebr0"), "{links}");
    let list = lab.cli(&["net-list", "--all"]);
    assert!(
        list.lines()
            .any(|line| line.contains("zoned") && line.contains("inactive")),
        "{list}"
    );
}

/// Defines and starts the network of `xml`, written in the lab's scratch.
fn start_network(lab: &Lab, name: &str, xml: &str) -> Output {
    let path = lab.scratch.0.join(format!("{name}.xml"));
    std::fs::write(&path, xml).unwrap();
    lab.cli(&["net-define", path.to_str().unwrap()]);
    client(&lab.bus, BUS_NAME, &["net-start", name])
}

const ROUTED: &str = "<network><name>routed</name><forward mode='route'/>\
    <bridge name='routebr0'/><ip address='192.168.134.1' netmask='255.255.255.0'/></network>";
const OPEN: &str = "<network><name>open</name><forward mode='open'/>\
    <bridge name='openbr0'/><ip address='192.168.135.1' netmask='255.255.255.0'/></network>";
const NAT: &str = "<network><name>nat</name><forward mode='nat'/>\
    <bridge name='natbr0'/><ip address='192.168.136.1' netmask='255.255.255.0'/></network>";

#[test]
fn each_mode_gets_libvirts_zone_and_an_administrators_zone_is_kept() {
    let mut lab = Lab::new("fwm");
    // The administrator's own `libvirt` zone: used as it is, nothing added.
    let own_zone = lab.scratch.0.join("firewalld/etc/zones/libvirt.xml");
    std::fs::write(
        &own_zone,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<zone target=\"ACCEPT\"><short>mine</short></zone>\n",
    )
    .unwrap();
    lab.firewalld().cmd_ok(&["--reload"]);

    assert!(start_network(&lab, "nat", NAT).status.success());
    assert_eq!(
        lab.firewalld()
            .cmd_ok(&["--get-zone-of-interface", "natbr0"]),
        "libvirt"
    );
    let kept = std::fs::read_to_string(&own_zone).unwrap();
    assert!(kept.contains("<short>mine</short>"), "{kept}");
    let policies = lab.scratch.0.join("firewalld/etc/policies");
    assert!(!policies.join("virtnet-guests-out.xml").exists());

    // Routed: libvirt-routed and its policies, virtnet's own here.
    assert!(start_network(&lab, "routed", ROUTED).status.success());
    assert_eq!(
        lab.firewalld()
            .cmd_ok(&["--get-zone-of-interface", "routebr0"]),
        "libvirt-routed"
    );
    assert!(policies.join("libvirt-routed-out.xml").exists());
    assert!(policies.join("libvirt-routed-in.xml").exists());
    // Installing reloaded firewalld: the NAT network's bridge is back.
    lab.wait_in_zone("libvirt", "natbr0", "after virtnet reloaded firewalld");

    // Open: no zone unless the definition names one, as in libvirt.
    assert!(start_network(&lab, "open", OPEN).status.success());
    let zone = lab.firewalld().cmd(&["--get-zone-of-interface", "openbr0"]);
    assert_eq!(String::from_utf8_lossy(&zone.stderr).trim(), "no zone");

    // Without firewalld, networks start as usual, except those that name a
    // zone (libvirt's error).
    lab.firewalld.take().expect("firewalld runs").stop();
    assert_eq!(lab.bridge_zone("natbr0"), BridgeZone::FirewalldNotRunning);
    for name in ["nat", "routed", "open"] {
        lab.cli(&["net-destroy", name]);
        lab.cli(&["net-start", name]);
    }
    let zoned = "<network><name>zoned</name><bridge name='zonebr1' zone='trusted'/>\
        <ip address='192.168.137.1' netmask='255.255.255.0'/></network>";
    let output = start_network(&lab, "zoned", zoned);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("zone trusted requested for network zoned but firewalld is not active"),
        "{error}"
    );

    // firewalld back: the running networks' bridges go into their zones.
    lab.firewalld = Some(Firewalld::start(
        &lab.host,
        &lab.bus,
        &lab.scratch.0.join("firewalld"),
    ));
    lab.wait_in_zone("libvirt", "natbr0", "after firewalld started");
    lab.wait_in_zone("libvirt-routed", "routebr0", "after firewalld started");
}

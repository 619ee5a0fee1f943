//! virtnetd beside a real libvirtd, both in the test's own namespace:
//! libvirt's guests (a qemu domain under TCG) land on virtnet's bridges and
//! get their leases from virtnet's dnsmasq; libvirtd's own networks are
//! not trampled; `virtnet import --uri` moves a running libvirt network,
//! guest and all.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::daemon::{Bus, Daemon, DaemonConfig, start_bus};
use common::guest::{dhcp, pings, udhcpc_script, wait_forwarding};
use common::libvirtd::{Libvirtd, qemu};
use common::netns::{Netns, host_and_outside, plug_guest};
use common::{ScratchDir, project_dir};

const BUS_NAME: &str = "org.virtnet";

/// A host namespace with a private bus, virtnetd publishing to a libvirtd
/// of the test's own (started when the test says), and an outside machine.
struct Lab {
    daemon: Option<Daemon>,
    bus: String,
    _bus_daemon: Bus,
    scratch: ScratchDir,
    _outside: Netns,
    host: Netns,
}

impl Lab {
    fn new(label: &str) -> Self {
        let (host, outside) = host_and_outside(label);
        let scratch = ScratchDir::new(label);
        let bus_daemon = start_bus(&host, &scratch.0, None);
        let mut lab = Self {
            daemon: None,
            bus: bus_daemon.address.clone(),
            _bus_daemon: bus_daemon,
            scratch,
            _outside: outside,
            host,
        };
        lab.start_daemon();
        lab
    }

    fn start_daemon(&mut self) {
        let uri = uri(&self.scratch);
        self.daemon = Some(Daemon::start(&DaemonConfig::kernel(
            &self.host,
            &self.bus,
            BUS_NAME,
            &self.scratch.0,
            &["--libvirt-uri", &uri],
        )));
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("virtnetd runs")
    }

    fn libvirtd(&self) -> Libvirtd {
        let libvirtd = Libvirtd::start(&self.host, &self.scratch.0.join("libvirt"));
        assert_eq!(libvirtd.uri, uri(&self.scratch));
        libvirtd
    }

    /// virtnet, run outside the lab's namespace: what touches the host
    /// there (import's move of guests' ports) is virtnetd's work.
    fn cli_output(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_virtnet"))
            .args(["--bus-address", &self.bus, "--bus-name", BUS_NAME])
            .args(args)
            .output()
            .expect("virtnet runs")
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = self.cli_output(args);
        assert!(
            output.status.success(),
            "virtnet {args:?} failed:\n{}{}\ndaemon log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.daemon().log_text()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// virtnet's error message for a verb that must fail.
    fn cli_error(&self, args: &[&str]) -> String {
        let output = self.cli_output(args);
        assert!(!output.status.success(), "virtnet {args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.scratch.0.join(name);
        std::fs::write(&path, text).expect("scratch file");
        path.display().to_string()
    }

    fn ports(&self, bridge: &str) -> String {
        self.host
            .exec_ok(&["ip", "-br", "link", "show", "master", bridge])
    }
}

fn uri(scratch: &ScratchDir) -> String {
    format!(
        "qemu+unix:///system?socket={}",
        scratch.0.join("libvirt/run/libvirt-sock").display()
    )
}

/// Polls `check` until it holds; panics with `what` after `limit`.
fn wait_for(limit: Duration, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn net_info_says(libvirtd: &Libvirtd, network: &str, field: &str, value: &str) -> bool {
    let output = libvirtd.virsh(&["net-info", network]);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|line| line.starts_with(field) && line.ends_with(value))
}

const GUEST_MAC: &str = "52:54:00:6b:65:01";

fn domain_xml(network: &str, portgroup: &str) -> String {
    format!(
        "<domain type='qemu'>
  <name>keenvm</name>
  <memory unit='MiB'>96</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='network'/>
    <bios rebootTimeout='1000'/>
  </os>
  <devices>
    <emulator>{}</emulator>
    <interface type='network'>
      <source network='{network}' portgroup='{portgroup}'/>
      <mac address='{GUEST_MAC}'/>
      <model type='e1000'/>
    </interface>
    <memballoon model='none'/>
  </devices>
</domain>
",
        qemu().display()
    )
}

#[test]
fn libvirt_guests_land_on_virtnets_bridge_and_get_its_leases() {
    let lab = Lab::new("lvp");
    // The sample, with its guests' ports isolated from each other, and a
    // portgroup the guest names.
    let sample = std::fs::read_to_string(project_dir().join("xml-samples/keennet.xml"))
        .expect("the keennet sample");
    let keennet = lab.file(
        "keennet.xml",
        &sample.replace(
            "</network>",
            "  <port isolated='yes'/>\n  <portgroup name='eng'/>\n</network>",
        ),
    );
    // libvirtd is not there yet: virtnet goes on and says so once.
    lab.cli(&["net-define", &keennet]);
    lab.cli(&["net-start", "keennet"]);
    assert_eq!(
        lab.daemon()
            .log_text()
            .matches("libvirtd is not reachable")
            .count(),
        1,
        "{}",
        lab.daemon().log_text()
    );

    let mut libvirtd = lab.libvirtd();
    wait_for(Duration::from_secs(20), "keennet published", || {
        net_info_says(&libvirtd, "keennet", "Active:", "yes")
    });
    assert!(net_info_says(&libvirtd, "keennet", "Bridge:", "keenbr0"));
    let uuid = lab.cli(&["net-uuid", "keennet"]);
    assert!(net_info_says(&libvirtd, "keennet", "UUID:", uuid.trim()));
    let published = libvirtd.virsh_ok(&["net-dumpxml", "keennet"]);
    assert!(
        published.contains("<forward mode='bridge'/>")
            && published.contains("<portgroup name='eng'>"),
        "{published}"
    );

    // A guest of libvirt's: its tap is a port of keenbr0 and virtnet's
    // dnsmasq gives its firmware (iPXE) a lease.
    let domain = lab.file("keenvm.xml", &domain_xml("keennet", "eng"));
    libvirtd.virsh_ok(&["create", &domain]);
    let ports = lab.ports("keenbr0");
    assert!(ports.starts_with("vnet"), "keenbr0's ports: {ports}");
    let tap = ports.split_whitespace().next().unwrap_or_default();
    let port = lab
        .host
        .exec_ok(&["bridge", "-d", "link", "show", "dev", tap]);
    assert!(port.contains("isolated on"), "{port}");
    wait_for(Duration::from_secs(120), "the guest's lease", || {
        lab.cli(&["net-dhcp-leases", "keennet"]).contains(GUEST_MAC)
    });
    let leases = lab.cli(&["net-dhcp-leases", "keennet", "--mac", GUEST_MAC]);
    assert!(leases.contains("192.168.132."), "{leases}");

    // libvirtd's own networks are not trampled.
    lab.file(
        "lvnet.xml",
        "<network><name>lvnet</name><bridge name='lvbr0'/>\
         <ip address='10.77.0.1' prefix='24'/></network>",
    );
    libvirtd.virsh_ok(&[
        "net-define",
        &lab.scratch.0.join("lvnet.xml").display().to_string(),
    ]);
    let same_name = lab.file(
        "same-name.xml",
        "<network><name>lvnet</name><bridge name='vtbr9'/></network>",
    );
    let error = lab.cli_error(&["net-define", &same_name]);
    assert!(
        error.contains("clashes with libvirtd's network 'lvnet'")
            && error.contains("same name, another uuid"),
        "{error}"
    );
    let same_bridge = lab.file(
        "same-bridge.xml",
        "<network><name>vtnet</name><bridge name='lvbr0'/></network>",
    );
    let error = lab.cli_error(&["net-define", &same_bridge]);
    assert!(error.contains("bridge 'lvbr0' is in use"), "{error}");
    libvirtd.virsh_ok(&["net-start", "lvnet"]);
    let overlapping = lab.file(
        "overlap.xml",
        "<network><name>vtwide</name><bridge name='vtbr8'/>\
         <ip address='10.77.128.1' prefix='16'/></network>",
    );
    lab.cli(&["net-define", &overlapping]);
    let error = lab.cli_error(&["net-start", "vtwide"]);
    assert!(
        error.contains("subnet 10.77.128.1/16 overlaps its 10.77.0.1/24"),
        "{error}"
    );
    lab.cli(&["net-undefine", "vtwide"]);
    libvirtd.virsh_ok(&["net-destroy", "lvnet"]);
    libvirtd.virsh_ok(&["net-undefine", "lvnet"]);

    // libvirtd restarts with nothing of its runtime state left: virtnet
    // publishes keennet again.
    libvirtd.virsh_ok(&["destroy", "keenvm"]);
    libvirtd.stop();
    std::fs::remove_dir_all(lab.scratch.0.join("libvirt/run")).expect("libvirt's runtime state");
    let libvirtd = lab.libvirtd();
    assert!(!net_info_says(&libvirtd, "keennet", "Active:", "yes"));
    wait_for(Duration::from_secs(20), "keennet published again", || {
        net_info_says(&libvirtd, "keennet", "Active:", "yes")
    });

    // Portgroups changed live reach libvirtd's copy (live updates there).
    lab.cli(&[
        "net-update",
        "keennet",
        "add",
        "portgroup",
        "<portgroup name='ops'><bandwidth><inbound average='1000'/></bandwidth></portgroup>",
        "--live",
    ]);
    lab.cli(&[
        "net-update",
        "keennet",
        "delete",
        "portgroup",
        "<portgroup name='eng'/>",
        "--live",
    ]);
    wait_for(
        Duration::from_secs(10),
        "the portgroups in libvirtd",
        || {
            let published = libvirtd.virsh_ok(&["net-dumpxml", "keennet"]);
            published.contains("<portgroup name='ops'>")
                && published.contains("<inbound average='1000'/>")
                && !published.contains("'eng'")
        },
    );

    // Stopped in virtnet, withdrawn from libvirtd; nothing left in either.
    lab.cli(&["net-destroy", "keennet"]);
    wait_for(Duration::from_secs(10), "keennet withdrawn", || {
        libvirtd
            .virsh_ok(&["net-list", "--all", "--name"])
            .trim()
            .is_empty()
    });
    lab.cli(&["net-undefine", "keennet"]);
    assert_eq!(libvirtd.virsh_ok(&["list", "--all", "--name"]).trim(), "");
    assert_eq!(lab.cli(&["net-list", "--all", "--name"]).trim(), "");
    wait_for(
        Duration::from_secs(10),
        "keenbr0 and the table gone",
        || {
            let links = lab.host.exec_ok(&["ip", "-o", "link"]);
            let tables = lab.host.exec_ok(&["nft", "list", "tables"]);
            !links.contains("keenbr0") && !links.contains("vnet") && !tables.contains("virtnet")
        },
    );
}

#[test]
fn import_moves_a_running_libvirt_network_with_its_guest() {
    let lab = Lab::new("lvi");
    let libvirtd = lab.libvirtd();
    let definition = lab.file(
        "lvdefault.xml",
        "<network><name>lvdefault</name><forward mode='nat'/>\
         <bridge name='virbr7' stp='on' delay='0'/>\
         <ip address='192.168.177.1' netmask='255.255.255.0'><dhcp>\
         <range start='192.168.177.2' end='192.168.177.254'/></dhcp></ip></network>",
    );
    libvirtd.virsh_ok(&["net-define", &definition]);
    libvirtd.virsh_ok(&["net-autostart", "lvdefault"]);
    libvirtd.virsh_ok(&["net-start", "lvdefault"]);
    let libvirt_xml = libvirtd.virsh_ok(&["net-dumpxml", "lvdefault"]);

    // A guest on libvirt's bridge, with a lease from libvirt's dnsmasq.
    let port = format!("vpg-{}", &lab.host.name[lab.host.name.len() - 4..]);
    let guest = plug_guest(&lab.host, "virbr7", "lvig", &port, None);
    wait_forwarding(&lab.host, &port);
    let script = udhcpc_script(&lab.scratch.0);
    let address = dhcp(&guest, &script);
    assert!(address.to_string().starts_with("192.168.177."));

    let dry_run = lab.cli(&["import", "--uri", &libvirtd.uri, "--dry-run", "lvdefault"]);
    assert!(
        dry_run.starts_with("Would import network lvdefault (uuid ")
            && dry_run.contains(", bridge virbr7, mac 52:54:00:")
            && dry_run.contains(", autostart, running)"),
        "{dry_run}"
    );
    assert!(net_info_says(&libvirtd, "lvdefault", "Active:", "yes"));
    assert_eq!(lab.cli(&["net-list", "--all", "--name"]).trim(), "");

    let imported = lab.cli(&["import", "--uri", &libvirtd.uri, "--undefine", "lvdefault"]);
    assert!(
        imported.contains("running in virtnet; libvirt's copy stopped; 1 guest port(s) moved")
            && imported.contains("libvirt's copy undefined"),
        "{imported}"
    );
    let info = lab.cli(&["net-info", "lvdefault"]);
    assert!(
        info.contains("Active:         yes") && info.contains("Autostart:      yes"),
        "{info}"
    );
    // Same uuid, MAC and bridge as libvirt had.
    let ours = lab.cli(&["net-dumpxml", "lvdefault"]);
    for line in libvirt_xml.lines().filter(|line| {
        line.contains("<uuid>") || line.contains("<mac ") || line.contains("<bridge ")
    }) {
        assert!(ours.contains(line.trim()), "{line} in\n{ours}");
    }
    // The guest's port is on virtnet's bridge; its address still works,
    // through virtnet's NAT, and virtnet's dnsmasq renews it.
    assert!(
        lab.ports("virbr7").starts_with(&port),
        "{}",
        lab.ports("virbr7")
    );
    wait_forwarding(&lab.host, &port);
    assert!(pings(&guest, "192.168.177.1"), "guest reaches the gateway");
    assert!(pings(&guest, "10.255.0.2"), "guest reaches the outside");
    assert_eq!(
        dhcp(&guest, &script),
        address,
        "the guest keeps its address"
    );
    // libvirtd has only virtnet's publication of it.
    let published = libvirtd.virsh_ok(&["net-dumpxml", "lvdefault"]);
    assert!(
        published.contains("<forward mode='bridge'/>"),
        "{published}"
    );

    lab.cli(&["net-destroy", "lvdefault"]);
    lab.cli(&["net-undefine", "lvdefault"]);
    wait_for(Duration::from_secs(10), "libvirtd's copy gone", || {
        libvirtd
            .virsh_ok(&["net-list", "--all", "--name"])
            .trim()
            .is_empty()
    });
}

/// A transient network that vanished while virtnetd was away (its bridge
/// deleted) is gone at the next start, and so is its copy in libvirtd.
#[test]
fn a_network_gone_while_virtnetd_was_away_is_withdrawn_from_libvirtd() {
    let mut lab = Lab::new("lvw");
    let libvirtd = lab.libvirtd();
    let definition = lab.file(
        "passing.xml",
        "<network><name>passing</name><bridge name='vn-pass0'/>\
         <ip address='10.93.0.1' prefix='24'/></network>",
    );
    lab.cli(&["net-create", &definition]);
    wait_for(Duration::from_secs(10), "passing published", || {
        net_info_says(&libvirtd, "passing", "Active:", "yes")
    });

    lab.daemon.take().expect("virtnetd runs").kill();
    lab.host.ip(&["link", "del", "vn-pass0"]);
    lab.start_daemon();
    wait_for(Duration::from_secs(10), "the publication withdrawn", || {
        !libvirtd
            .virsh_ok(&["net-list", "--all", "--name"])
            .contains("passing")
    });
    assert_eq!(lab.cli(&["net-list", "--all", "--name"]).trim(), "");
    assert!(
        lab.daemon().log_text().contains("withdrew network "),
        "{}",
        lab.daemon().log_text()
    );
}

/// virtnet, with the time it took; panics if it takes longer than `limit`
/// (killing it).
fn cli_within(lab: &Lab, limit: Duration, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_virtnet"))
        .args(["--bus-address", &lab.bus, "--bus-name", BUS_NAME])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("virtnet runs");
    while child.try_wait().expect("virtnet's status").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "virtnet {args:?} still waits after {limit:?}; daemon log:\n{}",
                lab.daemon().log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("virtnet's output");
    (output, started.elapsed())
}

/// A libvirtd that hangs (stopped with SIGSTOP: its socket still takes
/// connections, nothing answers) makes net-define and net-start fail
/// within virtnet's timeout, saying so, and leaves nothing behind; once
/// it goes on (SIGCONT), both work again and the network is published.
#[test]
fn a_hung_libvirtd_does_not_hang_defines_and_starts() {
    let lab = Lab::new("lvh");
    let libvirtd = lab.libvirtd();
    let first = lab.file(
        "first.xml",
        "<network><name>first</name><bridge name='vn-first0'/>\
         <ip address='10.94.0.1' prefix='24'/></network>",
    );
    let later = lab.file(
        "later.xml",
        "<network><name>later</name><bridge name='vn-later0'/>\
         <ip address='10.95.0.1' prefix='24'/></network>",
    );
    lab.cli(&["net-define", &first]);
    wait_for(Duration::from_secs(20), "virtnetd connected", || {
        lab.daemon().log_text().contains("connected to libvirtd")
    });

    let paused = libvirtd.pause();
    let says = format!(
        "Timed out during operation: libvirtd at {} does not answer (no reply within 5 s)",
        libvirtd.uri
    );
    // Within the timeout, plus what a loaded machine may add.
    let limit = Duration::from_secs(15);
    for args in [
        vec!["net-define", later.as_str()],
        vec!["net-start", "first"],
    ] {
        let (output, took) = cli_within(&lab, limit, &args);
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(error.contains(&says), "{args:?}: {error}");
        assert!(took >= Duration::from_secs(5), "{args:?} took {took:?}");
    }
    assert_eq!(lab.cli(&["net-list", "--all", "--name"]).trim(), "first");
    assert!(
        !lab.host
            .exec_ok(&["ip", "-o", "link"])
            .contains("vn-first0")
    );

    drop(paused);
    lab.cli(&["net-define", &later]);
    lab.cli(&["net-start", "first"]);
    wait_for(Duration::from_secs(20), "first published", || {
        net_info_says(&libvirtd, "first", "Active:", "yes")
    });
    lab.cli(&["net-destroy", "first"]);
    lab.cli(&["net-undefine", "first"]);
    lab.cli(&["net-undefine", "later"]);
}

//! virtnetd with the kernel driver, driven through the `virtnet` CLI on a
//! private bus, everything inside namespaces made for the test: `host`
//! runs the bus, the daemon and the networks; `outside` is a machine beyond
//! the host's uplink; guests are namespaces plugged into bridges.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::daemon::{Bus, Daemon, DaemonConfig, client, start_bus};
use common::guest::{dhcp, ping_flood, ping_summary, pings, udhcpc_script, wait_forwarding, walk};
use common::netns::{Netns, host_and_outside, plug_guest};
use common::{ScratchDir, project_dir};

const BUS_NAME: &str = "org.virtnet";

struct Lab {
    daemon: Option<Daemon>,
    bus: String,
    _bus_daemon: Bus,
    dirs: PathBuf,
    scratch: ScratchDir,
    /// Kept for the lab's lifetime: the machine beyond the uplink.
    _outside: Netns,
    host: Netns,
}

impl Lab {
    fn new(label: &str) -> Self {
        let (host, outside) = host_and_outside(label);
        let scratch = ScratchDir::new(label);
        let bus_daemon = start_bus(&host, &scratch.0, None);
        let dirs = scratch.0.join("virtnet");
        let mut lab = Self {
            daemon: None,
            bus: bus_daemon.address.clone(),
            _bus_daemon: bus_daemon,
            dirs,
            scratch,
            _outside: outside,
            host,
        };
        lab.start_daemon();
        lab
    }

    fn start_daemon(&mut self) {
        self.daemon = Some(Daemon::start(&DaemonConfig::kernel(
            &self.host,
            &self.bus,
            BUS_NAME,
            &self.scratch.0,
            &[],
        )));
    }

    fn daemon(&mut self) -> Daemon {
        self.daemon.take().expect("the daemon runs")
    }

    /// Runs virtnet; panics with its output (and the daemon's log) unless
    /// it succeeds. Returns standard output.
    fn cli(&self, args: &[&str]) -> String {
        let output = client(&self.bus, BUS_NAME, args);
        assert!(
            output.status.success(),
            "virtnet {args:?} failed:\n{}{}\ndaemon log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn cli_fails(&self, args: &[&str]) -> Output {
        let output = client(&self.bus, BUS_NAME, args);
        assert!(!output.status.success(), "virtnet {args:?} succeeded");
        output
    }

    fn wait_until(&self, ready: impl Fn(&Self) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !ready(self) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out; daemon log:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The host comes back to `before` (a stopped network's rules and
    /// bridge go in the background, within milliseconds).
    fn assert_settles_to(&self, before: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.snapshot() != before && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(
            self.snapshot(),
            before,
            "nothing left behind; daemon log:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.0.join("virtnetd.log")).unwrap_or_default()
    }

    /// Links, rules and virtnet's files: to compare before and after.
    fn snapshot(&self) -> String {
        // Without -d: bridge timers change while nothing else does.
        let links = self.host.exec_ok(&["ip", "-o", "link"]);
        // DAD marks fresh link-local addresses "tentative" for a while.
        let addresses = self
            .host
            .exec_ok(&["ip", "-o", "addr"])
            .replace(" tentative", "");
        let rules = self.host.exec_ok(&["nft", "list", "ruleset"]);
        let mut files = walk(&self.dirs);
        files.sort();
        format!("links:\n{links}\naddresses:\n{addresses}\nrules:\n{rules}\nfiles: {files:?}\n")
    }

    /// A guest plugged into `bridge`, and the name of its port there.
    fn guest(&self, bridge: &str, label: &str) -> (Netns, String) {
        self.guest_with_mac(bridge, label, None)
    }

    fn guest_with_mac(&self, bridge: &str, label: &str, mac: Option<&str>) -> (Netns, String) {
        let port = format!("vp{label}-{}", &self.host.name[self.host.name.len() - 4..]);
        let guest = plug_guest(&self.host, bridge, label, &port, mac);
        wait_forwarding(&self.host, &port);
        (guest, port)
    }
}

fn sample(name: &str) -> String {
    project_dir()
        .join("xml-samples")
        .join(name)
        .display()
        .to_string()
}

fn mac_of(ns: &Netns) -> String {
    let output = ns.exec_ok(&["cat", "/sys/class/net/eth0/address"]);
    output.trim().to_owned()
}

/// The seed workflow of a user, through the CLI only: define keennet,
/// autostart, start, list, dumpxml; a guest gets a lease that
/// net-dhcp-leases shows; the daemon is killed and restarted under a
/// running ping (not one lost, nothing re-created); autostart brings the
/// network back at daemon start; destroy and undefine leave the host as
/// it was.
#[test]
fn seed_workflow_through_the_cli() {
    let mut lab = Lab::new("seed");
    let before = lab.snapshot();
    let keennet = sample("keennet.xml");

    assert_eq!(
        lab.cli(&["net-define", &keennet]),
        format!("Network keennet defined from {keennet}\n\n")
    );
    assert_eq!(
        lab.cli(&["net-autostart", "keennet"]),
        "Network keennet marked as autostarted\n\n"
    );
    assert_eq!(
        lab.cli(&["net-start", "keennet"]),
        "Network keennet started\n\n"
    );
    assert_eq!(
        lab.cli(&["net-list"]),
        " Name      State    Autostart   Persistent\n\
         --------------------------------------------\n \
         keennet   active   yes         yes\n\n"
    );
    let xml = lab.cli(&["net-dumpxml", "keennet"]);
    assert!(
        xml.contains("<bridge name='keenbr0' stp='on' delay='0'/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<mac address='52:54:00:"),
        "a MAC is chosen once: {xml}"
    );
    // Running, it says which ports it masquerades to, as libvirt's does.
    let live_nat = "  <forward mode='nat'>\n    <nat>\n      \
                    <port start='1024' end='65535'/>\n    </nat>\n  </forward>\n";
    assert!(xml.contains(live_nat), "{xml}");
    assert_eq!(
        lab.cli(&["net-dumpxml", "--inactive", "keennet"]),
        xml.replace(live_nat, "  <forward mode='nat'/>\n"),
        "the MAC is part of the persistent definition too"
    );
    let error = lab.cli_fails(&["net-start", "keennet"]);
    assert_eq!(
        String::from_utf8_lossy(&error.stderr),
        "error: Failed to start network keennet\n\
         error: Requested operation is not valid: network is already active\n"
    );

    let script = udhcpc_script(&lab.scratch.0);
    let (guest, port) = lab.guest("keenbr0", "g1");
    let address = dhcp(&guest, &script);
    assert_eq!(address.octets()[..3], [192, 168, 132], "lease in the range");
    assert!(pings(&guest, "10.255.0.2"), "the guest reaches the outside");
    let leases = lab.cli(&["net-dhcp-leases", "keennet"]);
    let mac = mac_of(&guest);
    assert!(
        leases.contains(&format!("{mac}   ipv4       {address}/24")),
        "{leases}"
    );
    assert!(leases.starts_with(" Expiry Time "), "{leases}");
    assert_eq!(
        lab.cli(&["net-dhcp-leases", "keennet", "--mac", &mac]),
        leases
    );
    assert!(
        !lab.cli(&["net-dhcp-leases", "keennet", "--mac", "52:54:00:00:00:01"])
            .contains("ipv4"),
        "--mac filters"
    );
    // libvirt's lease status file, for libvirt's NSS module and others.
    let status = std::fs::read_to_string(lab.dirs.join("lib/dnsmasq/keenbr0.status")).unwrap();
    let recorded: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(recorded[0]["mac-address"], mac.as_str(), "{status}");
    assert_eq!(recorded[0]["ip-address"], address.to_string(), "{status}");
    assert!(
        status.starts_with("[\n    {\n"),
        "four-space JSON: {status}"
    );

    // Restart without disruption: a guest pinging through NAT every 5 ms
    // while the daemon is killed and started again.
    let running = lab.snapshot();
    let dnsmasq = std::fs::read_to_string(lab.dirs.join("run/dnsmasq/keenbr0.pid")).unwrap();
    let mut ping = ping_flood(&guest, "10.255.0.2", 600, "0.005");
    std::thread::sleep(std::time::Duration::from_millis(500));
    lab.daemon().kill();
    lab.start_daemon();
    // The daemon answers once it has taken the network over.
    assert!(
        ping.try_wait().expect("ping's status").is_none(),
        "the guest's pings ran all through the adoption"
    );
    let output = ping.wait_with_output().expect("ping ends");
    let (sent, got) =
        ping_summary(&String::from_utf8_lossy(&output.stdout)).expect("ping prints a summary");
    assert_eq!((sent, got), (600, 600), "no ping lost across the restart");
    assert_eq!(lab.snapshot(), running, "nothing re-created at adoption");
    assert!(
        lab.log().contains("network taken over, intact"),
        "{}",
        lab.log()
    );
    let pid = dnsmasq.trim();
    assert!(
        lab.host.pids().iter().any(|running| running == pid),
        "same dnsmasq"
    );
    assert!(lab.cli(&["net-dhcp-leases", "keennet"]).contains(&mac));

    // Autostart: stopped, the network comes back with the daemon.
    lab.cli(&["net-destroy", "keennet"]);
    assert!(lab.daemon().terminate().success());
    lab.start_daemon();
    // The daemon answers first, then starts the autostart networks.
    lab.wait_until(|lab| lab.cli(&["net-list"]).contains(" keennet   active   yes"));
    // The guest's port went with the old bridge, as a tap would.
    lab.host.ip(&["link", "set", &port, "master", "keenbr0"]);
    wait_forwarding(&lab.host, &port);
    assert!(
        pings(&guest, "192.168.132.1"),
        "the restarted network works"
    );

    lab.cli(&["net-destroy", "keennet"]);
    assert_eq!(
        lab.cli(&["net-undefine", "keennet"]),
        "Network keennet has been undefined\n\n"
    );
    drop(guest);
    lab.assert_settles_to(&before);
    assert_eq!(lab.host.pids().len(), 2, "only the bus and virtnetd run");
}

/// What someone removed from a running network while the daemon was away
/// (an address, a route, dnsmasq) is put back at the daemon's next start,
/// and nothing else is re-created.
#[test]
fn restart_puts_back_what_was_removed_while_the_daemon_was_away() {
    let mut lab = Lab::new("repair");
    let before = lab.snapshot();
    let file = lab.scratch.0.join("routed.xml");
    std::fs::write(
        &file,
        "<network><name>routed</name><forward mode='route'/>
         <bridge name='vn-repair0' stp='off'/>
         <bandwidth><inbound average='1000'/></bandwidth>
         <ip address='10.88.0.1' prefix='24'><dhcp>
         <range start='10.88.0.10' end='10.88.0.20'/></dhcp></ip>
         <route address='10.89.0.0' prefix='16' gateway='10.88.0.254'/></network>",
    )
    .unwrap();
    lab.cli(&["net-define", file.to_str().unwrap()]);
    lab.cli(&["net-start", "routed"]);
    let routes = |lab: &Lab| {
        lab.host
            .exec_ok(&["ip", "route", "show", "dev", "vn-repair0"])
    };
    let classes = |lab: &Lab| {
        lab.host
            .exec_ok(&["tc", "class", "show", "dev", "vn-repair0"])
    };
    // Links, addresses, rules, routes and traffic classes (the lease status
    // file may appear).
    let kernel = |lab: &Lab| {
        let snapshot = lab.snapshot();
        let (objects, _files) = snapshot.split_once("files:").unwrap();
        format!(
            "{objects}routes:\n{}classes:\n{}",
            routes(lab),
            classes(lab)
        )
    };
    let intact = kernel(&lab);
    assert!(intact.contains("10.89.0.0/16 via 10.88.0.254"), "{intact}");
    assert!(
        intact.contains("class htb 1:2 parent 1:1 prio 0 rate 8Mbit"),
        "{intact}"
    );
    let pid_file = lab.dirs.join("run/dnsmasq/vn-repair0.pid");
    let old_pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();

    lab.daemon().kill();
    lab.host
        .ip(&["addr", "del", "10.88.0.1/24", "dev", "vn-repair0"]);
    // The kernel may already have dropped the route with its gateway's subnet.
    lab.host.exec(&["ip", "route", "del", "10.89.0.0/16"]);
    assert_eq!(routes(&lab), "", "route and subnet gone");
    lab.host
        .exec_ok(&["tc", "qdisc", "del", "dev", "vn-repair0", "root"]);
    assert_eq!(classes(&lab), "", "shaping gone");
    let dnsmasq: libc::pid_t = old_pid.parse().unwrap();
    // SAFETY: kill(2) takes plain integers; the pid is this network's dnsmasq.
    assert_eq!(unsafe { libc::kill(dnsmasq, libc::SIGKILL) }, 0);
    lab.wait_until(|_| !std::path::Path::new(&format!("/proc/{old_pid}")).exists());

    lab.start_daemon();
    lab.wait_until(|lab| lab.log().contains("network taken over"));
    assert!(
        lab.log().contains(
            "network taken over; re-created address 10.88.0.1/24, route 10.89.0.0/16, inbound shaping, dnsmasq"
        ),
        "{}",
        lab.log()
    );
    let new_pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_ne!(new_pid, old_pid, "a new dnsmasq");
    assert!(
        lab.host.pids().contains(&new_pid),
        "the new dnsmasq runs in the network's namespace"
    );
    assert_eq!(
        kernel(&lab),
        intact,
        "the network is whole again, with the same bridge and rules"
    );

    lab.cli(&["net-destroy", "routed"]);
    lab.cli(&["net-undefine", "routed"]);
    lab.assert_settles_to(&before);
}

/// A daemon killed between "start began" and "start finished" (its status
/// says so) finds the leftovers at its next start and removes them; a
/// network whose bridge vanished while the daemon was away is marked
/// inactive and cleaned up.
#[test]
fn interrupted_work_is_finished_at_daemon_start() {
    let mut lab = Lab::new("crash");
    let before = lab.snapshot();
    lab.cli(&["net-define", &sample("keennet.xml")]);
    lab.cli(&["net-start", "keennet"]);
    let status = lab.dirs.join("run/networks/keennet.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&status).unwrap()).unwrap();
    lab.daemon().kill();
    // As if killed in the middle of the start.
    record["phase"] = "starting".into();
    record["running"] = serde_json::Value::Null;
    std::fs::write(&status, record.to_string()).unwrap();
    lab.start_daemon();
    assert!(
        lab.cli(&["net-list", "--all"])
            .contains(" keennet   inactive")
    );
    assert!(
        lab.log().contains("finishing an interrupted start"),
        "{}",
        lab.log()
    );

    lab.cli(&["net-start", "keennet"]);
    lab.daemon().kill();
    lab.host.ip(&["link", "del", "keenbr0"]);
    lab.start_daemon();
    assert!(
        lab.cli(&["net-list", "--all"])
            .contains(" keennet   inactive")
    );
    assert!(lab.log().contains("bridge is gone"), "{}", lab.log());

    lab.cli(&["net-undefine", "keennet"]);
    lab.assert_settles_to(&before);
}

/// Definitions survive the daemon; a redefinition without its uuid is
/// refused as libvirt refuses it; templates get free bridge names at
/// define time; transient networks vanish when destroyed.
#[test]
fn definitions_persist_with_libvirt_rules() {
    let mut lab = Lab::new("defs");
    let dir = lab.scratch.0.clone();
    let write = |name: &str, text: &str| -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let first = write(
        "a.xml",
        "<network><name>a</name><ip address='10.70.0.1' prefix='24'/></network>",
    );
    let second = write(
        "b.xml",
        "<network><name>b</name><bridge name='vtb%d'/><ip address='10.71.0.1' prefix='24'/></network>",
    );
    lab.cli(&["net-define", &first]);
    lab.cli(&["net-define", &second]);
    let error = lab.cli_fails(&["net-define", &first]);
    let stderr = String::from_utf8_lossy(&error.stderr);
    assert!(
        stderr.contains("error: operation failed: network 'a' already exists with uuid "),
        "{stderr}"
    );
    let a = lab.cli(&["net-dumpxml", "a"]);
    assert!(
        a.contains("<bridge name='virbr0' stp='on' delay='0'/>"),
        "{a}"
    );
    assert!(
        lab.cli(&["net-dumpxml", "b"])
            .contains("<bridge name='vtb0'")
    );

    assert!(lab.daemon().terminate().success());
    lab.start_daemon();
    assert_eq!(lab.cli(&["net-list", "--all", "--name"]), "a\nb\n\n");
    assert_eq!(lab.cli(&["net-dumpxml", "a"]), a, "kept as defined");

    let transient = write(
        "t.xml",
        "<network><name>t</name><bridge name='vtt0'/><ip address='10.72.0.1' prefix='24'/></network>",
    );
    lab.cli(&["net-create", &transient]);
    assert!(
        lab.cli(&["net-list", "--transient"])
            .contains(" t      active   no          no")
    );
    lab.cli(&["net-destroy", "t"]);
    let gone = lab.cli_fails(&["net-info", "t"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no network with matching name 't'"));

    lab.cli(&["net-undefine", "a"]);
    lab.cli(&["net-undefine", "b"]);
    assert!(walk(&lab.dirs.join("etc")).is_empty(), "no definition left");
}

/// When net-destroy returns, nothing of the network is left under its
/// names: no link, no rule, no dnsmasq, so that a script can reuse the
/// bridge name at once; the bridge set aside is gone within a second.
#[test]
fn destroy_leaves_nothing_under_the_networks_names() {
    let lab = Lab::new("gone");
    lab.cli(&["net-define", &sample("keennet.xml")]);
    let before = lab.snapshot();
    for _ in 0..3 {
        lab.cli(&["net-start", "keennet"]);
        lab.cli(&["net-destroy", "keennet"]);
        let links = lab.host.exec_ok(&["ip", "-o", "link"]);
        assert!(!links.contains("keenbr0"), "{links}");
        let addresses = lab.host.exec_ok(&["ip", "-o", "addr"]);
        assert!(!addresses.contains("192.168.132."), "{addresses}");
        let rules = lab.host.exec_ok(&["nft", "list", "ruleset"]);
        assert!(!rules.contains("keenbr0"), "{rules}");
        assert_eq!(count_dnsmasq(&lab), 0);
        // The name is free for anyone at once.
        lab.host.ip(&["link", "add", "keenbr0", "type", "bridge"]);
        lab.host.ip(&["link", "del", "keenbr0"]);
        let destroyed = std::time::Instant::now();
        while lab.host.exec_ok(&["ip", "-o", "link"]).contains("vtgone") {
            assert!(
                destroyed.elapsed() < std::time::Duration::from_secs(1),
                "the bridge set aside stays"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    lab.assert_settles_to(&before);

    lab.cli(&["net-undefine", "keennet"]);
}

/// The lifecycle events the daemon sends, as they arrive (libvirt's
/// numbers: 2 STARTED, 3 STOPPED, …), read on a thread of their own.
fn network_events(bus: &str) -> std::sync::mpsc::Receiver<i32> {
    let (sender, events) = std::sync::mpsc::channel();
    let (subscribed, ready) = std::sync::mpsc::channel();
    let bus = bus.to_owned();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                use futures_util::StreamExt;
                let connection = zbus::connection::Builder::address(bus.as_str())
                    .build()
                    .await
                    .expect("connects to the bus");
                let rule = zbus::MatchRule::builder()
                    .msg_type(zbus::message::Type::Signal)
                    .interface("org.libvirt.Connect")
                    .member("NetworkEvent")
                    .build()
                    .expect("a match rule");
                let mut signals = zbus::MessageStream::for_match_rule(rule, &connection, None)
                    .await
                    .expect("subscribes");
                let _ = subscribed.send(());
                while let Some(Ok(message)) = signals.next().await {
                    if let Ok((_, event)) =
                        message.body().deserialize::<(zbus::OwnedObjectPath, i32)>()
                        && sender.send(event).is_err()
                    {
                        return;
                    }
                }
            });
    });
    ready.recv().expect("the event reader subscribed");
    events
}

/// While the daemon runs, what others do to a running network is undone
/// within a second: a killed dnsmasq is started again, a bridge set down is
/// brought up, a removed address (and its routes) put back; a deleted
/// bridge makes the network inactive, with its rules, dnsmasq and status
/// gone and a STOPPED event.
#[test]
fn harm_done_to_a_running_network_is_undone() {
    let lab = Lab::new("harm");
    lab.cli(&["net-define", &sample("keennet.xml")]);
    lab.cli(&["net-start", "keennet"]);
    let events = network_events(&lab.bus);
    let script = udhcpc_script(&lab.scratch.0);
    let (guest, port) = lab.guest("keenbr0", "g1");
    dhcp(&guest, &script);
    let within_a_second = |what: &str, done: &dyn Fn() -> bool| {
        let harmed = std::time::Instant::now();
        while !done() {
            assert!(
                harmed.elapsed() < std::time::Duration::from_secs(1),
                "{what} not within a second; daemon log:\n{}",
                lab.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };

    let killed: libc::pid_t = dnsmasq_pid(&lab).trim().parse().unwrap();
    // SAFETY: kill(2) on the pid of the dnsmasq of the test's own network,
    // read from its pid file in the test's directory.
    assert_eq!(unsafe { libc::kill(killed, libc::SIGKILL) }, 0);
    within_a_second("a new dnsmasq", &|| {
        std::fs::read_to_string(lab.dirs.join("run/dnsmasq/keenbr0.pid"))
            .is_ok_and(|pid| pid.trim().parse() != Ok(killed))
            && count_dnsmasq(&lab) == 1
    });
    dhcp(&guest, &script);

    lab.host.ip(&["link", "set", "keenbr0", "down"]);
    within_a_second("the bridge up", &|| {
        let link = lab.host.exec_ok(&["ip", "-o", "link", "show", "keenbr0"]);
        link.contains(",UP,") || link.contains(",UP>")
    });
    lab.host
        .ip(&["addr", "del", "192.168.132.1/24", "dev", "keenbr0"]);
    within_a_second("the address back", &|| {
        lab.host
            .exec_ok(&["ip", "-o", "addr", "show", "keenbr0"])
            .contains("192.168.132.1/24")
    });
    // Its port learns again after the bridge was down (STP).
    wait_forwarding(&lab.host, &port);
    assert!(
        pings(&guest, "192.168.132.1"),
        "the guest reaches its gateway"
    );
    assert!(pings(&guest, "10.255.0.2"), "and beyond, through NAT");

    lab.host.ip(&["link", "del", "keenbr0"]);
    within_a_second("the network inactive", &|| {
        lab.cli(&["net-list", "--name"]) == "\n"
    });
    assert_eq!(
        events.recv_timeout(std::time::Duration::from_secs(1)),
        Ok(3),
        "STOPPED"
    );
    assert_eq!(count_dnsmasq(&lab), 0);
    let rules = lab.host.exec_ok(&["nft", "list", "ruleset"]);
    assert!(!rules.contains("keenbr0"), "{rules}");
    assert!(walk(&lab.dirs.join("run/networks")).is_empty());
    lab.cli(&["net-start", "keennet"]);
    lab.cli(&["net-destroy", "keennet"]);
    lab.cli(&["net-undefine", "keennet"]);
}

/// A start that fails and whose undo fails too (a dnsmasq that will not
/// start, and rules that cannot be removed: stand-ins for both, in the
/// daemon's PATH, refuse while a marker file exists) keeps its status
/// record and what it left; the next net-start removes that first, and
/// fails, saying so, while it cannot.
#[test]
fn what_a_failed_undo_left_is_removed_before_the_next_start() {
    let mut lab = Lab::new("undo");
    let tools = lab.scratch.0.join("tools");
    std::fs::create_dir(&tools).unwrap();
    let refuse = lab.scratch.0.join("refuse");
    let refuse = refuse.to_str().unwrap();
    for (name, script) in [
        (
            "dnsmasq",
            format!("#!/bin/sh\n[ -e {refuse} ] && exit 2\nexec /usr/sbin/dnsmasq \"$@\"\n"),
        ),
        (
            "nft",
            format!(
                "#!/bin/sh\n[ -e {refuse} ] && [ \"$2\" = -f ] || exec /usr/sbin/nft \"$@\"\n\
                 input=$(cat)\ncase $input in *'\"delete\"'*) echo refused >&2; exit 1;; esac\n\
                 printf '%s' \"$input\" | exec /usr/sbin/nft \"$@\"\n"
            ),
        ),
    ] {
        let path = tools.join(name);
        std::fs::write(&path, script).unwrap();
        common::netns::run("chmod", &["755", path.to_str().unwrap()]);
    }
    let path = format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    lab.daemon().kill();
    lab.daemon = Some(Daemon::start(&DaemonConfig {
        env: &[("PATH", &path)],
        ..DaemonConfig::kernel(&lab.host, &lab.bus, BUS_NAME, &lab.scratch.0, &[])
    }));
    lab.cli(&["net-define", &sample("keennet.xml")]);

    std::fs::write(refuse, "").unwrap();
    lab.cli_fails(&["net-start", "keennet"]);
    assert!(
        lab.log().contains("left work undone"),
        "the undo's failure is logged:\n{}",
        lab.log()
    );
    assert_eq!(
        walk(&lab.dirs.join("run/networks")).len(),
        1,
        "the status record stays"
    );
    let rules = lab.host.exec_ok(&["nft", "list", "ruleset"]);
    assert!(
        rules.contains("chain from_keenbr0"),
        "the rules stay:\n{rules}"
    );
    let refused = lab.cli_fails(&["net-start", "keennet"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("cannot start while what it left on the host remains"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    std::fs::remove_file(refuse).unwrap();
    lab.cli(&["net-start", "keennet"]);
    assert_eq!(lab.cli(&["net-list", "--name"]), "keennet\n\n");
    assert_eq!(count_dnsmasq(&lab), 1);
    lab.cli(&["net-destroy", "keennet"]);
    lab.cli(&["net-undefine", "keennet"]);
}

/// SIGHUP reloads as libvirtd's does, and the daemon goes on: a definition
/// written into the configuration directory by hand appears, a changed one
/// replaces the persistent definition, and an autostart link starts its
/// network.
#[test]
fn sighup_reloads_definitions_and_autostart() {
    let lab = Lab::new("hup");
    let etc = lab.dirs.join("etc");
    let written = lab.scratch.0.join("a.xml");
    std::fs::write(
        &written,
        "<network><name>a</name><bridge name='vtha0'/><ip address='10.73.0.1' prefix='24'/></network>",
    )
    .unwrap();
    lab.cli(&["net-define", written.to_str().unwrap()]);
    lab.cli(&["net-start", "a"]);
    let daemon_pid = lab.daemon.as_ref().expect("the daemon runs").pid();
    let hangup = || {
        let pid = libc::pid_t::try_from(daemon_pid).unwrap();
        // SAFETY: kill(2) on the pid of the daemon this test started and
        // holds (it is reaped only when the lab drops it).
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    };

    std::fs::copy(sample("keennet.xml"), etc.join("keennet.xml")).unwrap();
    std::os::unix::fs::symlink(etc.join("keennet.xml"), etc.join("autostart/keennet.xml")).unwrap();
    let changed = std::fs::read_to_string(etc.join("a.xml"))
        .unwrap()
        .replace("10.73.0.1", "10.74.0.1");
    std::fs::write(etc.join("a.xml"), changed).unwrap();
    hangup();
    lab.wait_until(|lab| lab.cli(&["net-list", "--name"]) == "a\nkeennet\n\n");
    assert!(
        lab.cli(&["net-dumpxml", "--inactive", "a"])
            .contains("10.74.0.1"),
        "the changed definition is the persistent one"
    );
    assert!(
        lab.cli(&["net-dumpxml", "a"]).contains("10.73.0.1"),
        "the running network keeps its live definition"
    );
    assert!(lab.log().contains("SIGHUP: reloading"), "{}", lab.log());
    for name in ["a", "keennet"] {
        lab.cli(&["net-destroy", name]);
        lab.cli(&["net-undefine", name]);
    }
}

/// Someone flushes the whole ruleset: the daemon notices and puts its
/// rules back by itself (and `virtnet reload-firewall` does it on demand),
/// leaving other tables alone.
#[test]
fn firewall_comes_back_after_a_flush() {
    let lab = Lab::new("flush");
    // With an outbound limit: its chain hooks the bridge itself.
    let keennet = std::fs::read_to_string(sample("keennet.xml")).unwrap();
    let limited = lab.scratch.0.join("keennet.xml");
    std::fs::write(
        &limited,
        keennet.replace(
            "</network>",
            "<bandwidth><outbound average='100000'/></bandwidth></network>",
        ),
    )
    .unwrap();
    lab.cli(&["net-define", limited.to_str().unwrap()]);
    lab.cli(&["net-start", "keennet"]);
    let script = udhcpc_script(&lab.scratch.0);
    let (guest, _) = lab.guest("keenbr0", "g1");
    dhcp(&guest, &script);
    assert!(pings(&guest, "10.255.0.2"));
    let rules = lab
        .host
        .exec_ok(&["nft", "list", "table", "inet", "virtnet"]);
    assert!(
        rules.contains("type filter hook ingress device \"keenbr0\""),
        "{rules}"
    );

    lab.host.exec_ok(&["nft", "flush", "ruleset"]);
    lab.wait_until(|lab| {
        lab.host
            .exec(&["nft", "list", "table", "inet", "virtnet"])
            .stdout
            == rules.as_bytes()
    });
    assert!(pings(&guest, "10.255.0.2"), "NAT works again");
    assert!(
        lab.log().contains("put virtnet's nftables table right"),
        "{}",
        lab.log()
    );

    lab.host.exec_ok(&["nft", "add", "table", "ip", "theirs"]);
    lab.host
        .exec_ok(&["nft", "flush", "chain", "inet", "virtnet", "nat_keenbr0"]);
    let answer = lab.cli(&["reload-firewall"]);
    assert!(answer.starts_with("Firewall rules "), "{answer}");
    lab.wait_until(|lab| {
        lab.host
            .exec(&["nft", "list", "table", "inet", "virtnet"])
            .stdout
            == rules.as_bytes()
    });
    assert_eq!(
        lab.cli(&["reload-firewall"]),
        "Firewall rules already in place\n\n"
    );
    assert!(
        lab.host
            .exec(&["nft", "list", "table", "ip", "theirs"])
            .status
            .success()
    );

    lab.cli(&["net-destroy", "keennet"]);
    lab.cli(&["net-undefine", "keennet"]);
    lab.host
        .exec_ok(&["nft", "delete", "table", "ip", "theirs"]);
    // The rules go in the background, once the daemon is idle.
    lab.wait_until(|lab| lab.host.exec_ok(&["nft", "list", "ruleset"]).is_empty());
}

fn dnsmasq_pid(lab: &Lab) -> String {
    std::fs::read_to_string(lab.dirs.join("run/dnsmasq/keenbr0.pid")).expect("dnsmasq pid file")
}

/// net-update on a running network: a static DHCP host and a DNS name
/// reach the network's dnsmasq at once (it re-reads its hosts files, same
/// process), a new range restarts it; --config alone leaves the live
/// network as it is.
#[test]
fn live_updates_reach_dnsmasq() {
    let lab = Lab::new("update");
    lab.cli(&["net-define", &sample("keennet.xml")]);
    lab.cli(&["net-start", "keennet"]);
    let pid = dnsmasq_pid(&lab);
    let host = "<host mac='52:54:00:aa:bb:01' name='fixed' ip='192.168.132.77'/>";
    assert_eq!(
        lab.cli(&[
            "net-update",
            "keennet",
            "add",
            "ip-dhcp-host",
            host,
            "--live",
            "--config"
        ]),
        "Updated network keennet persistent config and live state\n"
    );
    lab.cli(&[
        "net-update",
        "keennet",
        "add",
        "dns-host",
        "<host ip='192.168.132.5'><hostname>printer</hostname></host>",
    ]);
    assert_eq!(dnsmasq_pid(&lab), pid, "hosts re-read, same dnsmasq");
    let script = udhcpc_script(&lab.scratch.0);
    let (guest, _) = lab.guest_with_mac("keenbr0", "g1", Some("52:54:00:aa:bb:01"));
    assert_eq!(dhcp(&guest, &script).to_string(), "192.168.132.77");
    let answer = guest.exec_ok(&["busybox", "nslookup", "printer", "192.168.132.1"]);
    assert!(answer.contains("192.168.132.5"), "{answer}");
    assert!(
        lab.cli(&["net-dumpxml", "--inactive", "keennet"])
            .contains(host)
    );
    assert!(
        !lab.cli(&["net-dumpxml", "--inactive", "keennet"])
            .contains("printer"),
        "the default for a running network is the live definition only"
    );

    lab.cli(&[
        "net-update",
        "keennet",
        "add",
        "ip-dhcp-range",
        "<range start='192.168.132.100' end='192.168.132.110'/>",
        "--config",
    ]);
    assert_eq!(
        dnsmasq_pid(&lab),
        pid,
        "--config leaves the running network alone"
    );
    lab.cli(&[
        "net-update",
        "keennet",
        "add",
        "ip-dhcp-range",
        "<range start='192.168.132.200' end='192.168.132.210'/>",
        "--live",
    ]);
    assert_ne!(dnsmasq_pid(&lab), pid, "a new range restarts dnsmasq");
    let config = std::fs::read_to_string(lab.dirs.join("run/dnsmasq/keenbr0.conf")).unwrap();
    assert!(
        config.contains("dhcp-range=192.168.132.200,192.168.132.210"),
        "{config}"
    );

    let refused = lab.cli_fails(&[
        "net-update",
        "keennet",
        "add",
        "bridge",
        "<bridge name='x'/>",
    ]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("can't update 'bridge' section"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    lab.cli(&["net-destroy", "keennet"]);
    lab.cli(&["net-undefine", "keennet"]);
}

fn small_network(index: u32) -> String {
    format!(
        "<network><name>n{index}</name><bridge name='vtn{index}'/><forward/>\
         <ip address='10.{}.{}.1' prefix='24'><dhcp><range start='10.{0}.{1}.10' end='10.{0}.{1}.20'/></dhcp></ip></network>",
        100 + index / 200,
        index % 200
    )
}

fn write_networks(lab: &Lab, count: u32) -> Vec<String> {
    (0..count)
        .map(|index| {
            let path = lab.scratch.0.join(format!("n{index}.xml"));
            std::fs::write(&path, small_network(index)).unwrap();
            path.display().to_string()
        })
        .collect()
}

/// dnsmasq processes in the lab's host namespace.
fn count_dnsmasq(lab: &Lab) -> usize {
    lab.host.dnsmasqs().len()
}

/// Everything the daemon says agrees with the host, once background
/// teardowns have finished: an active network has its bridge, rules and
/// dnsmasq; an inactive one has none of them.
fn assert_consistent(lab: &Lab) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::panic::catch_unwind(|| check_consistent(lab)).is_err()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    check_consistent(lab);
}

fn check_consistent(lab: &Lab) {
    let names = lab.cli(&["net-list", "--all", "--name"]);
    let active = lab.cli(&["net-list", "--name"]);
    let active: Vec<&str> = active.lines().filter(|line| !line.is_empty()).collect();
    let links = lab.host.exec_ok(&["ip", "-o", "link"]);
    let rules = lab.host.exec(&["nft", "list", "ruleset"]);
    let rules = String::from_utf8_lossy(&rules.stdout);
    for name in names.lines().filter(|line| !line.is_empty()) {
        let bridge = format!("vt{name}");
        let up = active.contains(&name);
        assert_eq!(
            links.contains(&format!(": {bridge}:")),
            up,
            "bridge of {name}\n{links}"
        );
        assert_eq!(
            rules.contains(&format!("chain from_{bridge} ")),
            up,
            "rules of {name}\n{rules}"
        );
    }
    assert_eq!(
        count_dnsmasq(lab),
        active.len(),
        "one dnsmasq per active network"
    );
    let statuses = walk(&lab.dirs.join("run/networks"));
    assert_eq!(statuses.len(), active.len(), "{statuses:?}");
}

/// Fifty clients at once, each defining and starting its own network,
/// then tearing it down: all succeed, and the state is consistent.
#[test]
fn fifty_concurrent_clients() {
    let lab = Lab::new("many");
    let files = write_networks(&lab, 50);
    let before = lab.snapshot();
    std::thread::scope(|scope| {
        for file in &files {
            scope.spawn(|| {
                lab.cli(&["net-define", file]);
                let name = std::path::Path::new(file)
                    .file_stem()
                    .unwrap()
                    .to_str()
                    .unwrap();
                lab.cli(&["net-start", name]);
            });
        }
    });
    assert_eq!(
        lab.cli(&["net-list", "--name"])
            .lines()
            .filter(|l| !l.is_empty())
            .count(),
        50
    );
    assert_consistent(&lab);
    std::thread::scope(|scope| {
        for index in 0..50 {
            let lab = &lab;
            scope.spawn(move || {
                let name = format!("n{index}");
                lab.cli(&["net-destroy", &name]);
                lab.cli(&["net-undefine", &name]);
            });
        }
    });
    assert_eq!(lab.cli(&["net-list", "--all", "--name"]), "\n");
    lab.assert_settles_to(&before);
    assert_eq!(count_dnsmasq(&lab), 0);
}

/// The daemon is killed (SIGKILL) 200 times at random instants while a
/// client defines, starts, stops and undefines networks in a loop, some
/// operations getting through and some cut short by a kill; at the end
/// the state is consistent, and once everything is torn down nothing
/// leaks.
#[test]
fn killed_at_random_points_the_daemon_recovers() {
    let mut lab = Lab::new("kill");
    let files = write_networks(&lab, 4);
    let before = lab.snapshot();
    let succeeded = std::sync::atomic::AtomicU32::new(0);
    let interrupted = std::sync::atomic::AtomicU32::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let bus = lab.bus.clone();
    let mut kills = 0;
    std::thread::scope(|scope| {
        let cycler = scope.spawn(|| {
            let mut round = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let index = round % files.len();
                let name = format!("n{index}");
                // Failures are expected while the daemon is down.
                for args in [
                    vec!["net-define", files[index].as_str()],
                    vec!["net-start", &name],
                    vec!["net-destroy", &name],
                    vec!["net-start", &name],
                    vec!["net-destroy", &name],
                    vec!["net-undefine", &name],
                ] {
                    let output = client(&bus, BUS_NAME, &args);
                    let counter = if output.status.success() {
                        &succeeded
                    } else if String::from_utf8_lossy(&output.stderr)
                        .contains("virtnetd ended before it answered")
                    {
                        // The daemon died under the call.
                        &interrupted
                    } else {
                        continue;
                    };
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                round += 1;
            }
        });
        // A client thread that panicked stops the killing too (the scope
        // then reports its panic).
        while kills < 200 && !cycler.is_finished() {
            let mut delay = [0u8; 1];
            virtnet::random::fill(&mut delay).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(u64::from(delay[0]) + 20));
            lab.daemon().kill();
            kills += 1;
            lab.start_daemon();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let succeeded = succeeded.into_inner();
    let interrupted = interrupted.into_inner();
    println!("{kills} kills; {succeeded} operations done, {interrupted} cut short by a kill");
    assert_eq!(kills, 200);
    assert!(succeeded > 0, "no operation got through");
    assert!(interrupted > 0, "no kill landed during an operation");
    assert_consistent(&lab);
    // Whatever survived is torn down through the API; then nothing is left.
    for index in 0..files.len() {
        let name = format!("n{index}");
        client(&lab.bus, BUS_NAME, &["net-destroy", &name]);
        client(&lab.bus, BUS_NAME, &["net-undefine", &name]);
    }
    assert_eq!(
        lab.cli(&["net-list", "--all", "--name"]),
        "\n",
        "{}",
        lab.log()
    );
    lab.assert_settles_to(&before);
    assert_eq!(count_dnsmasq(&lab), 0);
}

/// At daemon start every autostart network that is not running starts; one
/// that cannot (its subnet is taken by the host's uplink by then) is logged
/// and does not hold up the others.
#[test]
fn autostart_goes_on_past_a_failing_network() {
    let mut lab = Lab::new("auto");
    let write = |name: &str, text: &str| -> String {
        let path = lab.scratch.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let doomed = write(
        "doomed.xml",
        "<network><name>doomed</name><bridge name='vtdoom'/><ip address='10.254.0.1' prefix='24'/></network>",
    );
    lab.cli(&["net-define", &doomed]);
    let rival = write(
        "rival.xml",
        "<network><name>rival</name><bridge name='vtdoom'/><ip address='10.253.0.1' prefix='24'/></network>",
    );
    let refused = lab.cli_fails(&["net-define", &rival]);
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("internal error: bridge name 'vtdoom' already in use."),
        "a bridge name another network holds is refused: {refused:?}"
    );
    lab.cli(&["net-define", &sample("keennet.xml")]);
    lab.cli(&["net-autostart", "doomed"]);
    lab.cli(&["net-autostart", "keennet"]);
    assert!(lab.daemon().terminate().success());
    // Meanwhile the host starts using doomed's subnet.
    lab.host
        .ip(&["addr", "add", "10.254.0.9/24", "dev", "uplink"]);
    lab.start_daemon();
    lab.wait_until(|lab| lab.cli(&["net-list"]).contains(" keennet   active"));
    assert!(
        lab.cli(&["net-list", "--all"])
            .contains(" doomed    inactive")
    );
    lab.wait_until(|lab| lab.log().contains("cannot autostart network"));
    assert!(
        lab.log()
            .contains("Network is already in use by interface uplink"),
        "{}",
        lab.log()
    );
    lab.cli(&["net-destroy", "keennet"]);
    lab.cli(&["net-undefine", "keennet"]);
    lab.cli(&["net-undefine", "doomed"]);
}

/// A live forward-interface update swaps the network's rules in one
/// transaction (NAT restricted to the named uplink, or not), leaving
/// dnsmasq alone; the guest keeps reaching the outside.
#[test]
fn live_forward_interface_update_replaces_the_rules() {
    let lab = Lab::new("fwdif");
    let path = lab.scratch.0.join("up.xml");
    std::fs::write(
        &path,
        "<network><name>up</name><forward mode='nat' dev='uplink'/><bridge name='vtup' stp='off'/>\
         <ip address='10.66.0.1' prefix='24'><dhcp><range start='10.66.0.10' end='10.66.0.20'/></dhcp></ip></network>",
    )
    .unwrap();
    lab.cli(&["net-define", path.to_str().unwrap()]);
    lab.cli(&["net-start", "up"]);
    let rules = |lab: &Lab| {
        lab.host
            .exec_ok(&["nft", "list", "table", "inet", "virtnet"])
    };
    assert!(
        rules(&lab).contains("oifname \"uplink\""),
        "{}",
        rules(&lab)
    );
    let pid = std::fs::read_to_string(lab.dirs.join("run/dnsmasq/vtup.pid")).unwrap();

    lab.cli(&[
        "net-update",
        "up",
        "delete",
        "forward-interface",
        "<interface dev='uplink'/>",
    ]);
    assert!(!rules(&lab).contains("\"uplink\""), "{}", rules(&lab));
    assert!(
        lab.cli(&["net-dumpxml", "up"]).contains(
            "<forward mode='nat'>\n    <nat>\n      <port start='1024' end='65535'/>\n    </nat>\n  </forward>"
        ),
        "{}",
        lab.cli(&["net-dumpxml", "up"])
    );
    lab.cli(&[
        "net-update",
        "up",
        "add",
        "forward-interface",
        "<interface dev='uplink'/>",
    ]);
    assert!(
        rules(&lab).contains("oifname \"uplink\""),
        "{}",
        rules(&lab)
    );
    assert_eq!(
        std::fs::read_to_string(lab.dirs.join("run/dnsmasq/vtup.pid")).unwrap(),
        pid,
        "same dnsmasq"
    );

    let script = udhcpc_script(&lab.scratch.0);
    let (guest, _) = lab.guest("vtup", "g1");
    dhcp(&guest, &script);
    assert!(pings(&guest, "10.255.0.2"), "NAT through the uplink");
    lab.cli(&["net-destroy", "up"]);
    lab.cli(&["net-undefine", "up"]);
}

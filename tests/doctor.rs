//! `virtnet doctor`: each fault put into a running network's host, one at
//! a time, is named with its fix and fails the exit status; the healthy
//! network passes. What virtnetd leaves as it is (sysctls, MTUs, routes)
//! is broken under a real virtnetd and asked through the client; what it
//! heals within a second (the bridge, its addresses, dnsmasq, its table)
//! is broken beside a network started through `apply` with no daemon, and
//! examined by the same code virtnetd runs (`apply::inspect`).

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::ScratchDir;
use common::daemon::{Bus, Daemon, DaemonConfig, client, start_bus};
use common::netns::{Netns, host_and_outside, veth};
use virtnet::apply::firewall::Firewall;
use virtnet::apply::openings::{ForeignFirewalls, Openings};
use virtnet::apply::{self, Environment, RunningNetwork, TrafficControl, inspect};
use virtnet::definition::NetworkDef;

const BUS_NAME: &str = "org.virtnet";

/// NAT with IPv4 (DHCP) and IPv6, leaving through the default route.
const DOCNET: &str = "<network><name>docnet</name><forward mode='nat'/>
  <bridge name='vn-doc0'/>
  <ip address='10.81.0.1' prefix='24'><dhcp><range start='10.81.0.10' end='10.81.0.20'/></dhcp></ip>
  <ip family='ipv6' address='fd81::1' prefix='64'/></network>";

/// NAT through a second uplink, which the default route does not use.
const DEVNET: &str = "<network><name>devnet</name><forward mode='nat' dev='uplink2'/>
  <bridge name='vn-dev0'/><ip address='10.82.0.1' prefix='24'/></network>";

/// The host with its outside machine, a private bus and virtnetd.
struct Lab {
    // Field order is drop order: the daemon and bus go before the namespaces.
    daemon: Daemon,
    _bus_daemon: Bus,
    bus: String,
    host: Netns,
    _outside: Netns,
    scratch: ScratchDir,
}

impl Lab {
    fn new(label: &str) -> Self {
        let (host, outside) = host_and_outside(label);
        veth(&host, "uplink2", &outside, "eth1");
        host.ip(&["addr", "add", "10.254.0.1/24", "dev", "uplink2"]);
        // Whatever the machine's defaults the namespace inherited: no
        // reverse path filter to start with.
        for key in ["all", "default", "uplink", "uplink2"] {
            host.exec_ok(&["sysctl", "-qw", &format!("net.ipv4.conf.{key}.rp_filter=0")]);
        }
        let scratch = ScratchDir::new(label);
        let bus_daemon = start_bus(&host, &scratch.0, None);
        let bus = bus_daemon.address.clone();
        let daemon = Daemon::start(&DaemonConfig::kernel(
            &host,
            &bus,
            BUS_NAME,
            &scratch.0,
            &[],
        ));
        let lab = Self {
            daemon,
            _bus_daemon: bus_daemon,
            bus,
            host,
            _outside: outside,
            scratch,
        };
        for (name, xml) in [("docnet", DOCNET), ("devnet", DEVNET)] {
            let file = lab.scratch.0.join(format!("{name}.xml"));
            std::fs::write(&file, xml).unwrap();
            lab.cli(&["net-define", file.to_str().unwrap()]);
            lab.cli(&["net-start", name]);
        }
        lab
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

    fn doctor(&self, args: &[&str]) -> Output {
        client(&self.bus, BUS_NAME, &[&["doctor"], args].concat())
    }

    /// Doctor passes: exit status 0, no finding.
    fn healthy(&self, args: &[&str], summary: &str) {
        let output = self.doctor(args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout == format!("{summary}\n"),
            "doctor {args:?} is not satisfied:\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Doctor fails, naming `finding` (among others, when `alone` is
    /// false); returns its output.
    fn finds(&self, args: &[&str], finding: &str) -> String {
        let output = self.doctor(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            !output.status.success(),
            "doctor {args:?} passed:\n{stdout}"
        );
        assert!(
            stdout.lines().any(|line| line.contains(finding)),
            "doctor {args:?} does not say {finding:?}:\n{stdout}"
        );
        stdout
    }

    fn sysctl(&self, setting: &str) {
        self.host.exec_ok(&["sysctl", "-qw", setting]);
    }
}

/// What virtnetd does not put back: forwarding, the reverse path filter,
/// the uplink's MTU, a route into a network's subnet; then a network
/// named while inactive, and one unknown.
#[test]
fn doctor_names_each_fault_virtnetd_leaves_and_passes_a_healthy_host() {
    let lab = Lab::new("doc");
    let both = "no problem found in 2 networks (devnet, docnet)";
    lab.healthy(&[], both);
    lab.healthy(&["docnet"], "no problem found in network docnet");

    lab.sysctl("net.ipv4.ip_forward=0");
    let found = lab.finds(
        &[],
        "docnet: net.ipv4.ip_forward is 0: NAT needs it; run 'sysctl -w net.ipv4.ip_forward=1' or restart the network",
    );
    assert!(
        found.contains("devnet: net.ipv4.ip_forward is 0"),
        "{found}"
    );
    assert_eq!(
        found.lines().last(),
        Some("2 problems found in 2 networks (devnet, docnet)"),
        "{found}"
    );
    lab.sysctl("net.ipv4.ip_forward=1");
    lab.healthy(&[], both);

    lab.sysctl("net.ipv6.conf.all.forwarding=0");
    lab.finds(
        &["docnet"],
        "docnet: net.ipv6.conf.all.forwarding is 0: NAT needs it",
    );
    lab.sysctl("net.ipv6.conf.all.forwarding=1");

    lab.sysctl("net.ipv4.conf.uplink2.rp_filter=1");
    let found = lab.finds(
        &[],
        "devnet: net.ipv4.conf.uplink2.rp_filter is strict (1) and the default route goes through uplink, not uplink2",
    );
    assert_eq!(
        found.lines().filter(|line| line.contains(": ")).count(),
        1,
        "one finding:\n{found}"
    );
    let json = lab.doctor(&["--json", "devnet"]);
    assert!(!json.status.success());
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["networks"], serde_json::json!(["devnet"]));
    assert_eq!(report["findings"][0]["network"], "devnet");
    assert!(
        report["findings"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("sysctl -w net.ipv4.conf.uplink2.rp_filter=2"),
        "{report}"
    );
    lab.sysctl("net.ipv4.conf.uplink2.rp_filter=2");
    lab.healthy(&[], both);

    lab.host.ip(&["link", "set", "uplink", "mtu", "1400"]);
    lab.finds(
        &["docnet"],
        "docnet: bridge vn-doc0's MTU 1500 is larger than uplink uplink's MTU 1400",
    );
    lab.host.ip(&["link", "set", "uplink", "mtu", "1500"]);

    lab.host.ip(&[
        "link", "add", "vpn0", "type", "veth", "peer", "name", "vpn1",
    ]);
    lab.host.ip(&["link", "set", "vpn0", "up"]);
    lab.host.ip(&[
        "route",
        "add",
        "10.81.0.0/24",
        "dev",
        "vpn0",
        "metric",
        "50",
    ]);
    lab.finds(
        &[],
        "docnet: the host also routes 10.81.0.0/24 through vpn0",
    );
    lab.host.ip(&[
        "route",
        "del",
        "10.81.0.0/24",
        "dev",
        "vpn0",
        "metric",
        "50",
    ]);
    lab.healthy(&[], both);

    lab.cli(&["net-destroy", "devnet"]);
    lab.finds(
        &["devnet"],
        "devnet: the network is not active: its guests have no network at all; run 'virtnet net-start devnet'",
    );
    lab.healthy(&[], "no problem found in network docnet");
    let unknown = lab.doctor(&["nonesuch"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("Network not found"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

/// An isolated network with DHCP, started through `apply` in a namespace
/// of its own, with no daemon to heal it.
struct Bare {
    host: Netns,
    _scratch: ScratchDir,
    env: Environment,
    firewall: Firewall,
    def: NetworkDef,
    running: RunningNetwork,
}

const BARENET: &str = "<network><name>barenet</name><bridge name='vn-bare0'/>
  <ip address='10.83.0.1' prefix='24'><dhcp><range start='10.83.0.10' end='10.83.0.20'/></dhcp></ip>
  </network>";

impl Bare {
    fn new(label: &str) -> Self {
        let host = Netns::new(label);
        let scratch = ScratchDir::new(label);
        let env = Environment {
            state_dir: scratch.0.join("state"),
            run_dir: scratch.0.join("run"),
            dnsmasq: "dnsmasq".into(),
            tc: TrafficControl::new("tc"),
        };
        let firewall = Firewall::new();
        let def = NetworkDef::parse(BARENET).unwrap();
        let running = host
            .block_on(apply::start(&def, &env, &firewall, &[]))
            .unwrap_or_else(|failed| panic!("start: {:?}", failed.error));
        Self {
            host,
            _scratch: scratch,
            env,
            firewall,
            def,
            running,
        }
    }

    /// The findings, as virtnetd's doctor would have them.
    fn findings(&self) -> Vec<String> {
        let networks = [(self.def.clone(), self.running.clone())];
        let openings = Openings::new(ForeignFirewalls::Open, self.firewall.own_processes());
        self.host
            .block_on(inspect::diagnose(
                &networks,
                &self.env,
                &self.firewall,
                &openings,
            ))
            .expect("the host can be examined")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn finds(&self, finding: &str) {
        let findings = self.findings();
        assert!(
            findings.len() == 1 && findings[0].contains(finding),
            "not only {finding:?}: {findings:#?}"
        );
    }
}

/// What virtnetd heals by itself: the bridge down or without its address,
/// a chain of its table flushed, dnsmasq killed. The healthy network's
/// dnsmasq is seen listening for DHCP and DNS.
#[test]
fn doctor_sees_each_fault_virtnetd_would_heal() {
    let bare = Bare::new("docbare");
    assert_eq!(bare.findings(), Vec::<String>::new());

    bare.host.ip(&["link", "set", "vn-bare0", "down"]);
    bare.finds("barenet: bridge vn-bare0 is down: guests reach nothing, not even the host; run 'ip link set vn-bare0 up'");
    bare.host.ip(&["link", "set", "vn-bare0", "up"]);
    assert_eq!(bare.findings(), Vec::<String>::new());

    bare.host
        .ip(&["addr", "del", "10.83.0.1/24", "dev", "vn-bare0"]);
    bare.finds("barenet: bridge vn-bare0 lacks its address 10.83.0.1/24");
    bare.host
        .ip(&["addr", "add", "10.83.0.1/24", "dev", "vn-bare0"]);
    assert_eq!(bare.findings(), Vec::<String>::new());

    bare.host
        .exec_ok(&["nft", "flush", "chain", "inet", "virtnet", "input"]);
    bare.finds("host: virtnet's nftables table (inet virtnet) is not as the running networks need it: the rules of chain input; run 'virtnet reload-firewall'");
    // Looking repaired nothing.
    bare.finds("the rules of chain input");
    let repaired = bare.host.block_on(bare.firewall.reconcile()).unwrap();
    assert!(!repaired.is_empty());
    assert_eq!(bare.findings(), Vec::<String>::new());

    let dnsmasq = bare.running.dnsmasq.as_ref().expect("a dnsmasq").clone();
    let pid = libc::pid_t::try_from(dnsmasq.pid).unwrap();
    assert!(dnsmasq.is_running());
    // SAFETY: kill(2) on the pid of the dnsmasq this test started, which
    // `is_running` just confirmed is still that process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while dnsmasq.is_running() {
        assert!(Instant::now() < deadline, "dnsmasq did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
    bare.finds(&format!(
        "barenet: dnsmasq (pid {pid}) is not running: guests get no DHCP lease and no DNS answer"
    ));

    bare.host
        .block_on(apply::stop(&bare.running, &bare.firewall))
        .expect("the network stops");
}

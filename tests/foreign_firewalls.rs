//! Other tools' firewalls that drop forwarded traffic, each in the test's
//! own namespaces: Docker's chains as dockerd makes them (iptables-nft,
//! FORWARD policy DROP, DOCKER-USER, DOCKER-FORWARD), the real ufw enabled
//! with its default policies (INPUT and FORWARD DROP; and managing the
//! built-in chains, so that its reload flushes them) in a mount namespace
//! of the test's with its own /etc/ufw, and a native nftables table with
//! `policy drop` on the input and forward hooks. In each: a NAT guest gets
//! its lease and DNS answers, reaches the outside machine through NAT, new
//! connections from outside stay refused; the other tool rebuilds its
//! chains and the guest still works; after the network stops, nothing of
//! virtnet's is left in the other tables. With `--foreign-firewalls=warn`
//! the same host leaves the guest cut off, and the daemon and `virtnet
//! doctor` say which chain drops its traffic.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use common::ScratchDir;
use common::daemon::{Bus, Daemon, DaemonConfig, client, start_bus};
use common::guest::{dhcp, dns_answers, peer_seen, pings, udhcpc_script, wait_forwarding};
use common::netns::{Netns, host_and_outside, plug_guest};

const NETWORK: &str = "<network><name>natnet</name><forward mode='nat'/>
  <bridge name='vn-ff0'/>
  <ip address='10.80.0.1' prefix='24'>
    <dhcp><range start='10.80.0.10' end='10.80.0.20'/></dhcp>
  </ip>
</network>";

const BUS_NAME: &str = "org.virtnet.test";

/// The host with virtnetd, the outside machine, and natnet started.
struct Lab {
    // Field order is drop order: daemon and bus before the namespaces.
    daemon: Daemon,
    bus: Bus,
    host: Netns,
    outside: Netns,
    scratch: ScratchDir,
}

impl Lab {
    /// `prepare` makes the other tool's firewall before virtnetd starts.
    fn new(label: &str, daemon_args: &[&str], prepare: impl FnOnce(&Netns, &Path)) -> Self {
        let (host, outside) = host_and_outside(label);
        // The outside machine knows the way to the guests, as a machine on
        // the same LAN trying to reach them would be told.
        outside.ip(&["route", "add", "10.80.0.0/24", "via", "10.255.0.1"]);
        let scratch = ScratchDir::new(label);
        prepare(&host, &scratch.0);
        let bus = start_bus(&host, &scratch.0, None);
        let daemon = Daemon::start(&DaemonConfig::kernel(
            &host,
            &bus.address,
            BUS_NAME,
            &scratch.0,
            daemon_args,
        ));
        let file = scratch.0.join("natnet.xml");
        std::fs::write(&file, NETWORK).unwrap();
        let lab = Self {
            daemon,
            bus,
            host,
            outside,
            scratch,
        };
        lab.virtnet(&["net-define", file.to_str().unwrap()]);
        lab.virtnet(&["net-start", "natnet"]);
        lab
    }

    fn virtnet(&self, args: &[&str]) -> String {
        let output = client(&self.bus.address, BUS_NAME, args);
        assert!(
            output.status.success(),
            "virtnet {args:?}: {}\ndaemon log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.daemon.log_text()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn plug_guest(&self) -> Netns {
        let port = format!("vpg-{}", &self.host.name[self.host.name.len() - 4..]);
        let guest = plug_guest(&self.host, "vn-ff0", "g", &port, None);
        wait_forwarding(&self.host, &port);
        guest
    }

    /// The guest's lease, DNS, NAT to the outside machine, and no way in.
    fn assert_guest_works(&self, guest: &Netns, when: &str) {
        let address = dhcp(guest, &udhcpc_script(&self.scratch.0));
        let gateway = IpAddr::V4(Ipv4Addr::new(10, 80, 0, 1));
        assert!(dns_answers(guest, gateway), "{when}: the guest's DNS");
        assert!(
            pings(guest, "10.255.0.2"),
            "{when}: the guest reaches the outside machine\n{}",
            self.rules()
        );
        let seen = peer_seen(&self.outside, guest, "10.255.0.2:9000".parse().unwrap());
        assert_eq!(
            seen.ip(),
            IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
            "{when}: NAT"
        );
        self.assert_inbound_refused(address, when);
    }

    fn assert_inbound_refused(&self, guest: Ipv4Addr, when: &str) {
        let ping =
            self.outside
                .exec(&["busybox", "ping", "-c", "1", "-W", "1", &guest.to_string()]);
        assert!(
            !ping.status.success(),
            "{when}: a new connection from outside reached the NAT guest"
        );
    }

    /// The host's rules, for failure messages.
    fn rules(&self) -> String {
        let nft = self.host.exec(&["nft", "list", "ruleset"]);
        String::from_utf8_lossy(&nft.stdout).into_owned()
    }

    /// The rules of virtnet's outside its own table: in native tables (by
    /// nft's listing) and iptables' (by their comments, which nft cannot
    /// show for iptables-nft's rules).
    fn accepts_of_virtnets(&self) -> Vec<String> {
        let mut found: Vec<String> = self
            .rules()
            .lines()
            .filter(|line| line.contains("virtnet network"))
            .map(str::to_owned)
            .collect();
        for program in ["iptables", "ip6tables"] {
            let listing = self.host.exec(&[program, "-w", "-S"]);
            found.extend(
                String::from_utf8_lossy(&listing.stdout)
                    .lines()
                    .filter(|line| line.contains("virtnet network"))
                    .map(str::to_owned),
            );
        }
        found
    }

    /// Waits up to 2 s for `condition` (the daemon reacts to others'
    /// changes by itself).
    fn eventually(&self, what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !condition() {
            assert!(
                Instant::now() < deadline,
                "{what}\nrules:\n{}\ndaemon log:\n{}",
                self.rules(),
                self.daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops natnet: nothing of virtnet's stays in the other tables.
    fn stop(&self) {
        self.virtnet(&["net-destroy", "natnet"]);
        assert_eq!(self.accepts_of_virtnets(), Vec::<String>::new());
    }
}

/// Docker's filter chains as dockerd 28 makes them.
fn docker_chains(host: &Netns) {
    for command in [
        "-N DOCKER",
        "-N DOCKER-USER",
        "-N DOCKER-FORWARD",
        "-N DOCKER-BRIDGE",
        "-N DOCKER-CT",
        "-N DOCKER-ISOLATION-STAGE-1",
        "-N DOCKER-ISOLATION-STAGE-2",
        "-P FORWARD DROP",
        "-A FORWARD -j DOCKER-USER",
        "-A FORWARD -j DOCKER-FORWARD",
        "-A DOCKER-FORWARD -j DOCKER-CT",
        "-A DOCKER-FORWARD -j DOCKER-ISOLATION-STAGE-1",
        "-A DOCKER-FORWARD -j DOCKER-BRIDGE",
        "-A DOCKER-FORWARD -i docker0 -j ACCEPT",
        "-A DOCKER-BRIDGE -o docker0 -j DOCKER",
        "-A DOCKER-CT -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2",
        "-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP",
        "-A DOCKER ! -i docker0 -o docker0 -j DROP",
    ] {
        let mut arguments = vec!["iptables", "-w"];
        arguments.extend(command.split(' '));
        host.exec_ok(&arguments);
    }
}

#[test]
fn dockers_forward_policy_drop() {
    let lab = Lab::new("ffd", &[], |host, _| docker_chains(host));
    let guest = lab.plug_guest();
    lab.assert_guest_works(&guest, "beside Docker's chains");
    let doctor = client(&lab.bus.address, BUS_NAME, &["doctor", "natnet"]);
    assert!(
        doctor.status.success(),
        "doctor finds nothing wrong: {}",
        String::from_utf8_lossy(&doctor.stdout)
    );
    let accepts = lab.accepts_of_virtnets();
    assert!(
        accepts
            .iter()
            .all(|rule| rule.starts_with("-A DOCKER-USER ")),
        "the accepts go into DOCKER-USER: {accepts:?}"
    );
    // Docker's chains rebuilt, what the administrator put in DOCKER-USER
    // lost with them.
    lab.host.exec_ok(&["iptables", "-w", "-F", "DOCKER-USER"]);
    lab.eventually("the accepts are back in DOCKER-USER", || {
        lab.accepts_of_virtnets().len() == accepts.len()
    });
    lab.assert_guest_works(&guest, "after Docker's chains were rebuilt");
    lab.stop();
}

#[test]
fn without_opening_dockers_policy_cuts_the_guest_off_and_is_named() {
    let lab = Lab::new("ffw", &["--foreign-firewalls", "warn"], |host, _| {
        docker_chains(host)
    });
    let guest = lab.plug_guest();
    dhcp(&guest, &udhcpc_script(&lab.scratch.0));
    assert!(!pings(&guest, "10.255.0.2"), "Docker's policy drops NAT");
    assert!(lab.accepts_of_virtnets().is_empty());
    let log = lab.daemon.log_text();
    assert!(
        log.contains(
            "table ip filter, chain FORWARD (policy drop) drops the traffic of bridge vn-ff0"
        ),
        "the daemon names the chain: {log}"
    );
    let doctor = client(&lab.bus.address, BUS_NAME, &["doctor", "natnet"]);
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(!doctor.status.success(), "doctor finds it: {said}");
    assert!(
        said.contains(
            "table ip filter, chain FORWARD (policy drop) drops the traffic of bridge vn-ff0"
        ),
        "doctor names the chain: {said}"
    );
    lab.stop();
}

/// Runs ufw in `host` with `etc` as its /etc/ufw and /etc/default/ufw,
/// and a /run of its own, in a mount namespace of its own.
fn ufw(host: &Netns, scratch: &Path, arguments: &str) {
    let script = format!(
        "mount --bind {dir}/etc-ufw /etc/ufw && \
         mount --bind {dir}/default-ufw /etc/default/ufw && \
         mount -t tmpfs tmpfs /run && ufw {arguments}",
        dir = scratch.display()
    );
    host.exec_ok(&[
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]);
}

#[test]
fn ufw_enabled_with_its_default_policies() {
    let lab = Lab::new("ffu", &[], |host, scratch| {
        let copied = std::process::Command::new("cp")
            .args(["-a", "/etc/ufw"])
            .arg(scratch.join("etc-ufw"))
            .status()
            .expect("cp runs");
        assert!(copied.success(), "ufw is installed (scripts/setup)");
        // ufw's reload then flushes INPUT and FORWARD, taking virtnet's
        // accepts with it (with its default, `no`, it leaves them).
        let defaults = std::fs::read_to_string("/etc/default/ufw").unwrap();
        assert!(
            defaults.contains("MANAGE_BUILTINS=no"),
            "ufw's defaults: {defaults}"
        );
        let defaults = defaults.replace("MANAGE_BUILTINS=no", "MANAGE_BUILTINS=yes");
        std::fs::write(scratch.join("default-ufw"), defaults).unwrap();
        ufw(host, scratch, "--force enable");
        let policy = host.exec_ok(&["iptables", "-w", "-S", "FORWARD"]);
        assert!(
            policy.starts_with("-P FORWARD DROP"),
            "ufw's default: {policy}"
        );
    });
    let guest = lab.plug_guest();
    lab.assert_guest_works(&guest, "beside ufw");
    let accepts = lab.accepts_of_virtnets();
    assert!(
        accepts
            .iter()
            .all(|rule| rule.starts_with("-A INPUT ") || rule.starts_with("-A FORWARD ")),
        "the accepts go to the top of ufw's INPUT and FORWARD: {accepts:?}"
    );
    ufw(&lab.host, &lab.scratch.0, "reload");
    lab.eventually("the accepts are back after ufw's reload", || {
        lab.accepts_of_virtnets().len() == accepts.len()
    });
    lab.assert_guest_works(&guest, "after ufw reload");
    lab.stop();
}

/// A host firewall as /etc/nftables.conf holds one: the whole ruleset
/// flushed, then a table that lets in only ssh and forwards nothing.
const HOST_FIREWALL: &str = "flush ruleset
table inet host {
  chain input {
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    iifname lo accept
    tcp dport 22 accept
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
  }
}
";

#[test]
fn a_native_table_with_policy_drop() {
    let lab = Lab::new("ffn", &[], |host, scratch| {
        let file = scratch.join("host.nft");
        std::fs::write(&file, HOST_FIREWALL).unwrap();
        host.exec_ok(&["nft", "-f", file.to_str().unwrap()]);
    });
    let guest = lab.plug_guest();
    lab.assert_guest_works(&guest, "beside a table with policy drop");
    let accepts = lab.accepts_of_virtnets();
    assert!(
        accepts
            .iter()
            .all(|rule| rule.contains("comment \"virtnet network natnet: ")),
        "marked with the network's name: {accepts:?}"
    );
    // The host's firewall reloaded: `flush ruleset` takes virtnet's table
    // and its accepts away too.
    let file = lab.scratch.0.join("host.nft");
    lab.host.exec_ok(&["nft", "-f", file.to_str().unwrap()]);
    lab.eventually("virtnet's table and accepts are back", || {
        lab.accepts_of_virtnets().len() == accepts.len()
            && lab.rules().contains("table inet virtnet")
    });
    lab.assert_guest_works(&guest, "after the host's firewall was reloaded");
    lab.stop();
}

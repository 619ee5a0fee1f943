//! virtnet's table damaged from outside, one object at a time (each base
//! chain, each map and set, a network's chains, a single rule, an extra
//! rule, the table made dormant, a base chain's policy, the whole table):
//! real traffic shows that the damage lets through what must be refused
//! (or refuses what must pass), then the table is put right, by
//! `Firewall::reconcile` (what `reload-firewall` runs) and by virtnetd by
//! itself within a second, and the same traffic is handled right again.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::ScratchDir;
use common::daemon::{Daemon, DaemonConfig, client, start_bus};
use common::guest::{dhcp, dns_answers, peer_seen, pings, udhcpc_script, wait_forwarding};
use common::netns::{Netns, host_and_outside, plug_guest};
use virtnet::apply::firewall::Firewall;
use virtnet::apply::{self, Environment, TrafficControl};
use virtnet::definition::NetworkDef;

/// A NAT network (IPv4 and IPv6), an isolated one, and a NAT network with
/// an outbound limit of 10 kB/s.
const NETWORKS: [(&str, &str); 3] = [
    (
        "natnet",
        "<network><name>natnet</name><forward mode='nat'/><bridge name='vn-nat0'/>
         <ip address='10.70.0.1' prefix='24'><dhcp><range start='10.70.0.10' end='10.70.0.20'/></dhcp></ip>
         <ip family='ipv6' address='fd70::1' prefix='64'/></network>",
    ),
    (
        "isonet",
        "<network><name>isonet</name><bridge name='vn-iso0'/>
         <ip address='10.71.0.1' prefix='24'><dhcp><range start='10.71.0.10' end='10.71.0.20'/></dhcp></ip>
         </network>",
    ),
    (
        "slownet",
        "<network><name>slownet</name><forward mode='nat'/><bridge name='vn-slow0'/>
         <bandwidth><outbound average='10' burst='10'/></bandwidth>
         <ip address='10.72.0.1' prefix='24'/></network>",
    ),
];

/// The host, the outside machine and a guest on each network.
struct Lab {
    host: Netns,
    outside: Netns,
    scratch: ScratchDir,
    nat_guest: Option<(Netns, Ipv4Addr)>,
    iso_guest: Option<Netns>,
    slow_guest: Option<Netns>,
}

impl Lab {
    fn new(label: &str) -> Self {
        let (host, outside) = host_and_outside(label);
        host.ip(&["addr", "add", "fd99::1/64", "dev", "uplink", "nodad"]);
        outside.ip(&["addr", "add", "fd99::2/64", "dev", "eth0", "nodad"]);
        for subnet in ["10.70.0.0/24", "10.71.0.0/24"] {
            outside.ip(&["route", "add", subnet, "via", "10.255.0.1"]);
        }
        outside.ip(&["-6", "route", "add", "fd70::/64", "via", "fd99::1"]);
        Self {
            host,
            outside,
            scratch: ScratchDir::new(label),
            nat_guest: None,
            iso_guest: None,
            slow_guest: None,
        }
    }

    /// Plugs a guest into each network (their bridges are up).
    fn plug_guests(&mut self) {
        let script = udhcpc_script(&self.scratch.0);
        let suffix = self.host.name[self.host.name.len() - 4..].to_owned();
        let guest = |bridge: &str, label: &str| {
            let port = format!("vp{label}-{suffix}");
            let guest = plug_guest(&self.host, bridge, label, &port, None);
            wait_forwarding(&self.host, &port);
            guest
        };
        let nat = guest("vn-nat0", "gn");
        let address = dhcp(&nat, &script);
        nat.ip(&["addr", "add", "fd70::10/64", "dev", "eth0", "nodad"]);
        let iso = guest("vn-iso0", "gi");
        dhcp(&iso, &script);
        // An isolated network offers no router: the guest tries anyway.
        iso.ip(&["route", "add", "default", "via", "10.71.0.1"]);
        let slow = guest("vn-slow0", "gs");
        slow.ip(&["addr", "add", "10.72.0.10/24", "dev", "eth0"]);
        self.nat_guest = Some((nat, address));
        self.iso_guest = Some(iso);
        self.slow_guest = Some(slow);
    }

    /// Every object of virtnet's table without its handle, rules with their
    /// place in their chain: equal for equal tables, whatever order nft
    /// lists re-created objects in.
    fn table(&self) -> BTreeSet<String> {
        let output = self
            .host
            .exec(&["nft", "-j", "list", "table", "inet", "virtnet"]);
        let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        let mut places = std::collections::HashMap::new();
        listing["nftables"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut object| {
                if let Some(body) = object.as_object_mut().and_then(|o| o.values_mut().next())
                    && let Some(body) = body.as_object_mut()
                {
                    body.remove("handle");
                    if let Some(chain) = body.get("chain").and_then(|c| c.as_str()) {
                        let place = places.entry(chain.to_owned()).or_insert(0);
                        *place += 1;
                        body.insert("place".into(), (*place).into());
                    }
                }
                object.to_string()
            })
            .collect()
    }

    fn nft(&self, arguments: &[&str]) {
        self.host.exec_ok(&[&["nft"], arguments].concat());
    }
}

/// What a probe checks the firewall for; `holds` is true when the firewall
/// does its job.
#[derive(Debug, Clone, Copy)]
enum Probe {
    /// New connections from outside do not reach the NAT guest.
    InboundRefused,
    /// The isolated guest does not reach the outside machine.
    IsolatedStaysIn,
    /// The outside machine sees the host's address for the NAT guest.
    Masqueraded,
    /// The NAT guest reaches the outside machine.
    NatReachesOutside,
    /// DNS queries from outside to the NAT bridge's addresses go unanswered.
    DnsClosedToOutside4,
    DnsClosedToOutside6,
    /// The NAT guest's DNS queries to its bridge are answered.
    GuestDns4,
    GuestDns6,
    /// The slow guest's burst of pings is cut down by the outbound limit.
    Limited,
}

impl Probe {
    fn holds(self, lab: &Lab) -> bool {
        let (nat_guest, nat_address) = lab.nat_guest.as_ref().expect("guests plugged");
        let iso_guest = lab.iso_guest.as_ref().expect("guests plugged");
        let slow_guest = lab.slow_guest.as_ref().expect("guests plugged");
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 70, 0, 1));
        let v6: IpAddr = "fd70::1".parse().unwrap();
        match self {
            Self::InboundRefused => !lab
                .outside
                .exec(&[
                    "busybox",
                    "ping",
                    "-c",
                    "1",
                    "-W",
                    "1",
                    &nat_address.to_string(),
                ])
                .status
                .success(),
            Self::IsolatedStaysIn => !iso_guest
                .exec(&["busybox", "ping", "-c", "1", "-W", "1", "10.255.0.2"])
                .status
                .success(),
            Self::Masqueraded => {
                peer_seen(&lab.outside, nat_guest, "10.255.0.2:9000".parse().unwrap()).ip()
                    == IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1))
            }
            Self::NatReachesOutside => pings(nat_guest, "10.255.0.2"),
            Self::DnsClosedToOutside4 => !dns_answers(&lab.outside, v4),
            Self::DnsClosedToOutside6 => !dns_answers(&lab.outside, v6),
            Self::GuestDns4 => dns_answers(nat_guest, v4),
            Self::GuestDns6 => dns_answers(nat_guest, v6),
            Self::Limited => {
                let output = slow_guest.exec(&[
                    "busybox",
                    "ping",
                    "-q",
                    "-c",
                    "40",
                    "-s",
                    "1400",
                    "-i",
                    "0.01",
                    "-W",
                    "1",
                    "10.72.0.1",
                ]);
                let summary = String::from_utf8_lossy(&output.stdout);
                let received = common::guest::ping_summary(&summary).map_or(0, |(_, got)| got);
                received < 30
            }
        }
    }
}

/// One kind of damage, and the probe that shows it.
struct Damage {
    what: &'static str,
    make: fn(&Lab),
    probe: Probe,
}

const DAMAGES: &[Damage] = &[
    Damage {
        what: "base chain forward flushed",
        make: |lab| lab.nft(&["flush", "chain", "inet", "virtnet", "forward"]),
        probe: Probe::InboundRefused,
    },
    Damage {
        what: "base chain postrouting flushed",
        make: |lab| lab.nft(&["flush", "chain", "inet", "virtnet", "postrouting"]),
        probe: Probe::Masqueraded,
    },
    Damage {
        what: "base chain input flushed",
        make: |lab| lab.nft(&["flush", "chain", "inet", "virtnet", "input"]),
        probe: Probe::DnsClosedToOutside4,
    },
    Damage {
        what: "map to_bridge flushed",
        make: |lab| lab.nft(&["flush", "map", "inet", "virtnet", "to_bridge"]),
        probe: Probe::InboundRefused,
    },
    Damage {
        what: "map from_bridge flushed",
        make: |lab| lab.nft(&["flush", "map", "inet", "virtnet", "from_bridge"]),
        probe: Probe::IsolatedStaysIn,
    },
    Damage {
        what: "map nat_from_bridge flushed",
        make: |lab| lab.nft(&["flush", "map", "inet", "virtnet", "nat_from_bridge"]),
        probe: Probe::Masqueraded,
    },
    Damage {
        what: "set dns_addresses4 flushed",
        make: |lab| lab.nft(&["flush", "set", "inet", "virtnet", "dns_addresses4"]),
        probe: Probe::DnsClosedToOutside4,
    },
    Damage {
        what: "set dns_addresses6 flushed",
        make: |lab| lab.nft(&["flush", "set", "inet", "virtnet", "dns_addresses6"]),
        probe: Probe::DnsClosedToOutside6,
    },
    Damage {
        what: "set dns_on_bridge4 flushed",
        make: |lab| lab.nft(&["flush", "set", "inet", "virtnet", "dns_on_bridge4"]),
        probe: Probe::GuestDns4,
    },
    Damage {
        what: "set dns_on_bridge6 flushed",
        make: |lab| lab.nft(&["flush", "set", "inet", "virtnet", "dns_on_bridge6"]),
        probe: Probe::GuestDns6,
    },
    Damage {
        what: "the NAT network's chain to_vn-nat0 flushed",
        make: |lab| lab.nft(&["flush", "chain", "inet", "virtnet", "to_vn-nat0"]),
        probe: Probe::InboundRefused,
    },
    Damage {
        what: "the isolated network's chain from_vn-iso0 flushed",
        make: |lab| lab.nft(&["flush", "chain", "inet", "virtnet", "from_vn-iso0"]),
        probe: Probe::IsolatedStaysIn,
    },
    Damage {
        what: "the NAT network's chain nat_vn-nat0 flushed",
        make: |lab| lab.nft(&["flush", "chain", "inet", "virtnet", "nat_vn-nat0"]),
        probe: Probe::Masqueraded,
    },
    Damage {
        what: "the limit chain limit_vn-slow0 deleted",
        make: |lab| lab.nft(&["delete", "chain", "inet", "virtnet", "limit_vn-slow0"]),
        probe: Probe::Limited,
    },
    Damage {
        what: "one rule deleted: the reject ending to_vn-nat0",
        make: |lab| {
            let chain = lab.host.exec_ok(&[
                "nft",
                "-a",
                "list",
                "chain",
                "inet",
                "virtnet",
                "to_vn-nat0",
            ]);
            let handle = chain
                .lines()
                .filter(|line| line.contains("reject"))
                .find_map(|line| line.split("# handle ").nth(1))
                .expect("a reject rule with its handle")
                .trim()
                .to_owned();
            lab.nft(&[
                "delete",
                "rule",
                "inet",
                "virtnet",
                "to_vn-nat0",
                "handle",
                &handle,
            ]);
        },
        probe: Probe::InboundRefused,
    },
    Damage {
        what: "one rule added: accept first in forward",
        make: |lab| lab.nft(&["insert", "rule", "inet", "virtnet", "forward", "accept"]),
        probe: Probe::InboundRefused,
    },
    Damage {
        what: "the table made dormant",
        make: |lab| lab.nft(&["add", "table", "inet", "virtnet", "{ flags dormant; }"]),
        probe: Probe::InboundRefused,
    },
    Damage {
        what: "the input chain's policy set to drop",
        make: |lab| {
            lab.nft(&[
                "add",
                "chain",
                "inet",
                "virtnet",
                "input",
                "{ type filter hook input priority 0; policy drop; }",
            ])
        },
        probe: Probe::GuestDns4,
    },
    Damage {
        what: "the whole table deleted",
        make: |lab| lab.nft(&["delete", "table", "inet", "virtnet"]),
        probe: Probe::InboundRefused,
    },
];

const EVERY_PROBE: [Probe; 9] = [
    Probe::InboundRefused,
    Probe::IsolatedStaysIn,
    Probe::Masqueraded,
    Probe::NatReachesOutside,
    Probe::DnsClosedToOutside4,
    Probe::DnsClosedToOutside6,
    Probe::GuestDns4,
    Probe::GuestDns6,
    Probe::Limited,
];

fn assert_all_hold(lab: &Lab, when: &str) {
    for probe in EVERY_PROBE {
        assert!(probe.holds(lab), "{probe:?} fails {when}");
    }
}

/// Each damage is real, and `Firewall::reconcile` (what `reload-firewall`
/// runs) undoes it, touching nothing else.
#[test]
fn reconcile_undoes_every_damage() {
    let mut lab = Lab::new("fwrep");
    let env = Environment {
        state_dir: lab.scratch.0.join("state"),
        run_dir: lab.scratch.0.join("run"),
        dnsmasq: "dnsmasq".into(),
        tc: TrafficControl::new("tc"),
    };
    let firewall = Firewall::new();
    let running: Vec<_> = NETWORKS
        .iter()
        .map(|(_, xml)| {
            let def = NetworkDef::parse(xml).expect("test definitions parse");
            lab.host
                .block_on(apply::start(&def, &env, &firewall, &[]))
                .expect("the network starts")
        })
        .collect();
    lab.plug_guests();
    let intact = lab.table();
    assert_all_hold(&lab, "before any damage");
    assert!(
        lab.host
            .block_on(firewall.reconcile())
            .expect("the table is read")
            .is_empty(),
        "a table as virtnet made it needs no repair"
    );
    for damage in DAMAGES {
        (damage.make)(&lab);
        assert!(
            !damage.probe.holds(&lab),
            "{}: no damage to see with {:?}",
            damage.what,
            damage.probe
        );
        let repaired = lab
            .host
            .block_on(firewall.reconcile())
            .unwrap_or_else(|error| panic!("{}: {error}", damage.what));
        assert!(!repaired.is_empty(), "{}: nothing repaired", damage.what);
        assert_eq!(
            lab.table(),
            intact,
            "{}: the table is as it was",
            damage.what
        );
        assert!(
            damage.probe.holds(&lab),
            "{}: {:?} after the repair",
            damage.what,
            damage.probe
        );
    }
    assert_all_hold(&lab, "after every repair");
    lab.nat_guest = None;
    lab.iso_guest = None;
    lab.slow_guest = None;
    for network in &running {
        lab.host
            .block_on(apply::stop(network, &firewall))
            .expect("the network stops");
    }
    assert_eq!(
        lab.host.exec_ok(&["nft", "list", "ruleset"]),
        "",
        "the table goes with the last network"
    );
}

/// virtnetd puts each damage right by itself within a second, and
/// `reload-firewall` then finds nothing to do.
#[test]
fn the_daemon_undoes_every_damage_within_a_second() {
    let mut lab = Lab::new("fwgrd");
    let bus = start_bus(&lab.host, &lab.scratch.0, None);
    let daemon = Daemon::start(&DaemonConfig::kernel(
        &lab.host,
        &bus.address,
        "org.virtnet",
        &lab.scratch.0,
        &[],
    ));
    let cli = |args: &[&str]| {
        let output = client(&bus.address, "org.virtnet", args);
        assert!(
            output.status.success(),
            "virtnet {args:?}: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            daemon.log_text()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    for (name, xml) in NETWORKS {
        let file: PathBuf = lab.scratch.0.join(format!("{name}.xml"));
        std::fs::write(&file, xml).unwrap();
        cli(&["net-create", file.to_str().unwrap()]);
    }
    lab.plug_guests();
    let intact = lab.table();
    assert_all_hold(&lab, "before any damage");
    for damage in DAMAGES {
        (damage.make)(&lab);
        let damaged = Instant::now();
        while lab.table() != intact {
            assert!(
                damaged.elapsed() < Duration::from_secs(1),
                "{}: not repaired within a second; daemon log:\n{}",
                damage.what,
                daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            damage.probe.holds(&lab),
            "{}: {:?} after the repair",
            damage.what,
            damage.probe
        );
    }
    assert_eq!(
        cli(&["reload-firewall"]),
        "Firewall rules already in place\n\n"
    );
    assert!(
        daemon
            .log_text()
            .contains("put virtnet's nftables table right"),
        "{}",
        daemon.log_text()
    );
    lab.nat_guest = None;
    lab.iso_guest = None;
    lab.slow_guest = None;
    for (name, _) in NETWORKS {
        cli(&["net-destroy", name]);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.host.exec_ok(&["nft", "list", "ruleset"]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the table stays after the last network"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(daemon);
}

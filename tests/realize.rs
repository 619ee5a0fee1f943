//! Networks realized on a real kernel, proven with real traffic. Everything
//! runs in namespaces made for the test: `host` is where virtnet works (the
//! hypervisor), `outside` is a machine beyond the host's uplink, guests are
//! namespaces plugged into the bridge with a veth and configured by DHCP.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::PathBuf;

use common::guest::{dhcp, peer_seen, pings, udhcpc_script, wait_forwarding, walk};
use common::netns::{Netns, host_and_outside, plug_guest, veth};
use common::{ScratchDir, project_dir};
use virtnet::apply::RunningNetwork;
use virtnet::apply::firewall::Firewall;
use virtnet::apply::{self, Environment, FailedStart, StartError, TrafficControl};
use virtnet::definition::{ForwardMode, NetworkDef};

/// A host namespace with an uplink to an `outside` namespace, and the
/// files virtnet works with.
struct Lab {
    host: Netns,
    outside: Netns,
    scratch: ScratchDir,
    env: Environment,
    firewall: Firewall,
    script: PathBuf,
    guests: u32,
}

impl Lab {
    fn new(label: &str) -> Self {
        let (host, outside) = host_and_outside(label);
        let scratch = ScratchDir::new(label);
        let env = Environment {
            state_dir: scratch.0.join("state"),
            run_dir: scratch.0.join("run"),
            dnsmasq: "dnsmasq".into(),
            tc: TrafficControl::new("tc"),
        };
        let script = udhcpc_script(&scratch.0);
        Self {
            host,
            outside,
            scratch,
            env,
            firewall: Firewall::new(),
            script,
            guests: 0,
        }
    }

    fn start(&self, xml: &str) -> Result<RunningNetwork, StartError> {
        let def = NetworkDef::parse(xml).expect("test definitions parse");
        def.validate().expect("test definitions are valid");
        self.host
            .block_on(apply::start(&def, &self.env, &self.firewall, &[]))
            .map_err(undone)
    }

    fn stop(&self, running: &RunningNetwork) {
        self.host
            .block_on(apply::stop(running, &self.firewall))
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

    /// The host is as it was `before`. Guest namespaces dropped just before
    /// take their veth ends with them asynchronously (the kernel cleans a
    /// namespace up in a work queue), so this waits a little for them.
    fn assert_back_to(&self, before: &str) {
        for _ in 0..100 {
            if self.snapshot() == before {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(before, self.snapshot(), "stop leaves the host as it was");
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
        let label = format!("g{}", self.guests);
        // Host-side names must be unique here and fit in 15 bytes.
        let port = format!(
            "vg{}-{}",
            self.guests,
            &self.host.name[self.host.name.len() - 4..]
        );
        let guest = plug_guest(&self.host, bridge, &label, &port, mac);
        wait_forwarding(&self.host, &port);
        guest
    }

    /// Runs real DHCP in the guest; returns the address it was given.
    fn dhcp(&self, guest: &Netns) -> Ipv4Addr {
        dhcp(guest, &self.script)
    }
}

/// The error of a failed start, which must have undone everything.
fn undone(failed: FailedStart) -> StartError {
    if let Some(leftovers) = &failed.leftovers {
        panic!("{}: undoing it left {leftovers}", failed.error);
    }
    failed.error
}

/// Opens a TCP connection from `guest` to `outside` and returns the peer
/// address the outside host saw.
fn source_seen_outside(lab: &Lab, guest: &Netns) -> Ipv4Addr {
    match peer_seen(&lab.outside, guest, "10.255.0.2:9000".parse().unwrap()).ip() {
        IpAddr::V4(v4) => v4,
        other => panic!("unexpected peer {other}"),
    }
}

/// The rtnetlink multicast groups (bit n-1 for group n) that the dnsmasq
/// of `running` listens to.
fn dnsmasq_event_groups(running: &RunningNetwork) -> u32 {
    let pid = running.dnsmasq.as_ref().expect("network has a dnsmasq").pid;
    let sockets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("dnsmasq's descriptors")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/netlink")).unwrap();
    let route_sockets: Vec<u32> = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|columns| columns[1] == "0" && sockets.iter().any(|s| s == columns[9]))
        .map(|columns| u32::from_str_radix(columns[3], 16).unwrap())
        .collect();
    assert_eq!(route_sockets.len(), 1, "one rtnetlink socket in dnsmasq");
    route_sockets[0]
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
    assert_eq!(
        dnsmasq_event_groups(&running),
        0,
        "dnsmasq, bound to its addresses, wakes for no address or route event"
    );
    let pid = running.dnsmasq.as_ref().expect("keennet has a dnsmasq").pid;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .expect("a Uid line");
    assert!(
        uids.split_whitespace().all(|uid| uid != "0"),
        "dnsmasq gives up root, as by default: Uid {uids}"
    );

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
    let mac = guest.exec_ok(&["cat", "/sys/class/net/eth0/address"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let leases = running.leases(now);
    assert!(
        leases
            .iter()
            .any(|lease| lease.ip_address == address.to_string()
                && lease.mac_address.as_deref() == Some(mac.trim())),
        "the lease of {address} ({}) is recorded: {leases:?}",
        mac.trim()
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
    lab.assert_back_to(&before);
}

#[test]
fn route_mode_forwards_the_guests_own_address() {
    let mut lab = Lab::new("route");
    let before = lab.snapshot();
    let running = lab.start(&sample("routed.xml")).expect("routed starts");
    lab.outside
        .ip(&["route", "add", "10.77.20.0/24", "via", "10.255.0.1"]);
    let guest = lab.guest("vn-routed", None);
    let address = lab.dhcp(&guest);
    assert_eq!(
        source_seen_outside(&lab, &guest),
        address,
        "the outside host sees the guest's own address"
    );
    assert!(
        pings(&lab.outside, &address.to_string()),
        "routed guests accept new connections from outside"
    );
    drop(guest);
    lab.stop(&running);
    lab.assert_back_to(&before);
}

#[test]
fn open_mode_adds_no_rules_at_all() {
    let mut lab = Lab::new("open");
    let before = lab.snapshot();
    let running = lab.start(&sample("open.xml")).expect("open starts");
    assert!(running.firewall.is_none());
    assert_eq!(
        lab.host.exec_ok(&["nft", "list", "ruleset"]),
        "",
        "an open network has no rules from virtnet"
    );
    lab.outside
        .ip(&["route", "add", "10.77.30.0/24", "via", "10.255.0.1"]);
    let guest = lab.guest("vn-open", None);
    let address = lab.dhcp(&guest);
    assert_eq!(source_seen_outside(&lab, &guest), address);
    drop(guest);
    lab.stop(&running);
    lab.assert_back_to(&before);
}

#[test]
fn host_only_guest_reaches_the_host_but_not_beyond() {
    let mut lab = Lab::new("hostonly");
    let before = lab.snapshot();
    let running = lab
        .start(&sample("host-only.xml"))
        .expect("host-only starts");
    lab.outside
        .ip(&["route", "add", "10.77.10.0/24", "via", "10.255.0.1"]);
    let guest = lab.guest("vn-hostonly", None);
    let address = lab.dhcp(&guest);
    guest.ip(&["route", "replace", "default", "via", "10.77.10.1"]);
    // Another network may have turned forwarding on: the rules, not the
    // sysctl, must keep an isolated network's traffic in.
    lab.host.exec_ok(&["sysctl", "-w", "net.ipv4.ip_forward=1"]);
    assert!(pings(&guest, "10.77.10.1"), "guest reaches the host");
    assert!(!pings(&guest, "10.255.0.2"), "guest does not reach outside");
    assert!(
        !pings(&lab.outside, &address.to_string()),
        "outside does not reach the guest"
    );
    drop(guest);
    lab.stop(&running);
    lab.assert_back_to(&before);
}

#[test]
fn internal_network_connects_guests_and_nothing_else() {
    let mut lab = Lab::new("internal");
    let before = lab.snapshot();
    let running = lab.start(&sample("internal.xml")).expect("internal starts");
    assert!(running.dnsmasq.is_none(), "no addresses, no dnsmasq");
    let first = lab.guest("vn-internal", None);
    let second = lab.guest("vn-internal", None);
    first.ip(&["addr", "add", "10.99.0.2/24", "dev", "eth0"]);
    second.ip(&["addr", "add", "10.99.0.3/24", "dev", "eth0"]);
    assert!(pings(&first, "10.99.0.3"), "guests talk to each other");
    let bridge = lab
        .host
        .exec_ok(&["ip", "-o", "addr", "show", "dev", "vn-internal"]);
    assert!(
        !bridge.contains("inet"),
        "the host has no address there, IPv4 or IPv6: {bridge}"
    );
    first.ip(&["route", "add", "default", "dev", "eth0"]);
    assert!(!pings(&first, "10.255.0.1"), "the host is not reachable");
    drop((first, second));
    lab.stop(&running);
    lab.assert_back_to(&before);
}

/// What others have on the host, which virtnet must leave alone: a table
/// of rules and links of their own (a veth pair: a bridge's timers would
/// change the snapshot by themselves).
fn add_bystanders(host: &Netns) {
    host.exec_ok(&["nft", "add", "table", "inet", "bystander"]);
    host.exec_ok(&[
        "nft",
        "add chain inet bystander forward { type filter hook forward priority 10; }",
    ]);
    host.exec_ok(&[
        "nft",
        "add rule inet bystander forward ip saddr 192.0.2.0/24 drop",
    ]);
    host.ip(&[
        "link",
        "add",
        "bystander0",
        "type",
        "veth",
        "peer",
        "name",
        "bystander1",
    ]);
}

#[test]
fn default_and_keennet_cannot_reach_each_other() {
    let mut lab = Lab::new("pair");
    add_bystanders(&lab.host);
    let before = lab.snapshot();
    let default = lab.start(&sample("default.xml")).expect("default starts");
    let keennet = lab.start(&sample("keennet.xml")).expect("keennet starts");
    let in_default = lab.guest("virbr0", None);
    let in_keennet = lab.guest("keenbr0", None);
    let default_address = lab.dhcp(&in_default);
    let keennet_address = lab.dhcp(&in_keennet);
    assert_eq!(default_address.octets()[..3], [192, 168, 122]);
    assert!(
        (2..=254).contains(&default_address.octets()[3]),
        "lease {default_address} in the range"
    );
    assert!(pings(&in_default, "192.168.122.1"));
    for guest in [&in_default, &in_keennet] {
        assert!(pings(guest, "10.255.0.2"), "both reach outside");
        assert_eq!(
            source_seen_outside(&lab, guest),
            Ipv4Addr::new(10, 255, 0, 1),
            "both are masqueraded behind the host's address"
        );
    }
    assert!(
        !pings(&in_default, &keennet_address.to_string()),
        "default's guest cannot reach keennet's"
    );
    assert!(
        !pings(&in_keennet, &default_address.to_string()),
        "keennet's guest cannot reach default's"
    );
    drop(in_keennet);
    lab.stop(&keennet);
    assert!(
        pings(&in_default, "10.255.0.2"),
        "stopping keennet leaves the default network working"
    );
    drop(in_default);
    lab.stop(&default);
    lab.assert_back_to(&before);
}

#[test]
fn dns_answers_for_dns_hosts_and_static_dhcp_hosts() {
    let mut lab = Lab::new("dns");
    let xml = "<network><name>dnstest</name><forward/>
      <bridge name='vn-dnstest' stp='off'/>
      <domain name='lab.test'/>
      <dns><host ip='10.88.0.50'><hostname>fileserver</hostname></host></dns>
      <ip address='10.88.0.1' netmask='255.255.255.0'><dhcp>
        <range start='10.88.0.100' end='10.88.0.200'/>
        <host mac='52:54:00:aa:bb:01' name='buildbox' ip='10.88.0.20'/>
      </dhcp></ip></network>";
    let before = lab.snapshot();
    let running = lab.start(xml).expect("dns network starts");
    let guest = lab.guest("vn-dnstest", Some("52:54:00:aa:bb:01"));
    assert_eq!(
        lab.dhcp(&guest),
        Ipv4Addr::new(10, 88, 0, 20),
        "a static host gets its fixed address"
    );
    for (name, address) in [
        ("fileserver", "10.88.0.50"),
        ("buildbox", "10.88.0.20"),
        ("buildbox.lab.test", "10.88.0.20"),
    ] {
        let answer = guest.exec(&["busybox", "nslookup", name, "10.88.0.1"]);
        let text = String::from_utf8_lossy(&answer.stdout);
        assert!(
            text.contains(address),
            "{name} resolves to {address}: {text}"
        );
    }
    lab.outside
        .ip(&["route", "add", "10.88.0.0/24", "via", "10.255.0.1"]);
    let from_outside = lab.outside.exec(&[
        "busybox",
        "timeout",
        "3",
        "busybox",
        "nslookup",
        "fileserver",
        "10.88.0.1",
    ]);
    assert!(
        !String::from_utf8_lossy(&from_outside.stdout).contains("10.88.0.50"),
        "the network's DNS does not answer queries from outside: {from_outside:?}"
    );
    drop(guest);
    lab.stop(&running);
    lab.assert_back_to(&before);
}

/// Waits until `guest` has a usable global IPv6 address starting with
/// `prefix`, configured from the network's router advertisements.
fn slaac(lab: &Lab, guest: &Netns, prefix: &str) {
    // The guest asks for a router advertisement when its link comes up; a
    // second request covers one sent before dnsmasq could answer.
    let mut global = String::new();
    for attempt in 0..200 {
        global = guest.exec_ok(&[
            "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global",
        ]);
        if global.contains(prefix) && !global.contains("tentative") {
            return;
        }
        if attempt == 50 {
            guest.ip(&["link", "set", "eth0", "down"]);
            guest.ip(&["link", "set", "eth0", "up"]);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "no SLAAC address from RA: {global}\n{}",
        lab.diagnose(guest)
    );
}

#[test]
fn dual_stack_guest_gets_an_ipv6_address_from_router_advertisements() {
    let mut lab = Lab::new("ipv6");
    let xml = "<network><name>dual</name><forward/>
      <bridge name='vn-dual6' stp='off'/>
      <ip address='10.66.6.1' prefix='24'><dhcp><range start='10.66.6.10' end='10.66.6.20'/></dhcp></ip>
      <ip family='ipv6' address='fd00:66:6::1' prefix='64'/></network>";
    let before = lab.snapshot();
    let running = lab.start(xml).expect("dual-stack network starts");
    assert_eq!(
        dnsmasq_event_groups(&running),
        1 << (9 - 1),
        "dnsmasq follows IPv6 address events only (RTNLGRP_IPV6_IFADDR)"
    );
    let guest = lab.guest("vn-dual6", None);
    let v4 = lab.dhcp(&guest);
    assert_eq!(v4.octets()[..3], [10, 66, 6]);
    assert!(
        (10..=20).contains(&v4.octets()[3]),
        "lease {v4} in the range"
    );
    slaac(&lab, &guest, "fd00:66:6:");
    let ping6 = guest.exec(&[
        "busybox",
        "ping",
        "-6",
        "-c",
        "3",
        "-w",
        "6",
        "fd00:66:6::1",
    ]);
    assert!(
        ping6.status.success(),
        "IPv6 to the host: {ping6:?}\n{}\n{}",
        guest.exec_ok(&["ip", "-6", "route"]),
        lab.diagnose(&guest)
    );
    drop(guest);
    lab.stop(&running);
    lab.assert_back_to(&before);
}

/// The options of a DHCPv6 message (or of an option holding options):
/// (code, data); a torn option ends them.
fn dhcpv6_options(mut rest: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let code = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
        let length = usize::from(u16::from_be_bytes(rest.get(2..4)?.try_into().ok()?));
        let data = rest.get(4..4 + length)?;
        rest = &rest[4 + length..];
        Some((code, data))
    })
}

/// Asks for an address by DHCPv6 from `guest`'s eth0 (busybox has no
/// DHCPv6 client): one SOLICIT to all DHCP servers, and the address the
/// ADVERTISE offers.
fn dhcpv6_offer(guest: &Netns) -> Ipv6Addr {
    const SOLICIT: u8 = 1;
    const ADVERTISE: u8 = 2;
    const CLIENT_ID: u16 = 1;
    const IA_NA: u16 = 3;
    const IA_ADDRESS: u16 = 5;
    const ELAPSED_TIME: u16 = 8;
    let transaction = [0x12, 0x34, 0x56];
    let mut solicit = vec![SOLICIT];
    solicit.extend(transaction);
    let mut option = |code: u16, data: &[u8]| {
        solicit.extend(code.to_be_bytes());
        solicit.extend(u16::try_from(data.len()).unwrap().to_be_bytes());
        solicit.extend(data);
    };
    // DUID-LL (type 3) over Ethernet (hardware type 1).
    option(CLIENT_ID, &[0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, 0x66]);
    // IAID 1, T1 and T2 left to the server.
    option(IA_NA, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    option(ELAPSED_TIME, &[0, 0]);

    guest.run_in(|| {
        let eth0 = std::ffi::CString::new("eth0").unwrap();
        // SAFETY: if_nametoindex(3) reads a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(eth0.as_ptr()) };
        assert_ne!(index, 0, "eth0 in the guest");
        let socket = std::net::UdpSocket::bind("[::]:546").expect("the DHCPv6 client port");
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(500)))
            .unwrap();
        let servers = SocketAddrV6::new("ff02::1:2".parse().unwrap(), 547, 0, index);
        let mut reply = [0u8; 1500];
        // Until the link-local address has passed duplicate detection,
        // sending fails or goes unanswered: try for a while.
        for _ in 0..20 {
            if socket.send_to(&solicit, servers).is_err() {
                std::thread::sleep(std::time::Duration::from_millis(250));
                continue;
            }
            let Ok(length) = socket.recv(&mut reply) else {
                continue;
            };
            let reply = &reply[..length];
            if reply.len() < 4 || reply[0] != ADVERTISE || reply[1..4] != transaction {
                continue;
            }
            let offered = dhcpv6_options(&reply[4..])
                .filter(|(code, _)| *code == IA_NA)
                .flat_map(|(_, ia)| dhcpv6_options(ia.get(12..).unwrap_or_default()))
                .find(|(code, _)| *code == IA_ADDRESS)
                .and_then(|(_, address)| <[u8; 16]>::try_from(address.get(..16)?).ok());
            if let Some(octets) = offered {
                return Ipv6Addr::from(octets);
            }
        }
        panic!("no DHCPv6 ADVERTISE with an address");
    })
}

#[test]
fn dhcpv6_offers_an_address_from_the_range() {
    let mut lab = Lab::new("dhcp6");
    let xml = "<network><name>dhcp6</name><forward/>
      <bridge name='vn-dhcp6' stp='off'/>
      <ip address='10.69.0.1' prefix='24'/>
      <ip family='ipv6' address='fd00:69::1' prefix='64'><dhcp>
        <range start='fd00:69::100' end='fd00:69::1ff'/></dhcp></ip></network>";
    let before = lab.snapshot();
    let running = lab.start(xml).expect("the network starts");
    let guest = lab.guest("vn-dhcp6", None);
    let offered = dhcpv6_offer(&guest);
    let range = "fd00:69::100".parse::<Ipv6Addr>().unwrap()..="fd00:69::1ff".parse().unwrap();
    assert!(
        range.contains(&offered),
        "DHCPv6 offers {offered}, in the range"
    );
    drop(guest);
    lab.stop(&running);
    lab.assert_back_to(&before);
}

#[test]
fn nat_uses_the_given_address_and_ports_and_masquerades_ipv6() {
    let mut lab = Lab::new("snat");
    lab.host
        .ip(&["addr", "add", "10.255.0.100/24", "dev", "uplink"]);
    lab.host
        .ip(&["addr", "add", "fd00:255::1/64", "dev", "uplink", "nodad"]);
    lab.host
        .ip(&["-6", "route", "add", "default", "via", "fd00:255::2"]);
    lab.outside
        .ip(&["addr", "add", "fd00:255::2/64", "dev", "eth0", "nodad"]);
    let before = lab.snapshot();
    let running = lab
        .start(
            "<network><name>snat</name><forward mode='nat'><nat ipv6='yes'>
               <address start='10.255.0.100' end='10.255.0.100'/>
               <port start='2000' end='2000'/></nat></forward>
             <bridge name='vn-snat0' stp='off'/>
             <ip address='10.68.0.1' prefix='24'><dhcp>
               <range start='10.68.0.2' end='10.68.0.9'/></dhcp></ip>
             <ip family='ipv6' address='fd00:68::1' prefix='64'/></network>",
        )
        .expect("the network starts");
    let guest = lab.guest("vn-snat0", None);
    lab.dhcp(&guest);
    assert_eq!(
        peer_seen(&lab.outside, &guest, "10.255.0.2:9000".parse().unwrap()),
        "10.255.0.100:2000".parse::<SocketAddr>().unwrap(),
        "translated to the <nat> address and port"
    );
    slaac(&lab, &guest, "fd00:68:");
    assert_eq!(
        peer_seen(&lab.outside, &guest, "[fd00:255::2]:9000".parse().unwrap()).ip(),
        "fd00:255::1".parse::<IpAddr>().unwrap(),
        "IPv6 masqueraded behind the host's address\n{}",
        lab.diagnose(&guest)
    );
    drop(guest);
    lab.stop(&running);
    lab.assert_back_to(&before);
}

#[test]
fn macvtap_bridge_mode_guests_reach_each_other_over_the_uplink() {
    let mut lab = Lab::new("macvtap");
    let lan = Netns::new("lan");
    veth(&lab.host, "mvup0", &lan, "eth0");
    let before = lab.snapshot();
    let xml = "<network><name>direct</name><forward mode='bridge'>
        <interface dev='mvup0'/></forward></network>";
    let running = lab.start(xml).expect("a macvtap network starts");
    let mut pool = running.pool.clone().expect("a device pool");
    assert_eq!(
        pool.mode,
        ForwardMode::Bridge,
        "guests are to get macvtap devices in bridge mode"
    );
    let mut guests = Vec::new();
    for (index, address) in ["10.55.0.2/24", "10.55.0.3/24"].iter().enumerate() {
        let device = pool.acquire().expect("a device").to_owned();
        assert_eq!(device, "mvup0");
        lab.guests += 1;
        let guest = Netns::new(&format!("mv{index}"));
        let port = format!("mvg{index}");
        lab.host.ip(&[
            "link", "add", "link", &device, "name", &port, "type", "macvlan", "mode", "bridge",
        ]);
        lab.host.ip(&["link", "set", &port, "netns", &guest.name]);
        guest.ip(&["addr", "add", address, "dev", &port]);
        guest.ip(&["link", "set", &port, "up"]);
        guests.push(guest);
    }
    assert_eq!(pool.connections(), 2);
    assert!(pings(&guests[0], "10.55.0.3"), "bridge mode: guests talk");
    drop(guests);
    lab.stop(&running);
    lab.assert_back_to(&before);
    drop(lan);
}

#[test]
fn start_refuses_what_collides_and_leaves_no_trace() {
    let lab = Lab::new("refuse");
    let before = lab.snapshot();

    lab.host.ip(&["link", "add", "keenbr0", "type", "bridge"]);
    let error = lab.start(&sample("keennet.xml")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "internal error: bridge name 'keenbr0' already in use."
    );
    lab.host.ip(&["link", "del", "keenbr0"]);

    let def = NetworkDef::parse(&sample("keennet.xml")).expect("sample parses");
    let error = lab
        .host
        .block_on(apply::start(
            &def,
            &lab.env,
            &lab.firewall,
            &["keenbr0".to_owned()],
        ))
        .map_err(undone)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "internal error: bridge name 'keenbr0' already in use.",
        "a bridge name another network holds is refused"
    );

    let keennet = sample("keennet.xml");
    let routed = "<network><name>routes</name><forward mode='route'/>
      <bridge name='vn-routes0'/><ip address='10.62.0.1' prefix='24'/>
      <route address='10.70.0.0' prefix='24' gateway='10.62.0.2'/></network>";
    let ipv6 = "<network><name>six</name><bridge name='vn-six0'/>
      <ip family='ipv6' address='fd00:62::1' prefix='64'/></network>";
    // What the host holds (`ip OBJECT add|del ARGUMENTS`), and a network
    // that needs it.
    let collisions: [(&str, &str, &[&str], &str); 4] = [
        (
            "a host address in the subnet",
            "addr",
            &["192.168.132.7/24", "dev", "uplink"],
            &keennet,
        ),
        (
            "a host route to the subnet",
            "route",
            &["192.168.132.0/24", "via", "10.255.0.2"],
            &keennet,
        ),
        (
            "a <route> the host already has",
            "route",
            &["10.70.0.0/24", "via", "10.255.0.2"],
            routed,
        ),
        (
            "an IPv6 subnet the host uses",
            "addr",
            &["fd00:62::7/64", "dev", "uplink", "nodad"],
            ipv6,
        ),
    ];
    for (what, object, arguments, xml) in collisions {
        lab.host.ip(&[&[object, "add"], arguments].concat());
        assert_eq!(
            lab.start(xml).unwrap_err().to_string(),
            "internal error: Network is already in use by interface uplink",
            "{what} is a collision"
        );
        lab.host.ip(&[&[object, "del"], arguments].concat());
    }

    let limited = "<network><name>limited</name><forward mode='open'/><bridge name='vn-limit0'/>
      <bandwidth><outbound average='1000'/></bandwidth>
      <ip address='10.61.0.1' prefix='24'/></network>";
    assert_eq!(
        lab.start(limited).unwrap_err().to_string(),
        "unsupported configuration: network 'limited' has an outbound <bandwidth> limit with forward mode='open'; virtnet polices outbound traffic with nftables rules, which an open network does not have"
    );
    assert_eq!(lab.snapshot(), before, "a refused start leaves no trace");

    let error = lab.start(&sample("bridge.xml")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("uses host bridge 'br0', which does not exist"),
        "{error}"
    );
    lab.host.ip(&["link", "add", "br0", "type", "bridge"]);
    let on_host_bridge = lab
        .start(&sample("bridge.xml"))
        .expect("a network on an existing host bridge starts");
    assert!(
        on_host_bridge.bridge.is_none(),
        "it creates no bridge of its own"
    );
    lab.stop(&on_host_bridge);
    lab.host.ip(&["link", "del", "br0"]);

    // tc fails after the rules and dnsmasq are in place: both go again.
    let shaped = NetworkDef::parse(
        "<network><name>shaped</name><forward/><bridge name='vn-shaped0'/>
         <bandwidth><inbound average='1000'/></bandwidth>
         <ip address='10.63.0.1' prefix='24'><dhcp>
         <range start='10.63.0.2' end='10.63.0.9'/></dhcp></ip></network>",
    )
    .expect("shaped network parses");
    let without_tc = Environment {
        tc: TrafficControl::new("/nonexistent/tc"),
        ..lab.env.clone()
    };
    let error = lab
        .host
        .block_on(apply::start(&shaped, &without_tc, &lab.firewall, &[]))
        .map_err(undone)
        .unwrap_err();
    assert!(
        error.to_string().contains("cannot run /nonexistent/tc"),
        "{error}"
    );
    assert_eq!(
        before,
        lab.snapshot(),
        "a start failing at traffic control rolls everything back"
    );

    let broken = Lab {
        env: Environment {
            dnsmasq: "/nonexistent/dnsmasq".into(),
            ..lab.env.clone()
        },
        ..lab
    };
    let error = broken.start(&sample("keennet.xml")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("cannot run /nonexistent/dnsmasq"),
        "{error}"
    );
    assert_eq!(
        before,
        broken.snapshot(),
        "a failed start rolls everything back"
    );
}

/// `/proc/sys/net/<key>` in the host namespace.
fn sysctl(lab: &Lab, key: &str) -> String {
    lab.host
        .exec_ok(&["cat", &format!("/proc/sys/net/{key}")])
        .trim()
        .to_owned()
}

#[test]
fn the_bridge_gets_what_the_definition_says() {
    let lab = Lab::new("attrs");
    let before = lab.snapshot();
    let isolated = lab
        .start(
            "<network><name>v4only</name><bridge name='vn-v4only0'/>
             <ip address='10.67.0.1' prefix='24'/></network>",
        )
        .expect("an isolated IPv4 network starts");
    assert_eq!(
        sysctl(&lab, "ipv6/conf/vn-v4only0/disable_ipv6"),
        "1",
        "no IPv6 on a bridge without an IPv6 address"
    );
    assert_eq!(
        sysctl(&lab, "ipv4/ip_forward"),
        "0",
        "an isolated network does not turn forwarding on"
    );

    let running = lab
        .start(
            "<network><name>attrs</name><forward mode='nat'/>
             <bridge name='vn-attrs0' stp='on' delay='3'/>
             <mac address='52:54:00:12:34:56'/><mtu size='9000'/>
             <ip address='10.64.0.1' prefix='24'/>
             <ip family='ipv6' address='fd00:64::1' prefix='64'/>
             <route address='10.65.0.0' prefix='24' gateway='10.64.0.2'/></network>",
        )
        .expect("the network starts");
    let link: serde_json::Value = serde_json::from_str(&lab.host.exec_ok(&[
        "ip",
        "-d",
        "-j",
        "link",
        "show",
        "dev",
        "vn-attrs0",
    ]))
    .expect("ip's JSON");
    let link = &link[0];
    assert_eq!(link["address"], "52:54:00:12:34:56", "{link}");
    assert_eq!(link["mtu"], 9000, "{link}");
    assert!(
        link["flags"]
            .as_array()
            .is_some_and(|flags| flags.iter().any(|flag| flag == "UP")),
        "the bridge is up: {link}"
    );
    let bridge = &link["linkinfo"]["info_data"];
    assert_eq!(link["linkinfo"]["info_kind"], "bridge", "{link}");
    assert_eq!(bridge["stp_state"], 1, "stp on: {bridge}");
    assert_eq!(
        bridge["forward_delay"], 300,
        "a 3 s forward delay, in centiseconds: {bridge}"
    );
    let addresses = lab
        .host
        .exec_ok(&["ip", "-o", "addr", "show", "dev", "vn-attrs0"]);
    for address in ["inet 10.64.0.1/24", "inet6 fd00:64::1/64"] {
        assert!(addresses.contains(address), "{address}: {addresses}");
    }
    let route = lab.host.exec_ok(&["ip", "route", "show", "10.65.0.0/24"]);
    assert!(
        route.contains("via 10.64.0.2 dev vn-attrs0"),
        "the <route> is there: {route}"
    );
    for (key, value) in [
        ("ipv6/conf/vn-attrs0/disable_ipv6", "0"),
        ("ipv6/conf/vn-attrs0/accept_ra", "0"),
        ("ipv6/conf/vn-attrs0/autoconf", "0"),
        ("ipv4/ip_forward", "1"),
        ("ipv6/conf/all/forwarding", "1"),
    ] {
        assert_eq!(sysctl(&lab, key), value, "{key}");
    }
    lab.stop(&running);
    lab.stop(&isolated);
    lab.assert_back_to(&before);
}

#[test]
fn bridge_names_come_from_templates() {
    let lab = Lab::new("names");
    let before = lab.snapshot();
    let unnamed = |name: &str, subnet: u8| {
        format!(
            "<network><name>{name}</name><ip address='10.91.{subnet}.1' prefix='24'/></network>"
        )
    };
    let first = lab.start(&unnamed("first", 1)).expect("first starts");
    let second = lab.start(&unnamed("second", 2)).expect("second starts");
    assert_eq!(first.bridge.as_ref().unwrap().name, "virbr0");
    assert_eq!(second.bridge.as_ref().unwrap().name, "virbr1");
    lab.host.ip(&["link", "add", "lab0", "type", "bridge"]);
    let templated = lab
        .start("<network><name>t</name><bridge name='lab%d'/></network>")
        .expect("templated starts");
    assert_eq!(templated.bridge.as_ref().unwrap().name, "lab1");
    let mac = templated.bridge.as_ref().unwrap().mac;
    assert_eq!(
        mac[..3],
        [0x52, 0x54, 0x00],
        "generated MACs are libvirt's 52:54:00"
    );
    for running in [&templated, &second, &first] {
        lab.stop(running);
    }
    lab.host.ip(&["link", "del", "lab0"]);
    lab.assert_back_to(&before);
}

/// A live update whose dnsmasq cannot start is undone: the rules and the
/// dnsmasq of the old definition are back, and guests still get leases.
#[test]
fn a_failed_live_update_puts_the_network_back() {
    let mut lab = Lab::new("undo");
    // A dnsmasq that refuses the new configuration only.
    let wrapper = lab.scratch.0.join("dnsmasq");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nfor argument; do case $argument in --conf-file=*) \
         grep -q 192.168.132.200 \"${argument#--conf-file=}\" && exit 3;; esac; done\n\
         exec dnsmasq \"$@\"\n",
    )
    .unwrap();
    common::netns::run("chmod", &["755", wrapper.to_str().unwrap()]);
    let before = lab.snapshot();
    let old = NetworkDef::parse(&sample("keennet.xml")).expect("sample parses");
    let running = lab.start(&sample("keennet.xml")).expect("keennet starts");
    let rules = lab.host.exec_ok(&["nft", "list", "ruleset"]);
    let old_pid = running.dnsmasq.as_ref().expect("a dnsmasq").pid;
    let picky = Environment {
        dnsmasq: wrapper,
        ..lab.env.clone()
    };
    let new = NetworkDef::parse(
        &std::fs::read_to_string(project_dir().join("xml-samples/keennet.xml"))
            .unwrap()
            .replace("<forward/>", "<forward dev='uplink'/>")
            .replace(
                "</dhcp>",
                "<range start='192.168.132.200' end='192.168.132.210'/></dhcp>",
            ),
    )
    .expect("the updated definition parses");
    let failed = lab
        .host
        .block_on(apply::refresh(&old, &new, &running, &picky, &lab.firewall))
        .expect_err("the update fails");
    let StartError::UpdateUndone { running: back, .. } = failed else {
        panic!("not undone: {failed}");
    };
    assert_eq!(
        lab.host.exec_ok(&["nft", "list", "ruleset"]),
        rules,
        "the old rules are back"
    );
    let pid = back.dnsmasq.as_ref().expect("a dnsmasq again").pid;
    assert_ne!(pid, old_pid, "dnsmasq was stopped for the update");
    let config = std::fs::read_to_string(&back.dnsmasq.as_ref().unwrap().paths.config).unwrap();
    assert!(!config.contains("192.168.132.200"), "{config}");
    let guest = lab.guest("keenbr0", None);
    let address = lab.dhcp(&guest);
    assert_eq!(
        address.octets()[..3],
        [192, 168, 132],
        "a lease from the old dnsmasq"
    );
    drop(guest);
    lab.stop(&back);
    lab.assert_back_to(&before);
}

/// A network whose bridge someone deleted is taken down without an error,
/// and nothing of it is left.
#[test]
fn taking_down_a_network_whose_bridge_is_gone_leaves_nothing() {
    let lab = Lab::new("nobr");
    let before = lab.snapshot();
    let running = lab.start(&sample("keennet.xml")).expect("keennet starts");
    lab.host.ip(&["link", "del", "keenbr0"]);
    let retired = lab
        .host
        .block_on(apply::take_down(&running, &lab.firewall))
        .expect("the network is taken down");
    assert_eq!(retired, None, "no bridge to set aside");
    lab.assert_back_to(&before);
}

/// The daemon restores rules others remove; its own removals (a network
/// stopped, the table going with the last one) must not wake it.
#[test]
fn table_watch_tells_virtnets_own_removals_from_others() {
    use std::time::Duration;
    use tokio::time::timeout;

    let lab = Lab::new("watch");
    let before = lab.snapshot();
    let def = NetworkDef::parse(&sample("keennet.xml")).expect("sample parses");
    lab.host.block_on(async {
        let mut watch = lab
            .firewall
            .watch()
            .expect("subscribes to nftables' changes");
        let running = apply::start(&def, &lab.env, &lab.firewall, &[])
            .await
            .expect("keennet starts");
        apply::stop(&running, &lab.firewall)
            .await
            .expect("keennet stops");
        assert!(
            timeout(Duration::from_millis(300), watch.change())
                .await
                .is_err(),
            "virtnet's own stop is taken for someone else's removal"
        );
        for change in [
            ["add", "table", "inet", "virtnet"],
            ["delete", "table", "inet", "virtnet"],
        ] {
            let status = tokio::process::Command::new("nft")
                .args(change)
                .status()
                .await
                .expect("nft runs");
            assert!(status.success(), "nft {change:?}");
        }
        timeout(Duration::from_secs(2), watch.change())
            .await
            .expect("someone else's removal is seen")
            .expect("notifications are read");
    });
    lab.assert_back_to(&before);
}

/// `<bandwidth>`: what the host sends to the guests is shaped to the
/// inbound average, what the guests send is policed to the outbound one,
/// measured with real TCP traffic between a guest and the host.
#[test]
fn bandwidth_limits_hold_for_real_traffic() {
    let mut lab = Lab::new("qos");
    // Whether this kernel has sfq, tried on a bridge of the test's own.
    lab.host.ip(&["link", "add", "vn-sfq0", "type", "bridge"]);
    let sfq = lab
        .host
        .exec(&["tc", "qdisc", "add", "dev", "vn-sfq0", "root", "sfq"])
        .status
        .success();
    lab.host.ip(&["link", "del", "vn-sfq0"]);
    let before = lab.snapshot();
    let running = lab
        .start(
            "<network><name>qos</name><forward mode='nat'/><bridge name='vn-qos0'/>
             <bandwidth><inbound average='1000' burst='64'/><outbound average='500' burst='64'/></bandwidth>
             <ip address='10.62.0.1' prefix='24'><dhcp><range start='10.62.0.10' end='10.62.0.20'/></dhcp></ip>
             </network>",
        )
        .expect("a network with bandwidth limits starts");
    let classes = lab.host.exec_ok(&["tc", "class", "show", "dev", "vn-qos0"]);
    assert!(
        classes.contains("class htb 1:1 root rate 8Mbit ceil 8Mbit burst 64Kb")
            && classes.contains("class htb 1:2 parent 1:1"),
        "{classes}"
    );
    let qdiscs = lab.host.exec_ok(&["tc", "qdisc", "show", "dev", "vn-qos0"]);
    if sfq {
        assert!(qdiscs.contains("qdisc sfq 2: parent 1:2"), "{qdiscs}");
    } else {
        eprintln!(
            "this kernel has no sfq (CONFIG_NET_SCH_SFQ): the network's class has no fair queue, \
             and that check is skipped"
        );
        assert!(!qdiscs.contains("sfq"), "{qdiscs}");
    }
    let rules = lab
        .host
        .exec_ok(&["nft", "list", "chain", "inet", "virtnet", "limit_vn-qos0"]);
    assert!(
        rules.contains("type filter hook ingress device \"vn-qos0\" priority -500")
            && rules.contains("limit rate over 500000 bytes/second burst 64000 bytes drop"),
        "{rules}"
    );
    let guest = lab.guest("vn-qos0", None);
    lab.dhcp(&guest);
    // Guest to host first: the guest's last sender may still be sending
    // through the policer after its run, holding the guest's namespace.
    let from_guest = megabits(&lab.host, &guest, false);
    let to_guest = megabits(&lab.host, &guest, true);
    assert!(
        (4.0..9.6).contains(&to_guest),
        "inbound 1000 kB/s (8 Mbit/s) shaped to {to_guest:.2} Mbit/s"
    );
    assert!(
        (2.0..5.1).contains(&from_guest),
        "outbound 500 kB/s (4 Mbit/s) policed to {from_guest:.2} Mbit/s"
    );
    drop(guest);
    lab.stop(&running);
    lab.assert_back_to(&before);
}

/// TCP throughput in Mbit/s between the host (server on the network's
/// address) and `guest`, for 2 seconds: host to guest when `to_guest`.
fn megabits(host: &Netns, guest: &Netns, to_guest: bool) -> f64 {
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Server(
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &host.name,
                "iperf3",
                "-s",
                "-1",
                "-B",
                "10.62.0.1",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("iperf3 server"),
    );
    // The first second (slow start, full buckets) is left out.
    let mut arguments = vec!["iperf3", "-c", "10.62.0.1", "-O", "1", "-t", "2", "-J"];
    if to_guest {
        arguments.push("-R");
    }
    let mut report = serde_json::Value::Null;
    // The server may not listen yet (iperf3 says so in its report).
    for _ in 0..50 {
        let output = guest.exec(&arguments);
        report = serde_json::from_slice(&output.stdout).unwrap_or_default();
        if report.get("error").is_none() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 measured nothing: {report}"))
        / 1e6
}

//! Each finding decided from facts: a healthy network has none, and each
//! fault, put into otherwise healthy facts, gives its own finding only.

use std::path::PathBuf;

use super::*;
use crate::definition::MacAddr;
use crate::plan::dnsmasq::DnsmasqFiles;
use crate::plan::network;

const BRIDGE: u32 = 10;
const UPLINK: u32 = 2;
const SECOND_UPLINK: u32 = 3;

/// A NAT network with IPv4 (DHCP) and IPv6, on bridge `keenbr0`.
const KEENNET: &str = "<network><name>keennet</name><forward mode='nat'/>
  <bridge name='keenbr0'/>
  <ip address='10.80.0.1' prefix='24'><dhcp><range start='10.80.0.10' end='10.80.0.20'/></dhcp></ip>
  <ip family='ipv6' address='fd80::1' prefix='64'/></network>";

fn planned(xml: &str) -> (NetworkDef, BridgedPlan) {
    let def = NetworkDef::parse(xml).unwrap();
    let files = DnsmasqFiles {
        state_dir: PathBuf::from("/var/lib/virtnet/dnsmasq"),
        pid_file: None,
        lease_file: Some(PathBuf::from("/var/lib/virtnet/dnsmasq/keenbr0.leases")),
        host_resolvers: None,
    };
    let bridge = def.bridge.name.as_ref().unwrap().to_string();
    let plan = network::plan(&def, &bridge, MacAddr([0x52, 0x54, 0, 1, 2, 3]), &files).unwrap();
    (def, plan)
}

fn link(name: &str, mtu: u32, addresses: &[(&str, u8)]) -> LinkFacts {
    LinkFacts {
        name: name.into(),
        up: true,
        mtu: Some(mtu),
        addresses: addresses
            .iter()
            .map(|(address, prefix)| (address.parse().unwrap(), *prefix))
            .collect(),
        rp_filter: Some(0),
    }
}

fn route(destination: &str, prefix: u8, interface: u32) -> HostRoute {
    HostRoute {
        destination: Subnet::new(destination.parse().unwrap(), prefix),
        interface: Some(interface),
    }
}

/// `xml`'s network running whole on a host whose uplink carries the
/// default route: forwarding on, loose filters, its routes only.
fn healthy(xml: &str) -> (HostFacts, NetworkFacts) {
    let (def, plan) = planned(xml);
    let expected = expected_listeners(plan.dnsmasq.as_ref().unwrap());
    let dnsmasq = DnsmasqFacts {
        pid: 4242,
        alive: true,
        listening: Some(expected.clone()),
        expected,
    };
    let network = NetworkFacts::of(&def, &plan, BRIDGE, Some(dnsmasq));
    let bridge_addresses: Vec<(&str, u8)> = vec![("10.80.0.1", 24), ("fd80::1", 64)];
    let host = HostFacts {
        ipv4_forwarding: Some(true),
        ipv6_forwarding: Some(true),
        rp_filter_all: Some(0),
        links: HashMap::from([
            (UPLINK, link("uplink", 1500, &[("10.255.0.1", 24)])),
            (SECOND_UPLINK, link("uplink2", 1500, &[("10.254.0.1", 24)])),
            (BRIDGE, link("keenbr0", 1500, &bridge_addresses)),
        ]),
        routes: vec![
            route("0.0.0.0", 0, UPLINK),
            route("10.255.0.0", 24, UPLINK),
            route("10.254.0.0", 24, SECOND_UPLINK),
            route("10.80.0.0", 24, BRIDGE),
            route("fd80::", 64, BRIDGE),
        ],
        table_out_of_place: Vec::new(),
        foreign_drops: Vec::new(),
    };
    (host, network)
}

/// The findings' texts, for assertions.
fn found(host: &HostFacts, network: &NetworkFacts) -> Vec<String> {
    diagnose(host, std::slice::from_ref(network))
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn only(found: &[String], wanted: &[&str]) {
    assert_eq!(found.len(), 1, "{found:#?}");
    for part in wanted {
        assert!(found[0].contains(part), "{part:?} not in {found:#?}");
    }
}

#[test]
fn a_healthy_network_has_no_findings() {
    let (host, network) = healthy(KEENNET);
    assert_eq!(found(&host, &network), Vec::<String>::new());
    assert_eq!(
        network.dnsmasq.as_ref().unwrap().expected,
        [
            Listener {
                protocol: Protocol::Udp,
                port: 53
            },
            Listener {
                protocol: Protocol::Tcp,
                port: 53
            },
            Listener {
                protocol: Protocol::Udp,
                port: 67
            },
        ]
    );
}

#[test]
fn forwarding_off_is_named_with_its_sysctl() {
    let (mut host, network) = healthy(KEENNET);
    host.ipv4_forwarding = Some(false);
    assert_eq!(
        found(&host, &network),
        [
            "keennet: net.ipv4.ip_forward is 0: NAT needs it; run 'sysctl -w net.ipv4.ip_forward=1' or restart the network ('virtnet net-destroy keennet', then 'virtnet net-start keennet')"
        ]
    );
    host.ipv4_forwarding = Some(true);
    host.ipv6_forwarding = Some(false);
    only(
        &found(&host, &network),
        &["net.ipv6.conf.all.forwarding is 0"],
    );
    // An isolated network needs no forwarding.
    let (mut host, network) = healthy(&KEENNET.replace("<forward mode='nat'/>", ""));
    host.ipv4_forwarding = Some(false);
    host.ipv6_forwarding = Some(false);
    assert_eq!(found(&host, &network), Vec::<String>::new());
}

#[test]
fn strict_reverse_path_filtering_is_named_where_it_drops_traffic() {
    // Strict on the bridge, while the host routes the subnet through it:
    // nothing dropped, nothing to say.
    let (mut host, network) = healthy(KEENNET);
    host.links.get_mut(&BRIDGE).unwrap().rp_filter = Some(1);
    assert_eq!(found(&host, &network), Vec::<String>::new());
    // `all` strict, and a more specific route takes part of the subnet
    // elsewhere.
    let (mut host, network) = healthy(KEENNET);
    host.rp_filter_all = Some(1);
    host.routes[3] = route("10.80.0.0", 24, UPLINK);
    let findings = found(&host, &network);
    assert!(
        findings.iter().any(|finding| finding
            .contains("net.ipv4.conf.keenbr0.rp_filter is strict (1) and the host routes 10.80.0.0/24 through uplink")),
        "{findings:#?}"
    );
    // A forward device the default route does not go through.
    let (mut host, network) = healthy(&KEENNET.replace(
        "<forward mode='nat'/>",
        "<forward mode='nat' dev='uplink2'/>",
    ));
    assert_eq!(found(&host, &network), Vec::<String>::new());
    host.links.get_mut(&SECOND_UPLINK).unwrap().rp_filter = Some(1);
    only(
        &found(&host, &network),
        &[
            "net.ipv4.conf.uplink2.rp_filter is strict (1) and the default route goes through uplink",
            "sysctl -w net.ipv4.conf.uplink2.rp_filter=2",
        ],
    );
    // Loose (2) in `all` or on the link wins over strict, as in the kernel.
    host.rp_filter_all = Some(2);
    assert_eq!(found(&host, &network), Vec::<String>::new());
    host.rp_filter_all = Some(1);
    host.links.get_mut(&SECOND_UPLINK).unwrap().rp_filter = Some(2);
    assert_eq!(found(&host, &network), Vec::<String>::new());
}

#[test]
fn a_bridge_down_gone_or_without_an_address_is_named() {
    let (mut host, network) = healthy(KEENNET);
    host.links.get_mut(&BRIDGE).unwrap().up = false;
    only(
        &found(&host, &network),
        &["bridge keenbr0 is down", "ip link set keenbr0 up"],
    );
    host.links.get_mut(&BRIDGE).unwrap().up = true;
    host.links.get_mut(&BRIDGE).unwrap().addresses.remove(0);
    only(
        &found(&host, &network),
        &["bridge keenbr0 lacks its address 10.80.0.1/24"],
    );
    // Another link under the bridge's index is not the bridge.
    host.links.get_mut(&BRIDGE).unwrap().name = "other".into();
    let findings = found(&host, &network);
    assert!(
        findings[0].contains("bridge keenbr0 is gone"),
        "{findings:#?}"
    );
}

#[test]
fn dnsmasq_dead_or_deaf_is_named() {
    let (host, mut network) = healthy(KEENNET);
    let dnsmasq = network.dnsmasq.as_mut().unwrap();
    dnsmasq
        .listening
        .as_mut()
        .unwrap()
        .retain(|listener| listener.port != 67);
    only(
        &found(&host, &network),
        &["dnsmasq (pid 4242) does not listen on udp port 67 (DHCP)"],
    );
    let dnsmasq = network.dnsmasq.as_mut().unwrap();
    dnsmasq.listening = None;
    assert_eq!(
        found(&host, &network),
        Vec::<String>::new(),
        "unknown is no finding"
    );
    network.dnsmasq.as_mut().unwrap().alive = false;
    only(
        &found(&host, &network),
        &["dnsmasq (pid 4242) is not running"],
    );
}

#[test]
fn dns_off_and_dhcpv6_change_what_dnsmasq_must_listen_on() {
    let (_, plan) = planned(
        &KEENNET
            .replace(
                "<forward mode='nat'/>",
                "<forward mode='nat'/><dns enable='no'/>",
            )
            .replace(
                "prefix='64'/>",
                "prefix='64'><dhcp><range start='fd80::10' end='fd80::20'/></dhcp></ip>",
            ),
    );
    assert_eq!(
        expected_listeners(plan.dnsmasq.as_ref().unwrap()),
        [
            Listener {
                protocol: Protocol::Udp,
                port: 67
            },
            Listener {
                protocol: Protocol::Udp,
                port: 547
            },
        ]
    );
}

#[test]
fn an_uplink_with_a_smaller_mtu_is_named() {
    let (mut host, network) = healthy(KEENNET);
    host.links.get_mut(&UPLINK).unwrap().mtu = Some(1400);
    only(
        &found(&host, &network),
        &[
            "bridge keenbr0's MTU 1500 is larger than uplink uplink's MTU 1400",
            "<mtu size='1400'/>",
        ],
    );
    // A larger uplink MTU is fine; so is any for an isolated network.
    host.links.get_mut(&UPLINK).unwrap().mtu = Some(9000);
    assert_eq!(found(&host, &network), Vec::<String>::new());
    let (mut host, network) = healthy(&KEENNET.replace("<forward mode='nat'/>", ""));
    host.links.get_mut(&UPLINK).unwrap().mtu = Some(1400);
    assert_eq!(found(&host, &network), Vec::<String>::new());
    // The forward device is the uplink when named.
    let (mut host, network) = healthy(&KEENNET.replace(
        "<forward mode='nat'/>",
        "<forward mode='nat' dev='uplink2'/>",
    ));
    host.links.get_mut(&UPLINK).unwrap().mtu = Some(1400);
    assert_eq!(found(&host, &network), Vec::<String>::new());
    host.links.get_mut(&SECOND_UPLINK).unwrap().mtu = Some(1280);
    only(&found(&host, &network), &["uplink uplink2's MTU 1280"]);
}

#[test]
fn a_host_route_to_the_networks_subnet_elsewhere_is_named() {
    let (mut host, network) = healthy(KEENNET);
    host.routes.push(route("10.80.0.0", 24, SECOND_UPLINK));
    only(
        &found(&host, &network),
        &[
            "the host also routes 10.80.0.0/24 through uplink2",
            "ip route del 10.80.0.0/24 dev uplink2",
        ],
    );
    // A wider route (a VPN's 10.0.0.0/8, say) leaves the subnet alone.
    host.routes.pop();
    host.routes.push(route("10.0.0.0", 8, SECOND_UPLINK));
    assert_eq!(found(&host, &network), Vec::<String>::new());
}

#[test]
fn virtnets_table_out_of_place_is_one_finding_for_the_host() {
    let (mut host, network) = healthy(KEENNET);
    host.table_out_of_place = vec!["the rules of chain forward".into()];
    let findings = diagnose(&host, &[network.clone(), network.clone()]);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        findings[0].to_string(),
        "host: virtnet's nftables table (inet virtnet) is not as the running networks need it: the rules of chain forward; run 'virtnet reload-firewall' (virtnetd puts it right by itself within a second: if this stays, something keeps changing it)"
    );
    // Networks without rules (open) do not care.
    let (_, open) = healthy(&KEENNET.replace("mode='nat'", "mode='open'"));
    assert!(!open.has_rules);
    assert_eq!(diagnose(&host, &[open]), Vec::new());
}

#[test]
fn an_inactive_network_says_how_to_start_it() {
    assert_eq!(
        inactive("keennet").to_string(),
        "keennet: the network is not active: its guests have no network at all; run 'virtnet net-start keennet'"
    );
}

#[test]
fn a_foreign_chain_that_drops_is_named_for_its_network_only() {
    let (mut host, network) = healthy(KEENNET);
    host.foreign_drops = vec![
        ForeignDrop {
            network: network.name.clone(),
            description: "table ip filter, chain FORWARD (policy drop) drops the traffic of \
                          bridge keenbr0 (forward from bridge)"
                .into(),
        },
        ForeignDrop {
            network: "other".into(),
            description: "table inet host, chain forward (policy drop)".into(),
        },
    ];
    let findings = diagnose(&host, std::slice::from_ref(&network));
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(findings[0].problem.contains("chain FORWARD (policy drop)"));
    assert!(findings[0].fix.contains("--foreign-firewalls=open"));
}

#[test]
fn a_bridge_out_of_its_firewalld_zone_is_named() {
    let (host, mut network) = healthy(KEENNET);
    network.zone = Some(ZoneFacts {
        wanted: "libvirt".into(),
        actual: Some("libvirt".into()),
    });
    assert!(diagnose(&host, std::slice::from_ref(&network)).is_empty());
    network.zone = Some(ZoneFacts {
        wanted: "libvirt".into(),
        actual: None,
    });
    let findings = diagnose(&host, std::slice::from_ref(&network));
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(findings[0].problem.contains("in no firewalld zone"));
    assert!(
        findings[0]
            .fix
            .contains("--zone=libvirt --change-interface=")
    );
}

use super::*;

const NAT: &str = "<network><name>default</name>\
    <forward mode='nat'/><bridge name='virbr0'/>\
    <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
    <range start='192.168.122.2' end='192.168.122.254'/>\
    <host mac='52:54:00:00:00:01' name='a' ip='192.168.122.10'/>\
    </dhcp></ip></network>";

fn def(xml: &str) -> NetworkDef {
    NetworkDef::parse(xml).expect("test network parses")
}

fn files() -> DnsmasqFiles {
    DnsmasqFiles {
        state_dir: PathBuf::from("/run/virtnet/dnsmasq"),
        pid_file: None,
        lease_file: Some(PathBuf::from("/run/virtnet/dnsmasq/default.leases")),
        host_resolvers: None,
    }
}

#[test]
fn virtnet_names_the_host_resolvers_instead_of_watching_resolv_conf() {
    let files = DnsmasqFiles {
        host_resolvers: Some(vec![
            "192.0.2.53".parse().unwrap(),
            "2001:db8::53".parse().unwrap(),
        ]),
        ..files()
    };
    let virtnet = plan(&def(NAT), "virbr0", &files, Profile::Virtnet)
        .unwrap()
        .unwrap()
        .config;
    assert!(
        virtnet.contains("server=192.0.2.53\nserver=2001:db8::53\nno-resolv\n"),
        "{virtnet}"
    );
    let libvirt = plan(&def(NAT), "virbr0", &files, Profile::Libvirt)
        .unwrap()
        .unwrap()
        .config;
    assert!(!libvirt.contains("no-resolv"), "{libvirt}");
    let isolated = "<network><name>i</name><bridge name='virbr0'/>\
        <ip address='10.0.0.1' prefix='24'/></network>";
    let config = plan(&def(isolated), "virbr0", &files, Profile::Virtnet)
        .unwrap()
        .unwrap()
        .config;
    assert!(
        !config.contains("server="),
        "isolated networks forward nothing: {config}"
    );
}

fn config(xml: &str, profile: Profile) -> String {
    plan(&def(xml), "virbr0", &files(), profile)
        .expect("configuration is built")
        .expect("network needs dnsmasq")
        .config
}

fn groups(xml: &str) -> Vec<u32> {
    plan(&def(xml), "virbr0", &files(), Profile::Virtnet)
        .expect("configuration is built")
        .expect("network needs dnsmasq")
        .groups_to_leave
}

#[test]
fn dnsmasq_bound_to_ipv4_addresses_leaves_every_event_group() {
    assert_eq!(
        groups(NAT),
        [
            IPV4_ADDRESS_EVENTS,
            IPV4_ROUTE_EVENTS,
            IPV6_ADDRESS_EVENTS,
            IPV6_ROUTE_EVENTS
        ]
    );
}

#[test]
fn dnsmasq_serving_ipv6_keeps_ipv6_address_events() {
    let dual = NAT.replace(
        "</ip>",
        "</ip><ip family='ipv6' address='fd00::1' prefix='64'/>",
    );
    assert_eq!(
        groups(&dual),
        [IPV4_ADDRESS_EVENTS, IPV4_ROUTE_EVENTS, IPV6_ROUTE_EVENTS]
    );
}

#[test]
fn bind_dynamic_dnsmasq_keeps_address_events() {
    let open = NAT.replace("mode='nat'", "mode='open'");
    assert!(config(&open, Profile::Virtnet).contains("\nbind-dynamic\n"));
    assert_eq!(groups(&open), [IPV4_ROUTE_EVENTS, IPV6_ROUTE_EVENTS]);
    let asked = NAT
        .replace(
            "<network>",
            "<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>",
        )
        .replace(
            "</network>",
            "<dnsmasq:options><dnsmasq:option value='bind-dynamic'/></dnsmasq:options></network>",
        );
    assert_eq!(groups(&asked), [IPV4_ROUTE_EVENTS, IPV6_ROUTE_EVENTS]);
}

fn error(def: &NetworkDef) -> DnsmasqError {
    plan(def, "virbr0", &files(), Profile::Libvirt).expect_err("configuration is refused")
}

/// Virtnet's binding, rewritten into libvirt's.
fn as_bind_dynamic(config: &str, listen: &str) -> String {
    config.replacen(
        &format!("bind-interfaces\ninterface=virbr0\nlisten-address={listen}\n"),
        "bind-dynamic\ninterface=virbr0\n",
        1,
    )
}

#[test]
fn virtnet_adds_lease_file_and_no_ping_to_every_libvirt_line() {
    let libvirt = config(NAT, Profile::Libvirt);
    let virtnet = config(NAT, Profile::Virtnet);
    let extra = "dhcp-leasefile=/run/virtnet/dnsmasq/default.leases\nno-ping\n";
    let hosts = "dhcp-hostsfile=/run/virtnet/dnsmasq/default.hostsfile\n";
    assert!(virtnet.contains(&format!("{hosts}{extra}")), "{virtnet}");
    assert_eq!(
        as_bind_dynamic(&virtnet.replacen(extra, "", 1), "192.168.122.1"),
        libvirt
    );
    assert!(!libvirt.contains("dhcp-script") && !virtnet.contains("dhcp-script"));
}

#[test]
fn open_networks_keep_bind_dynamic() {
    let open = "<network><name>o</name><forward mode='open'/><bridge name='virbr0'/>\
        <ip address='192.168.122.1' prefix='24'/></network>";
    let virtnet = config(open, Profile::Virtnet);
    assert!(virtnet.contains("bind-dynamic") && !virtnet.contains("listen-address"));
}

#[test]
fn virtnet_pings_nothing_without_dhcpv4_and_needs_no_lease_file_without_dhcp() {
    let v6 = "<network><name>v6</name><bridge name='virbr0'/>\
        <ip family='ipv6' address='2001:db8::1' prefix='64'><dhcp>\
        <range start='2001:db8::10' end='2001:db8::20'/></dhcp></ip></network>";
    let virtnet = config(v6, Profile::Virtnet);
    assert!(virtnet.contains("dhcp-leasefile="), "{virtnet}");
    assert!(!virtnet.contains("no-ping"), "{virtnet}");

    let no_dhcp = "<network><name>dns</name><forward mode='nat'/><bridge name='virbr0'/>\
        <ip address='192.168.122.1' prefix='24'/></network>";
    let mut files = files();
    files.lease_file = None;
    let virtnet = plan(&def(no_dhcp), "virbr0", &files, Profile::Virtnet)
        .unwrap()
        .unwrap()
        .config;
    assert_eq!(
        as_bind_dynamic(&virtnet, "192.168.122.1"),
        config(no_dhcp, Profile::Libvirt)
    );
}

#[test]
fn virtnet_refuses_dhcp_without_a_lease_file() {
    let mut files = files();
    files.lease_file = None;
    let result = plan(&def(NAT), "virbr0", &files, Profile::Virtnet);
    assert_eq!(
        result,
        Err(DnsmasqError::NoLeaseFile {
            network: "default".into()
        })
    );
}

#[test]
fn pid_file_is_written_in_both_profiles() {
    let mut files = files();
    files.pid_file = Some(PathBuf::from("/run/virtnet/default.pid"));
    for profile in [Profile::Libvirt, Profile::Virtnet] {
        let config = plan(&def(NAT), "virbr0", &files, profile)
            .unwrap()
            .unwrap()
            .config;
        assert!(
            config.contains("pid-file=/run/virtnet/default.pid\nexcept-interface=lo\n"),
            "{config}"
        );
    }
}

#[test]
fn networks_without_anything_to_serve_run_no_dnsmasq() {
    let none = |xml: &str| {
        plan(&def(xml), "virbr0", &files(), Profile::Virtnet)
            .unwrap()
            .is_none()
    };
    assert!(none(
        "<network><name>n</name><bridge name='virbr0'/></network>"
    ));
    assert!(none(
        "<network><name>n</name><bridge name='virbr0'/><dns enable='no'/>\
         <ip address='10.0.0.1' prefix='24'/></network>"
    ));
    assert!(none(
        "<network><name>n</name><forward mode='bridge'/><bridge name='br0'/></network>"
    ));
    // TFTP alone is reason enough, DNS or not.
    assert!(!none(
        "<network><name>n</name><bridge name='virbr0'/><dns enable='no'/>\
         <ip address='10.0.0.1' prefix='24'><tftp root='/srv/tftp'/></ip></network>"
    ));
}

#[test]
fn forwarder_ports_follow_the_address() {
    let xml = "<network><name>n</name><forward mode='nat'/><bridge name='virbr0'/><dns>\
        <forwarder addr='192.168.1.1' port='5353'/>\
        <forwarder domain='example.com' addr='2001:db8::53' port='53'/>\
        </dns><ip address='10.0.0.1' prefix='24'/></network>";
    let config = config(xml, Profile::Libvirt);
    assert!(
        config
            .contains("server=192.168.1.1#5353\nserver=/example.com/2001:db8::53#53\nno-resolv\n"),
        "{config}"
    );
    let mut network = def(xml);
    network.dns.forwarders[0].addr = None;
    assert_eq!(
        error(&network),
        DnsmasqError::ForwarderPortWithoutAddr { port: 5353 }
    );
}

#[test]
fn additional_hosts_group_names_by_address() {
    let xml = "<network><name>n</name><forward mode='nat'/><bridge name='virbr0'/><dns>\
        <host ip='10.0.0.1'><hostname>gw</hostname><hostname>router</hostname></host>\
        <host ip='10.0.0.2'><hostname>b</hostname></host>\
        <host ip='10.0.0.1'><hostname>host</hostname></host>\
        </dns><ip address='10.0.0.1' prefix='24'/></network>";
    let plan = plan(&def(xml), "virbr0", &files(), Profile::Libvirt)
        .unwrap()
        .unwrap();
    assert_eq!(
        plan.addn_hosts,
        "10.0.0.1\tgw\trouter\thost\t\n10.0.0.2\tb\t\n"
    );
    assert_eq!(plan.hosts_file, "");
}

#[test]
fn host_macs_reach_the_hosts_file_as_written() {
    let xml = NAT.replace("52:54:00:00:00:01", "52:54:00:AB:0:1");
    let plan = plan(&def(&xml), "virbr0", &files(), Profile::Virtnet)
        .unwrap()
        .unwrap();
    assert_eq!(plan.hosts_file, "52:54:00:AB:0:1,192.168.122.10,a\n");
}

#[test]
fn dhcpv6_host_lines_carry_id_name_and_lease() {
    let xml = "<network><name>n</name><bridge name='virbr0'/>\
        <ip family='ipv6' address='2001:db8::1' prefix='64'><dhcp>\
        <host id='0:3:0:1' name='a' ip='2001:db8::10'><lease expiry='1' unit='hours'/></host>\
        <host id='0:3:0:2' ip='2001:db8::11'/>\
        </dhcp></ip></network>";
    let plan = plan(&def(xml), "virbr0", &files(), Profile::Libvirt)
        .unwrap()
        .unwrap();
    assert_eq!(
        plan.hosts_file,
        "id:0:3:0:1,a,[2001:db8::10],1h\nid:0:3:0:2,[2001:db8::11]\n"
    );
    assert!(plan.config.contains("dhcp-range=2001:db8::1,static,64\n"));
}

#[test]
fn second_dhcp_subnet_of_a_family_is_refused() {
    let xml = "<network><name>n</name><bridge name='virbr0'/>\
        <ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.9'/></dhcp></ip>\
        <ip address='10.0.1.1' prefix='24'><dhcp><range start='10.0.1.2' end='10.0.1.9'/></dhcp></ip>\
        </network>";
    assert_eq!(error(&def(xml)), DnsmasqError::MultipleDhcp(IpFamily::V4));
}

#[test]
fn ptr_domains_need_whole_octets_or_nibbles() {
    let xml = "<network><name>n</name><bridge name='virbr0'/>\
        <ip address='10.0.0.1' prefix='20' localPtr='yes'/></network>";
    assert_eq!(
        error(&def(xml)),
        DnsmasqError::PtrDomain {
            family: IpFamily::V4,
            address: "10.0.0.1".into(),
            prefix: 20,
        }
    );
    let xml = "<network><name>n</name><bridge name='virbr0'/>\
        <ip family='ipv6' address='2001:db8:1:2::1' prefix='56' localPtr='yes'/></network>";
    assert!(
        config(xml, Profile::Libvirt).contains("local=/0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa/\n")
    );
}

#[test]
fn dhcp_without_a_prefix_is_refused() {
    let xml = "<network><name>n</name><bridge name='virbr0'/>\
        <ip address='224.0.0.1'><dhcp><host mac='52:54:00:00:00:01' ip='224.0.0.9'/></dhcp></ip>\
        </network>";
    assert_eq!(
        error(&def(xml)),
        DnsmasqError::InvalidPrefix {
            address: "224.0.0.1".into()
        }
    );
}

#[test]
fn ranges_outside_the_subnet_are_refused() {
    let mut network = def(NAT);
    network.ips[0].dhcp.ranges[0].end = "192.168.122.255".parse().unwrap();
    assert_eq!(
        error(&network),
        DnsmasqError::Range {
            start: "192.168.122.2".into(),
            end: "192.168.122.255".into(),
            network: "192.168.122.1/24".into(),
        }
    );
    network.ips[0].dhcp.ranges[0].end = "192.168.123.2".parse().unwrap();
    assert!(matches!(error(&network), DnsmasqError::Range { .. }));
}

#[test]
fn names_and_paths_that_would_break_a_line_are_refused() {
    let result = plan(&def(NAT), "virbr%d", &files(), Profile::Libvirt);
    assert!(matches!(result, Err(DnsmasqError::BridgeName { .. })));
    let mut files = files();
    files.state_dir = PathBuf::from("/run/x\nport=53");
    let result = plan(&def(NAT), "virbr0", &files, Profile::Libvirt);
    assert!(matches!(result, Err(DnsmasqError::Path { .. })));
}

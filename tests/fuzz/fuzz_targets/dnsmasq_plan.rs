//! Arbitrary bytes → a definition that validates → dnsmasq's files, in
//! both profiles. Planning must not panic, and no value may break out of
//! its line: every configuration line is one of the options the planner
//! writes (or a `dnsmasq:option` of the definition, as given), and the
//! hosts files hold at most a line per host.

#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use virtnet::definition::NetworkDef;
use virtnet::plan::dnsmasq::{DnsmasqFiles, DnsmasqPlan, Profile, plan};
use virtnet_fuzz::parse_network;

/// Every option the planner writes itself.
const OPTIONS: &[&str] = &[
    "strict-order",
    "port",
    "server",
    "no-resolv",
    "local",
    "domain",
    "expand-hosts",
    "domain-needed",
    "pid-file",
    "except-interface",
    "bind-interfaces",
    "bind-dynamic",
    "interface",
    "listen-address",
    "dhcp-option",
    "ra-param",
    "txt-record",
    "srv-host",
    "enable-tftp",
    "tftp-root",
    "dhcp-range",
    "dhcp-no-override",
    "dhcp-authoritative",
    "dhcp-boot",
    "dhcp-lease-max",
    "dhcp-hostsfile",
    "dhcp-leasefile",
    "no-ping",
    "addn-hosts",
    "enable-ra",
];

fn files() -> DnsmasqFiles {
    DnsmasqFiles {
        state_dir: PathBuf::from("/run/virtnet/dnsmasq"),
        pid_file: Some(PathBuf::from("/run/virtnet/network.pid")),
        lease_file: Some(PathBuf::from("/run/virtnet/dnsmasq/network.leases")),
        host_resolvers: Some(vec!["192.0.2.53".parse().unwrap()]),
    }
}

fn check_lines(def: &NetworkDef, plan: &DnsmasqPlan) {
    for text in [&plan.config, &plan.hosts_file, &plan.addn_hosts] {
        assert!(
            !text.contains(['\r', '\0']),
            "a carriage return or NUL reached dnsmasq:\n{text}"
        );
    }
    for line in plan.config.lines() {
        let option = line.split_once('=').map_or(line, |(option, _)| option);
        assert!(
            line.starts_with("##")
                || OPTIONS.contains(&option)
                || def
                    .dnsmasq_options
                    .iter()
                    .any(|given| given.as_str() == line),
            "line {line:?} is no option of the plan's:\n{}",
            plan.config
        );
    }
    let dhcp_hosts: usize = def.ips.iter().map(|ip| ip.dhcp.hosts.len()).sum();
    assert!(
        plan.hosts_file.lines().count() <= dhcp_hosts,
        "more lines than DHCP hosts:\n{}",
        plan.hosts_file
    );
    assert!(
        plan.addn_hosts.lines().count() <= def.dns.hosts.len(),
        "more lines than DNS hosts:\n{}",
        plan.addn_hosts
    );
}

fuzz_target!(|data: &[u8]| {
    let Some(def) = parse_network(data).filter(|def| def.validate().is_ok()) else {
        return;
    };
    // The daemon names a bridge from a template before it plans.
    let bridge = match &def.bridge.name {
        Some(name) if !name.is_template() => name.as_str().to_owned(),
        _ => "virbr0".to_owned(),
    };
    for profile in [Profile::Libvirt, Profile::Virtnet] {
        if let Ok(Some(plan)) = plan(&def, &bridge, &files(), profile) {
            check_lines(&def, &plan);
        }
    }
});

//! Every bundled sample parses, passes net-define's checks, is already in
//! canonical form, and describes the network model its name promises.

mod common;

use std::net::IpAddr;

use common::{project_dir, sample_paths, virtnet};
use virtnet::definition::{FormatFlags, ForwardMode, IpFamily, NetworkDef};

fn sample(name: &str) -> NetworkDef {
    let path = project_dir().join("xml-samples").join(name);
    let xml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    NetworkDef::parse(&xml).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_sample_is_valid_and_canonical() {
    let paths = sample_paths();
    assert!(paths.len() >= 15, "expected the full set of samples");
    for path in &paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let file = path.to_str().unwrap();

        let validated = virtnet(&["xml-validate", file], b"");
        assert!(validated.status.success(), "{name}: {validated:?}");
        assert_eq!(String::from_utf8_lossy(&validated.stdout), "valid\n");

        let formatted = virtnet(&["xml-format", file], b"");
        assert!(formatted.status.success(), "{name}: {formatted:?}");
        let formatted = String::from_utf8(formatted.stdout).unwrap();
        let again = NetworkDef::parse(&formatted)
            .unwrap()
            .to_xml(FormatFlags::default());
        assert_eq!(formatted, again, "{name}: formatting is not idempotent");

        let written = std::fs::read_to_string(path).unwrap();
        let without_comment: String = written
            .lines()
            .filter(|line| !line.starts_with("<!--"))
            .map(|line| format!("{line}\n"))
            .collect();
        if written.contains("<uuid>") {
            assert_eq!(without_comment, formatted, "{name}: not in canonical form");
        }
    }
}

#[test]
fn user_written_samples_get_libvirt_defaults() {
    for (file, name, bridge, subnet) in [
        ("default.xml", "default", "virbr0", "192.168.122"),
        ("keennet.xml", "keennet", "keenbr0", "192.168.132"),
    ] {
        let def = sample(file);
        assert_eq!(def.name.as_str(), name);
        assert_eq!(
            def.forward_mode(),
            Some(ForwardMode::Nat),
            "bare <forward/> is NAT"
        );
        assert_eq!(def.bridge.name.as_ref().unwrap().as_str(), bridge);
        let ip = &def.ips[0];
        assert_eq!(ip.address, format!("{subnet}.1").parse::<IpAddr>().unwrap());
        assert_eq!(ip.effective_prefix(), Some(24));
        let range = &ip.dhcp.ranges[0];
        assert_eq!(
            range.start,
            format!("{subnet}.2").parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            range.end,
            format!("{subnet}.254").parse::<IpAddr>().unwrap()
        );
        let formatted = def.to_xml(FormatFlags::default());
        assert!(formatted.contains(&format!("<bridge name='{bridge}' stp='on' delay='0'/>")));
        assert!(formatted.contains("<forward mode='nat'/>"));
        assert!(formatted.contains("<uuid>"), "a missing uuid is generated");
    }
}

#[test]
fn samples_describe_their_models() {
    let internal = sample("internal.xml");
    assert!(internal.forward.is_none() && internal.ips.is_empty());

    let host_only = sample("host-only.xml");
    assert!(host_only.forward.is_none() && host_only.ips[0].has_dhcp());

    assert_eq!(
        sample("routed.xml").forward_mode(),
        Some(ForwardMode::Route)
    );
    assert_eq!(sample("open.xml").forward_mode(), Some(ForwardMode::Open));

    let nat = sample("nat.xml");
    let pool = nat.forward.as_ref().unwrap().nat.as_ref().unwrap();
    assert!(pool.addresses.is_some() && pool.ports.is_some());

    let bridge = sample("bridge.xml");
    assert_eq!(bridge.forward_mode(), Some(ForwardMode::Bridge));
    assert_eq!(bridge.bridge.name.as_ref().unwrap().as_str(), "br0");

    for (file, mode) in [
        ("macvtap-bridge.xml", ForwardMode::Bridge),
        ("macvtap-private.xml", ForwardMode::Private),
        ("macvtap-vepa.xml", ForwardMode::Vepa),
        ("macvtap-passthrough.xml", ForwardMode::Passthrough),
    ] {
        let def = sample(file);
        let forward = def.forward.as_ref().unwrap();
        assert_eq!(forward.mode, mode, "{file}");
        assert!(!forward.interfaces.is_empty(), "{file}: interface pool");
        assert!(def.bridge.name.is_none(), "{file}: no bridge of its own");
    }

    let dual = sample("dual-stack.xml");
    for family in [IpFamily::V4, IpFamily::V6] {
        assert!(
            dual.ips
                .iter()
                .any(|ip| ip.family() == family && ip.has_dhcp()),
            "{family:?} with DHCP"
        );
    }

    let dns = sample("dns.xml");
    assert!(dns.domain.is_some());
    assert!(!dns.dns.hosts.is_empty() && !dns.dns.srvs.is_empty());
    assert!(!dns.dns.txts.is_empty() && !dns.dns.forwarders.is_empty());

    let hosts = sample("static-hosts.xml");
    let dhcp = &hosts.ips[0].dhcp;
    assert!(dhcp.hosts.len() >= 3 && dhcp.hosts.iter().all(|h| h.mac.is_some()));
    assert!(dhcp.hosts.iter().any(|h| h.lease.is_some()));
}

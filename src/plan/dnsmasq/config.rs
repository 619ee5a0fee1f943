//! The configuration file, line by line in libvirt's order.

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::path::Path;

use crate::definition::{
    ForwardMode, IpDef, IpFamily, LinkName, NetworkDef, format_address as address,
};

use super::dhcp::{dhcp_lines, prefix};
use super::events::groups_to_leave;
use super::hosts::{addn_hosts, dhcp_host_line};
use super::{DnsmasqError, DnsmasqFiles, DnsmasqPlan, Profile};

/// The files' contents whether or not the network needs dnsmasq, as
/// libvirt's `networkDnsmasqConfContents` (and its conformance test) builds
/// them; [`plan`] is the call that decides.
pub fn contents(
    def: &NetworkDef,
    bridge: &str,
    files: &DnsmasqFiles,
    profile: Profile,
) -> Result<DnsmasqPlan, DnsmasqError> {
    // The name lands in an `interface=` line; a template or a line break
    // would make that line wrong or inject others.
    LinkName::new(bridge).map_err(|source| DnsmasqError::BridgeName {
        name: bridge.escape_debug().to_string(),
        source,
    })?;
    let name = def.name.as_str();
    let dns = &def.dns;
    let want_dns = dns.enable != Some(false);
    let mut config = Lines::default();

    // strict-order: ask upstream servers in resolv.conf order, as glibc does.
    config.push(format_args!(
        "##WARNING:  THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n\
         ##OVERWRITTEN AND LOST.  Changes to this configuration should be made using:\n\
         ##    virsh net-edit {name}\n\
         ## or other application using the libvirt API.\n\
         ##\n\
         ## dnsmasq conf file created by libvirt\n\
         strict-order"
    ));
    if !want_dns {
        // Port 0 turns dnsmasq's DNS service off.
        config.push("port=0");
    }
    if want_dns && !dns.forwarders.is_empty() {
        // A forwarder for all names replaces the host's resolv.conf.
        let mut no_resolv = false;
        for forwarder in &dns.forwarders {
            let domain = forwarder
                .domain
                .as_ref()
                .map(|domain| format!("/{domain}/"))
                .unwrap_or_default();
            match (forwarder.addr, forwarder.port) {
                (Some(addr), port) => {
                    let port = port.map(|port| format!("#{port}")).unwrap_or_default();
                    config.push(format_args!("server={domain}{}{port}", address(&addr)));
                    no_resolv |= forwarder.domain.is_none();
                }
                (None, Some(port)) => return Err(DnsmasqError::ForwarderPortWithoutAddr { port }),
                // libvirt means "do not forward this domain", but dnsmasq
                // reads `#` as "use the usual servers" (libvirt issue 597);
                // kept as libvirt writes it.
                (None, None) => config.push(format_args!("server={domain}#")),
            }
        }
        if no_resolv {
            config.push("no-resolv");
        }
    }
    let reads_resolv_conf = want_dns
        && def.forward.is_some()
        && !dns
            .forwarders
            .iter()
            .any(|forwarder| forwarder.addr.is_some() && forwarder.domain.is_none());
    if profile == Profile::Virtnet
        && reads_resolv_conf
        && let Some(resolvers) = files.host_resolvers.as_ref().filter(|r| !r.is_empty())
    {
        // why: reading resolv.conf costs each dnsmasq an inotify instance, and
        // the default limit of 128 per user would stop the 128th network.
        for resolver in resolvers {
            config.push(format_args!("server={}", address(resolver)));
        }
        config.push("no-resolv");
    }
    if let Some(domain) = &def.domain {
        if domain.local_only == Some(true) {
            config.push(format_args!("local=/{}/", domain.name));
        }
        config.push(format_args!("domain={}\nexpand-hosts", domain.name));
    }
    if want_dns {
        for ip in def.ips.iter().filter(|ip| ip.local_ptr == Some(true)) {
            config.push(format_args!("local=/{}/", ptr_domain(ip)?));
        }
        if dns.forward_plain_names == Some(false) {
            config.push("domain-needed\nlocal=//");
        }
    }
    if let Some(pid_file) = &files.pid_file {
        config.push(format_args!("pid-file={}", config_path(pid_file)?));
    }
    // bind-dynamic with interface= alone answers only on the bridge (the
    // fix for CVE-2012-3411), never on loopback.
    let guarded = matches!(
        def.forward_mode(),
        None | Some(ForwardMode::Nat | ForwardMode::Route)
    );
    let binds_addresses = profile == Profile::Virtnet && guarded;
    let bind_dynamic = !binds_addresses
        || def
            .dnsmasq_options
            .iter()
            .any(|option| option.as_str().trim_start().starts_with("bind-dynamic"));
    if binds_addresses {
        // why: bind-dynamic makes every dnsmasq re-read the host's
        // interfaces whenever any address changes, so each new network
        // costs all running ones CPU; bound to its addresses, dnsmasq stays
        // asleep. Queries arriving on other interfaces, which bind-dynamic
        // would ignore, are dropped by virtnet's firewall in these modes.
        config.push(format_args!(
            "except-interface=lo\nbind-interfaces\ninterface={bridge}"
        ));
        for ip in &def.ips {
            config.push(format_args!("listen-address={}", address(&ip.address)));
        }
    } else {
        config.push(format_args!(
            "except-interface=lo\nbind-dynamic\ninterface={bridge}"
        ));
    }
    if def.forward.is_none() {
        // Isolated: no default route (DHCP option 3 empty, RA router
        // lifetime 0) and no forwarding of DNS to the host's servers.
        config.push("dhcp-option=3\nno-resolv\nra-param=*,0,0");
    }
    if want_dns {
        for txt in &dns.txts {
            config.push(format_args!("txt-record={},{}", txt.name, txt.value));
        }
        for srv in &dns.srvs {
            let mut line = format!("srv-host=_{}._{}", srv.service, srv.protocol);
            if let Some(domain) = &srv.domain {
                let _ = write!(line, ".{domain}");
            }
            // No target, or ".", says the service is not offered: port,
            // priority and weight then mean nothing. They are positional,
            // so a later one given needs the earlier ones (port default 1).
            if let Some(target) = srv.target.as_ref().filter(|t| t.as_str() != ".") {
                let _ = write!(line, ",{target}");
                if srv.port > 0 || srv.priority > 0 || srv.weight > 0 {
                    let _ = write!(line, ",{}", srv.port.max(1));
                }
                if srv.priority > 0 || srv.weight > 0 {
                    let _ = write!(line, ",{}", srv.priority);
                }
                if srv.weight > 0 {
                    let _ = write!(line, ",{}", srv.weight);
                }
            }
            config.push(line);
        }
    }

    // dnsmasq serves DHCP on one subnet per family: the <ip> of that family
    // with ranges or hosts (a second one is an error). TFTP lines come out
    // in this pass.
    let (mut dhcp_v4, mut dhcp_v6) = (None, None);
    let mut tftp_enabled = false;
    for ip in &def.ips {
        let family = ip.family();
        if ip.has_dhcp() {
            let slot = match family {
                IpFamily::V4 => &mut dhcp_v4,
                IpFamily::V6 => &mut dhcp_v6,
            };
            if slot.replace(ip).is_some() {
                return Err(DnsmasqError::MultipleDhcp(family));
            }
        }
        if let (IpFamily::V4, Some(root)) = (family, &ip.tftp_root) {
            if !tftp_enabled {
                config.push("enable-tftp");
                tftp_enabled = true;
            }
            config.push(format_args!("tftp-root={root}"));
        }
    }

    let mut hosts_file = Lines::default();
    let mut lease_max = 0u64;
    for ip in [dhcp_v4, dhcp_v6].into_iter().flatten() {
        lease_max += dhcp_lines(&mut config, ip)?;
        for host in &ip.dhcp.hosts {
            if let Some(line) = dhcp_host_line(host, ip.family()) {
                hosts_file.push(line);
            }
        }
    }
    if lease_max > 0 {
        config.push(format_args!("dhcp-lease-max={lease_max}"));
    }
    let serves_dhcp = dhcp_v4.is_some() || dhcp_v6.is_some();
    if serves_dhcp {
        // Written even without hosts, so that hosts can be added at run time.
        let path = files.hosts_file(&def.name);
        config.push(format_args!("dhcp-hostsfile={}", config_path(&path)?));
    }
    if profile == Profile::Virtnet && serves_dhcp {
        // why: dnsmasq keeps the leases itself and we read its file, instead
        // of libvirt's lease-helper process per network.
        let lease_file = files.lease_file.as_ref().ok_or(DnsmasqError::NoLeaseFile {
            network: name.to_owned(),
        })?;
        config.push(format_args!("dhcp-leasefile={}", config_path(lease_file)?));
    }
    if profile == Profile::Virtnet && dhcp_v4.is_some() {
        // why: the ping check before a first offer delays every new guest by ~3 s.
        config.push("no-ping");
    }
    if want_dns {
        let path = files.addn_hosts_file(&def.name);
        config.push(format_args!("addn-hosts={}", config_path(&path)?));
    }
    if let Some(mtu) = def.mtu.filter(|&mtu| mtu > 0) {
        config.push(format_args!("dhcp-option=option:mtu,{mtu}"));
    }
    if dhcp_v6.is_some() {
        config.push("enable-ra");
    } else {
        // Router advertisements (SLAAC) on every IPv6 subnet.
        for ip in def.ips.iter().filter(|ip| ip.family() == IpFamily::V6) {
            config.push(format_args!("dhcp-range={},ra-only", address(&ip.address)));
        }
    }
    for option in &def.dnsmasq_options {
        config.push(option);
    }

    let serves_ipv6 = def.ips.iter().any(|ip| ip.family() == IpFamily::V6);
    Ok(DnsmasqPlan {
        config: config.0,
        hosts_file: hosts_file.0,
        addn_hosts: addn_hosts(def),
        groups_to_leave: groups_to_leave(bind_dynamic, serves_ipv6),
    })
}

/// Text built line by line.
#[derive(Default)]
pub(super) struct Lines(String);

impl Lines {
    pub(super) fn push(&mut self, line: impl fmt::Display) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "{line}");
    }
}

/// The reverse-lookup domain of a subnet, such as `122.168.192.in-addr.arpa`;
/// only whole octets (IPv4) or nibbles (IPv6) make one.
fn ptr_domain(ip: &IpDef) -> Result<String, DnsmasqError> {
    let prefix = prefix(ip)?;
    let mut labels: Vec<String> = match ip.address {
        IpAddr::V4(v4) if prefix > 0 && prefix < 32 && prefix % 8 == 0 => v4.octets()
            [..usize::from(prefix / 8)]
            .iter()
            .map(u8::to_string)
            .collect(),
        IpAddr::V6(v6) if prefix > 0 && prefix < 128 && prefix % 4 == 0 => v6
            .octets()
            .iter()
            .flat_map(|byte| [byte >> 4, byte & 0xf])
            .take(usize::from(prefix / 4))
            .map(|nibble| format!("{nibble:x}"))
            .collect(),
        _ => {
            return Err(DnsmasqError::PtrDomain {
                family: ip.family(),
                address: address(&ip.address),
                prefix,
            });
        }
    };
    labels.reverse();
    labels.push(match ip.family() {
        IpFamily::V4 => "in-addr.arpa".to_owned(),
        IpFamily::V6 => "ip6.arpa".to_owned(),
    });
    Ok(labels.join("."))
}

/// A path as it goes into a configuration line.
fn config_path(path: &Path) -> Result<&str, DnsmasqError> {
    path.to_str()
        .filter(|text| !text.contains(['\n', '\r', '\0']))
        .ok_or_else(|| DnsmasqError::Path {
            path: path.to_owned(),
        })
}

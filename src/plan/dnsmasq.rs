//! dnsmasq's configuration for a network: the configuration file, the DHCP
//! hosts file (`dhcp-hostsfile=`) and the additional hosts file
//! (`addn-hosts=`), as libvirt 11.3 writes them (`networkDnsmasqConfContents`
//! in src/network/bridge_driver.c).
//!
//! [`Profile::Libvirt`] reproduces libvirt byte for byte; libvirt's
//! conformance corpus checks it. [`Profile::Virtnet`] is what virtnet runs:
//! every line libvirt writes, with the differences below (the corpus test
//! undoes them in every case and must get libvirt's text back).
//!
//! # Differences from libvirt
//!
//! | `Profile::Virtnet` writes | libvirt instead | why |
//! |---|---|---|
//! | `dhcp-leasefile=<lease_file>` when DHCP is served (a lease file is then required) | starts dnsmasq with `--leasefile-ro --dhcp-script=libvirt_leaseshelper`: dnsmasq keeps a second process per network to run the helper on every lease event, and the helper keeps libvirt's lease database | at most one process per network; virtnet reads dnsmasq's own lease file |
//! | `no-ping` when DHCPv4 is served | nothing: dnsmasq pings an address before offering it | the ping check makes every new guest wait about 3 s for its first lease (libvirt 9.0 measured 3.1 s) |
//! | `bind-interfaces` and `listen-address=` for each of the network's addresses, in the modes where virtnet's firewall guards DNS (isolated, nat, route) | `bind-dynamic` | with bind-dynamic each dnsmasq re-reads the host's interfaces on every address change, so every new network costs all running ones CPU (libvirt 9.0: +40 % start time at 200 networks); the firewall drops DNS queries that arrive on another interface, which bind-dynamic would ignore |
//! | `server=` for each of the host's resolvers and `no-resolv`, where libvirt lets dnsmasq read resolv.conf (given `host_resolvers`) | dnsmasq reads and watches /etc/resolv.conf | a watch costs an inotify instance per dnsmasq; with the default `fs.inotify.max_user_instances=128` libvirt stops at ~127 networks. A change of the host's resolvers reaches a network when it is restarted |
//!
//! Beyond the configuration, virtnet takes a started dnsmasq out of the
//! rtnetlink event groups it does not need ([`groups_to_leave`]); libvirt
//! leaves it in all four, so every address or route any network adds wakes
//! every running dnsmasq.
//!
//! Not differences: `pid-file=` is written in both profiles when a pid file
//! is given (libvirt always gives one; its conformance test gives none).
//! `--leasefile-ro` and `--dhcp-script` are command-line options in libvirt,
//! so [`Profile::Libvirt`]'s text holds neither and ignores `lease_file`.
//! What else ~1000 instances side by side need is not decided here.
//!
//! In both profiles, DHCP host MACs are written in lowercase: the definition
//! keeps the address, not its spelling, which libvirt copies as written.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::definition::{
    self, DhcpHost, DhcpRange, ForwardMode, IpDef, IpFamily, Lease, LeaseUnit, LinkName,
    NetworkDef, NetworkName, ValueError, format_address as address, ipv4_mask,
};
use crate::xml::write::escape_into;

/// Where the files the configuration refers to live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsmasqFiles {
    /// Directory of the hosts files (libvirt: /var/lib/libvirt/dnsmasq).
    pub state_dir: PathBuf,
    pub pid_file: Option<PathBuf>,
    /// dnsmasq's lease file; used by [`Profile::Virtnet`] only.
    pub lease_file: Option<PathBuf>,
    /// The host's DNS servers (from resolv.conf), for [`Profile::Virtnet`]:
    /// given to dnsmasq as `server=` lines so that it need not watch
    /// resolv.conf. `None` lets dnsmasq read resolv.conf itself.
    pub host_resolvers: Option<Vec<IpAddr>>,
}

impl DnsmasqFiles {
    /// `STATE_DIR/NAME.hostsfile`: the DHCP hosts file of `network`.
    pub fn hosts_file(&self, network: &NetworkName) -> PathBuf {
        self.state_file(network, "hostsfile")
    }

    /// `STATE_DIR/NAME.addnhosts`: the additional (DNS) hosts file of `network`.
    pub fn addn_hosts_file(&self, network: &NetworkName) -> PathBuf {
        self.state_file(network, "addnhosts")
    }

    // libvirt XML-escapes the network name in these paths (a quote becomes
    // `&quot;`); the files it writes carry the same names, so we follow.
    fn state_file(&self, network: &NetworkName, suffix: &str) -> PathBuf {
        self.state_dir.join({
            let mut file = String::new();
            escape_into(&mut file, network.as_str());
            file.push('.');
            file.push_str(suffix);
            file
        })
    }
}

/// Which dnsmasq configuration to write; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Exactly what libvirt 11.3 writes.
    Libvirt,
    /// What virtnet runs: libvirt's lines plus the documented differences.
    Virtnet,
}

/// The contents of dnsmasq's three files for one network; a file with
/// nothing in it is an empty string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsmasqPlan {
    pub config: String,
    /// For [`DnsmasqFiles::hosts_file`]: one dnsmasq `dhcp-host` per line
    /// (`mac,ip,name[,lease]`, `id:duid,name,[ipv6]`, …).
    pub hosts_file: String,
    /// For [`DnsmasqFiles::addn_hosts_file`]: `ip<TAB>name<TAB>…` lines.
    pub addn_hosts: String,
    /// rtnetlink multicast groups (`RTNLGRP_*`) dnsmasq joins at start but
    /// does not need with this configuration; see [`groups_to_leave`].
    pub groups_to_leave: Vec<u32>,
}

/// `RTNLGRP_IPV4_IFADDR`, `RTNLGRP_IPV4_ROUTE`, `RTNLGRP_IPV6_IFADDR` and
/// `RTNLGRP_IPV6_ROUTE` (linux/rtnetlink.h).
pub const IPV4_ADDRESS_EVENTS: u32 = 5;
pub const IPV4_ROUTE_EVENTS: u32 = 7;
pub const IPV6_ADDRESS_EVENTS: u32 = 9;
pub const IPV6_ROUTE_EVENTS: u32 = 11;

/// The address and route event groups a dnsmasq can do without.
///
/// dnsmasq joins all four at start, whatever its configuration, and wakes
/// for every event in the namespace: each address or route a new network
/// adds wakes every running dnsmasq (with 600 networks, adding one address
/// took 10 ms instead of 0.1 ms). It uses route events only to resend a
/// pending query on dial-on-demand links and to re-read resolv.conf early
/// (it polls that file anyway); it uses address events to bind new
/// addresses (`bind-dynamic`) and to follow its bridge's IPv6 addresses for
/// router advertisements and DHCPv6.
pub fn groups_to_leave(bind_dynamic: bool, serves_ipv6: bool) -> Vec<u32> {
    let mut groups = vec![IPV4_ROUTE_EVENTS, IPV6_ROUTE_EVENTS];
    if !bind_dynamic {
        groups.push(IPV4_ADDRESS_EVENTS);
        if !serves_ipv6 {
            groups.push(IPV6_ADDRESS_EVENTS);
        }
    }
    groups.sort_unstable();
    groups
}

/// Why no configuration could be written for a definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsmasqError {
    #[error(
        "for {}, multiple DHCP definitions cannot be specified: only one <ip> of that family may have <dhcp> ranges or hosts",
        .0.label()
    )]
    MultipleDhcp(IpFamily),
    #[error("<ip address='{address}'> has an invalid prefix: give it a prefix or netmask")]
    InvalidPrefix { address: String },
    #[error(
        "PTR domain for {} network with prefix {prefix} cannot be automatically created (<ip address='{address}' localPtr='yes'>)",
        .family.label()
    )]
    PtrDomain {
        family: IpFamily,
        address: String,
        prefix: u8,
    },
    #[error("<range start='{start}' end='{end}'> is not a usable DHCP range in {network}")]
    Range {
        start: String,
        end: String,
        network: String,
    },
    #[error("DNS <forwarder port='{port}'> has no addr")]
    ForwarderPortWithoutAddr { port: u16 },
    #[error("bridge name '{name}' is not usable")]
    BridgeName {
        name: String,
        #[source]
        source: ValueError,
    },
    #[error(
        "path {path:?} cannot be written into dnsmasq's configuration (not UTF-8, or holds a line break or NUL)"
    )]
    Path { path: PathBuf },
    #[error("network '{network}' serves DHCP, and the virtnet profile needs a lease file for it")]
    NoLeaseFile { network: String },
}

/// dnsmasq's files for `def` on the bridge named `bridge`; `None` when the
/// network runs no dnsmasq (libvirt's conditions for starting one).
pub fn plan(
    def: &NetworkDef,
    bridge: &str,
    files: &DnsmasqFiles,
    profile: Profile,
) -> Result<Option<DnsmasqPlan>, DnsmasqError> {
    if !needs_dnsmasq(def) {
        return Ok(None);
    }
    contents(def, bridge, files, profile).map(Some)
}

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

/// libvirt starts dnsmasq for networks with a bridge of their own and at
/// least one address, unless there is neither DHCP, TFTP nor DNS to serve.
fn needs_dnsmasq(def: &NetworkDef) -> bool {
    ForwardMode::has_own_bridge(def.forward_mode())
        && !def.ips.is_empty()
        && (def.dns.enable != Some(false)
            || def
                .ips
                .iter()
                .any(|ip| ip.has_dhcp() || ip.tftp_root.is_some()))
}

/// Text built line by line.
#[derive(Default)]
struct Lines(String);

impl Lines {
    fn push(&mut self, line: impl fmt::Display) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "{line}");
    }
}

/// The DHCP lines of one subnet; returns how many leases its ranges hold.
fn dhcp_lines(config: &mut Lines, ip: &IpDef) -> Result<u64, DnsmasqError> {
    let prefix = prefix(ip)?;
    let mut leases = 0;
    for range in &ip.dhcp.ranges {
        leases += u64::from(range_size(range, ip, prefix)?);
        let (start, end) = (address(&range.start), address(&range.end));
        // dnsmasq wants a netmask for IPv4, a prefix length for IPv6.
        let mask = match ip.family() {
            IpFamily::V4 => netmask(prefix).to_string(),
            IpFamily::V6 => prefix.to_string(),
        };
        let lease = range.lease.map(lease_time).map(|time| format!(",{time}"));
        config.push(format_args!(
            "dhcp-range={start},{end},{mask}{}",
            lease.unwrap_or_default()
        ));
    }
    if ip.dhcp.ranges.is_empty() && !ip.dhcp.hosts.is_empty() {
        // Hosts only: a static range turns the DHCP service on.
        let bridge_address = address(&ip.address);
        match ip.family() {
            IpFamily::V4 => config.push(format_args!("dhcp-range={bridge_address},static")),
            IpFamily::V6 => {
                config.push(format_args!("dhcp-range={bridge_address},static,{prefix}"))
            }
        }
    }
    if ip.family() == IpFamily::V4 {
        config.push("dhcp-no-override\ndhcp-authoritative");
        if let Some(bootp) = &ip.dhcp.bootp {
            match bootp.server {
                Some(server) => config.push(format_args!(
                    "dhcp-boot={},,{}",
                    bootp.file,
                    address(&server)
                )),
                None => config.push(format_args!("dhcp-boot={}", bootp.file)),
            }
        }
    }
    Ok(leases)
}

/// A line of the DHCP hosts file; `None` for a host without an address.
fn dhcp_host_line(host: &DhcpHost, family: IpFamily) -> Option<String> {
    let ip = address(host.ip.as_ref()?);
    let mut line = match family {
        IpFamily::V6 => {
            let id = host.id.as_ref().map(|id| format!("id:{id}"));
            let name = host.name.as_ref().map(ToString::to_string);
            let who: Vec<String> = id.into_iter().chain(name).collect();
            format!("{},[{ip}]", who.join(","))
        }
        IpFamily::V4 => match (&host.mac, &host.name) {
            (Some(mac), Some(name)) => format!("{mac},{ip},{name}"),
            (None, Some(name)) => format!("{name},{ip}"),
            (Some(mac), None) => format!("{mac},{ip}"),
            // The parser requires a MAC or a name; libvirt would print "(null)".
            (None, None) => return None,
        },
    };
    if let Some(lease) = host.lease {
        let _ = write!(line, ",{}", lease_time(lease));
    }
    Some(line)
}

/// The additional hosts file: one line per address, its names in order,
/// each followed by a tab (as libvirt writes it).
fn addn_hosts(def: &NetworkDef) -> String {
    let mut entries: Vec<(String, Vec<&str>)> = Vec::new();
    for host in &def.dns.hosts {
        let ip = address(&host.ip);
        let names = host.hostnames.iter().map(|name| name.as_str());
        match entries.iter_mut().find(|(known, _)| *known == ip) {
            Some((_, known_names)) => known_names.extend(names),
            None => entries.push((ip, names.collect())),
        }
    }
    let mut text = String::new();
    for (ip, names) in entries {
        text.push_str(&ip);
        text.push('\t');
        for name in names {
            text.push_str(name);
            text.push('\t');
        }
        text.push('\n');
    }
    text
}

/// The prefix length libvirt uses for a subnet; unlike
/// [`IpDef::effective_prefix`], 0 for an unspecified address without one.
fn prefix(ip: &IpDef) -> Result<u8, DnsmasqError> {
    if ip.prefix == 0 && ip.netmask.is_none() && ip.address.is_unspecified() {
        return Ok(0);
    }
    ip.effective_prefix()
        .ok_or_else(|| DnsmasqError::InvalidPrefix {
            address: address(&ip.address),
        })
}

fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(ipv4_mask(prefix))
}

/// How many addresses a range holds, after the checks libvirt repeats
/// here: inside the subnet, not its network or broadcast address, in
/// order, at most 65536 addresses.
fn range_size(range: &DhcpRange, ip: &IpDef, prefix: u8) -> Result<u32, DnsmasqError> {
    definition::range_size(&range.start, &range.end, Some((&ip.address, Some(prefix)))).map_err(
        |_| DnsmasqError::Range {
            start: address(&range.start),
            end: address(&range.end),
            network: format!("{}/{prefix}", address(&ip.address)),
        },
    )
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

/// dnsmasq's lease time: `infinite`, or a number with `s`, `m` or `h`.
fn lease_time(lease: Lease) -> String {
    if lease.expiry == 0 {
        return "infinite".to_owned();
    }
    let unit = match lease.unit {
        LeaseUnit::Seconds => 's',
        LeaseUnit::Minutes => 'm',
        LeaseUnit::Hours => 'h',
    };
    format!("{}{unit}", lease.expiry)
}

/// A path as it goes into a configuration line.
fn config_path(path: &Path) -> Result<&str, DnsmasqError> {
    path.to_str()
        .filter(|text| !text.contains(['\n', '\r', '\0']))
        .ok_or_else(|| DnsmasqError::Path {
            path: path.to_owned(),
        })
}

#[cfg(test)]
mod tests {
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
        let asked = NAT.replace(
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
            config.contains(
                "server=192.168.1.1#5353\nserver=/example.com/2001:db8::53#53\nno-resolv\n"
            ),
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
            config(xml, Profile::Libvirt)
                .contains("local=/0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa/\n")
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
}

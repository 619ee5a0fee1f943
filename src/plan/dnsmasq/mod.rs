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
//! In both profiles, a DHCP host's MAC goes into the hosts file as the
//! definition spells it, as libvirt writes it (dnsmasq reads any case).

mod config;
mod dhcp;
mod events;
mod hosts;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::PathBuf;

use crate::definition::{ForwardMode, IpFamily, NetworkDef, NetworkName, ValueError};
use crate::xml::write::escape_into;

pub use config::contents;
pub use events::{
    IPV4_ADDRESS_EVENTS, IPV4_ROUTE_EVENTS, IPV6_ADDRESS_EVENTS, IPV6_ROUTE_EVENTS, groups_to_leave,
};

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

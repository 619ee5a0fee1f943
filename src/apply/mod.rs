//! Applying plans to the host: the kernel (rtnetlink, sysctls, nftables)
//! and dnsmasq. Kept thin: the decisions are made in `plan`.
//!
//! [`start`] realizes a network and returns what is needed to stop it;
//! [`stop`] takes it all away again (or [`take_down`] at once and
//! [`remove_retired`] later). A failure halfway through [`start`] undoes
//! every step already made.

pub mod dnsmasq;
pub mod firewall;
pub mod firewalld;
mod host_devices;
pub mod inspect;
pub mod netlink;
pub mod openings;
pub mod pool;
pub mod recover;
mod refresh;
mod running;
mod stop;
pub mod sysctl;
mod traffic;
pub mod watch;

use std::path::PathBuf;

use crate::definition::{ForwardMode, NetworkDef, NetworkName, error_chain};
use crate::killpoint;
use crate::plan::dnsmasq::DnsmasqFiles;
use crate::plan::firewall::OutboundLimit;
use crate::plan::naming::{self, Requested};
use crate::plan::network::{self, BridgedPlan};

use self::dnsmasq::DnsmasqPaths;
use self::firewall::Firewall;
use self::netlink::Netlink;
use self::stop::Holdings;

pub(crate) use self::host_devices::pool_for;
pub use self::refresh::refresh;
pub use self::running::{RunningBridge, RunningNetwork};
pub use self::stop::{StopError, StopStep, remove_retired, retired_name, stop, take_down};
pub use self::traffic::TrafficControl;
pub(crate) use self::traffic::{reset_traffic_control, shaping_in_place};

/// Where virtnet keeps files and which programs it runs.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Persistent per-network data (dnsmasq hosts and lease files).
    pub state_dir: PathBuf,
    /// Runtime files (dnsmasq configuration and pid files).
    pub run_dir: PathBuf,
    pub dnsmasq: PathBuf,
    pub tc: TrafficControl,
}

impl Environment {
    /// The system locations: `/var/lib/virtnet`, `/run/virtnet`.
    pub fn system() -> Self {
        Self {
            state_dir: "/var/lib/virtnet".into(),
            run_dir: "/run/virtnet".into(),
            dnsmasq: "dnsmasq".into(),
            tc: TrafficControl::new("tc"),
        }
    }

    /// Where the dnsmasq of `network` on `bridge` keeps its files: the hosts
    /// files are named after the network, as its configuration says.
    /// Removes what writes interrupted by a crash left among dnsmasq's files.
    pub fn remove_temporaries(&self) -> std::io::Result<()> {
        for dir in [&self.run_dir, &self.state_dir] {
            crate::files::remove_temporaries(&dir.join("dnsmasq"))?;
        }
        Ok(())
    }

    pub(crate) fn dnsmasq_files(
        &self,
        network: &NetworkName,
        bridge: &str,
    ) -> (DnsmasqFiles, DnsmasqPaths) {
        let run = self.run_dir.join("dnsmasq");
        let state = self.state_dir.join("dnsmasq");
        let pid = run.join(format!("{bridge}.pid"));
        let leases = state.join(format!("{bridge}.leases"));
        let files = DnsmasqFiles {
            state_dir: state,
            pid_file: Some(pid.clone()),
            lease_file: Some(leases.clone()),
            host_resolvers: Some(host_resolvers()),
        };
        let paths = DnsmasqPaths {
            config: run.join(format!("{bridge}.conf")),
            pid,
            hosts: files.hosts_file(network),
            addn_hosts: files.addn_hosts_file(network),
            leases,
        };
        (files, paths)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Netlink(#[from] netlink::NetlinkError),
    #[error(transparent)]
    Firewall(#[from] firewall::FirewallError),
    #[error(transparent)]
    Firewalld(#[from] firewalld::FirewalldError),
    #[error(transparent)]
    Dnsmasq(#[from] dnsmasq::DnsmasqError),
    #[error(transparent)]
    DnsmasqPlan(#[from] crate::plan::dnsmasq::DnsmasqError),
    #[error(transparent)]
    Sysctl(#[from] sysctl::SysctlError),
    #[error(transparent)]
    Naming(#[from] naming::NamingError),
    /// libvirt's wording (VIR_ERR_INTERNAL_ERROR).
    #[error("internal error: Network is already in use by interface {0}")]
    SubnetInUse(String),
    #[error(
        "unsupported configuration: network '{network}' uses host {what} '{device}', which does not exist"
    )]
    MissingDevice {
        network: String,
        what: &'static str,
        device: String,
    },
    /// A limit virtnet cannot enforce is refused rather than dropped.
    #[error(
        "unsupported configuration: network '{0}' has an outbound <bandwidth> limit with forward mode='open'; virtnet polices outbound traffic with nftables rules, which an open network does not have"
    )]
    OpenOutboundLimit(String),
    #[error("cannot set up traffic control (tc) on {bridge}: {message}")]
    TrafficControl { bridge: String, message: String },
    /// A live update failed and was undone: the network runs as before.
    #[error("cannot update the running network")]
    UpdateUndone {
        #[source]
        error: Box<StartError>,
        /// The network as it runs now (a dnsmasq started again has a new pid).
        running: Box<RunningNetwork>,
    },
    #[error(
        "cannot update the running network, nor put it back as it was: {}",
        error_chain(.rollback.as_ref())
    )]
    UpdateNotUndone {
        #[source]
        error: Box<StartError>,
        rollback: Box<StartError>,
    },
}

/// A start that failed: why, and what undoing it could not remove (then
/// something of the network is left on the host).
#[derive(Debug)]
pub struct FailedStart {
    pub error: StartError,
    pub leftovers: Option<StopError>,
}

impl From<FailedStart> for StartError {
    fn from(failed: FailedStart) -> Self {
        failed.error
    }
}

/// The nameservers of the host's /etc/resolv.conf.
fn host_resolvers() -> Vec<std::net::IpAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse().ok())
        .collect()
}

/// Starts `def`, its rules in `firewall`. `reserved` are bridge names
/// other virtnet networks hold (running or about to be).
pub async fn start(
    def: &NetworkDef,
    env: &Environment,
    firewall: &Firewall,
    reserved: &[String],
) -> Result<RunningNetwork, FailedStart> {
    let failed = |error: StartError| FailedStart {
        error,
        leftovers: None,
    };
    let netlink = Netlink::connect().map_err(|error| failed(error.into()))?;
    if !ForwardMode::has_own_bridge(def.forward_mode()) {
        let devices = network::host_devices(def);
        host_devices::check_host_devices(def, &devices, &netlink)
            .await
            .map_err(failed)?;
        return Ok(RunningNetwork {
            name: def.name.to_string(),
            uuid: def.uuid.to_string(),
            bridge: None,
            firewall: None,
            dnsmasq: None,
            pool: pool_for(def, &devices),
            host_devices: Some(devices),
        });
    }
    if def.forward_mode() == Some(ForwardMode::Open) && OutboundLimit::of(def).is_some() {
        return Err(failed(StartError::OpenOutboundLimit(def.name.to_string())));
    }
    let bridge = choose_bridge_name(def, &netlink, reserved)
        .await
        .map_err(failed)?;
    let mac = match def.mac {
        Some(mac) => mac,
        None => naming::generate_mac().map_err(|error| failed(error.into()))?,
    };
    let (files, paths) = env.dnsmasq_files(&def.name, &bridge);
    let plan = network::plan(def, &bridge, mac, &files).map_err(|error| failed(error.into()))?;
    let mut started = Holdings::default();
    match start_bridged(env, firewall, &netlink, &plan, &paths, &mut started).await {
        Ok(()) => Ok(RunningNetwork {
            name: def.name.to_string(),
            uuid: def.uuid.to_string(),
            bridge: started.bridge,
            firewall: started.rules,
            dnsmasq: started.dnsmasq,
            host_devices: None,
            pool: None,
        }),
        Err(error) => {
            let errors = stop::undo(firewall, &started).await;
            Err(FailedStart {
                error,
                leftovers: (!errors.is_empty()).then(|| StopError {
                    network: def.name.to_string(),
                    errors,
                }),
            })
        }
    }
}

async fn start_bridged(
    env: &Environment,
    firewall: &Firewall,
    netlink: &Netlink,
    plan: &BridgedPlan,
    paths: &DnsmasqPaths,
    started: &mut Holdings,
) -> Result<(), StartError> {
    check_route_collisions(netlink, plan).await?;
    let bridge = &plan.bridge;
    let ifindex = netlink.create_bridge(bridge).await?;
    killpoint::reached("start:bridge");
    started.bridge = Some(RunningBridge {
        name: bridge.name.clone(),
        ifindex,
        mac: bridge.mac,
    });
    sysctl::bridge_ipv6(&bridge.name, bridge.ipv6)?;
    for (address, prefix) in &bridge.addresses {
        netlink.add_address(ifindex, *address, *prefix).await?;
    }
    killpoint::reached("start:addresses");
    netlink.set_up(ifindex).await?;
    killpoint::reached("start:up");
    for route in &bridge.routes {
        netlink.add_route(ifindex, route).await?;
    }
    if plan.forwarding.ipv4 {
        sysctl::set("ipv4/ip_forward", "1")?;
    }
    if plan.forwarding.ipv6 {
        sysctl::set("ipv6/conf/all/forwarding", "1")?;
    }
    // The firewall, the checksum fix-up and dnsmasq do not depend on each
    // other; each waits on a process of its own, so they run side by side.
    let (rules, checksum, dns) =
        tokio::join!(
            async {
                match &plan.firewall {
                    Some(rules) => firewall.start(rules).await.map(|()| {
                        killpoint::reached("start:rules");
                        true
                    }),
                    None => Ok(false),
                }
            },
            async {
                traffic::set_up_traffic_control(
                    env,
                    &bridge.name,
                    plan.dhcp_checksum_fix,
                    plan.inbound_shaping.as_ref(),
                )
                .await
            },
            async {
                match &plan.dnsmasq {
                    Some(dnsmasq_plan) => dnsmasq::start(dnsmasq_plan, paths, &env.dnsmasq)
                        .await
                        .map(|instance| {
                            killpoint::reached("start:dnsmasq");
                            Some(instance)
                        }),
                    None => Ok(None),
                }
            },
        );
    if matches!(rules, Ok(true)) {
        started.rules.clone_from(&plan.firewall);
    }
    if let Ok(instance) = &dns {
        started.dnsmasq.clone_from(instance);
    }
    rules?;
    checksum?;
    dns?;
    Ok(())
}

/// The bridge name: the definition's, if free, or the first free name its
/// template (or libvirt's `virbr%d`) yields. Only templates list every link.
async fn choose_bridge_name(
    def: &NetworkDef,
    netlink: &Netlink,
    reserved: &[String],
) -> Result<String, StartError> {
    let requested = Requested::of(def.bridge.name.as_ref());
    let links = match requested {
        Requested::Fixed(name) => match netlink.link_index(name).await? {
            Some(_) => vec![name.to_owned()],
            None => Vec::new(),
        },
        Requested::Template(_) => netlink.link_names().await?,
    };
    Ok(requested.choose(|name| links.iter().chain(reserved).any(|taken| taken == name))?)
}

async fn check_route_collisions(netlink: &Netlink, plan: &BridgedPlan) -> Result<(), StartError> {
    let claimed = plan.bridge.claimed_subnets();
    let routes = Netlink::routes().await?;
    let Some(route) = network::colliding_routes(&claimed, &routes, None).next() else {
        return Ok(());
    };
    let names = netlink.link_indexes().await?;
    let interface = route
        .interface
        .and_then(|index| names.get(&index).cloned())
        .unwrap_or_else(|| "(unknown)".to_owned());
    Err(StartError::SubnetInUse(interface))
}

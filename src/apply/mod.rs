//! Applying plans to the host: the kernel (rtnetlink, sysctls, nftables)
//! and dnsmasq. Kept thin: the decisions are made in `plan`.
//!
//! [`start`] realizes a network and returns what is needed to stop it;
//! [`stop`] takes it all away again, in reverse. A failure halfway through
//! [`start`] undoes every step already made.

pub mod dnsmasq;
pub mod firewall;
pub mod netlink;
pub mod recover;
pub mod sysctl;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::definition::{ForwardMode, MacAddr, NetworkDef, NetworkName, PciAddress, error_chain};
use crate::plan::dnsmasq::DnsmasqFiles;
use crate::plan::firewall::{OutboundLimit, Subnet};
use crate::plan::network::{
    self, BridgedPlan, HostDevices, InboundShaping, LEAF_QDISC, ROOT_QDISC,
};
use crate::state::pool::InterfacePool;
use crate::state::{RunningBridge, RunningNetwork};

use self::dnsmasq::{DnsmasqInstance, DnsmasqPaths};
use self::firewall::Firewall;
use self::netlink::Netlink;

/// Where virtnet keeps files and which programs it runs.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Persistent per-network data (dnsmasq hosts and lease files).
    pub state_dir: PathBuf,
    /// Runtime files (dnsmasq configuration and pid files).
    pub run_dir: PathBuf,
    pub dnsmasq: PathBuf,
    pub tc: PathBuf,
}

impl Environment {
    /// The system locations: `/var/lib/virtnet`, `/run/virtnet`.
    pub fn system() -> Self {
        Self {
            state_dir: "/var/lib/virtnet".into(),
            run_dir: "/run/virtnet".into(),
            dnsmasq: "dnsmasq".into(),
            tc: "tc".into(),
        }
    }

    /// Where the dnsmasq of `network` on `bridge` keeps its files: the hosts
    /// files are named after the network, as its configuration says.
    /// Removes what writes interrupted by a crash left among dnsmasq's files.
    pub fn remove_temporaries(&self) -> std::io::Result<()> {
        for dir in [&self.run_dir, &self.state_dir] {
            crate::state::files::remove_temporaries(&dir.join("dnsmasq"))?;
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
    Dnsmasq(#[from] dnsmasq::DnsmasqError),
    #[error(transparent)]
    DnsmasqPlan(#[from] crate::plan::dnsmasq::DnsmasqError),
    #[error(transparent)]
    Sysctl(#[from] sysctl::SysctlError),
    #[error("cannot create {path}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// libvirt's wording (VIR_ERR_INTERNAL_ERROR).
    #[error("internal error: bridge name '{0}' already in use.")]
    BridgeInUse(String),
    #[error("internal error: Bridge generation exceeded max id {0}")]
    NoFreeBridgeName(u32),
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
    #[error("internal error: cannot generate a MAC address")]
    Random(#[source] std::io::Error),
}

/// Everything that went wrong while stopping; stopping goes on past errors
/// so that as much as possible is removed.
#[derive(Debug, thiserror::Error)]
#[error("stopping network '{network}' left work undone: {}", .errors.join("; "))]
pub struct StopError {
    pub network: String,
    pub errors: Vec<String>,
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

/// libvirt's default template when a definition names no bridge.
const DEFAULT_BRIDGE_TEMPLATE: &str = "virbr%d";
/// libvirt gives up after this many candidate names.
const MAX_BRIDGE_ID: u32 = 256;

/// Starts `def`, its rules in `firewall`. `reserved` are bridge names
/// other virtnet networks hold (running or about to be).
pub async fn start(
    def: &NetworkDef,
    env: &Environment,
    firewall: &Firewall,
    reserved: &[String],
) -> Result<RunningNetwork, StartError> {
    let netlink = Netlink::connect()?;
    if !ForwardMode::has_own_bridge(def.forward_mode()) {
        let devices = network::host_devices(def);
        check_host_devices(def, &devices, &netlink).await?;
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
        return Err(StartError::OpenOutboundLimit(def.name.to_string()));
    }
    let bridge = choose_bridge_name(def, &netlink, reserved).await?;
    let mac = match def.mac {
        Some(mac) => mac,
        None => generate_mac().map_err(StartError::Random)?,
    };
    let (files, paths) = env.dnsmasq_files(&def.name, &bridge);
    let plan = network::plan(def, &bridge, mac, &files)?;
    let mut started = Started::default();
    match start_bridged(env, firewall, &netlink, &plan, &paths, &mut started).await {
        Ok(()) => Ok(RunningNetwork {
            name: def.name.to_string(),
            uuid: def.uuid.to_string(),
            bridge: started.bridge,
            firewall: plan.firewall.clone(),
            dnsmasq: started.dnsmasq,
            host_devices: None,
            pool: None,
        }),
        Err(error) => {
            // Best effort: the start error is what the caller needs.
            let _ = undo(&netlink, firewall, &started, plan.firewall.as_ref()).await;
            Err(error)
        }
    }
}

/// Steps of a start already made, for rollback.
#[derive(Default)]
struct Started {
    bridge: Option<RunningBridge>,
    firewall: bool,
    dnsmasq: Option<DnsmasqInstance>,
}

async fn start_bridged(
    env: &Environment,
    firewall: &Firewall,
    netlink: &Netlink,
    plan: &BridgedPlan,
    paths: &DnsmasqPaths,
    started: &mut Started,
) -> Result<(), StartError> {
    check_route_collisions(netlink, plan).await?;
    let bridge = &plan.bridge;
    let ifindex = netlink.create_bridge(bridge).await?;
    started.bridge = Some(RunningBridge {
        name: bridge.name.clone(),
        ifindex,
        mac: bridge.mac,
    });
    sysctl::bridge_ipv6(&bridge.name, bridge.ipv6)?;
    for (address, prefix) in &bridge.addresses {
        netlink.add_address(ifindex, *address, *prefix).await?;
    }
    netlink.set_up(ifindex).await?;
    for route in &bridge.routes {
        netlink.add_route(ifindex, route).await?;
    }
    if plan.forwarding.ipv4 {
        sysctl::set("ipv4/ip_forward", "1")?;
    }
    if plan.forwarding.ipv6 {
        sysctl::set("ipv6/conf/all/forwarding", "1")?;
    }
    if plan.dnsmasq.is_some() {
        for file in [&paths.config, &paths.hosts] {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(|source| StartError::Directory {
                    path: dir.to_owned(),
                    source,
                })?;
            }
        }
    }
    // The firewall, the checksum fix-up and dnsmasq do not depend on each
    // other; each waits on a process of its own, so they run side by side.
    let (rules, checksum, dns) = tokio::join!(
        async {
            match &plan.firewall {
                Some(rules) => firewall.start(rules).await.map(|()| true),
                None => Ok(false),
            }
        },
        async {
            set_up_traffic_control(
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
                    .map(Some),
                None => Ok(None),
            }
        },
    );
    started.firewall = matches!(rules, Ok(true));
    if let Ok(instance) = &dns {
        started.dnsmasq.clone_from(instance);
    }
    rules?;
    checksum?;
    dns?;
    Ok(())
}

/// Removes what a (partial) start made. The three removals do not depend
/// on each other, and each waits on the kernel or a process (a bridge's
/// deletion on an RCU barrier, tens of milliseconds), so they run side by
/// side: the rules match the bridge by name, and dnsmasq is stopping.
async fn undo(
    netlink: &Netlink,
    firewall: &Firewall,
    started: &Started,
    rules: Option<&crate::plan::firewall::FirewallPlan>,
) -> Vec<String> {
    let (dns, rules, link) = tokio::join!(
        async {
            match &started.dnsmasq {
                Some(instance) => instance.stop().await.map_err(|e| error_chain(&e)),
                None => Ok(()),
            }
        },
        async {
            match rules.filter(|_| started.firewall) {
                Some(rules) => firewall.stop(rules).await.map_err(|e| error_chain(&e)),
                None => Ok(()),
            }
        },
        async {
            match &started.bridge {
                Some(bridge) => netlink
                    .delete_link(bridge.ifindex)
                    .await
                    .map_err(|e| error_chain(&e)),
                None => Ok(()),
            }
        },
    );
    [dns, rules, link]
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

/// Takes a running network out of service at once: its dnsmasq stops and
/// its bridge goes down, so guests lose it. What remains (rules, the link,
/// files) is for [`stop`], which may follow later: removing them waits on
/// the kernel for tens of milliseconds.
pub async fn shut_down(running: &RunningNetwork) -> Result<(), StopError> {
    let mut errors = Vec::new();
    if let Some(instance) = &running.dnsmasq
        && let Err(error) = instance.stop().await
    {
        errors.push(error_chain(&error));
    }
    if let Some(bridge) = &running.bridge {
        let down = async { Netlink::connect()?.set_down(bridge.ifindex).await };
        if let Err(error) = down.await {
            errors.push(error_chain(&error));
        }
    }
    stopped(running, errors)
}

/// Ok when nothing went wrong while stopping `running`.
fn stopped(running: &RunningNetwork, errors: Vec<String>) -> Result<(), StopError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StopError {
            network: running.name.clone(),
            errors,
        })
    }
}

/// Stops a running network: everything [`start`] made goes. It returns
/// once the kernel has committed the rules' removal and unlisted the
/// bridge; the kernel finishes freeing them in the background.
pub async fn stop(running: &RunningNetwork, firewall: &Firewall) -> Result<(), StopError> {
    let mut errors = Vec::new();
    match Netlink::connect() {
        Ok(netlink) => {
            let started = Started {
                bridge: running.bridge.clone(),
                firewall: running.firewall.is_some(),
                dnsmasq: running.dnsmasq.clone(),
            };
            errors.extend(undo(&netlink, firewall, &started, running.firewall.as_ref()).await);
        }
        Err(error) => errors.push(error_chain(&error)),
    }
    stopped(running, errors)
}

/// The bridge name: the definition's, if free, or the first free name its
/// template (or libvirt's `virbr%d`) yields. Only templates list every link.
async fn choose_bridge_name(
    def: &NetworkDef,
    netlink: &Netlink,
    reserved: &[String],
) -> Result<String, StartError> {
    let template = match &def.bridge.name {
        Some(name) if !name.is_template() => {
            let name = name.as_str();
            if reserved.iter().any(|other| other == name)
                || netlink.link_index(name).await?.is_some()
            {
                return Err(StartError::BridgeInUse(name.to_owned()));
            }
            return Ok(name.to_owned());
        }
        Some(template) => template.clone(),
        None => crate::definition::BridgeName::new(DEFAULT_BRIDGE_TEMPLATE)
            .map_err(|_| StartError::NoFreeBridgeName(0))?,
    };
    let links = netlink.link_names().await?;
    (0..MAX_BRIDGE_ID)
        .filter_map(|index| template.instantiate(index))
        .map(|name| name.to_string())
        .find(|name| !links.iter().chain(reserved).any(|taken| taken == name))
        .ok_or(StartError::NoFreeBridgeName(MAX_BRIDGE_ID))
}

/// A random locally administered MAC in libvirt's 52:54:00 range.
fn generate_mac() -> std::io::Result<MacAddr> {
    let mut tail = [0u8; 3];
    crate::random::fill(&mut tail)?;
    Ok(MacAddr([0x52, 0x54, 0x00, tail[0], tail[1], tail[2]]))
}

async fn check_route_collisions(netlink: &Netlink, plan: &BridgedPlan) -> Result<(), StartError> {
    let wanted: Vec<Subnet> = plan
        .bridge
        .addresses
        .iter()
        .map(|(address, prefix)| Subnet::new(*address, *prefix))
        .chain(plan.bridge.routes.iter().map(|route| route.destination))
        .collect();
    let routes = Netlink::routes().await?;
    let Some(route) = routes
        .iter()
        .find(|route| wanted.contains(&route.destination))
    else {
        return Ok(());
    };
    let names = netlink.link_indexes().await?;
    let interface = route
        .interface
        .and_then(|index| names.get(&index).cloned())
        .unwrap_or_else(|| "(unknown)".to_owned());
    Err(StartError::SubnetInUse(interface))
}

async fn check_host_devices(
    def: &NetworkDef,
    devices: &HostDevices,
    netlink: &Netlink,
) -> Result<(), StartError> {
    let missing = |what, device: &str| StartError::MissingDevice {
        network: def.name.to_string(),
        what,
        device: device.to_owned(),
    };
    match devices {
        HostDevices::Bridge(bridge) => {
            if !netlink.is_bridge(bridge).await? {
                return Err(missing("bridge", bridge));
            }
        }
        HostDevices::Netdevs(names) => {
            for name in names {
                if netlink.link_index(name).await?.is_none() {
                    return Err(missing("interface", name));
                }
            }
        }
        HostDevices::PhysicalFunction(pf) => {
            if netlink.link_index(pf).await?.is_none() {
                return Err(missing("interface", pf));
            }
        }
        HostDevices::Pci(addresses) => {
            if let Some(address) = addresses
                .iter()
                .find(|address| !std::path::Path::new(&pci_sysfs(address)).exists())
            {
                return Err(missing("PCI device", &pci_name(address)));
            }
        }
    }
    Ok(())
}

fn pci_name(address: &PciAddress) -> String {
    format!(
        "{:04x}:{:02x}:{:02x}.{:x}",
        address.domain, address.bus, address.slot, address.function
    )
}

fn pci_sysfs(address: &PciAddress) -> String {
    format!("/sys/bus/pci/devices/{}", pci_name(address))
}

pub(crate) fn pool_for(def: &NetworkDef, devices: &HostDevices) -> Option<InterfacePool> {
    let mode = def.forward_mode()?;
    let members: Vec<String> = match devices {
        HostDevices::Bridge(_) => return None,
        HostDevices::Netdevs(names) => names.clone(),
        HostDevices::Pci(addresses) => addresses.iter().map(pci_name).collect(),
        HostDevices::PhysicalFunction(pf) => virtual_functions(pf),
    };
    Some(InterfacePool::new(mode, members))
}

/// The network devices of a physical function's virtual functions.
fn virtual_functions(pf: &str) -> Vec<String> {
    let device = PathBuf::from(format!("/sys/class/net/{pf}/device"));
    let Ok(entries) = std::fs::read_dir(&device) else {
        return Vec::new();
    };
    let mut functions: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("virtfn"))
        .filter_map(|entry| std::fs::read_dir(entry.path().join("net")).ok())
        .flat_map(|names| names.filter_map(Result::ok))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    functions.sort();
    functions
}

/// Whether the inbound `<bandwidth>` classes are on `bridge`.
pub(crate) async fn shaping_in_place(env: &Environment, bridge: &str) -> bool {
    let output = tokio::process::Command::new(&env.tc)
        .args(["class", "show", "dev", bridge])
        .output()
        .await;
    output.is_ok_and(|output| {
        String::from_utf8_lossy(&output.stdout).contains("class htb 1:2 parent 1:1")
    })
}

/// Sets the bridge's traffic control up again from scratch.
pub(crate) async fn reset_traffic_control(
    env: &Environment,
    bridge: &str,
    checksum_fix: bool,
    shaping: Option<&InboundShaping>,
) -> Result<(), StartError> {
    // Absent already, most likely: the error says nothing then.
    let _ = remove_root_qdisc(env, bridge).await;
    set_up_traffic_control(env, bridge, checksum_fix, shaping).await
}

/// The bridge's root qdisc, for libvirt's fix-up for guests that drop DHCP
/// replies with an unfilled UDP checksum (a `csum` action on udp port 68
/// leaving the bridge: nftables has no checksum statement) and for the
/// inbound `<bandwidth>` classes. The qdisc goes with the bridge. A kernel
/// without the csum action (CONFIG_NET_ACT_CSUM) gets no fix-up, and one
/// without sfq (CONFIG_NET_SCH_SFQ) no fair queueing within the network's
/// class, each with a warning.
async fn set_up_traffic_control(
    env: &Environment,
    bridge: &str,
    checksum_fix: bool,
    shaping: Option<&InboundShaping>,
) -> Result<(), StartError> {
    // Once found missing, a kernel feature is not looked for again.
    static CSUM_MISSING: AtomicBool = AtomicBool::new(false);
    static SFQ_MISSING: AtomicBool = AtomicBool::new(false);
    let checksum_fix = checksum_fix && !CSUM_MISSING.load(Ordering::Relaxed);
    if !checksum_fix && shaping.is_none() {
        return Ok(());
    }
    let failed = |message| StartError::TrafficControl {
        bridge: bridge.to_owned(),
        message,
    };
    let tc = |verb: &'static str, arguments: &[&str]| {
        let mut command = vec![verb, "add", "dev", bridge];
        command.extend(arguments);
        let command: Vec<String> = command.into_iter().map(str::to_owned).collect();
        run_tc(env, command)
    };
    tc("qdisc", &ROOT_QDISC).await.map_err(failed)?;
    if let Some(shaping) = shaping {
        for class in shaping.classes() {
            let class: Vec<&str> = class.iter().map(String::as_str).collect();
            tc("class", &class).await.map_err(failed)?;
        }
        if !SFQ_MISSING.load(Ordering::Relaxed) {
            match tc("qdisc", &LEAF_QDISC).await {
                Ok(()) => {}
                Err(message) if message.contains("qdisc kind is unknown") => {
                    SFQ_MISSING.store(true, Ordering::Relaxed);
                    tracing::warn!(
                        bridge,
                        "the kernel has no sfq qdisc (CONFIG_NET_SCH_SFQ); a shaped network's flows share one queue"
                    );
                }
                Err(message) => return Err(failed(message)),
            }
        }
    }
    if !checksum_fix {
        return Ok(());
    }
    let filter = [
        "prio", "2", "protocol", "ip", "parent", "1:", "u32", "match", "ip", "dport", "68", "ffff",
        "action", "csum", "ip", "and", "udp",
    ];
    match tc("filter", &filter).await {
        Ok(()) => Ok(()),
        Err(message) if message.contains("Failed to load TC action module") => {
            CSUM_MISSING.store(true, Ordering::Relaxed);
            tracing::warn!(
                bridge,
                "the kernel has no tc csum action (CONFIG_NET_ACT_CSUM); DHCP replies keep the checksum the host computed"
            );
            if shaping.is_some() {
                return Ok(());
            }
            remove_root_qdisc(env, bridge).await.map_err(failed)
        }
        Err(message) => Err(failed(message)),
    }
}

/// Removes the bridge's root qdisc, with whatever hangs from it.
async fn remove_root_qdisc(env: &Environment, bridge: &str) -> Result<(), String> {
    let remove = ["qdisc", "del", "dev", bridge, "root"].map(str::to_owned);
    run_tc(env, remove.to_vec()).await
}

/// Runs tc with `arguments`; on failure, returns what it said.
async fn run_tc(env: &Environment, arguments: Vec<String>) -> Result<(), String> {
    let output = tokio::process::Command::new(&env.tc)
        .args(arguments)
        .output()
        .await
        .map_err(|error| format!("cannot run {}: {error}", env.tc.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

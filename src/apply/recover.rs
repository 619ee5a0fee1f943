//! Networks after a restart of the daemon, and live updates: taking over
//! what an earlier run left (repairing only what is missing), removing
//! what an interrupted start or stop left, and bringing a running network
//! in line with an updated definition.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::definition::{ForwardMode, MacAddr, NetworkDef, error_chain};
use crate::plan::network::{self, BridgedPlan};
use crate::state::RunningNetwork;

use super::dnsmasq::{self, DnsmasqInstance};
use super::firewall::{self, Inventory};
use super::netlink::{HostRoute, Netlink};
use super::{Environment, StartError};

/// The host as one read sees it: links, addresses, routes and virtnet's
/// table.
pub struct HostSnapshot {
    links: HashMap<u32, String>,
    addresses: Vec<(u32, IpAddr, u8)>,
    routes: Vec<HostRoute>,
    firewall: Inventory,
}

impl HostSnapshot {
    pub async fn read() -> Result<Self, StartError> {
        let netlink = Netlink::connect()?;
        // One dump at a time: the kernel refuses a second on the same socket
        // (the routes come over a connection of their own).
        let dumps = async {
            Ok::<_, StartError>((netlink.link_indexes().await?, netlink.addresses().await?))
        };
        let (dumps, routes, firewall) = tokio::join!(dumps, Netlink::routes(), Inventory::read());
        let (links, addresses) = dumps?;
        let routes = routes?;
        Ok(Self {
            links,
            addresses,
            routes,
            firewall,
        })
    }
}

/// What became of a network found running at daemon start.
#[derive(Debug, PartialEq, Eq)]
pub enum Adoption {
    /// Taken over; the list names what had to be put back.
    Adopted { repaired: Vec<String> },
    /// Its bridge is gone (or is another link now): the network is down.
    BridgeVanished,
}

/// Takes over a network an earlier run started, checking each object and
/// re-creating only those missing. `running` is updated (a restarted
/// dnsmasq has a new pid).
pub async fn adopt(
    def: &NetworkDef,
    running: &mut RunningNetwork,
    env: &Environment,
    host: &HostSnapshot,
) -> Result<Adoption, StartError> {
    let Some(bridge) = running.bridge.clone() else {
        return Ok(Adoption::Adopted {
            repaired: Vec::new(),
        });
    };
    if host.links.get(&bridge.ifindex) != Some(&bridge.name) {
        return Ok(Adoption::BridgeVanished);
    }
    let plan = bridged_plan(def, &bridge.name, MacAddr(bridge.mac), env)?;
    let mut repaired = Vec::new();
    let netlink = Netlink::connect()?;
    for (address, prefix) in &plan.bridge.addresses {
        let present = host
            .addresses
            .iter()
            .any(|(index, found, _)| *index == bridge.ifindex && found == address);
        if !present {
            netlink
                .add_address(bridge.ifindex, *address, *prefix)
                .await?;
            repaired.push(format!("address {address}/{prefix}"));
        }
    }
    // After the addresses: the kernel takes a route whose gateway is on
    // none of the bridge's subnets only once an address puts it there.
    for route in &plan.bridge.routes {
        let present = host.routes.iter().any(|found| {
            found.destination == route.destination && found.interface == Some(bridge.ifindex)
        });
        if !present {
            netlink.add_route(bridge.ifindex, route).await?;
            repaired.push(format!("route {}", route.destination));
        }
    }
    if let Some(shaping) = &plan.inbound_shaping
        && !super::shaping_in_place(env, &bridge.name).await
    {
        super::reset_traffic_control(env, &bridge.name, plan.dhcp_checksum_fix, Some(shaping))
            .await?;
        repaired.push("inbound shaping".to_owned());
    }
    if let Some(rules) = &plan.firewall
        && firewall::adopt(rules, &host.firewall).await?
    {
        repaired.push("firewall rules".to_owned());
    }
    let alive = running
        .dnsmasq
        .as_ref()
        .is_some_and(DnsmasqInstance::is_running);
    if let Some(dnsmasq_plan) = &plan.dnsmasq
        && !alive
    {
        let (_, paths) = env.dnsmasq_files(&def.name, &bridge.name);
        running.dnsmasq = Some(dnsmasq::start(dnsmasq_plan, &paths, &env.dnsmasq).await?);
        repaired.push("dnsmasq".to_owned());
    }
    Ok(Adoption::Adopted { repaired })
}

fn bridged_plan(
    def: &NetworkDef,
    bridge: &str,
    mac: MacAddr,
    env: &Environment,
) -> Result<BridgedPlan, StartError> {
    let (files, _) = env.dnsmasq_files(&def.name, bridge);
    Ok(network::plan(def, bridge, mac, &files)?)
}

/// Removes whatever a start or stop that did not finish left of `def`
/// (whose bridge name is concrete): its bridge, rules, dnsmasq and files.
/// With `ifindex` known, only the bridge of that index goes (a link of the
/// same name made since by someone else stays). Goes on past errors and
/// returns them all.
pub async fn clean_up(def: &NetworkDef, env: &Environment, ifindex: Option<u32>) -> Vec<String> {
    if !ForwardMode::has_own_bridge(def.forward_mode()) {
        return Vec::new();
    }
    let Some(bridge) = def.bridge.name.as_ref().filter(|name| !name.is_template()) else {
        return Vec::new();
    };
    let bridge = bridge.as_str();
    let mut errors = Vec::new();
    let (_, paths) = env.dnsmasq_files(&def.name, bridge);
    if let Err(error) = dnsmasq::stop_all(&paths).await {
        errors.push(error_chain(&error));
    }
    if let Some(rules) = crate::plan::firewall::plan(def, bridge)
        && let Err(error) = firewall::remove_leftovers(&rules).await
    {
        errors.push(error_chain(&error));
    }
    let removed = async {
        let netlink = Netlink::connect()?;
        let index = netlink.link_index(bridge).await?;
        let ours = match ifindex {
            Some(known) => index == Some(known),
            None => netlink.is_bridge(bridge).await?,
        };
        if let (true, Some(index)) = (ours, index) {
            netlink.delete_link(index).await?;
        }
        Ok::<(), super::netlink::NetlinkError>(())
    };
    if let Err(error) = removed.await {
        errors.push(error_chain(&error));
    }
    errors
}

/// Brings a running network in line with its updated definition: rules
/// replaced in one transaction when they changed; dnsmasq told to re-read
/// its hosts files (SIGHUP) when only those changed, restarted when its
/// configuration did. Returns the network's new running state.
pub async fn refresh(
    def: &NetworkDef,
    running: &RunningNetwork,
    env: &Environment,
) -> Result<RunningNetwork, StartError> {
    let mut refreshed = running.clone();
    let Some(bridge) = &running.bridge else {
        let devices = network::host_devices(def);
        let mut pool = super::pool_for(def, &devices);
        if let (Some(pool), Some(old)) = (pool.as_mut(), &running.pool) {
            pool.keep_connections(old);
        }
        refreshed.host_devices = Some(devices);
        refreshed.pool = pool;
        return Ok(refreshed);
    };
    let plan = bridged_plan(def, &bridge.name, MacAddr(bridge.mac), env)?;
    match (&running.firewall, &plan.firewall) {
        (Some(old), Some(new)) if old != new => firewall::replace(old, new).await?,
        (Some(old), None) => firewall::stop(old).await?,
        (None, Some(new)) => firewall::start(new).await?,
        _ => {}
    }
    refreshed.firewall.clone_from(&plan.firewall);
    let (_, paths) = env.dnsmasq_files(&def.name, &bridge.name);
    refreshed.dnsmasq = match (&running.dnsmasq, &plan.dnsmasq) {
        (Some(instance), Some(new))
            if instance.is_running()
                && std::fs::read_to_string(&instance.paths.config)
                    .ok()
                    .as_ref()
                    == Some(&new.config) =>
        {
            instance.reload_hosts(new)?;
            Some(instance.clone())
        }
        (old, new) => {
            if let Some(instance) = old {
                instance.stop().await?;
            }
            match new {
                Some(new) => Some(dnsmasq::start(new, &paths, &env.dnsmasq).await?),
                None => None,
            }
        }
    };
    Ok(refreshed)
}

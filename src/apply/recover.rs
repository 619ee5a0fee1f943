//! Networks after a restart of the daemon: taking over what an earlier run
//! left (repairing only what is missing or out of line with the
//! definition), and removing what an interrupted start or stop left.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::apply::RunningNetwork;
use crate::definition::{ForwardMode, MacAddr, NetworkDef};

use super::dnsmasq;
use super::firewall::Firewall;
use super::netlink::{HostRoute, Netlink};
use super::refresh::{DnsmasqChange, bridged_plan, converge_dnsmasq};
use super::{Environment, StartError, StopError, StopStep};

/// The host as one read sees it: links (name, up), addresses and routes.
pub struct HostSnapshot {
    links: HashMap<u32, (String, bool)>,
    addresses: Vec<(u32, IpAddr, u8)>,
    routes: Vec<HostRoute>,
}

impl HostSnapshot {
    pub async fn read() -> Result<Self, StartError> {
        let netlink = Netlink::connect()?;
        // One dump at a time: the kernel refuses a second on the same socket
        // (the routes come over a connection of their own).
        let dumps = async {
            Ok::<_, StartError>((netlink.link_states().await?, netlink.addresses().await?))
        };
        let (dumps, routes) = tokio::join!(dumps, Netlink::routes());
        let (links, addresses) = dumps?;
        let routes = routes?;
        Ok(Self {
            links,
            addresses,
            routes,
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
/// dnsmasq has a new pid). Its rules are taken into `firewall`, which
/// checks them with the rest of the table once every network is adopted.
pub async fn adopt(
    def: &NetworkDef,
    running: &mut RunningNetwork,
    env: &Environment,
    firewall: &Firewall,
    host: &HostSnapshot,
) -> Result<Adoption, StartError> {
    let Some(bridge) = running.bridge.clone() else {
        return Ok(Adoption::Adopted {
            repaired: Vec::new(),
        });
    };
    let Some((name, up)) = host.links.get(&bridge.ifindex) else {
        return Ok(Adoption::BridgeVanished);
    };
    if *name != bridge.name {
        return Ok(Adoption::BridgeVanished);
    }
    let plan = bridged_plan(def, &bridge.name, MacAddr(bridge.mac), env)?;
    let mut repaired = Vec::new();
    let netlink = Netlink::connect()?;
    // Before the addresses: a link set down loses its IPv6 addresses, and
    // the routes of all of them.
    if !up {
        netlink.set_up(bridge.ifindex).await?;
        repaired.push("the bridge up".to_owned());
    }
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
    // A dnsmasq gone, or one an interrupted update left with other files.
    let (_, paths) = env.dnsmasq_files(&def.name, &bridge.name);
    let (instance, change) =
        converge_dnsmasq(running.dnsmasq.as_ref(), plan.dnsmasq.as_ref(), &paths, env).await?;
    running.dnsmasq = instance;
    match change {
        DnsmasqChange::Unchanged => {}
        DnsmasqChange::Reloaded => repaired.push("dnsmasq's hosts files".to_owned()),
        DnsmasqChange::Restarted => repaired.push("dnsmasq".to_owned()),
        DnsmasqChange::Found => repaired.push("the record of dnsmasq's pid".to_owned()),
    }
    // Last: a network whose adoption failed has no rules to keep.
    if let Some(rules) = &plan.firewall {
        firewall.adopt(rules).await;
    }
    running.firewall.clone_from(&plan.firewall);
    Ok(Adoption::Adopted { repaired })
}

/// What became of a running network that something happened to.
#[derive(Debug)]
pub enum Healed {
    /// Whole; the list names what had to be put back (empty: nothing).
    Whole { repaired: Vec<String> },
    /// Its bridge is gone: the rest of it was taken away too, but for what
    /// the error says.
    Gone { leftovers: Option<StopError> },
}

/// Checks a running network while the daemon runs, when its bridge or its
/// dnsmasq was harmed: what is missing is put back as at adoption (the
/// bridge brought up, its addresses and routes, dnsmasq); a network whose
/// bridge is gone is taken away. `running` is updated.
pub async fn heal(
    def: &NetworkDef,
    running: &mut RunningNetwork,
    env: &Environment,
    firewall: &Firewall,
) -> Result<Healed, StartError> {
    let host = HostSnapshot::read().await?;
    match adopt(def, running, env, firewall, &host).await? {
        Adoption::Adopted { repaired } => Ok(Healed::Whole { repaired }),
        Adoption::BridgeVanished => Ok(Healed::Gone {
            leftovers: super::take_down(running, firewall).await.err(),
        }),
    }
}

/// Removes whatever a start or stop that did not finish left of `def`
/// (whose bridge name is concrete): its bridge, dnsmasq and files (its
/// rules go when the table is put right, [`Firewall::reconcile`]). With
/// `ifindex` known, only the bridge of that index goes (a link of the same
/// name made since by someone else stays). Goes on past errors and returns
/// them all.
pub async fn clean_up(def: &NetworkDef, env: &Environment, ifindex: Option<u32>) -> Vec<StopStep> {
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
        errors.push(error.into());
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
        // A stop that retired the bridge before the daemon died.
        if let Some(known) = ifindex {
            super::remove_retired(known).await?;
        }
        Ok::<(), super::netlink::NetlinkError>(())
    };
    if let Err(error) = removed.await {
        errors.push(error.into());
    }
    errors
}

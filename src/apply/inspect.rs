//! What `virtnet doctor` sees of the host: sysctls, links with their
//! addresses and MTUs, routes, each dnsmasq's sockets, what is out of
//! place in virtnet's table, and other tables that drop the networks'
//! traffic. Only reads; the findings are decided in
//! `plan::diagnosis`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::definition::{MacAddr, NetworkDef};
use crate::plan::diagnosis::{
    self, DnsmasqFacts, Finding, ForeignDrop, HostFacts, LinkFacts, Listener, NetworkFacts,
    Protocol, ZoneFacts,
};
use crate::plan::firewalld::ZoneRequest;

use super::dnsmasq::DnsmasqInstance;
use super::firewall::Firewall;
use super::firewalld::{self, BridgeZone};
use super::netlink::Netlink;
use super::openings::Openings;
use super::refresh::bridged_plan;
use super::{Environment, RunningNetwork, StartError, sysctl};

/// The findings about running `networks` (each with its definition),
/// whose rules `firewall` keeps. Networks without a bridge of their own
/// have nothing to find.
pub async fn diagnose(
    networks: &[(NetworkDef, RunningNetwork)],
    env: &Environment,
    firewall: &Firewall,
    openings: &Openings,
) -> Result<Vec<Finding>, StartError> {
    let mut host = observe_host(firewall).await?;
    host.foreign_drops = match openings.blocked().await {
        Ok(blocked) => blocked
            .iter()
            .map(|blocked| ForeignDrop {
                network: blocked.network.clone(),
                description: blocked.describe(),
            })
            .collect(),
        // Unknown, as unreadable sockets are: no finding, but a trace.
        Err(error) => {
            tracing::warn!(
                "doctor cannot read other tables: {}",
                crate::definition::error_chain(&error)
            );
            Vec::new()
        }
    };
    let mut facts = Vec::new();
    for (def, running) in networks {
        let Some(bridge) = &running.bridge else {
            continue;
        };
        let plan = bridged_plan(def, &bridge.name, MacAddr(bridge.mac), env)?;
        let dnsmasq = match (&running.dnsmasq, &plan.dnsmasq) {
            (Some(instance), Some(dnsmasq_plan)) => Some(
                observe_dnsmasq(
                    instance.clone(),
                    diagnosis::expected_listeners(dnsmasq_plan),
                )
                .await,
            ),
            _ => None,
        };
        let mut network = NetworkFacts::of(def, &plan, bridge.ifindex, dnsmasq);
        network.zone = observe_zone(def, &bridge.name).await;
        facts.push(network);
    }
    Ok(diagnosis::diagnose(&host, &facts))
}

/// The firewalld zone `bridge` should be in and the one it is in; `None`
/// when there is nothing to compare (no zone asked for, firewalld not
/// running, or not answering: the latter is logged).
async fn observe_zone(def: &NetworkDef, bridge: &str) -> Option<ZoneFacts> {
    let wanted = match ZoneRequest::of(def) {
        ZoneRequest::Nothing => return None,
        ZoneRequest::Named(zone) => zone,
        ZoneRequest::Default(zone) => zone.name().to_owned(),
    };
    match firewalld::bridge_zone(None, bridge).await {
        Ok(BridgeZone::FirewalldNotRunning) => None,
        Ok(BridgeZone::NoZone) => Some(ZoneFacts {
            wanted,
            actual: None,
        }),
        Ok(BridgeZone::InZone(actual)) => Some(ZoneFacts {
            wanted,
            actual: Some(actual),
        }),
        Err(error) => {
            tracing::warn!(
                "doctor cannot ask firewalld about {bridge}: {}",
                crate::definition::error_chain(&error)
            );
            None
        }
    }
}

/// The host as one look sees it.
async fn observe_host(firewall: &Firewall) -> Result<HostFacts, StartError> {
    let netlink = Netlink::connect()?;
    // One dump at a time on a socket; the routes have a connection of
    // their own, and nft runs beside them.
    let dumps =
        async { Ok::<_, StartError>((netlink.link_facts().await?, netlink.addresses().await?)) };
    let (dumps, routes, table) = tokio::join!(dumps, Netlink::routes(), firewall.inspect());
    let (mut links, addresses) = dumps?;
    for (index, address, prefix) in addresses {
        if let Some(link) = links.get_mut(&index) {
            link.addresses.push((address, prefix));
        }
    }
    let sysctls = run_blocking(move || read_sysctls(links)).await;
    Ok(HostFacts {
        routes: routes?,
        table_out_of_place: table?,
        ..sysctls
    })
}

/// Runs `work` (reads under /proc) off the runtime's thread.
async fn run_blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done,
        // Blocking tasks are not cancelled: only a panic ends one early.
        Err(failure) => std::panic::resume_unwind(failure.into_panic()),
    }
}

/// The forwarding and reverse path filter sysctls, the links' own among
/// them.
fn read_sysctls(mut links: HashMap<u32, LinkFacts>) -> HostFacts {
    for link in links.values_mut() {
        link.rp_filter = sysctl::read(&format!("ipv4/conf/{}/rp_filter", link.name));
    }
    HostFacts {
        ipv4_forwarding: sysctl::read("ipv4/ip_forward").map(|value| value != 0),
        ipv6_forwarding: sysctl::read("ipv6/conf/all/forwarding").map(|value| value != 0),
        rp_filter_all: sysctl::read("ipv4/conf/all/rp_filter"),
        links,
        ..HostFacts::default()
    }
}

async fn observe_dnsmasq(instance: DnsmasqInstance, expected: Vec<Listener>) -> DnsmasqFacts {
    run_blocking(move || {
        let alive = instance.is_running();
        DnsmasqFacts {
            pid: instance.pid,
            alive,
            expected,
            listening: alive.then(|| listeners(instance.pid)).flatten(),
        }
    })
    .await
}

/// The ports process `pid` listens on (UDP sockets bound, TCP sockets
/// listening), in its network namespace; `None` when its descriptors
/// cannot be read (without CAP_SYS_PTRACE, say).
fn listeners(pid: u32) -> Option<Vec<Listener>> {
    let proc = Path::new("/proc").join(pid.to_string());
    let inodes: HashSet<u64> = std::fs::read_dir(proc.join("fd"))
        .ok()?
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    let mut found = Vec::new();
    for (table, protocol) in [
        ("udp", Protocol::Udp),
        ("udp6", Protocol::Udp),
        ("tcp", Protocol::Tcp),
        ("tcp6", Protocol::Tcp),
    ] {
        let Ok(text) = std::fs::read_to_string(proc.join("net").join(table)) else {
            continue;
        };
        for (port, state, inode) in text.lines().skip(1).filter_map(socket_line) {
            // TCP's 0A is LISTEN; a bound UDP socket is 07 (unconnected).
            let listening = match protocol {
                Protocol::Tcp => state == "0A",
                Protocol::Udp => true,
            };
            let listener = Listener { protocol, port };
            if listening && inodes.contains(&inode) && !found.contains(&listener) {
                found.push(listener);
            }
        }
    }
    Some(found)
}

/// The local port, state and inode of a line of /proc/net/{udp,tcp}[6]:
/// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout
/// inode …`, the address as `HEX:PORT`.
fn socket_line(line: &str) -> Option<(u16, &str, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (_, port) = fields.get(1)?.rsplit_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some((port, fields.get(3)?, fields.get(9)?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_lines_give_port_state_and_inode() {
        let udp = "  120: 017A000A:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 48213 2 0000000000000000 0";
        assert_eq!(socket_line(udp), Some((53, "07", 48213)));
        let tcp6 = "   0: 00000000000000000000000000000000:0043 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0";
        assert_eq!(socket_line(tcp6), Some((67, "0A", 777)));
        assert_eq!(socket_line("  sl  local_address rem_address   st"), None);
    }

    #[test]
    fn a_process_that_is_not_there_has_no_known_sockets() {
        assert_eq!(listeners(u32::MAX), None);
    }

    #[test]
    fn this_process_listening_on_udp_is_seen() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let found = listeners(std::process::id()).unwrap();
        assert!(found.contains(&Listener {
            protocol: Protocol::Udp,
            port
        }));
    }
}

//! Which firewalld zone a network's bridge belongs in, and the zones and
//! policies virtnet defines when libvirt's are not installed: pure data.
//!
//! libvirt (≥ 8.10, `networkAddFirewallRules`) puts the bridge of every
//! network it makes (forward modes nat, route and isolated) into a zone
//! when firewalld runs: the definition's `<bridge zone='…'/>`, else
//! `libvirt-routed` for route and `libvirt` for the others. An open
//! network gets a zone only when its definition names one (it has no
//! rules of its own, so the host's policy stays in charge). Modes without
//! a bridge of their own (bridge, private, vepa, passthrough, hostdev)
//! never get one: the bridge or devices are the host's, not the network's.

use crate::definition::{ForwardMode, NetworkDef};

/// What a network asks of firewalld.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneRequest {
    /// Nothing: firewalld's settings for the bridge are left to the host.
    Nothing,
    /// The zone the definition names: the start fails unless firewalld
    /// runs and takes the bridge into it, as in libvirt.
    Named(String),
    /// libvirt's zone for this kind of network, when firewalld runs.
    Default(DefaultZone),
}

/// The zones libvirt puts its networks in by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultZone {
    /// NAT and isolated networks: guests reach the host's DHCP, DNS, TFTP
    /// and ICMP; what they may forward is for virtnet's own table to say.
    Libvirt,
    /// Routed networks: the same services on the host, and forwarding both
    /// ways between the guests and any other zone.
    LibvirtRouted,
}

impl ZoneRequest {
    pub fn of(def: &NetworkDef) -> Self {
        let mode = def.forward_mode();
        if !ForwardMode::has_own_bridge(mode) {
            return Self::Nothing;
        }
        if let Some(zone) = &def.bridge.zone {
            return Self::Named(zone.to_string());
        }
        match mode {
            Some(ForwardMode::Open) => Self::Nothing,
            Some(ForwardMode::Route) => Self::Default(DefaultZone::LibvirtRouted),
            _ => Self::Default(DefaultZone::Libvirt),
        }
    }
}

/// A zone's permanent settings, as firewalld's `addZone2` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneDefinition {
    pub name: &'static str,
    pub short: &'static str,
    pub description: &'static str,
    /// Services on the host that the zone's interfaces may reach; the rest
    /// of their traffic to the host is rejected (the zone's `default`
    /// target).
    pub services: &'static [&'static str],
    pub protocols: &'static [&'static str],
}

/// A policy's permanent settings, as firewalld's `addPolicy` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDefinition {
    pub name: &'static str,
    pub short: &'static str,
    pub description: &'static str,
    pub ingress_zones: &'static [&'static str],
    pub egress_zones: &'static [&'static str],
    /// `ACCEPT`, `REJECT`, `DROP` or `CONTINUE`.
    pub target: &'static str,
}

/// What a default zone needs: the zone and its policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSet {
    pub zone: ZoneDefinition,
    pub policies: &'static [PolicyDefinition],
    /// The policy whose presence, with the zone's, tells that the set is
    /// installed, as libvirt checks it: `libvirt-routed-out` before it uses
    /// `libvirt-routed`; none for `libvirt`, whose own definition (target
    /// ACCEPT) needs no policy, where virtnet's has one.
    pub present_with: Option<&'static str>,
}

impl ZoneSet {
    /// Whether firewalld, with these zones and policies, has the set (its
    /// own, libvirt's, or an administrator's).
    pub fn is_installed(&self, zones: &[String], policies: &[String]) -> bool {
        zones.iter().any(|zone| zone == self.zone.name)
            && self
                .present_with
                .is_none_or(|wanted| policies.iter().any(|policy| policy == wanted))
    }
}

/// What guests may reach on the host, whatever the mode: DHCP (v4 and
/// v6), DNS and TFTP from the network's dnsmasq, and ICMP (ping, and
/// IPv6's neighbour discovery and router solicitations).
const HOST_SERVICES: &[&str] = &["dhcp", "dhcpv6", "dns", "tftp"];
const HOST_PROTOCOLS: &[&str] = &["icmp", "ipv6-icmp"];

const LIBVIRT_POLICIES: &[PolicyDefinition] = &[PolicyDefinition {
    name: "virtnet-guests-out",
    short: "virtnet-guests-out",
    description: "Lets traffic from the guests of virtnet's NAT and isolated networks be forwarded; virtnet's own nftables table decides what each network may forward.",
    ingress_zones: &["libvirt"],
    egress_zones: &["ANY"],
    target: "ACCEPT",
}];

const LIBVIRT_ROUTED_POLICIES: &[PolicyDefinition] = &[
    PolicyDefinition {
        name: "libvirt-routed-out",
        short: "libvirt-routed-out",
        description: "Lets traffic from the guests of routed networks be forwarded to the other zones.",
        ingress_zones: &["libvirt-routed"],
        egress_zones: &["ANY"],
        target: "ACCEPT",
    },
    PolicyDefinition {
        name: "libvirt-routed-in",
        short: "libvirt-routed-in",
        description: "Lets traffic from the other zones be forwarded to the guests of routed networks.",
        ingress_zones: &["ANY"],
        egress_zones: &["libvirt-routed"],
        target: "ACCEPT",
    },
];

impl DefaultZone {
    pub fn name(self) -> &'static str {
        self.definitions().zone.name
    }

    /// virtnet's own definitions of the zone and its policies, with the
    /// meaning of libvirt's (its package installs them in
    /// /usr/lib/firewalld; without it, virtnet adds these).
    pub fn definitions(self) -> ZoneSet {
        match self {
            Self::Libvirt => ZoneSet {
                zone: ZoneDefinition {
                    name: "libvirt",
                    short: "libvirt",
                    description: "The bridges of virtual networks (NAT and isolated). Their guests may reach DHCP, DNS, TFTP and ICMP on the host, nothing else of it; forwarding is left to the network's own firewall.",
                    services: HOST_SERVICES,
                    protocols: HOST_PROTOCOLS,
                },
                policies: LIBVIRT_POLICIES,
                present_with: None,
            },
            Self::LibvirtRouted => ZoneSet {
                zone: ZoneDefinition {
                    name: "libvirt-routed",
                    short: "libvirt-routed",
                    description: "The bridges of routed virtual networks. Their guests may reach DHCP, DNS, TFTP and ICMP on the host, nothing else of it; traffic is forwarded to and from them.",
                    services: HOST_SERVICES,
                    protocols: HOST_PROTOCOLS,
                },
                policies: LIBVIRT_ROUTED_POLICIES,
                present_with: Some("libvirt-routed-out"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(xml: &str) -> ZoneRequest {
        ZoneRequest::of(&NetworkDef::parse(xml).expect("valid network"))
    }

    fn network(forward: &str, bridge: &str) -> String {
        format!(
            "<network><name>n</name>{forward}{bridge}<ip address='192.168.7.1' prefix='24'/></network>"
        )
    }

    #[test]
    fn nat_and_isolated_networks_ask_for_libvirts_zone() {
        let nat = network("<forward mode='nat'/>", "<bridge name='vb0'/>");
        let isolated = network("", "<bridge name='vb0'/>");
        for xml in [nat, isolated] {
            assert_eq!(request(&xml), ZoneRequest::Default(DefaultZone::Libvirt));
        }
    }

    #[test]
    fn routed_networks_ask_for_the_routed_zone() {
        let xml = network("<forward mode='route'/>", "<bridge name='vb0'/>");
        assert_eq!(
            request(&xml),
            ZoneRequest::Default(DefaultZone::LibvirtRouted)
        );
    }

    #[test]
    fn a_named_zone_wins_in_every_mode_with_a_bridge_of_its_own() {
        for forward in [
            "",
            "<forward mode='nat'/>",
            "<forward mode='route'/>",
            "<forward mode='open'/>",
        ] {
            let xml = network(forward, "<bridge name='vb0' zone='trusted'/>");
            assert_eq!(
                request(&xml),
                ZoneRequest::Named("trusted".into()),
                "{forward}"
            );
        }
    }

    #[test]
    fn open_networks_and_host_bridges_ask_for_nothing() {
        let open = network("<forward mode='open'/>", "<bridge name='vb0'/>");
        assert_eq!(request(&open), ZoneRequest::Nothing);
        let host_bridge =
            "<network><name>n</name><forward mode='bridge'/><bridge name='br0'/></network>";
        assert_eq!(request(host_bridge), ZoneRequest::Nothing);
        let passthrough = "<network><name>n</name><forward mode='passthrough'><interface dev='eth9'/></forward></network>";
        assert_eq!(request(passthrough), ZoneRequest::Nothing);
    }

    #[test]
    fn our_definitions_open_only_what_libvirts_do_to_the_host() {
        for zone in [DefaultZone::Libvirt, DefaultZone::LibvirtRouted] {
            let set = zone.definitions();
            assert_eq!(set.zone.name, zone.name());
            assert_eq!(set.zone.services, ["dhcp", "dhcpv6", "dns", "tftp"]);
            assert_eq!(set.zone.protocols, ["icmp", "ipv6-icmp"]);
            // No policy lets anything reach the host itself.
            assert!(
                set.policies
                    .iter()
                    .all(|policy| !policy.egress_zones.contains(&"HOST"))
            );
        }
        let routed = DefaultZone::LibvirtRouted.definitions();
        let names: Vec<_> = routed.policies.iter().map(|policy| policy.name).collect();
        assert!(names.contains(&"libvirt-routed-out"));
    }

    #[test]
    fn names_fit_firewalld() {
        // firewalld refuses longer names: its chains are named after them.
        for zone in [DefaultZone::Libvirt, DefaultZone::LibvirtRouted] {
            let set = zone.definitions();
            assert!(set.zone.name.len() <= 17, "{}", set.zone.name);
            for policy in set.policies {
                assert!(policy.name.len() <= 18, "{}", policy.name);
            }
        }
    }

    #[test]
    fn a_set_is_installed_as_libvirt_checks_it() {
        let names = |list: &[&str]| {
            list.iter()
                .map(|name| (*name).to_owned())
                .collect::<Vec<_>>()
        };
        let libvirt = DefaultZone::Libvirt.definitions();
        assert!(libvirt.is_installed(&names(&["public", "libvirt"]), &[]));
        assert!(!libvirt.is_installed(&names(&["public"]), &names(&["virtnet-guests-out"])));
        let routed = DefaultZone::LibvirtRouted.definitions();
        assert!(!routed.is_installed(&names(&["libvirt-routed"]), &[]));
        assert!(routed.is_installed(&names(&["libvirt-routed"]), &names(&["libvirt-routed-out"])));
    }
}

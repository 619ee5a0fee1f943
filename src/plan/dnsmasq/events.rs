//! The rtnetlink event groups a running dnsmasq can leave.

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

//! Plans: what a network needs on the host, as pure data computed from its
//! definition (links, addresses, firewall rules, dnsmasq configuration).
//! Nothing here touches the system.

pub mod diagnosis;
pub mod dnsmasq;
pub mod firewall;
pub mod firewalld;
pub mod naming;
pub mod network;
pub mod openings;
pub mod port;

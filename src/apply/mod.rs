//! Applying plans to the host: the kernel (rtnetlink, sysctls, nftables)
//! and dnsmasq. Kept thin: the decisions are made in `plan`.

pub mod firewall;
pub mod netlink;

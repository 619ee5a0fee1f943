//! The DHCP lines of a subnet: its ranges as dnsmasq wants them, with the
//! checks libvirt repeats here.

use std::net::Ipv4Addr;

use crate::definition::{
    self, DhcpRange, IpDef, IpFamily, Lease, LeaseUnit, format_address as address, ipv4_mask,
};

use super::DnsmasqError;
use super::config::Lines;

/// The DHCP lines of one subnet; returns how many leases its ranges hold.
pub(super) fn dhcp_lines(config: &mut Lines, ip: &IpDef) -> Result<u64, DnsmasqError> {
    let prefix = prefix(ip)?;
    let mut leases = 0;
    for range in &ip.dhcp.ranges {
        leases += u64::from(range_size(range, ip, prefix)?);
        let (start, end) = (address(&range.start), address(&range.end));
        // dnsmasq wants a netmask for IPv4, a prefix length for IPv6.
        let mask = match ip.family() {
            IpFamily::V4 => netmask(prefix).to_string(),
            IpFamily::V6 => prefix.to_string(),
        };
        let lease = range.lease.map(lease_time).map(|time| format!(",{time}"));
        config.push(format_args!(
            "dhcp-range={start},{end},{mask}{}",
            lease.unwrap_or_default()
        ));
    }
    if ip.dhcp.ranges.is_empty() && !ip.dhcp.hosts.is_empty() {
        // Hosts only: a static range turns the DHCP service on.
        let bridge_address = address(&ip.address);
        match ip.family() {
            IpFamily::V4 => config.push(format_args!("dhcp-range={bridge_address},static")),
            IpFamily::V6 => {
                config.push(format_args!("dhcp-range={bridge_address},static,{prefix}"))
            }
        }
    }
    if ip.family() == IpFamily::V4 {
        config.push("dhcp-no-override\ndhcp-authoritative");
        if let Some(bootp) = &ip.dhcp.bootp {
            match bootp.server {
                Some(server) => config.push(format_args!(
                    "dhcp-boot={},,{}",
                    bootp.file,
                    address(&server)
                )),
                None => config.push(format_args!("dhcp-boot={}", bootp.file)),
            }
        }
    }
    Ok(leases)
}

/// The prefix length libvirt uses for a subnet; unlike
/// [`IpDef::effective_prefix`], 0 for an unspecified address without one.
pub(super) fn prefix(ip: &IpDef) -> Result<u8, DnsmasqError> {
    if ip.prefix == 0 && ip.netmask.is_none() && ip.address.is_unspecified() {
        return Ok(0);
    }
    ip.effective_prefix()
        .ok_or_else(|| DnsmasqError::InvalidPrefix {
            address: address(&ip.address),
        })
}

fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(ipv4_mask(prefix))
}

/// How many addresses a range holds, after the checks libvirt repeats
/// here: inside the subnet, not its network or broadcast address, in
/// order, at most 65536 addresses.
fn range_size(range: &DhcpRange, ip: &IpDef, prefix: u8) -> Result<u32, DnsmasqError> {
    definition::range_size(&range.start, &range.end, Some((&ip.address, Some(prefix)))).map_err(
        |_| DnsmasqError::Range {
            start: address(&range.start),
            end: address(&range.end),
            network: format!("{}/{prefix}", address(&ip.address)),
        },
    )
}

/// dnsmasq's lease time: `infinite`, or a number with `s`, `m` or `h`.
pub(super) fn lease_time(lease: Lease) -> String {
    if lease.expiry == 0 {
        return "infinite".to_owned();
    }
    let unit = match lease.unit {
        LeaseUnit::Seconds => 's',
        LeaseUnit::Minutes => 'm',
        LeaseUnit::Hours => 'h',
    };
    format!("{}{unit}", lease.expiry)
}

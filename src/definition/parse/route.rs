//! Static `<route>`s and the reachability of their gateways.

use std::net::IpAddr;

use crate::definition::*;
use crate::xml::tree::Element;

use super::scalars::{parse_address, unsigned};
use super::shape::check_shape;
use super::{Result, invalid, unsupported};

pub(super) fn route(element: &Element, network: &str) -> Result<Route> {
    check_shape(
        element,
        &[
            "family", "address", "netmask", "prefix", "gateway", "metric",
        ],
        &[],
    )?;
    let prefix = unsigned::<u32>(element, "prefix")?;
    let metric = unsigned::<u32>(element, "metric")?;
    if metric == Some(0) {
        return Err(invalid(
            "Invalid value for attribute 'metric' in element 'route': Zero is not permitted",
        ));
    }
    let address_text = element.attribute("address").ok_or_else(|| {
        invalid(format!(
            "{network}: Missing required address attribute in route definition"
        ))
    })?;
    let gateway_text = element.attribute("gateway").ok_or_else(|| {
        invalid(format!(
            "{network}: Missing required gateway attribute in route definition"
        ))
    })?;
    let address = parse_address(address_text).ok_or_else(|| {
        invalid(format!(
            "{network}: Bad network address '{}' in route definition",
            address_text.escape_debug()
        ))
    })?;
    let gateway = parse_address(gateway_text).ok_or_else(|| {
        invalid(format!(
            "{network}: Bad gateway address '{}' in route definition",
            gateway_text.escape_debug()
        ))
    })?;
    let netmask_text = element.attribute("netmask");
    let family_attr = element.attribute("family");
    let (family, netmask) = match family_attr {
        None | Some("ipv4") => {
            let label = if family_attr.is_none() {
                "No family"
            } else {
                "IPv4 family"
            };
            if !address.is_ipv4() {
                return Err(invalid(format!(
                    "{network}: {label} specified for non-IPv4 address '{address_text}' in route definition"
                )));
            }
            if !gateway.is_ipv4() {
                return Err(invalid(format!(
                    "{network}: {label} specified for non-IPv4 gateway '{address_text}' in route definition"
                )));
            }
            let netmask = match netmask_text {
                Some(text) => {
                    let mask = parse_address(text).ok_or_else(|| {
                        invalid(format!(
                            "{network}: Bad netmask address '{}' in route definition",
                            text.escape_debug()
                        ))
                    })?;
                    let IpAddr::V4(mask) = mask else {
                        return Err(invalid(format!(
                            "{network}: Invalid netmask '{text}' for address '{address_text}' (both must be IPv4)"
                        )));
                    };
                    if prefix.is_some() {
                        return Err(invalid(format!(
                            "{network}: Route definition cannot have both a prefix and a netmask"
                        )));
                    }
                    Some(mask)
                }
                None => None,
            };
            if let Some(prefix) = prefix.filter(|&p| p > 32) {
                return Err(invalid(format!(
                    "{network}: Invalid prefix {prefix} specified in route definition, must be 0 - 32"
                )));
            }
            (family_attr.map(|_| IpFamily::V4), netmask)
        }
        Some("ipv6") => {
            if !address.is_ipv6() {
                return Err(invalid(format!(
                    "{network}: ipv6 family specified for non-IPv6 address '{address_text}' in route definition"
                )));
            }
            if netmask_text.is_some() {
                return Err(invalid(format!(
                    "{network}: Specifying netmask invalid for IPv6 address '{address_text}' in route definition"
                )));
            }
            if !gateway.is_ipv6() {
                return Err(invalid(format!(
                    "{network}: ipv6 specified for non-IPv6 gateway address '{gateway_text}' in route definition"
                )));
            }
            if let Some(prefix) = prefix.filter(|&p| p > 128) {
                return Err(invalid(format!(
                    "{network}: Invalid prefix {prefix} specified in route definition, must be 0 - 128"
                )));
            }
            (Some(IpFamily::V6), None)
        }
        Some(other) => {
            return Err(invalid(format!(
                "{network}: Unrecognized family '{}' in route definition",
                other.escape_debug()
            )));
        }
    };
    let bits = match netmask {
        Some(mask) => u32::from(mask).count_ones() as u8,
        None => prefix.unwrap_or(0) as u8,
    };
    if network_address(&address, bits) != address {
        return Err(invalid(format!(
            "{network}: Address '{address_text}' in route definition is not a network address"
        )));
    }
    Ok(Route {
        family,
        address,
        netmask,
        prefix: prefix.map(|p| p as u8),
        gateway,
        metric,
    })
}

pub(super) fn check_route_gateways(routes: &[Route], ips: &[IpDef], network: &str) -> Result<()> {
    for route in routes {
        let reachable = ips.iter().any(|ip| {
            IpFamily::of(&ip.address) == IpFamily::of(&route.gateway)
                && ip
                    .effective_prefix()
                    .is_some_and(|prefix| in_subnet(&ip.address, prefix, &route.gateway))
        });
        if !reachable {
            return Err(unsupported(format!(
                "unreachable static route gateway '{}' specified for network '{network}'",
                route.gateway
            )));
        }
    }
    Ok(())
}

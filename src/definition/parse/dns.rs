//! `<dns>`: forwarders and the host, SRV and TXT records, also as
//! net-update reads them to find an entry.

use std::net::IpAddr;

use crate::definition::*;
use crate::xml::tree::Element;

use super::scalars::{config_text, optional_text, parse_address, parse_unsigned, unsigned, yes_no};
use super::shape::{check_shape, check_text_only};
use super::{Result, invalid};

pub(super) fn dns(element: &Element, network: &str) -> Result<Dns> {
    check_shape(
        element,
        &["enable", "forwardPlainNames"],
        &["forwarder", "txt", "srv", "host"],
    )?;
    let enable = yes_no(element, "enable")?;
    let forward_plain_names = yes_no(element, "forwardPlainNames")?;
    let forwarders = element
        .children_named("forwarder")
        .map(|forwarder| {
            check_shape(forwarder, &["addr", "domain", "port"], &[])?;
            let addr = forwarder
                .attribute("addr")
                .map(|text| {
                    parse_address(text).ok_or(()).map_err(|_| {
                        invalid(format!(
                            "Invalid forwarder IP address '{}' in network '{network}'",
                            text.escape_debug()
                        ))
                    })
                })
                .transpose()?;
            let domain = optional_text(forwarder, "domain")?;
            if addr.is_none() && domain.is_none() {
                return Err(invalid(
                    "Invalid forwarder element, must contain at least one of addr or domain",
                ));
            }
            let port = match unsigned::<u32>(forwarder, "port")? {
                None => None,
                Some(port @ 1..=65535) if addr.is_some() => Some(port as u16),
                Some(_) if addr.is_none() => {
                    return Err(invalid(format!(
                        "DNS forwarder port not permitted without addr in network '{network}'"
                    )));
                }
                Some(port) => {
                    return Err(invalid(format!(
                        "Invalid DNS forwarder port '{port}' in network '{network}'"
                    )));
                }
            };
            Ok(DnsForwarder { addr, domain, port })
        })
        .collect::<Result<Vec<_>>>()?;
    let hosts = element
        .children_named("host")
        .map(|host| dns_host(host, network, false).and_then(DnsHostMatch::into_record))
        .collect::<Result<Vec<_>>>()?;
    let srvs = element
        .children_named("srv")
        .map(|srv| dns_srv(srv, network, false).and_then(DnsSrvMatch::into_record))
        .collect::<Result<Vec<_>>>()?;
    let txts = element
        .children_named("txt")
        .map(|txt| dns_txt(txt, network, false).and_then(DnsTxtMatch::into_record))
        .collect::<Result<Vec<_>>>()?;
    if enable == Some(false)
        && !(forwarders.is_empty() && hosts.is_empty() && srvs.is_empty() && txts.is_empty())
    {
        return Err(invalid(format!(
            "Extra data in disabled network '{network}'"
        )));
    }
    Ok(Dns {
        enable,
        forward_plain_names,
        forwarders,
        txts,
        srvs,
        hosts,
    })
}

/// A DNS host; with `partial` (net-update delete) either ip or names suffice.
pub(in crate::definition) fn dns_host(
    element: &Element,
    network: &str,
    partial: bool,
) -> Result<DnsHostMatch> {
    check_shape(element, &["ip"], &["hostname"])?;
    let mut hostnames = Vec::new();
    for hostname in element.children_named("hostname") {
        check_text_only(hostname)?;
        let text = hostname.text();
        if text.is_empty() {
            return Err(invalid(format!(
                "Missing hostname in network '{network}' DNS HOST record"
            )));
        }
        hostnames.push(config_text("DNS hostname", &text)?);
    }
    if hostnames.is_empty() && !partial {
        return Err(invalid(format!(
            "Missing hostname in network '{network}' DNS HOST record"
        )));
    }
    let ip = match element.attribute("ip") {
        Some(text) => Some(parse_address(text).ok_or(()).map_err(|_| {
            invalid(format!(
                "Invalid IP address in network '{network}' DNS HOST record"
            ))
        })?),
        None => {
            if !partial {
                return Err(invalid(format!(
                    "Missing IP address in network '{network}' DNS HOST record"
                )));
            }
            if hostnames.is_empty() {
                return Err(invalid(format!(
                    "Missing ip and hostname in network '{network}' DNS HOST record"
                )));
            }
            None
        }
    };
    Ok(DnsHostMatch { ip, hostnames })
}

/// A `<host>` of `<dns>` as net-update reads it (ip may be absent).
pub(in crate::definition) struct DnsHostMatch {
    pub ip: Option<IpAddr>,
    pub hostnames: Vec<ConfigText>,
}

impl DnsHostMatch {
    /// The full record; parsing without `partial` guarantees the ip.
    pub fn into_record(self) -> Result<DnsHost> {
        let ip = self
            .ip
            .ok_or_else(|| invalid("Missing IP address in DNS HOST record"))?;
        Ok(DnsHost {
            ip,
            hostnames: self.hostnames,
        })
    }
}

const SRV_SERVICE_MAX_BYTES: usize = 512 - 30;

pub(in crate::definition) struct DnsSrvMatch {
    pub service: Option<ConfigText>,
    pub protocol: Option<ConfigText>,
    pub domain: Option<ConfigText>,
    pub target: Option<ConfigText>,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

impl DnsSrvMatch {
    /// The full record; parsing without `partial` guarantees service and protocol.
    pub fn into_record(self) -> Result<DnsSrv> {
        let (Some(service), Some(protocol)) = (self.service, self.protocol) else {
            return Err(invalid("missing service or protocol in DNS SRV record"));
        };
        Ok(DnsSrv {
            service,
            protocol,
            domain: self.domain,
            target: self.target,
            port: self.port,
            priority: self.priority,
            weight: self.weight,
        })
    }
}

pub(in crate::definition) fn dns_srv(
    element: &Element,
    network: &str,
    partial: bool,
) -> Result<DnsSrvMatch> {
    check_shape(
        element,
        &[
            "service", "protocol", "domain", "target", "port", "priority", "weight",
        ],
        &[],
    )?;
    let service = element.attribute("service");
    let service_label = service.unwrap_or("(null)");
    if service.is_none() && !partial {
        return Err(invalid(format!(
            "missing required service attribute in DNS SRV record of network '{network}'"
        )));
    }
    if let Some(service) = service {
        if service.len() > SRV_SERVICE_MAX_BYTES {
            return Err(invalid(format!(
                "service attribute '{service}' in network '{network}' is too long, limit is {SRV_SERVICE_MAX_BYTES} bytes"
            )));
        }
        if !service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-+/*".contains(c))
        {
            return Err(invalid(format!(
                "invalid character in service attribute '{}' in DNS SRV record of network '{network}'",
                service.escape_debug()
            )));
        }
    }
    let protocol = element.attribute("protocol");
    if protocol.is_none() && !partial {
        return Err(invalid(format!(
            "missing required protocol attribute in DNS SRV record '{service_label}' of network '{network}'"
        )));
    }
    if let Some(protocol) = protocol
        && !protocol
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-+/".contains(c))
    {
        return Err(invalid(format!(
            "invalid character in protocol attribute '{}' in DNS SRV record of network '{network}'",
            protocol.escape_debug()
        )));
    }
    let domain = optional_text(element, "domain")?;
    let target = optional_text(element, "target")?;
    let mut numbers = [0u16; 3];
    for (slot, (name, invalid_message)) in numbers.iter_mut().zip([
        ("port", "invalid DNS SRV port attribute"),
        ("priority", "Invalid DNS SRV priority attribute"),
        ("weight", "invalid DNS SRV weight attribute"),
    ]) {
        let Some(text) = element.attribute(name) else {
            continue;
        };
        let value = parse_unsigned::<u32>(text);
        if value.is_some() && target.is_none() {
            return Err(invalid(format!(
                "DNS SRV {name} attribute not permitted without target for service '{service_label}' in network '{network}'"
            )));
        }
        let limit_ok = |v: u32| v <= 65535 && (name != "port" || v >= 1);
        match value {
            Some(v) if limit_ok(v) => *slot = v as u16,
            _ => {
                return Err(invalid(format!(
                    "{invalid_message} for service '{service_label}' in network '{network}'"
                )));
            }
        }
    }
    let [port, priority, weight] = numbers;
    Ok(DnsSrvMatch {
        service: service
            .map(|s| config_text("DNS SRV service", s))
            .transpose()?,
        protocol: protocol
            .map(|p| config_text("DNS SRV protocol", p))
            .transpose()?,
        domain,
        target,
        port,
        priority,
        weight,
    })
}

pub(in crate::definition) struct DnsTxtMatch {
    pub name: ConfigText,
    pub value: Option<ConfigText>,
}

impl DnsTxtMatch {
    /// The full record; parsing without `partial` guarantees the value.
    pub fn into_record(self) -> Result<DnsTxt> {
        let value = self
            .value
            .ok_or_else(|| invalid("missing value in DNS TXT record"))?;
        Ok(DnsTxt {
            name: self.name,
            value,
        })
    }
}

pub(in crate::definition) fn dns_txt(
    element: &Element,
    network: &str,
    partial: bool,
) -> Result<DnsTxtMatch> {
    check_shape(element, &["name", "value"], &[])?;
    let name = element.attribute("name").ok_or_else(|| {
        invalid(format!(
            "missing required name attribute in DNS TXT record of network {network}"
        ))
    })?;
    if name.contains([' ', ',']) {
        return Err(invalid(format!(
            "prohibited character in DNS TXT record name '{name}' of network {network}"
        )));
    }
    let value = element.attribute("value");
    if value.is_none() && !partial {
        return Err(invalid(format!(
            "missing required value attribute in DNS TXT record named '{name}' of network {network}"
        )));
    }
    Ok(DnsTxtMatch {
        name: config_text("DNS TXT name", name)?,
        value: value.map(|v| config_text("DNS TXT value", v)).transpose()?,
    })
}

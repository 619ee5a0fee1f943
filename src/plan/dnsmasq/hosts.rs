//! The two hosts files: DHCP reservations (`dhcp-hostsfile=`) and DNS
//! names (`addn-hosts=`).

use std::fmt::Write as _;

use crate::definition::{DhcpHost, IpFamily, NetworkDef, format_address as address};

use super::dhcp::lease_time;

/// A line of the DHCP hosts file; `None` for a host without an address.
pub(super) fn dhcp_host_line(host: &DhcpHost, family: IpFamily) -> Option<String> {
    let ip = address(host.ip.as_ref()?);
    let mut line = match family {
        IpFamily::V6 => {
            let id = host.id.as_ref().map(|id| format!("id:{id}"));
            let name = host.name.as_ref().map(ToString::to_string);
            let who: Vec<String> = id.into_iter().chain(name).collect();
            format!("{},[{ip}]", who.join(","))
        }
        IpFamily::V4 => match (&host.mac, &host.name) {
            (Some(mac), Some(name)) => format!("{mac},{ip},{name}"),
            (None, Some(name)) => format!("{name},{ip}"),
            (Some(mac), None) => format!("{mac},{ip}"),
            // The parser requires a MAC or a name; libvirt would print "(null)".
            (None, None) => return None,
        },
    };
    if let Some(lease) = host.lease {
        let _ = write!(line, ",{}", lease_time(lease));
    }
    Some(line)
}

/// The additional hosts file: one line per address, its names in order,
/// each followed by a tab (as libvirt writes it).
pub(super) fn addn_hosts(def: &NetworkDef) -> String {
    let mut entries: Vec<(String, Vec<&str>)> = Vec::new();
    for host in &def.dns.hosts {
        let ip = address(&host.ip);
        let names = host.hostnames.iter().map(|name| name.as_str());
        match entries.iter_mut().find(|(known, _)| *known == ip) {
            Some((_, known_names)) => known_names.extend(names),
            None => entries.push((ip, names.collect())),
        }
    }
    let mut text = String::new();
    for (ip, names) in entries {
        text.push_str(&ip);
        text.push('\t');
        for name in names {
            text.push_str(name);
            text.push('\t');
        }
        text.push('\n');
    }
    text
}

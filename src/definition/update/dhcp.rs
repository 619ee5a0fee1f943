//! net-update of `<dhcp>`: its hosts and ranges, in the `<ip>` that
//! libvirt's parent index picks.

use crate::definition::*;
use crate::xml::tree::Element;

use super::super::{parse, validate};
use super::{Result, UpdateCommand, invalid_operation, unsupported_operation};

impl NetworkDef {
    fn ip_for_dhcp(&self, parent_index: i32) -> Result<usize> {
        if let Ok(index) = usize::try_from(parent_index) {
            if index < self.ips.len() {
                return Ok(index);
            }
            return Err(invalid_operation(format!(
                "couldn't update dhcp host entry - no <ip> element found at index {parent_index} in network '{}'",
                self.name
            )));
        }
        self.ips
            .iter()
            .position(IpDef::has_dhcp)
            .or_else(|| self.ips.iter().position(|ip| ip.family() == IpFamily::V4))
            .or_else(|| self.ips.iter().position(|ip| ip.family() == IpFamily::V6))
            .ok_or_else(|| {
                invalid_operation(format!(
                    "couldn't update dhcp host entry - no <ip> element found in network '{}'",
                    self.name
                ))
            })
    }

    fn check_multiple_dhcp(&self, index: usize) -> Result<()> {
        let family = self.ips[index].family();
        let other_has_dhcp = self
            .ips
            .iter()
            .enumerate()
            .any(|(i, ip)| i != index && ip.family() == family && ip.has_dhcp());
        if other_has_dhcp {
            return Err(invalid_operation(format!(
                "dhcp is supported only for a single {} address on each network",
                family.label()
            )));
        }
        Ok(())
    }

    pub(super) fn update_dhcp_host(
        &mut self,
        command: UpdateCommand,
        parent: i32,
        element: &Element,
    ) -> Result<()> {
        self.check_element_name(element, "host")?;
        let index = self.ip_for_dhcp(parent)?;
        let partial = command == UpdateCommand::Delete;
        let network = self.name.as_str().to_owned();
        let host = parse::dhcp_host(element, &self.ips[index], &network, partial)?;
        let ip_family = self.ips[index].family();
        if !partial && host.ip.map(|ip| IpFamily::of(&ip)) != Some(ip_family) {
            return Err(invalid_operation(
                "the address family of a host entry IP must match the address family of the dhcp element's parent".into(),
            ));
        }
        if !partial {
            validate::check_host_in_subnet(&host, &self.ips[index], &network)?;
        }
        let describe = |host: &DhcpHost| {
            (
                host.mac
                    .as_ref()
                    .map_or_else(|| "unknown".to_owned(), ToString::to_string),
                host.name
                    .as_ref()
                    .map_or("(null)", |n| n.as_str())
                    .to_owned(),
                host.ip
                    .as_ref()
                    .map_or_else(|| "unknown".to_owned(), format::address),
            )
        };
        let hosts = &self.ips[index].dhcp.hosts;
        // MACs match by address, whatever their spelling (libvirt's
        // virMacAddrCompare ignores case and leading zeros).
        let mac = host.mac.as_ref().map(MacAsWritten::address);
        let any_field_matches = |existing: &DhcpHost| {
            (mac.is_some() && mac == existing.mac.as_ref().map(MacAsWritten::address))
                || (host.ip.is_some() && host.ip == existing.ip)
                || (host.name.is_some() && host.name == existing.name)
        };
        match command {
            UpdateCommand::Modify => {
                let Some(position) = hosts.iter().position(any_field_matches) else {
                    let (mac, name, ip) = describe(&host);
                    return Err(invalid_operation(format!(
                        "couldn't locate an existing dhcp host entry with \"mac='{mac}'\" \"name='{name}'\" \"ip='{ip}'\" in network '{network}'"
                    )));
                };
                self.ips[index].dhcp.hosts[position] = host;
            }
            UpdateCommand::AddFirst | UpdateCommand::AddLast => {
                self.check_multiple_dhcp(index)?;
                if hosts.iter().any(any_field_matches) {
                    let (mac, name, ip) = describe(&host);
                    return Err(invalid_operation(format!(
                        "there is an existing dhcp host entry in network '{network}' that matches \"<host mac='{mac}' name='{name}' ip='{ip}'/>\""
                    )));
                }
                let at = if command == UpdateCommand::AddFirst {
                    0
                } else {
                    hosts.len()
                };
                self.ips[index].dhcp.hosts.insert(at, host);
            }
            UpdateCommand::Delete => {
                let all_given_match = |existing: &DhcpHost| {
                    (mac.is_none()
                        || existing.mac.is_none()
                        || mac == existing.mac.as_ref().map(MacAsWritten::address))
                        && (host.name.is_none() || host.name == existing.name)
                        && (host.ip.is_none() || host.ip == existing.ip)
                };
                let Some(position) = hosts.iter().position(all_given_match) else {
                    return Err(invalid_operation(format!(
                        "couldn't locate a matching dhcp host entry in network '{network}'"
                    )));
                };
                self.ips[index].dhcp.hosts.remove(position);
                self.ips[index].dhcp.drop_unserved_bootp();
            }
        }
        Ok(())
    }

    pub(super) fn update_dhcp_range(
        &mut self,
        command: UpdateCommand,
        parent: i32,
        element: &Element,
    ) -> Result<()> {
        self.check_element_name(element, "range")?;
        let index = self.ip_for_dhcp(parent)?;
        if command == UpdateCommand::Modify {
            return Err(unsupported_operation(
                "dhcp ranges cannot be modified, only added or deleted",
            ));
        }
        let network = self.name.as_str().to_owned();
        let range = parse::dhcp_range(element, &self.ips[index], &network)?;
        if IpFamily::of(&range.start) != self.ips[index].family() {
            return Err(invalid_operation(
                "the address family of a dhcp range must match the address family of the dhcp element's parent".into(),
            ));
        }
        let ranges = &self.ips[index].dhcp.ranges;
        let existing = ranges
            .iter()
            .position(|r| r.start == range.start && r.end == range.end);
        if command.is_add() {
            self.check_multiple_dhcp(index)?;
            if existing.is_some() {
                return Err(invalid_operation(format!(
                    "there is an existing dhcp range entry in network '{network}' that matches \"<range start='{}' end='{}'/>\"",
                    format::address(&range.start),
                    format::address(&range.end)
                )));
            }
            let at = if command == UpdateCommand::AddFirst {
                0
            } else {
                ranges.len()
            };
            self.ips[index].dhcp.ranges.insert(at, range);
        } else {
            let Some(position) = existing else {
                return Err(invalid_operation(format!(
                    "couldn't locate a matching dhcp range entry in network '{network}'"
                )));
            };
            self.ips[index].dhcp.ranges.remove(position);
            self.ips[index].dhcp.drop_unserved_bootp();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::definition::*;

    #[test]
    fn deleting_the_last_range_leaves_no_bootp_behind() {
        let mut def = NetworkDef::parse(
            "<network><name>n</name><ip address='10.0.0.1' prefix='24'><dhcp>\
             <range start='10.0.0.2' end='10.0.0.9'/><bootp file='pxe.img'/></dhcp></ip></network>",
        )
        .unwrap();
        def.update(
            UpdateCommand::Delete,
            UpdateSection::IpDhcpRange,
            -1,
            "<range start='10.0.0.2' end='10.0.0.9'/>",
        )
        .unwrap();
        assert_eq!(def.ips[0].dhcp, Dhcp::default());
    }

    #[test]
    fn dhcp_hosts_match_by_mac_whatever_its_spelling() {
        let mut def = NetworkDef::parse(
            "<network><name>n</name><ip address='10.0.0.1' prefix='24'><dhcp>\
             <host mac='52:54:00:AB:CD:EF' ip='10.0.0.5'/></dhcp></ip></network>",
        )
        .unwrap();
        let host = |command, xml: &str, def: &mut NetworkDef| {
            def.update(command, UpdateSection::IpDhcpHost, -1, xml)
        };
        let error = host(
            UpdateCommand::AddLast,
            "<host mac='52:54:0:ab:cd:ef' ip='10.0.0.6'/>",
            &mut def,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("there is an existing dhcp host entry"),
            "{error}"
        );
        host(
            UpdateCommand::Modify,
            "<host mac='52:54:00:ab:cd:ef' ip='10.0.0.7'/>",
            &mut def,
        )
        .unwrap();
        let hosts = &def.ips[0].dhcp.hosts;
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].ip, Some("10.0.0.7".parse().unwrap()));
        assert_eq!(
            hosts[0].mac.as_ref().map(MacAsWritten::as_str),
            Some("52:54:00:ab:cd:ef"),
            "a modified host is spelled as the update writes it"
        );
        host(
            UpdateCommand::Delete,
            "<host mac='52:54:00:AB:CD:EF'/>",
            &mut def,
        )
        .unwrap();
        assert!(def.ips[0].dhcp.hosts.is_empty());
    }
}

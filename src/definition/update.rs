//! net-update: change one section of a definition, with libvirt's
//! semantics and messages (network_conf.c, virNetworkDefUpdateSection).
//! The update is all-or-nothing: on error the definition is unchanged.

use crate::xml::tree::{Element, parse_document};

use super::error::DefinitionError;
use super::*;
use super::{parse, validate};

type Result<T> = std::result::Result<T, DefinitionError>;

/// libvirt's virNetworkUpdateCommand values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateCommand {
    Modify = 1,
    Delete = 2,
    AddLast = 3,
    AddFirst = 4,
}

impl UpdateCommand {
    pub fn from_code(code: u32) -> Option<Self> {
        [Self::Modify, Self::Delete, Self::AddLast, Self::AddFirst]
            .into_iter()
            .find(|command| *command as u32 == code)
    }

    /// The names virsh uses (`add` is `add-last`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "modify" => Some(Self::Modify),
            "delete" => Some(Self::Delete),
            "add" | "add-last" => Some(Self::AddLast),
            "add-first" => Some(Self::AddFirst),
            _ => None,
        }
    }

    fn is_add(self) -> bool {
        matches!(self, Self::AddFirst | Self::AddLast)
    }
}

/// libvirt's virNetworkUpdateSection values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateSection {
    Bridge = 1,
    Domain = 2,
    Ip = 3,
    IpDhcpHost = 4,
    IpDhcpRange = 5,
    Forward = 6,
    ForwardInterface = 7,
    ForwardPf = 8,
    Portgroup = 9,
    DnsHost = 10,
    DnsTxt = 11,
    DnsSrv = 12,
}

impl UpdateSection {
    const ALL: [(Self, &'static str); 12] = [
        (Self::Bridge, "bridge"),
        (Self::Domain, "domain"),
        (Self::Ip, "ip"),
        (Self::IpDhcpHost, "ip-dhcp-host"),
        (Self::IpDhcpRange, "ip-dhcp-range"),
        (Self::Forward, "forward"),
        (Self::ForwardInterface, "forward-interface"),
        (Self::ForwardPf, "forward-pf"),
        (Self::Portgroup, "portgroup"),
        (Self::DnsHost, "dns-host"),
        (Self::DnsTxt, "dns-txt"),
        (Self::DnsSrv, "dns-srv"),
    ];

    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|(section, _)| *section as u32 == code)
            .map(|(section, _)| section)
    }

    /// The names virsh uses, e.g. `ip-dhcp-host`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|(_, section_name)| *section_name == name)
            .map(|(section, _)| section)
    }
}

fn invalid_operation(message: String) -> DefinitionError {
    DefinitionError::OperationInvalid(message)
}

fn unsupported_operation(message: impl Into<String>) -> DefinitionError {
    DefinitionError::OperationUnsupported(message.into())
}

impl NetworkDef {
    /// Applies one net-update as libvirt's API does (virNetworkObjUpdate):
    /// the change of the section, then a format and parse of the result,
    /// so that no update leaves a definition that would not load again.
    /// `parent_index` selects the `<ip>` for the dhcp sections; -1 picks
    /// the one that has DHCP (libvirt's rule).
    pub fn update(
        &mut self,
        command: UpdateCommand,
        section: UpdateSection,
        parent_index: i32,
        xml: &str,
    ) -> Result<()> {
        let mut updated = self.clone();
        updated.update_section(command, section, parent_index, xml)?;
        NetworkDef::parse(&updated.to_xml(FormatFlags::default()))?;
        *self = updated;
        Ok(())
    }

    /// The change of one section alone, as libvirt's
    /// virNetworkDefUpdateSection makes it (and its update tests run it):
    /// the result may hold what the parser refuses.
    pub fn update_section(
        &mut self,
        command: UpdateCommand,
        section: UpdateSection,
        parent_index: i32,
        xml: &str,
    ) -> Result<()> {
        let element = parse_document(xml)?;
        let mut updated = self.clone();
        let name = self.name.as_str().to_owned();
        let no_support = |what: &str| {
            unsupported_operation(format!("can't update '{what}' section of network '{name}'"))
        };
        match section {
            UpdateSection::Bridge => return Err(no_support("bridge")),
            UpdateSection::Domain => return Err(no_support("domain")),
            UpdateSection::Ip => return Err(no_support("ip")),
            UpdateSection::Forward => return Err(no_support("forward")),
            UpdateSection::ForwardPf => return Err(no_support("forward pf")),
            UpdateSection::IpDhcpHost => {
                updated.update_dhcp_host(command, parent_index, &element)?
            }
            UpdateSection::IpDhcpRange => {
                updated.update_dhcp_range(command, parent_index, &element)?
            }
            UpdateSection::ForwardInterface => {
                updated.update_forward_interface(command, &element)?
            }
            UpdateSection::Portgroup => updated.update_portgroup(command, &element)?,
            UpdateSection::DnsHost => updated.update_dns_host(command, &element)?,
            UpdateSection::DnsTxt => updated.update_dns_txt(command, &element)?,
            UpdateSection::DnsSrv => updated.update_dns_srv(command, &element)?,
        }
        *self = updated;
        Ok(())
    }

    fn check_element_name(&self, element: &Element, expected: &str) -> Result<()> {
        if element.name != expected {
            return Err(DefinitionError::Invalid(format!(
                "unexpected element <{}>, expecting <{expected}>, while updating network '{}'",
                element.name, self.name
            )));
        }
        Ok(())
    }

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

    fn update_dhcp_host(
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
            }
        }
        Ok(())
    }

    fn update_dhcp_range(
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
        }
        Ok(())
    }

    fn update_forward_interface(
        &mut self,
        command: UpdateCommand,
        element: &Element,
    ) -> Result<()> {
        self.check_element_name(element, "interface")?;
        if command == UpdateCommand::Modify {
            return Err(unsupported_operation(
                "forward interface entries cannot be modified, only added or deleted",
            ));
        }
        parse::check_shape(element, &["dev", "connections"], &[])?;
        let dev = element.attribute("dev").ok_or_else(|| {
            DefinitionError::Invalid("missing dev attribute in <interface> element".into())
        })?;
        let dev = LinkName::new(dev)
            .map_err(|error| DefinitionError::value("forward interface dev", dev, error))?;
        let network = self.name.as_str().to_owned();
        let Some(forward) = self.forward.as_mut() else {
            return Err(invalid_operation(format!(
                "network '{network}' has no <forward> element to hold interfaces"
            )));
        };
        let interface = ForwardInterface::Netdev(dev.clone());
        let existing = forward.interfaces.iter().position(|i| *i == interface);
        if command.is_add() {
            if existing.is_some() {
                return Err(invalid_operation(format!(
                    "there is an existing interface entry in network '{network}' that matches \"<interface dev='{dev}'>\""
                )));
            }
            let at = if command == UpdateCommand::AddFirst {
                0
            } else {
                forward.interfaces.len()
            };
            forward.interfaces.insert(at, interface);
        } else {
            let Some(position) = existing else {
                return Err(invalid_operation(format!(
                    "couldn't find an interface entry in network '{network}' matching <interface dev='{dev}'>"
                )));
            };
            forward.interfaces.remove(position);
        }
        Ok(())
    }

    fn update_portgroup(&mut self, command: UpdateCommand, element: &Element) -> Result<()> {
        self.check_element_name(element, "portgroup")?;
        let group = parse::portgroup(element)?;
        let network = self.name.as_str().to_owned();
        let found = self.portgroups.iter().position(|g| g.name == group.name);
        let default = self.portgroups.iter().position(|g| g.is_default);
        match (found, command) {
            (None, UpdateCommand::Modify | UpdateCommand::Delete) => {
                return Err(invalid_operation(format!(
                    "couldn't find a portgroup entry in network '{network}' matching <portgroup name='{}'>",
                    group.name
                )));
            }
            (Some(_), UpdateCommand::AddFirst | UpdateCommand::AddLast) => {
                return Err(invalid_operation(format!(
                    "there is an existing portgroup entry in network '{network}' that matches \"<portgroup name='{}'>\"",
                    group.name
                )));
            }
            _ => {}
        }
        if command != UpdateCommand::Delete
            && group.is_default
            && default.is_some()
            && default != found
        {
            return Err(invalid_operation(format!(
                "a different portgroup entry in network '{network}' is already set as the default. Only one default is allowed."
            )));
        }
        match (command, found) {
            (UpdateCommand::Modify, Some(position)) => self.portgroups[position] = group,
            (UpdateCommand::Delete, Some(position)) => {
                self.portgroups.remove(position);
            }
            (UpdateCommand::AddFirst, _) => self.portgroups.insert(0, group),
            _ => self.portgroups.push(group),
        }
        Ok(())
    }

    fn update_dns_host(&mut self, command: UpdateCommand, element: &Element) -> Result<()> {
        self.check_element_name(element, "host")?;
        let network = self.name.as_str().to_owned();
        let host = parse::dns_host(element, &network, !command.is_add())?;
        let same_ip = |existing: &DnsHost| host.ip == Some(existing.ip);
        // Adding and modifying match by address; deleting also by any hostname
        // (several addresses may legitimately share a hostname).
        let matches: Vec<usize> = self
            .dns
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, existing)| {
                same_ip(existing)
                    || (command == UpdateCommand::Delete
                        && host
                            .hostnames
                            .iter()
                            .any(|name| existing.hostnames.contains(name)))
            })
            .map(|(i, _)| i)
            .collect();
        if command.is_add() {
            if !matches.is_empty() {
                return Err(invalid_operation(format!(
                    "there is already at least one DNS HOST record with a matching field in network {network}"
                )));
            }
            let record = host.into_record()?;
            let at = if command == UpdateCommand::AddFirst {
                0
            } else {
                self.dns.hosts.len()
            };
            self.dns.hosts.insert(at, record);
            return Ok(());
        }
        let position = match matches.as_slice() {
            [] => {
                return Err(invalid_operation(format!(
                    "couldn't locate a matching DNS HOST record in network {network}"
                )));
            }
            [position] => *position,
            _ => {
                return Err(invalid_operation(format!(
                    "multiple matching DNS HOST records were found in network {network}"
                )));
            }
        };
        if command == UpdateCommand::Modify {
            self.dns.hosts[position] = host.into_record()?;
        } else {
            self.dns.hosts.remove(position);
        }
        Ok(())
    }

    fn update_dns_srv(&mut self, command: UpdateCommand, element: &Element) -> Result<()> {
        if command == UpdateCommand::Modify {
            return Err(unsupported_operation(
                "DNS SRV records cannot be modified, only added or deleted",
            ));
        }
        self.check_element_name(element, "srv")?;
        let network = self.name.as_str().to_owned();
        let srv = parse::dns_srv(element, &network, !command.is_add())?;
        let field_matches = |given: &Option<ConfigText>, existing: Option<&ConfigText>| match given
        {
            None => true,
            Some(value) => Some(value) == existing,
        };
        let matches: Vec<usize> = self
            .dns
            .srvs
            .iter()
            .enumerate()
            .filter(|(_, existing)| {
                field_matches(&srv.domain, existing.domain.as_ref())
                    && field_matches(&srv.service, Some(&existing.service))
                    && field_matches(&srv.protocol, Some(&existing.protocol))
                    && field_matches(&srv.target, existing.target.as_ref())
            })
            .map(|(i, _)| i)
            .collect();
        if command.is_add() {
            if !matches.is_empty() {
                return Err(invalid_operation(format!(
                    "there is already at least one DNS SRV record matching all specified fields in network {network}"
                )));
            }
            let record = srv.into_record()?;
            let at = if command == UpdateCommand::AddFirst {
                0
            } else {
                self.dns.srvs.len()
            };
            self.dns.srvs.insert(at, record);
        } else {
            match matches.as_slice() {
                [] => {
                    return Err(invalid_operation(format!(
                        "couldn't locate a matching DNS SRV record in network {network}"
                    )));
                }
                [position] => {
                    self.dns.srvs.remove(*position);
                }
                _ => {
                    return Err(invalid_operation(format!(
                        "multiple DNS SRV records matching all specified fields were found in network {network}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn update_dns_txt(&mut self, command: UpdateCommand, element: &Element) -> Result<()> {
        self.check_element_name(element, "txt")?;
        let network = self.name.as_str().to_owned();
        let txt = parse::dns_txt(element, &network, !command.is_add())?;
        let existing = self.dns.txts.iter().position(|t| t.name == txt.name);
        if command.is_add() {
            if existing.is_some() {
                return Err(invalid_operation(format!(
                    "there is already a DNS TXT record with name '{}' in network {network}",
                    txt.name
                )));
            }
            let record = txt.into_record()?;
            let at = if command == UpdateCommand::AddFirst {
                0
            } else {
                self.dns.txts.len()
            };
            self.dns.txts.insert(at, record);
            return Ok(());
        }
        let Some(position) = existing else {
            return Err(invalid_operation(format!(
                "couldn't locate a matching DNS TXT record in network {network}"
            )));
        };
        if command == UpdateCommand::Modify {
            let value = txt.value.ok_or_else(|| {
                invalid_operation(format!(
                    "missing value of modifying DNS TXT record in network {network}"
                ))
            })?;
            self.dns.txts[position].value = value;
        } else {
            self.dns.txts.remove(position);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_libvirts_enum_values() {
        assert_eq!(UpdateCommand::from_code(1), Some(UpdateCommand::Modify));
        assert_eq!(UpdateCommand::from_code(4), Some(UpdateCommand::AddFirst));
        assert_eq!(UpdateCommand::from_code(0), None);
        assert_eq!(UpdateSection::from_code(4), Some(UpdateSection::IpDhcpHost));
        assert_eq!(UpdateSection::from_code(12), Some(UpdateSection::DnsSrv));
        assert_eq!(UpdateSection::from_code(13), None);
        assert_eq!(
            UpdateSection::from_name("ip-dhcp-range"),
            Some(UpdateSection::IpDhcpRange)
        );
        assert_eq!(
            UpdateCommand::from_name("add"),
            Some(UpdateCommand::AddLast)
        );
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

    #[test]
    fn an_update_whose_result_would_not_parse_is_refused() {
        let xml = "<network><name>n</name><forward dev='eth0'/>\
            <ip address='10.0.0.1' prefix='24'/></network>";
        let mut def = NetworkDef::parse(xml).unwrap();
        let before = def.clone();
        let (command, section, interface) = (
            UpdateCommand::AddLast,
            UpdateSection::ForwardInterface,
            "<interface dev='eth1'/>",
        );
        let error = def.update(command, section, -1, interface).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("multiple forwarding interfaces specified for network 'n'"),
            "{error}"
        );
        assert_eq!(def, before);
        // The section's change alone, as libvirt's update tests run it.
        def.update_section(command, section, -1, interface).unwrap();
        assert_eq!(def.forward.unwrap().interfaces.len(), 2);
    }

    #[test]
    fn sections_libvirt_cannot_update_are_refused_by_name() {
        let mut def =
            NetworkDef::parse("<network><name>n</name><bridge name='virbr9'/></network>").unwrap();
        let error = def
            .update(
                UpdateCommand::Modify,
                UpdateSection::Bridge,
                -1,
                "<bridge name='x'/>",
            )
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Operation not supported: can't update 'bridge' section of network 'n'"
        );
    }
}

//! net-update of `<dns>`: its host, SRV and TXT records.

use crate::definition::*;
use crate::xml::tree::Element;

use super::super::parse;
use super::{Result, UpdateCommand, invalid_operation, unsupported_operation};

impl NetworkDef {
    pub(super) fn update_dns_host(
        &mut self,
        command: UpdateCommand,
        element: &Element,
    ) -> Result<()> {
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

    pub(super) fn update_dns_srv(
        &mut self,
        command: UpdateCommand,
        element: &Element,
    ) -> Result<()> {
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

    pub(super) fn update_dns_txt(
        &mut self,
        command: UpdateCommand,
        element: &Element,
    ) -> Result<()> {
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

//! net-update: change one section of a definition, with libvirt's
//! semantics and messages (network_conf.c, virNetworkDefUpdateSection).
//! The update is all-or-nothing: on error the definition is unchanged.

mod dhcp;
mod dns;

use crate::xml::tree::{Element, parse_document};

use super::error::DefinitionError;
use super::parse;
use super::*;

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

    /// The names virsh takes, as its completion offers them.
    pub const NAMES: [&'static str; 5] = ["modify", "delete", "add-last", "add-first", "add"];

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

    /// Every section's name, in libvirt's order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::ALL.into_iter().map(|(_, name)| name)
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

    pub(super) fn check_element_name(&self, element: &Element, expected: &str) -> Result<()> {
        if element.name != expected {
            return Err(DefinitionError::Invalid(format!(
                "unexpected element <{}>, expecting <{expected}>, while updating network '{}'",
                element.name, self.name
            )));
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
            // A pool is one kind: beside a <pf> or PCI addresses an
            // <interface> would be dropped when the definition is read again.
            let other_kind = if forward.pf.is_some() {
                Some("<pf>")
            } else if forward
                .interfaces
                .iter()
                .any(|i| matches!(i, ForwardInterface::Pci(_)))
            {
                Some("PCI <address> elements")
            } else {
                None
            };
            if let Some(other_kind) = other_kind {
                return Err(unsupported_operation(format!(
                    "network '{network}' lists its forward devices by {other_kind}; an <interface dev='{dev}'> cannot be added to them"
                )));
            }
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
    fn an_interface_cannot_join_a_pool_listed_by_pf_or_pci_address() {
        for (xml, refused) in [
            (
                "<network><name>p</name><forward mode='passthrough'><pf dev='eth0'/></forward></network>",
                "<pf>",
            ),
            (
                "<network><name>h</name><forward mode='hostdev'>\
                 <address type='pci' domain='0' bus='1' slot='2' function='3'/></forward></network>",
                "PCI <address>",
            ),
        ] {
            let mut def = NetworkDef::parse(xml).unwrap();
            let before = def.clone();
            let error = def
                .update(
                    UpdateCommand::AddLast,
                    UpdateSection::ForwardInterface,
                    -1,
                    "<interface dev='eth1'/>",
                )
                .unwrap_err();
            assert!(error.to_string().contains(refused), "{error}");
            assert_eq!(def, before);
        }
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

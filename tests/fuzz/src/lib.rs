//! What the fuzz targets share: the round trip every definition (network
//! or port) they reach must survive, and how an input is read as a
//! net-update.

use virtnet::definition::port::NetworkPortDef;
use virtnet::definition::{FormatFlags, NetworkDef, UpdateCommand, UpdateSection};
use virtnet::xml::tree::MAX_DOCUMENT_BYTES;

/// The input as a network document, when it is one `NetworkDef::parse`
/// takes (inputs over the document limit are left out: they are refused
/// unread).
pub fn parse_network(data: &[u8]) -> Option<NetworkDef> {
    if data.len() > MAX_DOCUMENT_BYTES {
        return None;
    }
    NetworkDef::parse(std::str::from_utf8(data).ok()?).ok()
}

/// `def` formatted (as `net-dumpxml` prints it, and with `--inactive` as
/// its configuration file is written) parses again into the same
/// definition, which formats to the same text.
pub fn assert_round_trip(def: &NetworkDef) {
    for inactive in [false, true] {
        let flags = FormatFlags { inactive };
        let formatted = def.to_xml(flags);
        let reparsed = NetworkDef::parse(&formatted).unwrap_or_else(|error| {
            panic!("formatted XML (inactive: {inactive}) does not parse: {error}\n{formatted}")
        });
        assert_eq!(
            &reparsed, def,
            "the definition read back differs (inactive: {inactive}):\n{formatted}"
        );
        assert_eq!(
            reparsed.to_xml(flags),
            formatted,
            "formatting is not idempotent"
        );
    }
}

/// The input as a network port document, when `NetworkPortDef::parse`
/// takes it (inputs over the document limit are left out, as for networks).
pub fn parse_port(data: &[u8]) -> Option<NetworkPortDef> {
    if data.len() > MAX_DOCUMENT_BYTES {
        return None;
    }
    NetworkPortDef::parse(std::str::from_utf8(data).ok()?).ok()
}

/// `port` formatted parses again into the same port, which formats to the
/// same text.
pub fn assert_port_round_trip(port: &NetworkPortDef) {
    let formatted = port.to_xml();
    let reparsed = NetworkPortDef::parse(&formatted)
        .unwrap_or_else(|error| panic!("formatted port does not parse: {error}\n{formatted}"));
    assert_eq!(&reparsed, port, "the port read back differs:\n{formatted}");
    assert_eq!(reparsed.to_xml(), formatted, "formatting is not idempotent");
}

/// A net-update read from fuzz input: a byte each for the command and the
/// section (libvirt's code minus one, taken modulo the number of codes),
/// one for the parent index (as `i8`, so 255 is -1), then the base
/// network's XML, a NUL byte and the update's XML.
pub struct UpdateInput<'a> {
    pub command: UpdateCommand,
    pub section: UpdateSection,
    pub parent_index: i32,
    pub base: &'a str,
    pub update: &'a str,
}

impl<'a> UpdateInput<'a> {
    pub fn read(data: &'a [u8]) -> Option<Self> {
        let [command, section, parent_index, rest @ ..] = data else {
            return None;
        };
        let text = std::str::from_utf8(rest).ok()?;
        let (base, update) = text.split_once('\0')?;
        Some(Self {
            command: UpdateCommand::from_code(u32::from(command % 4) + 1)?,
            section: UpdateSection::from_code(u32::from(section % 12) + 1)?,
            parent_index: i32::from(*parent_index as i8),
            base,
            update,
        })
    }
}

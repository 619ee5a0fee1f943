//! Attribute values as libvirt reads them: yes/no, unsigned numbers (C's
//! strtoul too), addresses (inet_aton's short forms too), and text that
//! must fit on one line of dnsmasq's configuration.

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use crate::definition::error::DefinitionError;
use crate::definition::values::{ConfigText, LinkName};
use crate::xml::tree::Element;

use super::{Result, invalid};

pub(in crate::definition) fn attribute_error(
    element: &Element,
    name: &str,
    value: &str,
    expected: &str,
) -> DefinitionError {
    invalid(format!(
        "Invalid value for attribute '{name}' in element '{}': '{}'.{expected}",
        element.local_name(),
        value.escape_debug()
    ))
}

/// libvirt's virXMLPropTristateBool: absent, 'yes' or 'no'.
pub(in crate::definition) fn yes_no(element: &Element, name: &str) -> Result<Option<bool>> {
    match element.attribute(name) {
        None => Ok(None),
        Some("yes") => Ok(Some(true)),
        Some("no") => Ok(Some(false)),
        Some(other) => Err(attribute_error(element, name, other, "")),
    }
}

/// libvirt's virXMLPropUInt and friends: a decimal unsigned number.
pub(in crate::definition) fn unsigned<T: FromStr>(
    element: &Element,
    name: &str,
) -> Result<Option<T>> {
    match element.attribute(name) {
        None => Ok(None),
        Some(value) => parse_unsigned(value).map(Some).ok_or_else(|| {
            attribute_error(element, name, value, " Expected non-negative integer value")
        }),
    }
}

/// A number as C's strtoul reads it with base 0: `0x` hex, leading-0 octal.
pub(super) fn parse_c_unsigned(text: &str) -> Option<u32> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(hex, 16).ok()
    } else if text.len() > 1 && text.starts_with('0') {
        if !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return None;
        }
        u32::from_str_radix(&text[1..], 8).ok()
    } else {
        parse_unsigned(text)
    }
}

/// An address as libvirt's virSocketAddrParse (glibc getaddrinfo) reads
/// it: IPv6, or IPv4 including inet_aton's short forms (`127.1`, `0x7f.0.0.1`).
pub(super) fn parse_address(text: &str) -> Option<IpAddr> {
    if text.contains(':') {
        return text.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    // The common dotted quad first, without the inet_aton machinery.
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    let mut parts = [0u32; 4];
    let mut count = 0;
    for part in text.split('.') {
        *parts.get_mut(count)? = parse_c_unsigned(part)?;
        count += 1;
    }
    let value = match &parts[..count] {
        [a] => *a,
        [a, b] if *a <= 0xff && *b <= 0xff_ffff => a << 24 | b,
        [a, b, c] if *a <= 0xff && *b <= 0xff && *c <= 0xffff => a << 24 | b << 16 | c,
        [a, b, c, d] if [a, b, c, d].iter().all(|p| **p <= 0xff) => a << 24 | b << 16 | c << 8 | d,
        _ => return None,
    };
    Some(IpAddr::V4(Ipv4Addr::from(value)))
}

pub(super) fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    match parse_address(text)? {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }
}

pub(super) fn parse_unsigned<T: FromStr>(value: &str) -> Option<T> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

pub(in crate::definition) fn config_text(what: &str, value: &str) -> Result<ConfigText> {
    ConfigText::new(value).map_err(|error| DefinitionError::value(what, value, error))
}

pub(super) fn optional_text(element: &Element, name: &str) -> Result<Option<ConfigText>> {
    element
        .attribute(name)
        .map(|value| config_text(&format!("attribute '{name}' of <{}>", element.name), value))
        .transpose()
}

pub(in crate::definition) fn link_name(what: &str, value: &str) -> Result<LinkName> {
    LinkName::new(value).map_err(|error| DefinitionError::value(what, value, error))
}

/// libvirt's virSocketAddrParse (any family).
pub(super) fn ip_address(value: &str) -> Result<IpAddr> {
    parse_address(value).ok_or_else(|| {
        DefinitionError::Invalid(format!(
            "Cannot parse socket address '{}': Name or service not known",
            value.escape_debug()
        ))
    })
}

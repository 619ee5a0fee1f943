//! Value types that validate on construction, so that a definition cannot
//! hold a bridge name the kernel would refuse or a string that could break
//! out of a line in dnsmasq's configuration.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("must not be empty")]
    Empty,
    #[error("is {length} bytes long, the limit is {limit}")]
    TooLong { length: usize, limit: usize },
    #[error("contains {0:?}, which is not allowed here")]
    IllegalChar(char),
    #[error("'.' and '..' are not usable as interface names")]
    DotName,
    #[error("starts with '.': its files would be hidden ones, which the daemon does not load")]
    LeadingDot,
    #[error("'%' may only appear once, as the '%d' of a name template")]
    BadTemplate,
    #[error("expected six hexadecimal bytes separated by ':', such as 52:54:00:12:34:56")]
    Mac,
    #[error("expected 32 hexadecimal digits, optionally grouped with '-'")]
    Uuid,
}

/// Characters that would end or corrupt a line of a dnsmasq configuration
/// or hosts file.
fn check_single_line(value: &str) -> Result<(), ValueError> {
    match value.chars().find(|c| matches!(c, '\n' | '\r' | '\0')) {
        Some(c) => Err(ValueError::IllegalChar(c)),
        None => Ok(()),
    }
}

/// Text that later lands in a dnsmasq configuration line: never holds a
/// newline, carriage return or NUL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigText(String);

impl ConfigText {
    pub fn new(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        check_single_line(&value)?;
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConfigText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A network name: non-empty, no '/', no control characters (it names
/// files and appears in generated configuration).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetworkName(String);

impl NetworkName {
    pub fn new(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        if value.is_empty() {
            return Err(ValueError::Empty);
        }
        if let Some(c) = value.chars().find(|&c| c == '/' || c.is_control()) {
            return Err(ValueError::IllegalChar(c));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NetworkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Linux limits interface names to IFNAMSIZ - 1 bytes.
pub const MAX_LINK_NAME_BYTES: usize = 15;

fn check_link_name(value: &str, allow_percent: bool) -> Result<(), ValueError> {
    if value.is_empty() {
        return Err(ValueError::Empty);
    }
    if value.len() > MAX_LINK_NAME_BYTES {
        return Err(ValueError::TooLong {
            length: value.len(),
            limit: MAX_LINK_NAME_BYTES,
        });
    }
    if value == "." || value == ".." {
        return Err(ValueError::DotName);
    }
    if let Some(c) = value
        .chars()
        .find(|&c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(ValueError::IllegalChar(c));
    }
    if !allow_percent && value.contains('%') {
        return Err(ValueError::IllegalChar('%'));
    }
    Ok(())
}

/// The name of an existing host interface (forward dev, pf, pool members).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkName(String);

impl LinkName {
    pub fn new(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        check_link_name(&value, false)?;
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LinkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bridge name, or a template such as `virbr%d` from which the daemon
/// picks a free name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BridgeName(String);

impl BridgeName {
    pub fn new(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        check_link_name(&value, true)?;
        let percents = value.matches('%').count();
        if percents > 1 || (percents == 1 && value.matches("%d").count() != 1) {
            return Err(ValueError::BadTemplate);
        }
        Ok(Self(value))
    }

    pub fn is_template(&self) -> bool {
        self.0.contains("%d")
    }

    /// The name the template yields for `index`; `None` when it would not
    /// fit in an interface name.
    pub fn instantiate(&self, index: u32) -> Option<LinkName> {
        LinkName::new(self.0.replacen("%d", &index.to_string(), 1)).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BridgeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl FromStr for MacAddr {
    type Err = ValueError;

    /// Accepts what libvirt accepts: six groups of one or two hex digits.
    fn from_str(value: &str) -> Result<Self, ValueError> {
        let mut bytes = [0u8; 6];
        let mut groups = value.split(':');
        for byte in &mut bytes {
            let group = groups.next().ok_or(ValueError::Mac)?;
            if group.is_empty() || group.len() > 2 || !group.chars().all(|c| c.is_ascii_hexdigit())
            {
                return Err(ValueError::Mac);
            }
            *byte = u8::from_str_radix(group, 16).map_err(|_| ValueError::Mac)?;
        }
        if groups.next().is_some() {
            return Err(ValueError::Mac);
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A MAC address with the spelling it was given in. libvirt keeps a DHCP
/// host's MAC as text: it prints it, and writes it into dnsmasq's hosts
/// file, as written, so that the XML a tool sent comes back unchanged;
/// comparisons use the address ([`MacAsWritten::address`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MacAsWritten {
    address: MacAddr,
    // Parsing the address guarantees six groups of hex digits and ':'.
    text: String,
}

impl MacAsWritten {
    pub fn address(&self) -> MacAddr {
        self.address
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for MacAsWritten {
    type Err = ValueError;

    fn from_str(value: &str) -> Result<Self, ValueError> {
        Ok(Self {
            address: value.parse()?,
            text: value.to_owned(),
        })
    }
}

impl fmt::Display for MacAsWritten {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// A random (version 4) UUID.
    pub fn generate() -> std::io::Result<Self> {
        let mut bytes = [0u8; 16];
        crate::random::fill(&mut bytes)?;
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Ok(Self(bytes))
    }
}

impl FromStr for Uuid {
    type Err = ValueError;

    /// Accepts what libvirt accepts: 32 hex digits, with '-' or ' ' allowed
    /// between byte pairs, and surrounding whitespace.
    fn from_str(value: &str) -> Result<Self, ValueError> {
        let mut digits = value.trim().bytes().filter(|b| *b != b'-' && *b != b' ');
        let mut bytes = [0u8; 16];
        for byte in &mut bytes {
            let high = digits.next().and_then(hex_value).ok_or(ValueError::Uuid)?;
            let low = digits.next().and_then(hex_value).ok_or(ValueError::Uuid)?;
            *byte = high << 4 | low;
        }
        if digits.next().is_some() {
            return Err(ValueError::Uuid);
        }
        Ok(Self(bytes))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|v| v as u8)
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_follow_kernel_rules() {
        assert!(BridgeName::new("virbr0").is_ok());
        assert!(BridgeName::new("virbr%d").unwrap().is_template());
        assert_eq!(
            BridgeName::new("abcdefghijklmnop"),
            Err(ValueError::TooLong {
                length: 16,
                limit: 15
            })
        );
        assert_eq!(BridgeName::new("br/0"), Err(ValueError::IllegalChar('/')));
        assert_eq!(BridgeName::new("br 0"), Err(ValueError::IllegalChar(' ')));
        assert_eq!(BridgeName::new("br%s"), Err(ValueError::BadTemplate));
        assert_eq!(BridgeName::new("br%d%d"), Err(ValueError::BadTemplate));
        assert_eq!(BridgeName::new(""), Err(ValueError::Empty));
        assert_eq!(BridgeName::new(".."), Err(ValueError::DotName));
        let template = BridgeName::new("virbr%d").unwrap();
        assert_eq!(template.instantiate(12).unwrap().as_str(), "virbr12");
        assert!(
            BridgeName::new("abcdefghijklm%d")
                .unwrap()
                .instantiate(100)
                .is_none()
        );
    }

    #[test]
    fn names_and_config_text_refuse_line_breaks() {
        assert!(NetworkName::new("a/b").is_err());
        assert!(NetworkName::new("a\nb").is_err());
        assert!(NetworkName::new("it's \"quoted\"").is_ok());
        assert_eq!(
            ConfigText::new("x\nserver=1.2.3.4"),
            Err(ValueError::IllegalChar('\n'))
        );
        assert_eq!(ConfigText::new("a\0"), Err(ValueError::IllegalChar('\0')));
        assert!(ConfigText::new("v=spf1 a -all").is_ok());
    }

    #[test]
    fn mac_round_trip_lowercases() {
        let mac: MacAddr = "52:54:00:E6:A2:C9".parse().unwrap();
        assert_eq!(mac.to_string(), "52:54:00:e6:a2:c9");
        assert_eq!(
            "0:1:2:3:4:5".parse::<MacAddr>().unwrap().to_string(),
            "00:01:02:03:04:05"
        );
        assert!("52:54:00:e6:a2".parse::<MacAddr>().is_err());
        assert!("52:54:00:e6:a2:c9:00".parse::<MacAddr>().is_err());
        assert!("52:54:00:e6:a2:g9".parse::<MacAddr>().is_err());
        assert!(
            "01:00:5e:00:00:01"
                .parse::<MacAddr>()
                .unwrap()
                .is_multicast()
        );
    }

    #[test]
    fn mac_as_written_keeps_its_spelling_and_compares_by_address() {
        let upper: MacAsWritten = "52:54:00:E6:A2:C9".parse().unwrap();
        let short: MacAsWritten = "52:54:0:e6:a2:c9".parse().unwrap();
        assert_eq!(upper.to_string(), "52:54:00:E6:A2:C9");
        assert_eq!(short.as_str(), "52:54:0:e6:a2:c9");
        assert_eq!(upper.address(), short.address());
        assert_ne!(upper, short);
        assert_eq!(
            "52:54:00:e6:a2:c9 ".parse::<MacAsWritten>(),
            Err(ValueError::Mac)
        );
    }

    #[test]
    fn uuid_accepts_libvirt_spellings() {
        let dashed: Uuid = "81ff0d90-c91e-6742-64da-4a736edb9a9b".parse().unwrap();
        let plain: Uuid = "81ff0d90c91e674264da4a736edb9a9b".parse().unwrap();
        assert_eq!(dashed, plain);
        assert_eq!(dashed.to_string(), "81ff0d90-c91e-6742-64da-4a736edb9a9b");
        assert!(
            "81ff0d90-c91e-6742-64da-4a736edb9a9"
                .parse::<Uuid>()
                .is_err()
        );
        assert!(
            "81ff0d90-c91e-6742-64da-4a736edb9a9bb"
                .parse::<Uuid>()
                .is_err()
        );
        assert!("zz".parse::<Uuid>().is_err());
        let generated = Uuid::generate().unwrap();
        assert_eq!(generated.0[6] >> 4, 4);
        assert_ne!(generated, Uuid::generate().unwrap());
    }
}

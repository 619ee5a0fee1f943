//! The names libvirt gives a network's bridge and the MAC it gives the
//! bridge (libvirt's networkSetBridgeName and virMacAddrGenerate): one
//! place, used when a network is defined and again when it starts.

use crate::definition::{BridgeName, MacAddr};

/// libvirt's template when a definition names no bridge.
pub const DEFAULT_BRIDGE_TEMPLATE: &str = "virbr%d";
/// libvirt gives up after this many candidate names.
pub const MAX_BRIDGE_ID: u32 = 256;

#[derive(Debug, thiserror::Error)]
pub enum NamingError {
    /// libvirt's wording (VIR_ERR_INTERNAL_ERROR).
    #[error("internal error: bridge name '{0}' already in use.")]
    BridgeInUse(String),
    /// libvirt's wording (VIR_ERR_INTERNAL_ERROR).
    #[error("internal error: Bridge generation exceeded max id {MAX_BRIDGE_ID}")]
    Exhausted,
    #[error("internal error: cannot generate a MAC address")]
    Random(#[source] std::io::Error),
}

/// The bridge a definition asks for: a name of its own, or a template to
/// fill (libvirt's `virbr%d` when it names none).
pub enum Requested<'a> {
    Fixed(&'a str),
    Template(&'a str),
}

impl<'a> Requested<'a> {
    pub fn of(name: Option<&'a BridgeName>) -> Self {
        match name {
            Some(name) if !name.is_template() => Self::Fixed(name.as_str()),
            Some(template) => Self::Template(template.as_str()),
            None => Self::Template(DEFAULT_BRIDGE_TEMPLATE),
        }
    }

    /// The requested name when no one holds it, or the template's first
    /// name no one holds.
    pub fn choose(&self, taken: impl Fn(&str) -> bool) -> Result<String, NamingError> {
        match self {
            Self::Fixed(name) if taken(name) => Err(NamingError::BridgeInUse((*name).to_owned())),
            Self::Fixed(name) => Ok((*name).to_owned()),
            Self::Template(template) => {
                let template = BridgeName::new(*template).map_err(|_| NamingError::Exhausted)?;
                (0..MAX_BRIDGE_ID)
                    .filter_map(|index| template.instantiate(index))
                    .map(|name| name.to_string())
                    .find(|name| !taken(name))
                    .ok_or(NamingError::Exhausted)
            }
        }
    }
}

/// A random locally administered MAC in libvirt's 52:54:00 range.
pub fn generate_mac() -> Result<MacAddr, NamingError> {
    let mut tail = [0u8; 3];
    crate::random::fill(&mut tail).map_err(NamingError::Random)?;
    Ok(MacAddr([0x52, 0x54, 0x00, tail[0], tail[1], tail[2]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_take_the_first_free_index_and_names_must_be_free() {
        let taken = |name: &str| ["virbr0", "virbr1", "mine"].contains(&name);
        assert_eq!(Requested::of(None).choose(taken).unwrap(), "virbr2");
        let template = BridgeName::new("lab%d").unwrap();
        assert_eq!(
            Requested::of(Some(&template)).choose(taken).unwrap(),
            "lab0"
        );
        let mine = BridgeName::new("mine").unwrap();
        assert_eq!(
            Requested::of(Some(&mine))
                .choose(taken)
                .unwrap_err()
                .to_string(),
            "internal error: bridge name 'mine' already in use."
        );
        assert_eq!(
            Requested::of(None)
                .choose(|_| true)
                .unwrap_err()
                .to_string(),
            "internal error: Bridge generation exceeded max id 256"
        );
        assert_eq!(generate_mac().unwrap().0[..3], [0x52, 0x54, 0x00]);
    }
}

//! Another manager of networks on the same host (libvirtd): virtnet must
//! not define or start a network that clashes with one of its networks.

use std::net::IpAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::definition::{ForwardMode, NetworkDef, Uuid, ipv4_mask};

use super::ServiceError;

/// A network another manager keeps, as far as clashes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignNetwork {
    pub name: String,
    pub uuid: Uuid,
    pub active: bool,
    pub bridge: Option<String>,
    /// Address and prefix length of each `<ip>`.
    pub subnets: Vec<(IpAddr, u8)>,
}

impl ForeignNetwork {
    /// What clashes need of a definition.
    pub fn of(def: &NetworkDef, active: bool) -> Self {
        Self {
            name: def.name.to_string(),
            uuid: def.uuid,
            active,
            bridge: def.bridge.name.as_ref().map(ToString::to_string),
            subnets: subnets(def),
        }
    }
}

fn subnets(def: &NetworkDef) -> Vec<(IpAddr, u8)> {
    def.ips
        .iter()
        .filter_map(|ip| Some((ip.address, ip.effective_prefix()?)))
        .collect()
}

/// The neighbour was asked and gave no answer in time (it hangs, or is
/// stopped): what depends on its networks is refused rather than left to
/// wait.
#[derive(Debug, thiserror::Error)]
#[error("{neighbour} at {uri} does not answer (no reply within {} s)", .waited.as_secs())]
pub struct NotAnswering {
    pub neighbour: String,
    pub uri: String,
    pub waited: Duration,
}

/// A neighbour's networks, minus those virtnet itself published there.
pub trait Neighbour: Send + Sync {
    /// How messages name the neighbour ("libvirtd").
    fn label(&self) -> &str;
    /// `None` when the neighbour cannot be asked now: nothing is checked
    /// then (the neighbour makes its own checks when it starts networks).
    fn networks(&self) -> BoxFuture<'_, Result<Option<Vec<ForeignNetwork>>, NotAnswering>>;
    /// The live definition of a running network changed (net-update).
    fn live_changed(&self, def: &NetworkDef);
}

/// Refuses `def` when it clashes with one of `foreign`: a network of the
/// same name with another uuid or the same uuid with another name, a
/// bridge name the other uses, and, when `starting`, any active network
/// of the same name or uuid, or one whose subnet overlaps.
pub fn check(
    def: &NetworkDef,
    starting: bool,
    label: &str,
    foreign: &[ForeignNetwork],
) -> Result<(), ServiceError> {
    let refuse = |theirs: &ForeignNetwork, what: String| {
        Err(ServiceError::OperationInvalid(format!(
            "network '{}' clashes with {label}'s network '{}' (uuid {}): {what}",
            def.name, theirs.name, theirs.uuid
        )))
    };
    let ours = subnets(def);
    let bridge = def.bridge.name.as_ref().map(ToString::to_string);
    let own_bridge = ForwardMode::has_own_bridge(def.forward_mode());
    for theirs in foreign {
        let same_name = theirs.name == def.name.as_str();
        let same_uuid = theirs.uuid == def.uuid;
        if same_name != same_uuid {
            return refuse(
                theirs,
                if same_name {
                    "same name, another uuid".into()
                } else {
                    "same uuid, another name".into()
                },
            );
        }
        if starting && theirs.active && same_name {
            return refuse(theirs, format!("it is active in {label}"));
        }
        if own_bridge && !same_uuid && bridge.is_some() && theirs.bridge == bridge {
            return refuse(
                theirs,
                format!(
                    "bridge '{}' is in use",
                    bridge.as_deref().unwrap_or_default()
                ),
            );
        }
        if starting && theirs.active {
            for (address, prefix) in &ours {
                if let Some((other, other_prefix)) = theirs
                    .subnets
                    .iter()
                    .find(|(other, other_prefix)| overlap(address, *prefix, other, *other_prefix))
                {
                    return refuse(
                        theirs,
                        format!("subnet {address}/{prefix} overlaps its {other}/{other_prefix}"),
                    );
                }
            }
        }
    }
    Ok(())
}

/// Whether two subnets share an address.
fn overlap(a: &IpAddr, a_prefix: u8, b: &IpAddr, b_prefix: u8) -> bool {
    let prefix = a_prefix.min(b_prefix);
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = ipv4_mask(prefix);
            u32::from(*a) & mask == u32::from(*b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(*a) & mask == u128::from(*b) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "<network><name>keennet</name>\
        <uuid>a6b49429-d5fd-4c7e-8e1a-6d3c1b2e4f50</uuid>\
        <forward mode='nat'/><bridge name='keenbr0'/>\
        <ip address='192.168.100.1' prefix='24'/>\
        <ip family='ipv6' address='fd00:100::1' prefix='64'/></network>";

    fn ours() -> NetworkDef {
        NetworkDef::parse(OURS).unwrap()
    }

    fn theirs(name: &str, uuid: &str, active: bool, bridge: &str, subnet: &str) -> ForeignNetwork {
        let (address, prefix) = subnet.split_once('/').unwrap();
        ForeignNetwork {
            name: name.into(),
            uuid: uuid.parse().unwrap(),
            active,
            bridge: Some(bridge.into()),
            subnets: vec![(address.parse().unwrap(), prefix.parse().unwrap())],
        }
    }

    const OTHER_UUID: &str = "dd8fe884-6c02-601e-7551-cca97df1c5df";
    const OUR_UUID: &str = "a6b49429-d5fd-4c7e-8e1a-6d3c1b2e4f50";

    fn refused(foreign: ForeignNetwork, starting: bool) -> Option<String> {
        check(&ours(), starting, "libvirtd", &[foreign])
            .err()
            .map(|error| error.to_string())
    }

    #[test]
    fn same_name_with_another_uuid_is_refused_even_when_inactive() {
        let message = refused(
            theirs("keennet", OTHER_UUID, false, "virbr5", "10.0.0.1/24"),
            false,
        )
        .unwrap();
        assert_eq!(
            message,
            "Requested operation is not valid: network 'keennet' clashes with libvirtd's \
             network 'keennet' (uuid dd8fe884-6c02-601e-7551-cca97df1c5df): same name, another uuid"
        );
        assert!(
            refused(
                theirs("other", OUR_UUID, false, "virbr5", "10.0.0.1/24"),
                false
            )
            .unwrap()
            .ends_with("same uuid, another name")
        );
    }

    #[test]
    fn the_same_network_may_be_defined_but_not_started_while_active_there() {
        let same = theirs("keennet", OUR_UUID, true, "keenbr0", "192.168.100.1/24");
        assert_eq!(refused(same.clone(), false), None);
        assert!(
            refused(same, true)
                .unwrap()
                .ends_with("it is active in libvirtd")
        );
        let inactive = theirs("keennet", OUR_UUID, false, "keenbr0", "192.168.100.1/24");
        assert_eq!(refused(inactive, true), None);
    }

    #[test]
    fn a_bridge_of_another_network_is_refused_whether_active_or_not() {
        let message = refused(
            theirs("default", OTHER_UUID, false, "keenbr0", "10.0.0.1/24"),
            false,
        );
        assert!(message.unwrap().ends_with("bridge 'keenbr0' is in use"));
    }

    #[test]
    fn overlapping_subnets_are_refused_at_start_of_active_networks_only() {
        let wide = theirs("default", OTHER_UUID, true, "virbr0", "192.168.0.1/16");
        assert_eq!(refused(wide.clone(), false), None);
        assert!(
            refused(wide, true)
                .unwrap()
                .ends_with("subnet 192.168.100.1/24 overlaps its 192.168.0.1/16")
        );
        let v6 = theirs("default", OTHER_UUID, true, "virbr0", "fd00:100::5/48");
        assert!(
            refused(v6, true)
                .unwrap()
                .ends_with("overlaps its fd00:100::5/48")
        );
        let inactive = theirs("default", OTHER_UUID, false, "virbr0", "192.168.100.1/24");
        assert_eq!(refused(inactive, true), None);
        let apart = theirs("default", OTHER_UUID, true, "virbr0", "192.168.101.1/24");
        assert_eq!(refused(apart, true), None);
    }
}

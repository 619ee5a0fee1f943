//! The D-Bus API: libvirt-dbus's interfaces (`org.libvirt.Connect`,
//! `org.libvirt.Network`), served by `virtnetd` and used by `virtnet`.

pub mod client;
mod network;
pub mod server;

use zbus::OwnedObjectPath;

use crate::definition::Uuid;

/// The bus name virtnetd owns unless told otherwise (`org.libvirt` is
/// libvirt-dbus's; virtnetd takes it only with `--bus-name org.libvirt`).
pub const DEFAULT_BUS_NAME: &str = "org.virtnet";
/// The connect path of the kernel driver: libvirt-dbus's path for the
/// system driver that networks of guests live on.
pub const KERNEL_CONNECT_PATH: &str = "/org/libvirt/QEMU";
/// The connect path of the test driver (libvirt-dbus's for `test:///default`).
pub const TEST_CONNECT_PATH: &str = "/org/libvirt/Test";
/// The same connect object at a path that does not depend on the driver,
/// for virtnet's own clients. Its signals go out on the driver's path only.
pub const VIRTNET_CONNECT_PATH: &str = "/org/virtnet";

/// Errors as libvirt-dbus sends them: `org.libvirt.Error` with libvirt's
/// message.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.libvirt")]
pub enum LibvirtError {
    #[zbus(error)]
    ZBus(zbus::Error),
    Error(String),
}

/// `<connect path>/network/_<uuid with '-' as '_'>`, as libvirt-dbus.
pub fn network_path(connect_path: &str, uuid: &Uuid) -> OwnedObjectPath {
    let path = format!(
        "{connect_path}/network/_{}",
        uuid.to_string().replace('-', "_")
    );
    // Always valid: a valid prefix, then '/', '_', hex digits and '_'.
    OwnedObjectPath::try_from(path).unwrap_or_default()
}

/// The uuid of a network's object path ([`network_path`]'s inverse).
pub fn network_uuid(path: &str) -> Option<Uuid> {
    let (_, name) = path.rsplit_once("/network/_")?;
    // Exactly libvirt-dbus's form: dashes written as underscores.
    let dashed = name.replace('_', "-");
    (dashed.len() == 36 && dashed.matches('-').count() == 4)
        .then(|| dashed.parse().ok())
        .flatten()
}

/// Which bus to use.
#[derive(Debug, Clone)]
pub enum Bus {
    System,
    Session,
    Address(String),
}

impl Bus {
    /// A connection builder for this bus.
    pub fn builder(&self) -> zbus::connection::Builder<'static> {
        match self {
            Self::System => zbus::connection::Builder::system(),
            Self::Session => zbus::connection::Builder::session(),
            Self::Address(address) => zbus::connection::Builder::address(address.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_paths_follow_libvirt_dbus() {
        let uuid: Uuid = "dd8fe884-6c02-601e-7551-cca97df1c5df".parse().unwrap();
        assert_eq!(
            network_path(TEST_CONNECT_PATH, &uuid).as_str(),
            "/org/libvirt/Test/network/_dd8fe884_6c02_601e_7551_cca97df1c5df"
        );
        assert_eq!(
            network_uuid(network_path(VIRTNET_CONNECT_PATH, &uuid).as_str()),
            Some(uuid)
        );
        assert_eq!(network_uuid("/org/virtnet/network/_dd8fe884"), None);
        assert_eq!(network_uuid(VIRTNET_CONNECT_PATH), None);
    }
}

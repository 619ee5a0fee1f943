//! `org.libvirt.Network`, as libvirt-dbus declares it.

// `parentIndex` is the argument's name in the interface file, and zbus names
// arguments after their Rust identifiers.
#![allow(non_snake_case)]

use std::sync::Arc;

use zbus::interface;

use super::LibvirtError;
use super::client::LeaseTuple;
use crate::definition::Uuid;
use crate::service::{Service, ServiceError};

type Result<T> = std::result::Result<T, LibvirtError>;

/// `org.libvirt.Network`: one object per network, found by uuid.
pub struct Network {
    pub(super) service: Arc<Service>,
    pub(super) uuid: Uuid,
    /// Kept for libvirt's message once the network is gone.
    pub(super) name: String,
}

impl Network {
    /// The service's error as libvirt words it for this network: a call on
    /// a network removed meanwhile gets networkObjFromNetwork's message.
    fn error(&self, error: ServiceError) -> LibvirtError {
        match error {
            ServiceError::NoSuchUuid(_) => LibvirtError::Error(format!(
                "Network not found: no network with matching uuid '{}' ({})",
                self.uuid, self.name
            )),
            other => other.into(),
        }
    }
}

#[interface(name = "org.libvirt.Network")]
impl Network {
    #[zbus(property(emits_changed_signal = "false"))]
    fn active(&self) -> Result<bool> {
        Ok(self
            .service
            .summary(&self.uuid)
            .map_err(|error| self.error(error))?
            .active)
    }

    #[zbus(property(emits_changed_signal = "false"))]
    fn autostart(&self) -> Result<bool> {
        Ok(self
            .service
            .summary(&self.uuid)
            .map_err(|error| self.error(error))?
            .autostart)
    }

    #[zbus(property)]
    async fn set_autostart(&mut self, autostart: bool) -> Result<()> {
        self.service
            .set_autostart(&self.uuid, autostart)
            .await
            .map_err(|error| self.error(error))
    }

    /// Not in Debian's libvirt-dbus 1.4 interface file; libvirt's
    /// virNetworkGetBridgeName, which clients otherwise parse XML for.
    #[zbus(property(emits_changed_signal = "false"))]
    fn bridge_name(&self) -> Result<String> {
        Ok(self
            .service
            .summary(&self.uuid)
            .map_err(|error| self.error(error))?
            .bridge
            .unwrap_or_default())
    }

    #[zbus(property(emits_changed_signal = "const"))]
    fn name(&self) -> Result<String> {
        Ok(self
            .service
            .summary(&self.uuid)
            .map_err(|error| self.error(error))?
            .name)
    }

    #[zbus(property(emits_changed_signal = "false"))]
    fn persistent(&self) -> Result<bool> {
        Ok(self
            .service
            .summary(&self.uuid)
            .map_err(|error| self.error(error))?
            .persistent)
    }

    #[zbus(property(emits_changed_signal = "const"), name = "UUID")]
    fn uuid(&self) -> Result<String> {
        Ok(self
            .service
            .summary(&self.uuid)
            .map_err(|error| self.error(error))?
            .uuid
            .to_string())
    }

    async fn create(&self) -> Result<()> {
        self.service
            .start(&self.uuid)
            .await
            .map_err(|error| self.error(error))
    }

    async fn destroy(&self) -> Result<()> {
        self.service
            .destroy(&self.uuid)
            .await
            .map_err(|error| self.error(error))
    }

    #[zbus(name = "GetDHCPLeases", out_args("leases"))]
    async fn get_dhcp_leases(&self, mac: &str, flags: u32) -> Result<Vec<LeaseTuple>> {
        let _ = flags;
        let mac = Some(mac).filter(|mac| !mac.is_empty());
        let leases = self
            .service
            .leases(&self.uuid, mac)
            .await
            .map_err(|error| self.error(error))?;
        Ok(leases
            .into_iter()
            .map(|lease| {
                (
                    lease.interface,
                    lease.expiry_time,
                    i32::from(lease.ipv6),
                    lease.mac,
                    lease.iaid,
                    lease.address,
                    lease.prefix,
                    lease.hostname,
                    lease.client_id,
                )
            })
            .collect())
    }

    #[zbus(name = "GetXMLDesc", out_args("xml"))]
    async fn get_xml_desc(&self, flags: u32) -> Result<String> {
        const INACTIVE: u32 = 1;
        self.service
            .xml(&self.uuid, flags & INACTIVE != 0)
            .await
            .map_err(|error| self.error(error))
    }

    async fn undefine(&self) -> Result<()> {
        self.service
            .undefine(&self.uuid)
            .await
            .map_err(|error| self.error(error))
    }

    async fn update(
        &self,
        command: u32,
        section: u32,
        parentIndex: i32,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        self.service
            .update(&self.uuid, command, section, parentIndex, xml, flags)
            .await
            .map_err(|error| self.error(error))
    }
}

/// `org.virtnet.Network`, beside `org.libvirt.Network` on each network's
/// object: libvirt 9.7's metadata calls (virNetworkGetMetadata,
/// virNetworkSetMetadata), which libvirt-dbus does not have for networks,
/// with the signatures it gives the domain's (an empty string for NULL).
pub struct VirtnetNetwork {
    pub(super) service: Arc<Service>,
    pub(super) uuid: Uuid,
}

/// An empty string is libvirt-dbus's NULL.
fn null_if_empty(text: &str) -> Option<&str> {
    Some(text).filter(|text| !text.is_empty())
}

#[interface(name = "org.virtnet.Network")]
impl VirtnetNetwork {
    /// The title (kind 1), description (0) or element of namespace `uri`
    /// (2); `flags`: 1 the live definition, 2 the persistent one.
    #[zbus(out_args("metadata"))]
    async fn get_metadata(&self, kind: i32, uri: &str, flags: u32) -> Result<String> {
        Ok(self
            .service
            .metadata(&self.uuid, kind, null_if_empty(uri), flags)
            .await?)
    }

    /// Sets the title, description or element (written with the prefix
    /// `key`); an empty `metadata` removes it.
    async fn set_metadata(
        &self,
        kind: i32,
        metadata: &str,
        key: &str,
        uri: &str,
        flags: u32,
    ) -> Result<()> {
        Ok(self
            .service
            .set_metadata(
                &self.uuid,
                kind,
                null_if_empty(metadata),
                null_if_empty(key),
                null_if_empty(uri),
                flags,
            )
            .await?)
    }
}

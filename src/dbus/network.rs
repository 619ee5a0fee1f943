//! `org.libvirt.Network`, as libvirt-dbus declares it.

// `parentIndex` is the argument's name in the interface file, and zbus names
// arguments after their Rust identifiers.
#![allow(non_snake_case)]

use std::sync::Arc;

use zbus::interface;

use super::LibvirtError;
use super::client::LeaseTuple;
use crate::definition::Uuid;
use crate::service::Service;

type Result<T> = std::result::Result<T, LibvirtError>;

/// `org.libvirt.Network`: one object per network, found by uuid.
pub struct Network {
    pub(super) service: Arc<Service>,
    pub(super) uuid: Uuid,
}

#[interface(name = "org.libvirt.Network")]
impl Network {
    #[zbus(property(emits_changed_signal = "false"))]
    fn active(&self) -> Result<bool> {
        Ok(self.service.summary(&self.uuid)?.active)
    }

    #[zbus(property(emits_changed_signal = "false"))]
    fn autostart(&self) -> Result<bool> {
        Ok(self.service.summary(&self.uuid)?.autostart)
    }

    #[zbus(property)]
    async fn set_autostart(&mut self, autostart: bool) -> Result<()> {
        Ok(self.service.set_autostart(&self.uuid, autostart).await?)
    }

    /// Not in Debian's libvirt-dbus 1.4 interface file; libvirt's
    /// virNetworkGetBridgeName, which clients otherwise parse XML for.
    #[zbus(property(emits_changed_signal = "false"))]
    fn bridge_name(&self) -> Result<String> {
        Ok(self.service.summary(&self.uuid)?.bridge.unwrap_or_default())
    }

    #[zbus(property(emits_changed_signal = "const"))]
    fn name(&self) -> Result<String> {
        Ok(self.service.summary(&self.uuid)?.name)
    }

    #[zbus(property(emits_changed_signal = "false"))]
    fn persistent(&self) -> Result<bool> {
        Ok(self.service.summary(&self.uuid)?.persistent)
    }

    #[zbus(property(emits_changed_signal = "const"), name = "UUID")]
    fn uuid(&self) -> Result<String> {
        Ok(self.service.summary(&self.uuid)?.uuid.to_string())
    }

    async fn create(&self) -> Result<()> {
        Ok(self.service.start(&self.uuid).await?)
    }

    async fn destroy(&self) -> Result<()> {
        Ok(self.service.destroy(&self.uuid).await?)
    }

    #[zbus(name = "GetDHCPLeases", out_args("leases"))]
    async fn get_dhcp_leases(&self, mac: &str, flags: u32) -> Result<Vec<LeaseTuple>> {
        let _ = flags;
        let mac = Some(mac).filter(|mac| !mac.is_empty());
        let leases = self.service.leases(&self.uuid, mac).await?;
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
        Ok(self.service.xml(&self.uuid, flags & INACTIVE != 0).await?)
    }

    async fn undefine(&self) -> Result<()> {
        Ok(self.service.undefine(&self.uuid).await?)
    }

    async fn update(
        &self,
        command: u32,
        section: u32,
        parentIndex: i32,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        Ok(self
            .service
            .update(&self.uuid, command, section, parentIndex, xml, flags)
            .await?)
    }
}

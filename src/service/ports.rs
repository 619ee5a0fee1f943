//! Network ports, as libvirt's network driver keeps them: a port of an
//! active network is allocated (`plan::port`), recorded by the driver
//! before it is handed out, and forgotten when deleted or when its network
//! stops. Ports live in their network's state, under its lock.

use std::collections::{BTreeMap, BTreeSet};

use crate::definition::Uuid;
use crate::definition::port::{NetworkPortDef, Plug};
use crate::plan::port;
use crate::state::record::port::StoredPort;

use super::Service;
use super::error::{Result, ServiceError};
use super::registry::State;

/// virNetworkPortCreateFlags.
pub mod port_create_flags {
    /// Re-create a port with the plug it had (its client restarted).
    pub const RECLAIM: u32 = 1;
}

/// libvirt's refusal of a port call on a network that is not running.
fn not_active(name: &str) -> ServiceError {
    ServiceError::OperationInvalid(format!("network '{name}' is not active"))
}

impl Service {
    /// virNetworkPortCreateXML: a port of running network `network` from
    /// `<networkport>` XML; a port without a plug is allocated, one with a
    /// plug is taken back as it was with `reclaim`. Its UUID.
    pub async fn create_port(&self, network: &Uuid, xml: &str, reclaim: bool) -> Result<Uuid> {
        let (entry, mut state) = self.lock(network).await?;
        let requested = NetworkPortDef::parse(xml)?;
        let Some(live) = state.live.as_ref() else {
            return Err(not_active(&entry.name));
        };
        let port = match (&requested.plug, reclaim) {
            (Plug::None, true) => {
                return Err(ServiceError::InvalidArgument(
                    "Port reclaim requested but plug type is none".into(),
                ));
            }
            (Plug::None, false) => port::allocate(&live.def, requested)?,
            (_, true) => port::reclaim(&live.def, requested)?,
            (_, false) => {
                return Err(ServiceError::InvalidArgument(
                    "Port reclaim not requested but plug type is not none".into(),
                ));
            }
        };
        if state.ports.contains_key(&port.uuid) {
            return Err(ServiceError::PortExists(port.uuid));
        }
        let stored = StoredPort {
            network: entry.name.clone(),
            port,
        };
        self.driver.save_port(&stored).await?;
        let uuid = stored.port.uuid;
        state.ports.insert(uuid, stored.port);
        Ok(uuid)
    }

    /// virNetworkPortLookupByUUID: whether running network `network` has
    /// port `port`.
    pub async fn lookup_port(&self, network: &Uuid, port: &Uuid) -> Result<()> {
        self.port_xml(network, port).await.map(drop)
    }

    /// virNetworkPortGetXMLDesc: the port as recorded, with its plug.
    pub async fn port_xml(&self, network: &Uuid, port: &Uuid) -> Result<String> {
        let (entry, state) = self.lock(network).await?;
        let found = state
            .ports
            .get(port)
            .ok_or(ServiceError::NoSuchPort(*port))?;
        if state.live.is_none() {
            return Err(not_active(&entry.name));
        }
        Ok(found.to_xml())
    }

    /// virNetworkListAllPorts: the UUIDs of the ports of running network
    /// `network`.
    pub async fn list_ports(&self, network: &Uuid) -> Result<Vec<Uuid>> {
        let (entry, state) = self.lock(network).await?;
        if state.live.is_none() {
            return Err(not_active(&entry.name));
        }
        Ok(state.ports.keys().copied().collect())
    }

    /// virNetworkPortDelete: the port is released and its record removed.
    pub async fn delete_port(&self, network: &Uuid, port: &Uuid) -> Result<()> {
        let (entry, mut state) = self.lock(network).await?;
        if !state.ports.contains_key(port) {
            return Err(ServiceError::NoSuchPort(*port));
        }
        if state.live.is_none() {
            return Err(not_active(&entry.name));
        }
        self.driver.delete_port(&entry.name, port).await?;
        state.ports.remove(port);
        Ok(())
    }

    /// A network stopped: its ports go with it, records and all (a record
    /// that cannot be removed is logged; the next daemon start drops the
    /// records of networks not running).
    pub(super) async fn forget_ports(&self, name: &str, state: &mut State) {
        state.ports.clear();
        self.delete_port_records(name).await;
    }

    async fn delete_port_records(&self, name: &str) {
        if let Err(error) = self.driver.delete_ports(name).await {
            tracing::error!(
                network = name,
                "cannot remove its port records: {}",
                crate::definition::error_chain(&error)
            );
        }
    }

    /// The ports recorded, given to the running networks of `states` (by
    /// name); those of networks not running are forgotten.
    pub(super) async fn restore_ports(
        &self,
        states: &mut BTreeMap<String, State>,
        ports: Vec<StoredPort>,
    ) {
        let mut stale = BTreeSet::new();
        for stored in ports {
            match states.get_mut(&stored.network) {
                Some(state) if state.live.is_some() => {
                    state.ports.insert(stored.port.uuid, stored.port);
                }
                _ => {
                    stale.insert(stored.network);
                }
            }
        }
        for name in stale {
            self.delete_port_records(&name).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::TestDriver;

    const PORT: &str = "<networkport><uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207d</uuid>\
        <owner><name>g</name><uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid></owner>\
        <mac address='52:54:00:7b:35:93'/></networkport>";

    #[tokio::test]
    async fn a_port_is_created_listed_shown_and_deleted() {
        let service = Service::new(TestDriver);
        service.load().await.unwrap();
        let default = service.lookup_by_name("default").unwrap().uuid;
        let uuid = service.create_port(&default, PORT, false).await.unwrap();
        assert_eq!(service.list_ports(&default).await.unwrap(), [uuid]);
        let xml = service.port_xml(&default, &uuid).await.unwrap();
        assert!(
            xml.contains("<plug type='network' bridge='virbr0'/>"),
            "{xml}"
        );
        assert!(matches!(
            service.create_port(&default, &xml, true).await,
            Err(ServiceError::PortExists(_))
        ));
        service.delete_port(&default, &uuid).await.unwrap();
        assert_eq!(
            service
                .delete_port(&default, &uuid)
                .await
                .unwrap_err()
                .to_string(),
            "network port not found: Network port with UUID \
             5d744f21-ba4a-4d6e-bdb2-30a35ff3207d does not exist"
        );
    }

    #[tokio::test]
    async fn a_stopped_network_loses_its_ports_and_refuses_new_ones() {
        let service = Service::new(TestDriver);
        service.load().await.unwrap();
        let default = service.lookup_by_name("default").unwrap().uuid;
        let uuid = service.create_port(&default, PORT, false).await.unwrap();
        service.destroy(&default).await.unwrap();
        assert_eq!(
            service
                .create_port(&default, PORT, false)
                .await
                .unwrap_err()
                .to_string(),
            "Requested operation is not valid: network 'default' is not active"
        );
        service.start(&default).await.unwrap();
        assert!(service.list_ports(&default).await.unwrap().is_empty());
        assert!(matches!(
            service.port_xml(&default, &uuid).await,
            Err(ServiceError::NoSuchPort(_))
        ));
    }
}

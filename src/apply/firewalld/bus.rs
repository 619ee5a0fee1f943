//! The few calls of firewalld's D-Bus API (firewalld.dbus(5)) virtnet
//! makes. Every call is sent with NO_AUTO_START: asking never starts a
//! firewalld that the administrator left stopped (its bus activation file
//! would otherwise have the bus start it).

use std::collections::HashMap;

use zbus::Connection;
use zbus::proxy::{CacheProperties, MethodFlags};
use zbus::wire::{DynamicDeserialize, DynamicType, Variant};

use crate::plan::firewalld::{PolicyDefinition, ZoneDefinition};

/// firewalld's name on the system bus, its main object and interface.
pub(super) const NAME: &str = "org.fedoraproject.FirewallD1";
pub(super) const PATH: &str = "/org/fedoraproject/FirewallD1";
pub(super) const INTERFACE: &str = "org.fedoraproject.FirewallD1";
const ZONE: &str = "org.fedoraproject.FirewallD1.zone";
const POLICY: &str = "org.fedoraproject.FirewallD1.policy";
const CONFIG_PATH: &str = "/org/fedoraproject/FirewallD1/config";
const CONFIG: &str = "org.fedoraproject.FirewallD1.config";

/// The D-Bus error firewalld answers `removeInterface` with when the
/// interface is in no zone.
const NOT_IN_A_ZONE: &str = "UNKNOWN_INTERFACE";

/// firewalld as seen over one connection to the system bus.
pub(super) struct FirewalldBus<'c> {
    connection: &'c Connection,
}

impl<'c> FirewalldBus<'c> {
    pub(super) fn new(connection: &'c Connection) -> Self {
        Self { connection }
    }

    /// Whether firewalld owns its name now.
    pub(super) async fn is_running(&self) -> zbus::Result<bool> {
        let bus = zbus::fdo::DBusProxy::new(self.connection).await?;
        Ok(bus.name_has_owner(NAME.try_into()?).await?)
    }

    async fn call<B, R>(
        &self,
        path: &'static str,
        interface: &'static str,
        method: &'static str,
        body: &B,
    ) -> zbus::Result<R>
    where
        B: serde::Serialize + DynamicType,
        R: for<'d> DynamicDeserialize<'d>,
    {
        let proxy: zbus::Proxy<'_> = zbus::proxy::Builder::new(self.connection)
            .destination(NAME)
            .path(path)
            .interface(interface)
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        let reply = proxy
            .call_with_flags(method, MethodFlags::NO_AUTO_START, body)
            .await?;
        // Only NO_REPLY_EXPECTED makes a call return no reply.
        reply.ok_or_else(|| zbus::Error::Failure(format!("firewalld did not answer {method}")))
    }

    /// The zones of the runtime configuration.
    pub(super) async fn zones(&self) -> zbus::Result<Vec<String>> {
        self.call(PATH, ZONE, "getZones", &()).await
    }

    /// The policies of the runtime configuration.
    pub(super) async fn policies(&self) -> zbus::Result<Vec<String>> {
        self.call(PATH, POLICY, "getPolicies", &()).await
    }

    /// The zone `interface` is in, if any.
    pub(super) async fn zone_of_interface(&self, interface: &str) -> zbus::Result<Option<String>> {
        let zone: String = self
            .call(PATH, ZONE, "getZoneOfInterface", &(interface,))
            .await?;
        Ok(Some(zone).filter(|zone| !zone.is_empty()))
    }

    /// Puts `interface` into `zone` (out of any other), at runtime.
    pub(super) async fn change_zone_of_interface(
        &self,
        zone: &str,
        interface: &str,
    ) -> zbus::Result<()> {
        let _zone: String = self
            .call(PATH, ZONE, "changeZoneOfInterface", &(zone, interface))
            .await?;
        Ok(())
    }

    /// Takes `interface` out of whatever zone it is in; one in no zone is
    /// fine.
    pub(super) async fn remove_interface(&self, interface: &str) -> zbus::Result<()> {
        match self
            .call::<_, String>(PATH, ZONE, "removeInterface", &("", interface))
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_firewalld_error(&error, NOT_IN_A_ZONE) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The zones of the permanent configuration.
    pub(super) async fn permanent_zones(&self) -> zbus::Result<Vec<String>> {
        self.call(CONFIG_PATH, CONFIG, "getZoneNames", &()).await
    }

    /// The policies of the permanent configuration.
    pub(super) async fn permanent_policies(&self) -> zbus::Result<Vec<String>> {
        self.call(CONFIG_PATH, CONFIG, "getPolicyNames", &()).await
    }

    pub(super) async fn add_permanent_zone(&self, zone: &ZoneDefinition) -> zbus::Result<()> {
        let settings: HashMap<&str, Variant<'_>> = HashMap::from([
            ("short", Variant::from(zone.short)),
            ("description", Variant::from(zone.description)),
            ("target", Variant::from("default")),
            ("services", Variant::from(zone.services.to_vec())),
            ("protocols", Variant::from(zone.protocols.to_vec())),
        ]);
        let _path: zbus::OwnedObjectPath = self
            .call(CONFIG_PATH, CONFIG, "addZone2", &(zone.name, settings))
            .await?;
        Ok(())
    }

    pub(super) async fn add_permanent_policy(&self, policy: &PolicyDefinition) -> zbus::Result<()> {
        let settings: HashMap<&str, Variant<'_>> = HashMap::from([
            ("short", Variant::from(policy.short)),
            ("description", Variant::from(policy.description)),
            ("target", Variant::from(policy.target)),
            (
                "ingress_zones",
                Variant::from(policy.ingress_zones.to_vec()),
            ),
            ("egress_zones", Variant::from(policy.egress_zones.to_vec())),
        ]);
        let _path: zbus::OwnedObjectPath = self
            .call(CONFIG_PATH, CONFIG, "addPolicy", &(policy.name, settings))
            .await?;
        Ok(())
    }

    /// Makes the permanent configuration the runtime one. firewalld drops
    /// the runtime interface assignments and announces `Reloaded`.
    pub(super) async fn reload(&self) -> zbus::Result<()> {
        self.call(PATH, INTERFACE, "reload", &()).await
    }
}

/// Whether `error` is firewalld's exception with code `code` (its message
/// starts with the code: `UNKNOWN_INTERFACE: 'vb0' is not in any zone`).
fn is_firewalld_error(error: &zbus::Error, code: &str) -> bool {
    match error {
        zbus::Error::MethodError(_, Some(message), _) => message.starts_with(code),
        _ => false,
    }
}

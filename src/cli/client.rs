//! A connection to virtnetd: proxies of its objects, networks looked up as
//! virsh looks them up, and their properties.

use std::collections::HashMap;

use futures_util::future::join_all;
use zbus::{Connection, OwnedObjectPath, OwnedVariant};

use super::args::virtnet::BusArgs;
use super::failure::{Context, Failure, bus_error};
use crate::dbus::client::{ConnectProxy, NetworkProxy, VirtnetConnectProxy};
use crate::dbus::{self, Bus};

/// A connection to virtnetd.
pub(super) struct Client {
    connection: Connection,
    bus_name: String,
}

impl Client {
    pub(super) async fn open(args: &BusArgs) -> Result<Self, Failure> {
        let bus = match (&args.bus_address, args.session) {
            (Some(address), _) => Bus::Address(address.clone()),
            (None, true) => Bus::Session,
            (None, false) => Bus::System,
        };
        let connection = bus.builder().build().await.map_err(|error| Failure {
            context: Some("failed to connect to virtnetd".into()),
            message: bus_error(error),
            output: String::new(),
        })?;
        Ok(Self {
            connection,
            bus_name: args.bus_name.clone(),
        })
    }

    /// A proxy of the daemon's object at `path` (no property cache: the
    /// interfaces emit no change signals).
    async fn proxy<P>(&self, path: OwnedObjectPath) -> Result<P, Failure>
    where
        P: From<zbus::Proxy<'static>> + zbus::proxy::Defaults,
    {
        zbus::proxy::Builder::<P>::new(&self.connection)
            .destination(self.bus_name.clone())
            .path(path)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .context(|| "failed to connect to virtnetd".into())
    }

    /// virtnetd's connect object, at the path that does not depend on its
    /// driver.
    fn connect_object(&self) -> OwnedObjectPath {
        OwnedObjectPath::try_from(dbus::VIRTNET_CONNECT_PATH).unwrap_or_default()
    }

    pub(super) async fn connect(&self) -> Result<ConnectProxy<'static>, Failure> {
        self.proxy(self.connect_object()).await
    }

    pub(super) async fn virtnet(&self) -> Result<VirtnetConnectProxy<'static>, Failure> {
        self.proxy(self.connect_object()).await
    }

    pub(super) async fn network_at(
        &self,
        path: OwnedObjectPath,
    ) -> Result<NetworkProxy<'static>, Failure> {
        self.proxy(path).await
    }

    /// A network by UUID or name, as virsh looks networks up.
    pub(super) async fn network(&self, network: &str) -> Result<NetworkProxy<'static>, Failure> {
        let connect = self.connect().await?;
        let context = || format!("failed to get network '{network}'");
        let by_uuid = if network.parse::<crate::definition::Uuid>().is_ok() {
            connect.network_lookup_by_uuid(network).await.ok()
        } else {
            None
        };
        let path = match by_uuid {
            Some(path) => path,
            None => connect
                .network_lookup_by_name(network)
                .await
                .context(context)?,
        };
        self.network_at(path).await
    }

    /// Name and other properties of networks, asked for all at once.
    pub(super) async fn properties(
        &self,
        paths: &[OwnedObjectPath],
    ) -> Result<Vec<Properties>, Failure> {
        let calls = paths.iter().map(|path| {
            self.connection.call_method(
                Some(self.bus_name.as_str()),
                path.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "GetAll",
                &("org.libvirt.Network",),
            )
        });
        let mut networks = Vec::new();
        for reply in join_all(calls).await {
            let reply = reply.context(|| "Failed to list networks".into())?;
            let values: HashMap<String, OwnedVariant> = reply
                .body()
                .deserialize()
                .context(|| "Failed to list networks".into())?;
            networks.push(Properties::from(values));
        }
        Ok(networks)
    }
}

#[derive(Default)]
pub(super) struct Properties {
    pub(super) name: String,
    pub(super) uuid: String,
    pub(super) active: bool,
    pub(super) autostart: bool,
    pub(super) persistent: bool,
    pub(super) bridge: String,
}

impl From<HashMap<String, OwnedVariant>> for Properties {
    fn from(values: HashMap<String, OwnedVariant>) -> Self {
        let text = |key: &str| {
            values
                .get(key)
                .and_then(|value| String::try_from(value.clone()).ok())
                .unwrap_or_default()
        };
        let flag = |key: &str| {
            values
                .get(key)
                .and_then(|value| bool::try_from(value).ok())
                .unwrap_or_default()
        };
        Self {
            name: text("Name"),
            uuid: text("UUID"),
            active: flag("Active"),
            autostart: flag("Autostart"),
            persistent: flag("Persistent"),
            bridge: text("BridgeName"),
        }
    }
}

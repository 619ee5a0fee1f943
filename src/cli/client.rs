//! A connection to virtnetd: proxies of its objects, networks looked up as
//! virsh looks them up, and their properties.

use std::collections::HashMap;

use futures_util::future::join_all;
use zbus::{Connection, OwnedObjectPath, OwnedVariant};

use super::args::virtnet::BusArgs;
use super::failure::{Context, Failure, NOT_CONNECTED};
use crate::dbus::client::{ConnectProxy, NetworkProxy, VirtnetConnectProxy, VirtnetNetworkProxy};
use crate::dbus::{self, Bus};

/// The bus of a virsh connection URI: virtnetd is the system daemon or the
/// session one, whichever hypervisor the URI names.
fn bus_of_uri(uri: &str) -> Result<Bus, String> {
    match uri {
        "qemu:///system" | "network:///system" => Ok(Bus::System),
        "qemu:///session" | "network:///session" => Ok(Bus::Session),
        other => Err(format!(
            "URI '{other}' is not served by virtnet (it serves qemu:///system, \
             network:///system, qemu:///session and network:///session)"
        )),
    }
}

/// A connection to virtnetd.
pub(super) struct Client {
    connection: Connection,
    bus_name: String,
}

impl Client {
    /// Connects to the bus and checks that virtnetd is there: a command
    /// run without it fails with one line saying so.
    pub(super) async fn open(args: &BusArgs) -> Result<Self, Failure> {
        let unreachable = |reason: String| Failure::new(format!("{NOT_CONNECTED}: {reason}"));
        let bus = match (&args.connect, &args.bus_address, args.session) {
            (Some(uri), _, _) => bus_of_uri(uri).map_err(unreachable)?,
            (None, Some(address), _) => Bus::Address(address.clone()),
            (None, None, true) => Bus::Session,
            (None, None, false) => Bus::System,
        };
        let connection = bus
            .builder()
            .build()
            .await
            .map_err(|error| unreachable(format!("cannot reach the bus: {error}")))?;
        let bus_name = zbus::names::BusName::try_from(args.bus_name.as_str())
            .map_err(|error| unreachable(format!("bad bus name: {error}")))?;
        let running = zbus::fdo::DBusProxy::new(&connection)
            .await
            .map_err(|error| unreachable(error.to_string()))?
            .name_has_owner(bus_name)
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        if !running {
            return Err(unreachable(format!(
                "virtnetd is not running (nothing owns {} on the bus)",
                args.bus_name
            )));
        }
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

    /// virtnet's own calls on the network at `path`.
    pub(super) async fn virtnet_network(
        &self,
        path: OwnedObjectPath,
    ) -> Result<VirtnetNetworkProxy<'static>, Failure> {
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

    /// virtnetd's network event signals (`interface`'s `member`), from
    /// whichever connect path it emits them on (its driver's).
    pub(super) async fn network_events(
        &self,
        interface: &'static str,
        member: &'static str,
    ) -> Result<zbus::MessageStream, Failure> {
        let not_subscribed = |error: zbus::Error| Failure::new(format!("{NOT_CONNECTED}: {error}"));
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(self.bus_name.as_str())
            .interface(interface)
            .member(member)
            .build()
            .map_err(not_subscribed)?;
        zbus::MessageStream::for_match_rule(rule, &self.connection, None)
            .await
            .map_err(not_subscribed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virsh_uris_name_the_system_or_the_session_daemon() {
        for uri in ["qemu:///system", "network:///system"] {
            assert!(matches!(bus_of_uri(uri), Ok(Bus::System)), "{uri}");
        }
        for uri in ["qemu:///session", "network:///session"] {
            assert!(matches!(bus_of_uri(uri), Ok(Bus::Session)), "{uri}");
        }
        let refused = bus_of_uri("test:///default").err().unwrap();
        assert!(refused.starts_with("URI 'test:///default' is not served by virtnet"));
    }
}

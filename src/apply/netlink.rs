//! Links, addresses and routes over rtnetlink.

use std::collections::HashMap;
use std::net::IpAddr;

use futures_util::{Stream, StreamExt, TryStreamExt};
use netlink_sys::AsyncSocket;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoBridge, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use crate::plan::diagnosis::LinkFacts;
use crate::plan::firewall::Subnet;
use crate::plan::network::{BridgePlan, RoutePlan};

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a netlink socket")]
    Connect(#[source] std::io::Error),
    #[error("netlink: cannot {action}")]
    Request {
        action: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("netlink: invalid route {0}")]
    Route(String),
    #[error("netlink: the thread deleting a link failed: {0}")]
    Thread(String),
}

impl NetlinkError {
    /// Whether the kernel answered that there is no such link.
    pub fn is_no_such_device(&self) -> bool {
        matches!(self, Self::Request {
            source: rtnetlink::Error::NetlinkError(error),
            ..
        } if error.raw_code() == -libc::ENODEV)
    }
}

type Result<T> = std::result::Result<T, NetlinkError>;

fn failed(action: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let action = action.into();
    move |source| NetlinkError::Request { action, source }
}

fn index_and_name(link: &LinkMessage) -> Option<(u32, String)> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::IfName(name) => Some((link.header.index, name.clone())),
            _ => None,
        })
}

pub use crate::plan::network::HostRoute;

/// A netlink connection in the network namespace of the calling thread.
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the socket; its reader runs as a task on the current runtime.
    pub fn connect() -> Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// The link named `name`, if there is one.
    async fn link(&self, name: &str) -> Result<Option<LinkMessage>> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            // The kernel answers ENODEV for a name it does not know.
            Err(rtnetlink::Error::NetlinkError(error)) if error.raw_code() == -libc::ENODEV => {
                Ok(None)
            }
            Err(error) => Err(failed(format!("look up link {name}"))(error)),
        }
    }

    /// The name of link `index`, if there is such a link.
    pub async fn link_name(&self, index: u32) -> Result<Option<String>> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(link) => Ok(link.as_ref().and_then(index_and_name).map(|(_, name)| name)),
            Err(rtnetlink::Error::NetlinkError(error)) if error.raw_code() == -libc::ENODEV => {
                Ok(None)
            }
            Err(error) => Err(failed(format!("look up link {index}"))(error)),
        }
    }

    /// Takes link `index` out of sight without deleting it (which waits in
    /// the kernel): down, without addresses, renamed to `name`. The kernel
    /// renames only a link that is down. `Ok(false)` when there is no such
    /// link.
    pub async fn retire(&self, index: u32, name: &str) -> Result<bool> {
        match self.set_down(index).await {
            Err(error) if error.is_no_such_device() => return Ok(false),
            other => other?,
        }
        let addresses: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(failed(format!("list the addresses of link {index}")))?;
        for address in addresses {
            self.handle
                .address()
                .del(address)
                .execute()
                .await
                .map_err(failed(format!("remove an address of link {index}")))?;
        }
        let renamed = LinkUnspec::new_with_index(index).name(name).build();
        self.handle
            .link()
            .set(renamed)
            .execute()
            .await
            .map_err(failed(format!("rename link {index} to {name}")))?;
        Ok(true)
    }

    pub async fn link_index(&self, name: &str) -> Result<Option<u32>> {
        Ok(self.link(name).await?.map(|link| link.header.index))
    }

    /// Whether `name` is a bridge (asked over netlink: /sys shows the
    /// namespace it was mounted in, not the caller's).
    pub async fn is_bridge(&self, name: &str) -> Result<bool> {
        Ok(self.link(name).await?.is_some_and(|link| {
            link.attributes.iter().any(|attribute| {
                matches!(attribute, LinkAttribute::LinkInfo(infos)
                    if infos.iter().any(|info| matches!(info, LinkInfo::Kind(InfoKind::Bridge))))
            })
        }))
    }

    async fn links(&self) -> Result<Vec<LinkMessage>> {
        self.handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(failed("list links"))
    }

    /// Every link of the namespace, by index.
    pub async fn link_indexes(&self) -> Result<HashMap<u32, String>> {
        Ok(self
            .links()
            .await?
            .iter()
            .filter_map(index_and_name)
            .collect())
    }

    /// Every link of the namespace by index: its name and whether it is up.
    pub async fn link_states(&self) -> Result<HashMap<u32, (String, bool)>> {
        Ok(self
            .link_facts()
            .await?
            .into_iter()
            .map(|(index, link)| (index, (link.name, link.up)))
            .collect())
    }

    /// Every link of the namespace by index, as `virtnet doctor` sees it:
    /// name, whether it is up, and its MTU (addresses and sysctls are
    /// left to the caller).
    pub async fn link_facts(&self) -> Result<HashMap<u32, LinkFacts>> {
        Ok(self
            .links()
            .await?
            .iter()
            .filter_map(|link| {
                let (index, name) = index_and_name(link)?;
                let mtu = link
                    .attributes
                    .iter()
                    .find_map(|attribute| match attribute {
                        LinkAttribute::Mtu(mtu) => Some(*mtu),
                        _ => None,
                    });
                let facts = LinkFacts {
                    name,
                    up: link.header.flags.contains(LinkFlags::Up),
                    mtu,
                    ..LinkFacts::default()
                };
                Some((index, facts))
            })
            .collect())
    }

    /// The links enslaved to bridge `bridge` (its ports), by index and name.
    pub async fn ports(&self, bridge: u32) -> Result<Vec<(u32, String)>> {
        Ok(self
            .links()
            .await?
            .iter()
            .filter(|link| {
                link.attributes.iter().any(
                    |attribute| matches!(attribute, LinkAttribute::Controller(index) if *index == bridge),
                )
            })
            .filter_map(index_and_name)
            .collect())
    }

    /// Makes link `index` a port of bridge `bridge`.
    pub async fn attach(&self, index: u32, bridge: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index).controller(bridge).build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(failed(format!("attach link {index} to bridge {bridge}")))
    }

    pub async fn link_names(&self) -> Result<Vec<String>> {
        Ok(self.link_indexes().await?.into_values().collect())
    }

    /// Creates the bridge, down, with its MAC, MTU and STP settings; returns its index.
    pub async fn create_bridge(&self, plan: &BridgePlan) -> Result<u32> {
        let stp = if plan.stp {
            BridgeStpState::KernelStp
        } else {
            BridgeStpState::Disabled
        };
        // The kernel counts the forward delay in hundredths of a second.
        let delay = u32::try_from(plan.delay.saturating_mul(100)).unwrap_or(u32::MAX);
        let mut builder = LinkMessageBuilder::<LinkBridge>::new(&plan.name)
            .address(plan.mac.to_vec())
            .append_info_data(InfoBridge::StpState(stp))
            .append_info_data(InfoBridge::ForwardDelay(delay));
        if let Some(mtu) = plan.mtu {
            builder = builder.mtu(mtu);
        }
        self.handle
            .link()
            .add(builder.build())
            .execute()
            .await
            .map_err(failed(format!("create bridge {}", plan.name)))?;
        self.link_index(&plan.name).await?.ok_or_else(|| {
            failed(format!("find bridge {} after creating it", plan.name))(
                rtnetlink::Error::RequestFailed,
            )
        })
    }

    pub async fn set_up(&self, index: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(failed(format!("bring up link {index}")))
    }

    pub async fn set_down(&self, index: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index).down().build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(failed(format!("bring down link {index}")))
    }

    /// Adds an address; IPv6 addresses skip duplicate address detection so
    /// dnsmasq can bind to them at once (the bridge has no other port yet).
    pub async fn add_address(&self, index: u32, address: IpAddr, prefix: u8) -> Result<()> {
        let mut request = self.handle.address().add(index, address, prefix);
        if address.is_ipv6() {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request.execute().await.map_err(failed(format!(
            "add address {address}/{prefix} to link {index}"
        )))
    }

    fn route_message(index: u32, route: &RoutePlan) -> Result<RouteMessage> {
        let invalid =
            |_| NetlinkError::Route(format!("{} via {}", route.destination, route.gateway));
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(route.destination.network, route.destination.prefix)
            .map_err(invalid)?
            .gateway(route.gateway)
            .map_err(invalid)?
            .output_interface(index);
        if let Some(metric) = route.metric {
            builder = builder.priority(metric);
        }
        Ok(builder.build())
    }

    pub async fn add_route(&self, index: u32, route: &RoutePlan) -> Result<()> {
        let message = Self::route_message(index, route)?;
        self.handle
            .route()
            .add(message)
            .execute()
            .await
            .map_err(failed(format!(
                "add route {} via {}",
                route.destination, route.gateway
            )))
    }

    /// Every address of the namespace: link index, address, prefix.
    pub async fn addresses(&self) -> Result<Vec<(u32, IpAddr, u8)>> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(failed("list addresses"))?;
        Ok(messages
            .iter()
            .filter_map(|message| {
                let address = message
                    .attributes
                    .iter()
                    .find_map(|attribute| match attribute {
                        AddressAttribute::Address(address) => Some(*address),
                        _ => None,
                    })?;
                Some((message.header.index, address, message.header.prefix_len))
            })
            .collect())
    }

    /// Deletes a link, returning once the kernel announces it gone.
    ///
    /// The kernel deletes inside the request's send: it unlists the link
    /// (and a bridge first waits in `br_multicast_dev_del` for an RCU
    /// barrier), announces the deletion, then frees the device after a
    /// second RCU barrier, and only then answers. That send runs on a
    /// blocking thread of its own (same network namespace, as threads
    /// inherit it), so the runtime's thread never waits in it; and nothing
    /// of the link is left on the host once it is announced, so the freeing
    /// finishes there in the background. When the announcement is missed
    /// (the event socket overflowed), the answer decides.
    pub async fn delete_link(&self, index: u32) -> Result<()> {
        let (connection, _, announcements) =
            rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link])
                .map_err(NetlinkError::Connect)?;
        let deletion = tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(NetlinkError::Connect)?;
            runtime.block_on(async {
                Self::connect()?
                    .handle
                    .link()
                    .del(index)
                    .execute()
                    .await
                    .map_err(failed(format!("delete link {index}")))
            })
        });
        tokio::select! {
            deleted = deletion => {
                deleted.unwrap_or_else(|error| Err(NetlinkError::Thread(error.to_string())))
            }
            () = announced_deletion(connection, announcements, index) => Ok(()),
        }
    }

    /// Unicast routes of the main table, both families.
    ///
    /// A connection of its own with strict checking, so that the kernel
    /// filters the dump down to the main table's unicast routes (the local
    /// table holds two more per address), while the other requests keep
    /// the lenient checks they were written for.
    pub async fn routes() -> Result<Vec<HostRoute>> {
        let (mut connection, handle, _) =
            rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        connection
            .socket_mut()
            .socket_mut()
            .set_netlink_get_strict_chk(true)
            .map_err(NetlinkError::Connect)?;
        tokio::spawn(connection);
        let mut routes = Vec::new();
        for mut request in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            request.header.table = RouteHeader::RT_TABLE_MAIN;
            request.header.protocol = RouteProtocol::Unspec;
            request.header.kind = RouteType::Unicast;
            let messages: Vec<RouteMessage> = handle
                .route()
                .get(request)
                .execute()
                .try_collect()
                .await
                .map_err(failed("list routes"))?;
            routes.extend(messages.iter().filter_map(host_route));
        }
        Ok(routes)
    }
}

/// Returns once the kernel announces that link `index` was deleted; never,
/// if the announcements end first. The socket lives as long as the future.
async fn announced_deletion(
    connection: impl Future<Output = ()>,
    mut announcements: impl Stream<Item = Announcement> + Unpin,
    index: u32,
) {
    let deleted = async {
        while let Some((message, _)) = announcements.next().await {
            if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) =
                message.payload
                && link.header.index == index
            {
                return;
            }
        }
        std::future::pending().await
    };
    tokio::select! {
        () = deleted => {}
        () = connection => std::future::pending().await,
    }
}

type Announcement = (NetlinkMessage<RouteNetlinkMessage>, netlink_sys::SocketAddr);

fn host_route(message: &RouteMessage) -> Option<HostRoute> {
    const MAIN_TABLE: u8 = 254;
    if message.header.kind != RouteType::Unicast || message.header.table != MAIN_TABLE {
        return None;
    }
    let mut destination = None;
    let mut interface = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(v4)) => {
                destination = Some(IpAddr::V4(*v4));
            }
            RouteAttribute::Destination(RouteAddress::Inet6(v6)) => {
                destination = Some(IpAddr::V6(*v6));
            }
            RouteAttribute::Oif(index) => interface = Some(*index),
            _ => {}
        }
    }
    let prefix = message.header.destination_prefix_length;
    // A default route has no destination: the family's unspecified address.
    let destination = match (destination, message.header.address_family) {
        (Some(destination), _) => destination,
        (None, AddressFamily::Inet) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        (None, _) => return None,
    };
    Some(HostRoute {
        destination: Subnet::new(destination, prefix),
        interface,
    })
}

//! What happens to the host's links while virtnet runs: the kernel's link
//! and address announcements, reduced to the links that were deleted, set
//! down, or lost an address. One socket for all networks.

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::LinkFlags;

type Announcement = (NetlinkMessage<RouteNetlinkMessage>, netlink_sys::SocketAddr);

/// Follows the announcements in the network namespace of the calling
/// thread.
pub struct LinkWatch {
    announcements: BoxStream<'static, Announcement>,
    connection: tokio::task::JoinHandle<()>,
}

impl LinkWatch {
    pub fn open() -> std::io::Result<Self> {
        let (connection, _, announcements) = rtnetlink::new_multicast_connection(&[
            rtnetlink::MulticastGroup::Link,
            rtnetlink::MulticastGroup::Ipv4Ifaddr,
            rtnetlink::MulticastGroup::Ipv6Ifaddr,
        ])?;
        Ok(Self {
            announcements: announcements.boxed(),
            connection: tokio::spawn(connection),
        })
    }

    /// The index of the next link that was deleted, set down or lost an
    /// address; `None` once the announcements end.
    pub async fn next(&mut self) -> Option<u32> {
        while let Some((message, _)) = self.announcements.next().await {
            if let Some(index) = harm(&message) {
                return Some(index);
            }
        }
        None
    }
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// The link an announcement says was harmed, if it says so.
fn harm(message: &NetlinkMessage<RouteNetlinkMessage>) -> Option<u32> {
    match &message.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => Some(link.header.index),
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link))
            if !link.header.flags.contains(LinkFlags::Up) =>
        {
            Some(link.header.index)
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(address)) => {
            Some(address.header.index)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::address::AddressMessage;
    use rtnetlink::packet_route::link::LinkMessage;

    #[test]
    fn deleted_down_and_stripped_links_are_harmed_others_not() {
        let message = |payload| NetlinkMessage::from(payload);
        let mut up = LinkMessage::default();
        up.header.index = 7;
        up.header.flags = LinkFlags::Up;
        let mut down = up.clone();
        down.header.flags = LinkFlags::empty();
        let mut address = AddressMessage::default();
        address.header.index = 9;
        assert_eq!(
            harm(&message(RouteNetlinkMessage::NewLink(up.clone()))),
            None
        );
        assert_eq!(harm(&message(RouteNetlinkMessage::NewLink(down))), Some(7));
        assert_eq!(harm(&message(RouteNetlinkMessage::DelLink(up))), Some(7));
        assert_eq!(
            harm(&message(RouteNetlinkMessage::NewAddress(address.clone()))),
            None
        );
        assert_eq!(
            harm(&message(RouteNetlinkMessage::DelAddress(address))),
            Some(9)
        );
    }
}

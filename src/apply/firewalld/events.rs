//! What firewalld announces that undoes virtnet's zone assignments: a
//! reload (`Reloaded`), and firewalld taking its name on the bus (started
//! after virtnetd, or restarted), each time with empty runtime zones.

use futures_util::StreamExt;
use zbus::fdo::{DBusProxy, NameOwnerChangedStream};
use zbus::message::Type;
use zbus::{Connection, MatchRule, MessageStream};

use super::bus::{INTERFACE, NAME, PATH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirewalldEvent {
    Reloaded,
    Started,
}

/// firewalld's announcements on the system bus.
pub struct FirewalldEvents {
    reloads: MessageStream,
    owners: NameOwnerChangedStream,
    /// Kept for as long as the streams live.
    _connection: Connection,
}

impl FirewalldEvents {
    /// Subscribes on the system bus (`DBUS_SYSTEM_BUS_ADDRESS`, else the
    /// standard socket).
    pub async fn open() -> zbus::Result<Self> {
        let connection = Connection::system().await?;
        let rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(NAME)
            .path(PATH)
            .interface(INTERFACE)
            .member("Reloaded")
            .build()?;
        let reloads = MessageStream::for_match_rule(rule, &connection, None).await?;
        let owners = DBusProxy::new(&connection)
            .await?
            .receive_name_owner_changed_with_args(&[(0, NAME)])
            .await?;
        Ok(Self {
            reloads,
            owners,
            _connection: connection,
        })
    }

    /// The next announcement; `None` once the bus connection is gone.
    pub async fn next(&mut self) -> Option<FirewalldEvent> {
        loop {
            tokio::select! {
                reload = self.reloads.next() => {
                    reload?.ok()?;
                    return Some(FirewalldEvent::Reloaded);
                }
                change = self.owners.next() => {
                    let change = change?;
                    // firewalld leaving the bus needs nothing: it takes its
                    // rules (and the zones' interfaces) with it.
                    let started = change.args().is_ok_and(|args| args.new_owner().is_some());
                    if started {
                        return Some(FirewalldEvent::Started);
                    }
                }
            }
        }
    }
}

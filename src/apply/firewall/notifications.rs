//! nftables' netlink notifications: how virtnet learns that its table was
//! changed by someone else, and when one of its own transactions was
//! committed.

use std::collections::VecDeque;

use crate::plan::firewall::TABLE;

/// nftables' netlink notifications (NFNLGRP_NFTABLES) in the network
/// namespace of the calling thread.
pub(super) struct Notifications {
    socket: netlink_sys::TokioSocket,
}

impl Notifications {
    pub(super) fn open() -> std::io::Result<Self> {
        use netlink_sys::AsyncSocket;
        const NFNLGRP_NFTABLES: u32 = 7;
        let mut socket = netlink_sys::TokioSocket::new(netlink_sys::protocols::NETLINK_NETFILTER)?;
        socket.socket_mut().bind_auto()?;
        socket.socket_ref().add_membership(NFNLGRP_NFTABLES)?;
        Ok(Self { socket })
    }

    /// The next batch of notifications; `ENOBUFS` when some were lost.
    async fn next(&mut self) -> std::io::Result<Vec<u8>> {
        use netlink_sys::AsyncSocketExt;
        self.socket.recv_from_full().await.map(|(buffer, _)| buffer)
    }

    /// Returns once the kernel announces a generation committed by the
    /// netlink port `port`; never, if notifications were lost.
    pub(super) async fn commit_by(&mut self, port: u32) {
        while let Ok(buffer) = self.next().await {
            if commits_by(&buffer, port) {
                return;
            }
        }
        std::future::pending().await
    }
}

/// Notices when someone else changes virtnet's table (`nft flush ruleset`,
/// `nft flush chain inet virtnet forward`, a rule added or deleted by
/// hand, the table made dormant) or another table (dockerd or ufw
/// rebuilding their chains), from nftables' netlink notifications: no
/// process of its own, no polling.
pub struct TableWatch {
    notifications: Notifications,
    own: OwnProcesses,
}

impl TableWatch {
    /// Subscribes in the namespace of the calling thread; changes made by
    /// the nft processes in `own` are virtnet's and not reported.
    pub(super) fn open(own: OwnProcesses) -> std::io::Result<Self> {
        Notifications::open().map(|notifications| Self { notifications, own })
    }

    /// Returns once a batch of notifications told of a change someone else
    /// made: to virtnet's table, or to others only.
    pub async fn change(&mut self) -> std::io::Result<Change> {
        loop {
            let buffer = self.notifications.next().await;
            if let Some(change) = self.changes(buffer)? {
                return Ok(change);
            }
        }
    }

    /// Reads the notifications already there without waiting: a burst of
    /// them (a flush is one message per rule) makes one change.
    pub fn drain(&mut self) {
        use futures_util::FutureExt;
        while let Some(Ok(_)) = self.notifications.next().now_or_never() {}
    }

    fn changes(&self, buffer: std::io::Result<Vec<u8>>) -> std::io::Result<Option<Change>> {
        match buffer {
            Ok(buffer) => Ok(changed_tables(&buffer, |pid| !self.own.contains(pid))),
            // Notifications were lost (a burst overflowed the socket):
            // anything may have changed.
            Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => Ok(Some(Change::Ours)),
            Err(error) => Err(error),
        }
    }
}

/// What someone else changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// virtnet's table (and maybe others).
    Ours,
    /// Other tables only.
    Others,
}

/// The nft processes one firewall ran lately. nftables' notifications
/// carry the port of the socket that asked for the change, which for nft is
/// its pid: so virtnet's own changes are told from someone else's.
#[derive(Clone, Default)]
pub struct OwnProcesses(std::sync::Arc<std::sync::Mutex<VecDeque<u32>>>);

/// More than ever run at once, so a pid is remembered until its
/// notifications have been read.
const REMEMBERED_NFT_PROCESSES: usize = 64;

impl OwnProcesses {
    fn pids(&self) -> std::sync::MutexGuard<'_, VecDeque<u32>> {
        // One push or pop at a time: a poisoned list is whole.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn remember(&self, pid: u32) {
        let mut pids = self.pids();
        if pids.len() == REMEMBERED_NFT_PROCESSES {
            pids.pop_front();
        }
        pids.push_back(pid);
    }

    fn contains(&self, pid: u32) -> bool {
        self.pids().contains(&pid)
    }
}

/// nftables' message types: subsystem NFNL_SUBSYS_NFTABLES, then the message.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWGEN: u16 = 15;

/// The netlink messages in `buffer`: (type, sender's port, payload after
/// the header); a torn buffer ends the walk.
fn messages(buffer: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    let mut rest = buffer;
    std::iter::from_fn(move || {
        if rest.len() < 16 {
            return None;
        }
        let length = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if length < 16 || length > rest.len() {
            return None;
        }
        let message = &rest[..length];
        rest = rest.get((length + 3) & !3..).unwrap_or_default();
        let kind = u16::from_ne_bytes([message[4], message[5]]);
        let port = u32::from_ne_bytes([message[12], message[13], message[14], message[15]]);
        Some((kind, port, &message[16..]))
    })
}

/// Whether `buffer` announces a new generation of the rule set, committed
/// by the netlink port `port`.
fn commits_by(buffer: &[u8], port: u32) -> bool {
    messages(buffer).any(|(kind, sender, _)| {
        kind == (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWGEN) && sender == port
    })
}

/// What netlink messages in `buffer` asked for by a netlink port `foreign`
/// accepts add, change or delete: an object of virtnet's table (family
/// inet), of other tables only, or nothing.
fn changed_tables(buffer: &[u8], foreign: impl Fn(u32) -> bool) -> Option<Change> {
    /// NFT_MSG_NEW and DEL of TABLE, CHAIN, RULE, SET, SETELEM, OBJ and
    /// FLOWTABLE, and the DESTROY messages.
    const CHANGES: [u16; 21] = [
        0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 18, 20, 22, 24, 26, 27, 28, 29, 30, 31, 32,
    ];
    const NFPROTO_INET: u8 = 1;
    /// NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE,
    /// NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE and NFTA_FLOWTABLE_TABLE
    /// all have this number.
    const TABLE_ATTRIBUTE: u16 = 1;
    let u16_at = |bytes: &[u8], at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let mut others = false;
    let ours = messages(buffer).any(|(kind, port, payload)| {
        let change =
            kind >> 8 == NFNL_SUBSYS_NFTABLES && CHANGES.contains(&(kind & 0xff)) && foreign(port);
        if !change {
            return false;
        }
        others = true;
        // nfgenmsg (family, version, resource id), then attributes.
        if payload.first() != Some(&NFPROTO_INET) {
            return false;
        }
        let mut attributes = payload.get(4..).unwrap_or_default();
        while let (Some(size), Some(number)) = (u16_at(attributes, 0), u16_at(attributes, 2)) {
            let size = usize::from(size);
            if size < 4 || size > attributes.len() {
                break;
            }
            if number & 0x3fff == TABLE_ATTRIBUTE {
                let name = &attributes[4..size];
                let name = name.split(|byte| *byte == 0).next().unwrap_or_default();
                if name == TABLE.as_bytes() {
                    return true;
                }
            }
            attributes = attributes.get((size + 3) & !3..).unwrap_or_default();
        }
        false
    });
    match (ours, others) {
        (true, _) => Some(Change::Ours),
        (false, true) => Some(Change::Others),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink message as the kernel sends it for `delete table`, asked
    /// for by netlink port 4242.
    fn deletion(kind: u16, family: u8, table: &str) -> Vec<u8> {
        let mut name = table.as_bytes().to_vec();
        name.push(0);
        let attribute_length = 4 + name.len();
        let mut attribute = (attribute_length as u16).to_ne_bytes().to_vec();
        attribute.extend(1u16.to_ne_bytes());
        attribute.extend(&name);
        attribute.resize((attribute_length + 3) & !3, 0);
        let length = 16 + 4 + attribute.len();
        let mut message = (length as u32).to_ne_bytes().to_vec();
        message.extend(kind.to_ne_bytes());
        message.extend([0u8; 6]);
        message.extend(4242u32.to_ne_bytes());
        message.extend([family, 0, 0, 0]);
        message.extend(attribute);
        message
    }

    #[test]
    fn table_watch_sees_every_change_of_our_table() {
        let delete_table = (10 << 8) | 2;
        let delete_rule = (10 << 8) | 8;
        let new_rule = (10 << 8) | 6;
        let new_table = 10 << 8;
        let get_rule = (10 << 8) | 7;
        let changes = |buffer: &[u8]| changed_tables(buffer, |_| true) == Some(Change::Ours);
        assert!(changes(&deletion(delete_table, 1, "virtnet")));
        assert!(changes(&deletion(delete_rule, 1, "virtnet")));
        assert!(changes(&deletion(new_rule, 1, "virtnet")), "an added rule");
        assert!(changes(&deletion(new_table, 1, "virtnet")), "table flags");
        assert!(!changes(&deletion(get_rule, 1, "virtnet")), "a listing");
        let others = |buffer: &[u8]| changed_tables(buffer, |_| true);
        assert_eq!(
            others(&deletion(delete_rule, 2, "filter")),
            Some(Change::Others)
        );
        assert_eq!(others(&deletion(get_rule, 2, "filter")), None, "a listing");
        assert!(!changes(&deletion(delete_table, 2, "virtnet")));
        assert!(!changes(&deletion(delete_table, 1, "other")));
        let mut batch = deletion(delete_table, 1, "other");
        batch.extend(deletion(delete_table, 1, "virtnet"));
        assert!(changes(&batch), "the second message counts");
        assert!(!changes(&batch[..7]), "a torn buffer is ignored");
    }

    #[test]
    fn commits_are_told_by_the_port_that_asked() {
        let new_generation = (10 << 8) | 15;
        assert!(commits_by(&deletion(new_generation, 1, "virtnet"), 4242));
        assert!(!commits_by(&deletion(new_generation, 1, "virtnet"), 4243));
        assert!(!commits_by(&deletion((10 << 8) | 8, 1, "virtnet"), 4242));
        let mut batch = deletion((10 << 8) | 8, 1, "virtnet");
        batch.extend(deletion(new_generation, 0, ""));
        assert!(commits_by(&batch, 4242), "the batch's last message counts");
    }

    #[test]
    fn table_watch_ignores_changes_of_virtnets_own_nft() {
        let message = deletion((10 << 8) | 8, 1, "virtnet");
        assert_eq!(changed_tables(&message, |port| port != 4242), None);
        let own = OwnProcesses::default();
        own.remember(4242);
        assert!(own.contains(4242));
        assert!(!own.contains(4243));
    }
}

//! Taking a dnsmasq out of the rtnetlink event groups it does not need
//! (it joins them all), through copies of its sockets.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Takes the rtnetlink sockets of process `pid` out of multicast `groups`.
/// A copy of a socket taken with pidfd_getfd(2) is the same socket, so
/// leaving a group through the copy takes the process out of it.
pub(super) fn leave_groups(pid: u32, groups: &[u32]) -> std::io::Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let route_sockets = route_socket_inodes(pid)?;
    // SAFETY: pidfd_open(2) takes a pid and flags, and returns a new
    // descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` was just opened, for us alone.
    let process = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let entry = entry?;
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let inode = target
            .to_str()
            .and_then(|target| target.strip_prefix("socket:["))
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|inode| inode.parse::<u64>().ok());
        let number = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok());
        let (Some(inode), Some(number)) = (inode, number) else {
            continue;
        };
        if !route_sockets.contains(&inode) {
            continue;
        }
        // SAFETY: pidfd_getfd(2) takes a pidfd, a descriptor number of that
        // process and flags, and returns a new descriptor or -1.
        let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, process.as_raw_fd(), number, 0) };
        if copy < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `copy` was just made, for us alone; the socket closes it.
        let socket = unsafe { netlink_sys::Socket::from_raw_fd(copy as RawFd) };
        for group in groups {
            socket.drop_membership(*group)?;
        }
    }
    Ok(())
}

/// Inodes of the NETLINK_ROUTE sockets in the network namespace of `pid`.
fn route_socket_inodes(pid: u32) -> std::io::Result<HashSet<u64>> {
    const NETLINK_ROUTE: &str = "0";
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/netlink"))?;
    Ok(table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            (columns.get(1) == Some(&NETLINK_ROUTE))
                .then(|| columns.last()?.parse().ok())
                .flatten()
        })
        .collect())
}

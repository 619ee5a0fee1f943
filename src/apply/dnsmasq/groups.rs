//! Taking a dnsmasq out of the rtnetlink event groups it does not need
//! (it joins them all), through copies of its sockets. Reaching the
//! descriptors of a dnsmasq that gave root up takes CAP_SYS_PTRACE.

use std::collections::HashSet;
use std::os::fd::{FromRawFd, IntoRawFd};

use super::process::Process;

#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    #[error("dnsmasq (pid {pid}) is not running")]
    Gone { pid: u32 },
    #[error("cannot list the rtnetlink sockets of dnsmasq's namespace (pid {pid})")]
    Sockets {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach the descriptors of dnsmasq (pid {pid}); this needs CAP_SYS_PTRACE")]
    Descriptors {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("found no rtnetlink socket among the descriptors of dnsmasq (pid {pid})")]
    NoSocket { pid: u32 },
    #[error("cannot take dnsmasq's socket out of rtnetlink group {group}")]
    Leave {
        group: u32,
        #[source]
        source: std::io::Error,
    },
}

/// Takes the rtnetlink sockets of `process` out of multicast `groups`.
/// A copy of a socket taken with pidfd_getfd(2) is the same socket, so
/// leaving a group through the copy takes the process out of it.
pub(super) fn leave_groups(process: &Process, groups: &[u32]) -> Result<(), GroupsError> {
    let pid = process.pid();
    let route_sockets =
        route_socket_inodes(pid).map_err(|source| GroupsError::Sockets { pid, source })?;
    let denied = |source| GroupsError::Descriptors { pid, source };
    let mut left = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(denied)? {
        let entry = entry.map_err(denied)?;
        let target = match std::fs::read_link(entry.path()) {
            Ok(target) => target,
            // Closed since the listing.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(denied(error)),
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
        let copy = process.descriptor(number).map_err(denied)?;
        // SAFETY: `copy` is ours alone, handed over; the socket closes it.
        let socket = unsafe { netlink_sys::Socket::from_raw_fd(copy.into_raw_fd()) };
        for group in groups {
            socket
                .drop_membership(*group)
                .map_err(|source| GroupsError::Leave {
                    group: *group,
                    source,
                })?;
        }
        left += 1;
    }
    if left == 0 {
        return Err(GroupsError::NoSocket { pid });
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::process::tests::stand_in;
    use super::*;

    #[test]
    fn a_process_without_an_rtnetlink_socket_is_reported() {
        let (mut child, process) = stand_in(Path::new("/nonexistent/virtnet-groups-test.conf"));
        let error = leave_groups(&process, &[1]).expect_err("no socket to leave a group with");
        assert!(
            matches!(error, GroupsError::NoSocket { pid } if pid == child.id()),
            "{error}"
        );
        child.kill().expect("the child is ours");
        child.wait().expect("the child ends");
    }
}

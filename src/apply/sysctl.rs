//! Kernel settings under /proc/sys, for the network namespace of the
//! calling thread.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("cannot set {path} to {value}")]
pub struct SysctlError {
    path: PathBuf,
    value: String,
    #[source]
    source: std::io::Error,
}

/// Sets `/proc/sys/net/<key>` (`key` is a slash-separated path; interface
/// names may hold dots, so dotted names are not used).
pub fn set(key: &str, value: &str) -> Result<(), SysctlError> {
    let path = PathBuf::from("/proc/sys/net").join(key);
    std::fs::write(&path, value).map_err(|source| SysctlError {
        path,
        value: value.to_owned(),
        source,
    })
}

/// The value of `/proc/sys/net/<key>` as a number; `None` when it cannot
/// be read (no such interface, no IPv6).
pub fn read(key: &str) -> Option<u8> {
    std::fs::read_to_string(PathBuf::from("/proc/sys/net").join(key))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Per-bridge IPv6 settings, as libvirt makes them: a bridge without IPv6
/// gets none at all; one with IPv6 takes no router advertisements and
/// configures no addresses by itself (it is the router).
pub fn bridge_ipv6(bridge: &str, ipv6: bool) -> Result<(), SysctlError> {
    let key = |name: &str| format!("ipv6/conf/{bridge}/{name}");
    if ipv6 {
        set(&key("disable_ipv6"), "0")?;
        set(&key("accept_ra"), "0")?;
        set(&key("autoconf"), "0")
    } else {
        set(&key("disable_ipv6"), "1")
    }
}

//! virtnet: libvirt's virtual network driver, reimplemented.
//!
//! The code follows the pipeline a network goes through:
//! XML ([`xml`]) → validated definition ([`definition`]) → plan ([`plan`])
//! → apply to the kernel ([`apply`]) → state on disk ([`state`]). On top:
//! the networks and their verbs ([`service`]), served over D-Bus
//! ([`dbus`]) by `virtnetd` and used by `virtnet` ([`cli`]); beside
//! libvirtd (`libvirtd`, with the `libvirt` feature).

pub mod apply;
pub mod cli;
pub mod dbus;
pub mod definition;
pub mod files;
pub mod killpoint;
#[cfg(feature = "libvirt")]
pub mod libvirtd;
pub mod plan;
pub mod random;
pub mod rpc;
pub mod service;
pub mod state;
pub mod xml;

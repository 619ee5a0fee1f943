//! virtnet: libvirt's virtual network driver, reimplemented.
//!
//! The code follows the pipeline a network goes through:
//! XML ([`xml`]) → validated definition ([`definition`]) → plan → apply to
//! the kernel → state on disk.

pub mod apply;
pub mod cli;
pub mod dbus;
pub mod definition;
pub mod plan;
pub mod random;
pub mod service;
pub mod state;
pub mod xml;

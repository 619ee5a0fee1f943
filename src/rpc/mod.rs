//! libvirt's RPC protocol, the one virsh and every libvirt client speak
//! to a network daemon: virtnetd serves it on virtnetworkd's sockets
//! beside the D-Bus API, as thin a front-end over the service as D-Bus.
//!
//! `xdr` encodes and decodes values, `frame` reads and writes messages,
//! `protocol` has libvirt's numbers and structures, `dispatch` answers a
//! call (`network` for the network procedures, `ports` for the port
//! procedures), `error` words failures as libvirt, `events` pushes
//! lifecycle events, `server` runs the sockets, and `replay` answers a
//! connection's bytes without one (golden tests, fuzzing).

mod dispatch;
mod error;
mod events;
mod frame;
mod network;
mod ports;
mod protocol;
mod replay;
pub mod server;
mod xdr;

pub use replay::replay;
pub use server::{MAX_CLIENTS, READ_ONLY_SOCKET, SOCKET, ServeError, serve};

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod mutation_tests;

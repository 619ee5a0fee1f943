//! What virtnet keeps on disk: definitions, autostart links and the status
//! record of each running network, in records of their own (`record`),
//! written with `crate::files`.

pub mod ports;
pub mod record;
pub mod store;

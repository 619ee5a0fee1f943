//! Errors of the network service, worded as libvirt's (class prefix and
//! message), because clients match on them.

use crate::apply::{StartError, StopError};
use crate::definition::DefinitionError;
use crate::state::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// VIR_ERR_NO_NETWORK.
    #[error("Network not found: no network with matching name '{0}'")]
    NoSuchName(String),
    /// VIR_ERR_NO_NETWORK.
    #[error("Network not found: no network with matching uuid '{0}'")]
    NoSuchUuid(String),
    /// VIR_ERR_NO_NETWORK_PORT (virNetworkObjLookupPort's words).
    #[error("network port not found: Network port with UUID {0} does not exist")]
    NoSuchPort(crate::definition::Uuid),
    /// VIR_ERR_NETWORK_PORT_EXIST (virNetworkObjAddPort's words).
    #[error("network port already exists: Network port with UUID {0} already exists")]
    PortExists(crate::definition::Uuid),
    /// VIR_ERR_OPERATION_FAILED.
    #[error("operation failed: {0}")]
    OperationFailed(String),
    /// VIR_ERR_OPERATION_INVALID.
    #[error("Requested operation is not valid: {0}")]
    OperationInvalid(String),
    /// VIR_ERR_INVALID_ARG.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Naming(#[from] crate::plan::naming::NamingError),
    /// A failed start or stop left part of the network on the host, and it
    /// still cannot be removed.
    #[error("operation failed: network '{}' cannot start while what it left on the host remains", .0.network)]
    Leftovers(#[source] StopError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Stop(#[from] StopError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// VIR_ERR_OPERATION_TIMEOUT.
    #[error("Timed out during operation")]
    Timeout(#[source] crate::service::neighbour::NotAnswering),
    #[error("cannot reach the host's network stack")]
    Host(#[source] crate::apply::netlink::NetlinkError),
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

//! The errors a call is answered with: libvirt's error numbers and
//! domains (virterror.h), and its messages, which clients print as they
//! come.

use super::protocol::RemoteError;
use super::xdr::XdrError;
use crate::definition::{DefinitionError, Uuid, error_chain};
use crate::service::ServiceError;

/// virErrorDomain values.
mod domain {
    pub const RPC: i32 = 7;
    pub const NETWORK: i32 = 19;
}

/// virErrorNumber values.
mod code {
    pub const INTERNAL_ERROR: i32 = 1;
    pub const NO_SUPPORT: i32 = 3;
    pub const INVALID_ARG: i32 = 8;
    pub const OPERATION_FAILED: i32 = 9;
    pub const NO_NAME: i32 = 21;
    pub const XML_ERROR: i32 = 27;
    pub const OPERATION_DENIED: i32 = 29;
    pub const RPC: i32 = 39;
    pub const NO_NETWORK: i32 = 43;
    pub const OPERATION_INVALID: i32 = 55;
    pub const CONFIG_UNSUPPORTED: i32 = 67;
    pub const OPERATION_TIMEOUT: i32 = 68;
    pub const OVERFLOW: i32 = 82;
    pub const OPERATION_UNSUPPORTED: i32 = 84;
    pub const NETWORK_PORT_EXIST: i32 = 106;
    pub const NO_NETWORK_PORT: i32 = 107;
}

/// Why a call failed, before it is put on the wire.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The arguments did not decode (libvirt's words for it).
    #[error("RPC error : Unable to decode message payload")]
    Arguments(#[source] XdrError),
    /// A call on a network that is gone (networkObjFromNetwork's words).
    #[error("Network not found: no network with matching uuid '{uuid}' ({name})")]
    NetworkGone { uuid: Uuid, name: String },
    /// A procedure virtnet does not serve.
    #[error("this function is not supported by the connection driver: unknown procedure: {0}")]
    UnknownProcedure(i32),
    /// A mutation on the read-only socket; the public API function named
    /// as libvirt's virCheckReadOnlyGoto names it.
    #[error("operation forbidden: read only access prevents {0}")]
    ReadOnly(&'static str),
    /// An event id other than lifecycle (libvirt's words).
    #[error("invalid argument: unsupported network event ID {0}")]
    UnknownEvent(i32),
    /// Deregistering a callback never registered (libvirt's words).
    #[error("internal error: network event callback {0} not registered")]
    UnknownCallback(i32),
    /// A call before CONNECT_OPEN (libvirt's words).
    #[error("internal error: connection not open")]
    NotOpen,
    /// The reply would be over the message limit (a listing of more
    /// networks than a message holds).
    #[error("RPC error : message payload is too large")]
    ReplyTooLarge,
}

impl CallError {
    pub fn to_remote(&self) -> RemoteError {
        let (code, domain) = match self {
            Self::Service(error) => (service_code(error), domain::NETWORK),
            Self::NetworkGone { .. } => (code::NO_NETWORK, domain::NETWORK),
            Self::Arguments(_) | Self::ReplyTooLarge => (code::RPC, domain::RPC),
            Self::UnknownProcedure(_) => (code::NO_SUPPORT, domain::RPC),
            Self::ReadOnly(_) => (code::OPERATION_DENIED, domain::NETWORK),
            Self::NotOpen => (code::INTERNAL_ERROR, domain::RPC),
            Self::UnknownEvent(_) => (code::INVALID_ARG, domain::RPC),
            Self::UnknownCallback(_) => (code::INTERNAL_ERROR, domain::RPC),
        };
        let message = match self {
            // The message of the whole chain, as the D-Bus front-end sends.
            Self::Service(error) => error_chain(error),
            other => other.to_string(),
        };
        RemoteError {
            code,
            domain,
            message,
        }
    }
}

fn service_code(error: &ServiceError) -> i32 {
    match error {
        ServiceError::NoSuchName(_) | ServiceError::NoSuchUuid(_) => code::NO_NETWORK,
        ServiceError::NoSuchPort(_) => code::NO_NETWORK_PORT,
        ServiceError::PortExists(_) => code::NETWORK_PORT_EXIST,
        ServiceError::OperationInvalid(_) => code::OPERATION_INVALID,
        ServiceError::InvalidArgument(_) => code::INVALID_ARG,
        ServiceError::Timeout(_) => code::OPERATION_TIMEOUT,
        ServiceError::Definition(error) => definition_code(error),
        ServiceError::OperationFailed(_)
        | ServiceError::Leftovers(_)
        | ServiceError::Start(_)
        | ServiceError::Stop(_) => code::OPERATION_FAILED,
        ServiceError::Naming(_) | ServiceError::Store(_) | ServiceError::Host(_) => {
            code::INTERNAL_ERROR
        }
    }
}

fn definition_code(error: &DefinitionError) -> i32 {
    match error {
        DefinitionError::Xml(_) | DefinitionError::Invalid(_) | DefinitionError::Value { .. } => {
            code::XML_ERROR
        }
        DefinitionError::Unsupported(_) | DefinitionError::HostOutsideSubnet { .. } => {
            code::CONFIG_UNSUPPORTED
        }
        DefinitionError::NoName => code::NO_NAME,
        DefinitionError::Overflow(_) => code::OVERFLOW,
        DefinitionError::OperationInvalid(_) => code::OPERATION_INVALID,
        DefinitionError::OperationUnsupported(_) => code::OPERATION_UNSUPPORTED,
        DefinitionError::InvalidArgument(_) | DefinitionError::NoMetadata(_) => code::INVALID_ARG,
        DefinitionError::Internal(_) | DefinitionError::Random(_) => code::INTERNAL_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_network_is_libvirts_no_network() {
        let error = CallError::from(ServiceError::NoSuchName("nosuch".into())).to_remote();
        assert_eq!(
            error,
            RemoteError {
                code: 43,
                domain: 19,
                message: "Network not found: no network with matching name 'nosuch'".into()
            }
        );
    }

    #[test]
    fn a_read_only_refusal_is_operation_denied() {
        let error = CallError::ReadOnly("virNetworkDestroy").to_remote();
        assert_eq!(error.code, 29);
        // libvirt-network.c reports it, in the NETWORK domain.
        assert_eq!(error.domain, 19);
        assert_eq!(
            error.message,
            "operation forbidden: read only access prevents virNetworkDestroy"
        );
    }
}

use crate::xml::tree::XmlError;

use super::values::ValueError;

/// Why a definition was refused. Messages follow libvirt's wording (and its
/// error-class prefixes) where libvirt has a message for the same problem.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// libvirt's VIR_ERR_XML_ERROR / VIR_ERR_XML_DETAIL.
    #[error("XML error: {0}")]
    Invalid(String),
    /// libvirt's VIR_ERR_CONFIG_UNSUPPORTED.
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
    /// libvirt's VIR_ERR_NO_NAME.
    #[error("missing name information")]
    NoName,
    /// libvirt's VIR_ERR_INTERNAL_ERROR (it reports a bad UUID this way).
    #[error("internal error: {0}")]
    Internal(String),
    /// libvirt's VIR_ERR_OVERFLOW.
    #[error("numerical overflow: {0}")]
    Overflow(String),
    /// libvirt's VIR_ERR_OPERATION_INVALID.
    #[error("Requested operation is not valid: {0}")]
    OperationInvalid(String),
    /// libvirt's VIR_ERR_OPERATION_UNSUPPORTED.
    #[error("Operation not supported: {0}")]
    OperationUnsupported(String),
    #[error("XML error: invalid value '{value}' for {what}")]
    Value {
        what: String,
        value: String,
        #[source]
        source: ValueError,
    },
    /// dnsmasq ignores a reservation outside the subnet it serves.
    #[error(
        "unsupported configuration: DHCP host address {address} is outside the subnet {subnet} of network '{network}'"
    )]
    HostOutsideSubnet {
        address: String,
        subnet: String,
        network: String,
    },
    /// libvirt's VIR_ERR_INVALID_ARG.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// libvirt's VIR_ERR_NO_NETWORK_METADATA.
    #[error("metadata not found: {0}")]
    NoMetadata(String),
    #[error("internal error: cannot generate a UUID")]
    Random(#[source] std::io::Error),
}

impl DefinitionError {
    /// A value that its type refused; `what` names the element/attribute.
    pub fn value(what: impl Into<String>, value: &str, source: ValueError) -> Self {
        Self::Value {
            what: what.into(),
            value: value.escape_debug().to_string(),
            source,
        }
    }
}

/// The error and its sources as one line, `a: b: c`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Some sources repeat their own cause in their message.
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

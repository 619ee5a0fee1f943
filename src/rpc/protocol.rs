//! The numbers and structures of libvirt's remote protocol that virtnet
//! serves (src/remote/remote_protocol.x and src/rpc/virnetprotocol.x of
//! libvirt), each struct with its wire encoding.

use super::xdr::{Decoder, Encoder, Result, XdrError};
use crate::definition::Uuid;

/// REMOTE_PROGRAM and its version.
pub const REMOTE_PROGRAM: u32 = 0x2000_8086;
pub const REMOTE_VERSION: u32 = 1;
/// The keepalive program (`"keep"`), its version and procedures.
pub const KEEPALIVE_PROGRAM: u32 = 0x6b65_6570;
pub const KEEPALIVE_VERSION: u32 = 1;
pub const KEEPALIVE_PING: i32 = 1;
pub const KEEPALIVE_PONG: i32 = 2;

/// REMOTE_STRING_MAX.
pub const STRING_MAX: u32 = 4_194_304;
/// REMOTE_NETWORK_LIST_MAX.
pub const NETWORK_LIST_MAX: u32 = 16_384;
/// REMOTE_NETWORK_PORT_LIST_MAX.
pub const NETWORK_PORT_LIST_MAX: u32 = 16_384;
/// REMOTE_NETWORK_DHCP_LEASES_MAX.
pub const DHCP_LEASES_MAX: u32 = 65_536;

/// REMOTE_CONNECT_IDENTITY_PARAMS_MAX.
pub const IDENTITY_PARAMS_MAX: u32 = 20;

/// REMOTE_AUTH_NONE: the socket's permissions are the authentication, as
/// for libvirt's Unix sockets without polkit.
pub const AUTH_NONE: i32 = 0;

/// The remote procedures virtnet serves (remote_procedure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Procedure {
    ConnectOpen = 1,
    ConnectClose = 2,
    NetworkCreate = 39,
    NetworkCreateXml = 40,
    NetworkDefineXml = 41,
    NetworkDestroy = 42,
    NetworkGetXmlDesc = 43,
    NetworkGetAutostart = 44,
    NetworkGetBridgeName = 45,
    NetworkLookupByName = 46,
    NetworkLookupByUuid = 47,
    NetworkSetAutostart = 48,
    NetworkUndefine = 49,
    ConnectSupportsFeature = 60,
    AuthList = 66,
    NetworkIsActive = 152,
    NetworkIsPersistent = 153,
    ConnectListAllNetworks = 283,
    ConnectNetworkEventRegisterAny = 313,
    ConnectNetworkEventDeregisterAny = 314,
    NetworkUpdate = 291,
    NetworkGetDhcpLeases = 341,
    ConnectRegisterCloseCallback = 360,
    ConnectUnregisterCloseCallback = 361,
    NetworkListAllPorts = 404,
    NetworkPortLookupByUuid = 405,
    NetworkPortCreateXml = 406,
    NetworkPortGetXmlDesc = 409,
    NetworkPortDelete = 410,
    ConnectSetIdentity = 419,
    NetworkDefineXmlFlags = 432,
    NetworkCreateXmlFlags = 437,
}

impl Procedure {
    const ALL: [Self; 32] = [
        Self::ConnectOpen,
        Self::ConnectClose,
        Self::NetworkCreate,
        Self::NetworkCreateXml,
        Self::NetworkDefineXml,
        Self::NetworkDestroy,
        Self::NetworkGetXmlDesc,
        Self::NetworkGetAutostart,
        Self::NetworkGetBridgeName,
        Self::NetworkLookupByName,
        Self::NetworkLookupByUuid,
        Self::NetworkSetAutostart,
        Self::NetworkUndefine,
        Self::ConnectSupportsFeature,
        Self::AuthList,
        Self::NetworkIsActive,
        Self::NetworkIsPersistent,
        Self::ConnectListAllNetworks,
        Self::ConnectNetworkEventRegisterAny,
        Self::ConnectNetworkEventDeregisterAny,
        Self::NetworkUpdate,
        Self::NetworkGetDhcpLeases,
        Self::ConnectRegisterCloseCallback,
        Self::ConnectUnregisterCloseCallback,
        Self::NetworkListAllPorts,
        Self::NetworkPortLookupByUuid,
        Self::NetworkPortCreateXml,
        Self::NetworkPortGetXmlDesc,
        Self::NetworkPortDelete,
        Self::ConnectSetIdentity,
        Self::NetworkDefineXmlFlags,
        Self::NetworkCreateXmlFlags,
    ];

    pub fn from_number(number: i32) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|procedure| *procedure as i32 == number)
    }

    /// The public API function behind the procedure, as libvirt names it
    /// in "read only access prevents …"; `None` for the reads, which a
    /// read-only connection may call.
    pub fn mutation(self) -> Option<&'static str> {
        Some(match self {
            Self::NetworkCreate => "virNetworkCreate",
            Self::NetworkCreateXml => "virNetworkCreateXML",
            Self::NetworkCreateXmlFlags => "virNetworkCreateXMLFlags",
            Self::NetworkDefineXml => "virNetworkDefineXML",
            Self::NetworkDefineXmlFlags => "virNetworkDefineXMLFlags",
            Self::NetworkDestroy => "virNetworkDestroy",
            Self::NetworkSetAutostart => "virNetworkSetAutostart",
            Self::NetworkUndefine => "virNetworkUndefine",
            Self::NetworkUpdate => "virNetworkUpdate",
            Self::ConnectSetIdentity => "virConnectSetIdentity",
            Self::NetworkPortCreateXml => "virNetworkPortCreateXML",
            Self::NetworkPortDelete => "virNetworkPortDelete",
            _ => return None,
        })
    }
}

/// virDrvFeature values a client asks about.
pub mod feature {
    pub const PROGRAM_KEEPALIVE: i32 = 10;
    pub const REMOTE_EVENT_CALLBACK: i32 = 14;
    pub const REMOTE_CLOSE_CALLBACK: i32 = 15;
    pub const NETWORK_UPDATE_HAS_CORRECT_ORDER: i32 = 16;
}

/// VIR_CONNECT_RO, CONNECT_OPEN's read-only flag.
pub const CONNECT_READ_ONLY: u32 = 1;

/// remote_nonnull_network: how a network is named in calls and replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRef {
    pub name: String,
    pub uuid: Uuid,
}

impl NetworkRef {
    pub fn decode(decoder: &mut Decoder<'_>) -> Result<Self> {
        Ok(Self {
            name: decoder.string(STRING_MAX)?,
            uuid: Uuid(decoder.fixed_opaque()?),
        })
    }

    pub fn encode(&self, encoder: &mut Encoder) {
        encoder.string(&self.name).fixed_opaque(&self.uuid.0);
    }
}

/// remote_nonnull_network_port: a port, by its network and its UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRef {
    pub network: NetworkRef,
    pub uuid: Uuid,
}

impl PortRef {
    pub fn decode(decoder: &mut Decoder<'_>) -> Result<Self> {
        Ok(Self {
            network: NetworkRef::decode(decoder)?,
            uuid: Uuid(decoder.fixed_opaque()?),
        })
    }

    pub fn encode(&self, encoder: &mut Encoder) {
        self.network.encode(encoder);
        encoder.fixed_opaque(&self.uuid.0);
    }
}

/// remote_typed_param: a named value of one of virTypedParameterType's
/// types.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedParam {
    pub field: String,
    pub value: TypedValue,
}

/// remote_typed_param_value, by its discriminant.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    Int(i32),
    UInt(u32),
    LLong(i64),
    ULLong(u64),
    Double(f64),
    Boolean(bool),
    String(String),
}

impl TypedParam {
    pub fn decode(decoder: &mut Decoder<'_>) -> Result<Self> {
        let field = decoder.string(STRING_MAX)?;
        let value = match decoder.i32()? {
            1 => TypedValue::Int(decoder.i32()?),
            2 => TypedValue::UInt(decoder.u32()?),
            3 => TypedValue::LLong(decoder.i64()?),
            4 => TypedValue::ULLong(decoder.u64()?),
            5 => TypedValue::Double(f64::from_bits(decoder.u64()?)),
            // An int on the wire; libvirt reads any non-zero as true.
            6 => TypedValue::Boolean(decoder.i32()? != 0),
            7 => TypedValue::String(decoder.string(STRING_MAX)?),
            other => {
                return Err(XdrError::UnknownValue {
                    what: "typed parameter type",
                    value: other.into(),
                });
            }
        };
        Ok(Self { field, value })
    }

    /// A counted array of at most `limit` parameters.
    pub fn decode_list(decoder: &mut Decoder<'_>, limit: u32) -> Result<Vec<Self>> {
        let count = decoder.length(limit)?;
        (0..count).map(|_| Self::decode(decoder)).collect()
    }
}

impl std::fmt::Display for TypedParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=", self.field)?;
        match &self.value {
            TypedValue::Int(value) => write!(f, "{value}"),
            TypedValue::UInt(value) => write!(f, "{value}"),
            TypedValue::LLong(value) => write!(f, "{value}"),
            TypedValue::ULLong(value) => write!(f, "{value}"),
            TypedValue::Double(value) => write!(f, "{value}"),
            TypedValue::Boolean(value) => write!(f, "{value}"),
            TypedValue::String(value) => write!(f, "{value:?}"),
        }
    }
}

/// remote_error, as the reply to a failed call carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// virErrorNumber.
    pub code: i32,
    /// virErrorDomain.
    pub domain: i32,
    /// The whole message virsh prints after "error: ".
    pub message: String,
}

/// VIR_ERR_ERROR, the level of every error virtnet reports.
const LEVEL_ERROR: i32 = 2;

impl RemoteError {
    pub fn encode(&self, encoder: &mut Encoder) {
        encoder
            .i32(self.code)
            .i32(self.domain)
            .optional_string(Some(&self.message))
            .i32(LEVEL_ERROR)
            // dom, str1, str2, str3, int1, int2, net: unused, as libvirt's
            // network driver leaves them.
            .bool(false)
            .optional_string(None)
            .optional_string(None)
            .optional_string(None)
            .i32(0)
            .i32(0)
            .bool(false);
    }
}

/// remote_network_dhcp_lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpLease {
    pub iface: String,
    pub expirytime: i64,
    /// virIPAddrType: 0 IPv4, 1 IPv6.
    pub kind: i32,
    pub mac: Option<String>,
    pub iaid: Option<String>,
    pub ipaddr: String,
    pub prefix: u32,
    pub hostname: Option<String>,
    pub clientid: Option<String>,
}

impl DhcpLease {
    pub fn encode(&self, encoder: &mut Encoder) {
        encoder
            .string(&self.iface)
            .i64(self.expirytime)
            .i32(self.kind)
            .optional_string(self.mac.as_deref())
            .optional_string(self.iaid.as_deref())
            .string(&self.ipaddr)
            .u32(self.prefix)
            .optional_string(self.hostname.as_deref())
            .optional_string(self.clientid.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_procedure_is_found_by_its_number() {
        for procedure in Procedure::ALL {
            assert_eq!(Procedure::from_number(procedure as i32), Some(procedure));
        }
        assert_eq!(Procedure::from_number(3), None);
        assert_eq!(Procedure::from_number(-1), None);
    }

    #[test]
    fn typed_params_decode_by_their_type() {
        let mut encoder = Encoder::new();
        encoder
            .u32(3)
            .string("user-name")
            .i32(7)
            .string("alice")
            .string("unix-user-id")
            .i32(4)
            .i64(1000)
            .string("x")
            .i32(6)
            .i32(2);
        let bytes = encoder.into_bytes();
        let params = TypedParam::decode_list(&mut Decoder::new(&bytes), 20).unwrap();
        let shown: Vec<String> = params.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["user-name=\"alice\"", "unix-user-id=1000", "x=true"]
        );
        // More than the limit, or a type libvirt does not have: refused.
        assert!(TypedParam::decode_list(&mut Decoder::new(&bytes), 2).is_err());
        let mut encoder = Encoder::new();
        encoder.u32(1).string("x").i32(8).i32(0);
        let bytes = encoder.into_bytes();
        assert_eq!(
            TypedParam::decode_list(&mut Decoder::new(&bytes), 20),
            Err(XdrError::UnknownValue {
                what: "typed parameter type",
                value: 8
            })
        );
    }

    #[test]
    fn a_network_round_trips() {
        let network = NetworkRef {
            name: "default".into(),
            uuid: Uuid([7; 16]),
        };
        let mut encoder = Encoder::new();
        network.encode(&mut encoder);
        let bytes = encoder.into_bytes();
        assert_eq!(bytes.len(), 4 + 8 + 16);
        let mut decoder = Decoder::new(&bytes);
        assert_eq!(NetworkRef::decode(&mut decoder).unwrap(), network);
        assert!(decoder.is_empty());
    }
}

//! The network procedures: each decodes its arguments
//! (remote_network_*_args), calls the service and encodes its result
//! (remote_network_*_ret). No network logic here: that is the service's.

use super::error::CallError;
use super::protocol::{
    DHCP_LEASES_MAX, DhcpLease, NETWORK_LIST_MAX, NetworkRef, Procedure, STRING_MAX,
};
use super::xdr::{Decoder, Encoder};
use crate::definition::Uuid;
use crate::service::{Service, ServiceError, Summary};

type Result<T> = std::result::Result<T, CallError>;

/// VIR_NETWORK_XML_INACTIVE.
const XML_INACTIVE: u32 = 1;
/// Every virConnectListAllNetworksFlags bit.
const LIST_ALL_FLAGS: u32 = 0x3f;

/// Runs network procedure `procedure` with the arguments in `args`; the
/// encoded result. `None` when `procedure` is not a network procedure.
pub async fn call(
    service: &Service,
    procedure: Procedure,
    args: &mut Decoder<'_>,
) -> Option<Result<Encoder>> {
    let mut reply = Encoder::new();
    let outcome = match procedure {
        Procedure::ConnectListAllNetworks => list_all(service, args, &mut reply),
        Procedure::NetworkLookupByName => lookup_by_name(service, args, &mut reply),
        Procedure::NetworkLookupByUuid => lookup_by_uuid(service, args, &mut reply),
        Procedure::NetworkDefineXml => define(service, args, &mut reply, false).await,
        Procedure::NetworkDefineXmlFlags => define(service, args, &mut reply, true).await,
        Procedure::NetworkCreateXml => create(service, args, &mut reply, false).await,
        Procedure::NetworkCreateXmlFlags => create(service, args, &mut reply, true).await,
        Procedure::NetworkCreate => {
            on_network(
                args,
                |network| async move { service.start(&network.uuid).await },
            )
            .await
        }
        Procedure::NetworkDestroy => {
            on_network(args, |network| async move {
                service.destroy(&network.uuid).await
            })
            .await
        }
        Procedure::NetworkUndefine => {
            on_network(args, |network| async move {
                service.undefine(&network.uuid).await
            })
            .await
        }
        Procedure::NetworkSetAutostart => set_autostart(service, args).await,
        Procedure::NetworkGetXmlDesc => xml_desc(service, args, &mut reply).await,
        Procedure::NetworkGetAutostart => {
            summary_field(service, args, &mut reply, |summary, reply| {
                reply.i32(summary.autostart.into());
            })
        }
        Procedure::NetworkIsActive => summary_field(service, args, &mut reply, |summary, reply| {
            reply.i32(summary.active.into());
        }),
        Procedure::NetworkIsPersistent => {
            summary_field(service, args, &mut reply, |summary, reply| {
                reply.i32(summary.persistent.into());
            })
        }
        Procedure::NetworkGetBridgeName => bridge_name(service, args, &mut reply),
        Procedure::NetworkUpdate => update(service, args).await,
        Procedure::NetworkGetDhcpLeases => leases(service, args, &mut reply).await,
        _ => return None,
    };
    Some(outcome.map(|()| reply))
}

/// The network a call names, its arguments then complete.
pub(super) fn network_of(args: &mut Decoder<'_>) -> Result<NetworkRef> {
    NetworkRef::decode(args).map_err(CallError::Arguments)
}

/// The service's error for a call on `network`: a network gone meanwhile
/// gets networkObjFromNetwork's message, which names it.
pub(super) fn on(network: &NetworkRef, error: ServiceError) -> CallError {
    match error {
        ServiceError::NoSuchUuid(_) => CallError::NetworkGone {
            uuid: network.uuid,
            name: network.name.clone(),
        },
        other => other.into(),
    }
}

fn reference(summary: &Summary) -> NetworkRef {
    NetworkRef {
        name: summary.name.clone(),
        uuid: summary.uuid,
    }
}

/// libvirt's virCheckFlags refusal.
pub(super) fn check_flags(flags: u32, known: u32, function: &str) -> Result<()> {
    if flags & !known != 0 {
        return Err(ServiceError::InvalidArgument(format!(
            "unsupported flags (0x{:x}) in function {function}",
            flags & !known
        ))
        .into());
    }
    Ok(())
}

fn list_all(service: &Service, args: &mut Decoder<'_>, reply: &mut Encoder) -> Result<()> {
    let need_results = args.i32().map_err(CallError::Arguments)?;
    let flags = args.u32().map_err(CallError::Arguments)?;
    check_flags(flags, LIST_ALL_FLAGS, "networkConnectListAllNetworks")?;
    let networks = service.list(flags);
    let count = u32::try_from(networks.len()).unwrap_or(u32::MAX);
    if count > NETWORK_LIST_MAX {
        return Err(CallError::ReplyTooLarge);
    }
    if need_results != 0 {
        reply.u32(count);
        for summary in &networks {
            reference(summary).encode(reply);
        }
    } else {
        reply.u32(0);
    }
    reply.u32(count);
    Ok(())
}

fn lookup_by_name(service: &Service, args: &mut Decoder<'_>, reply: &mut Encoder) -> Result<()> {
    let name = args.string(STRING_MAX).map_err(CallError::Arguments)?;
    reference(&service.lookup_by_name(&name)?).encode(reply);
    Ok(())
}

fn lookup_by_uuid(service: &Service, args: &mut Decoder<'_>, reply: &mut Encoder) -> Result<()> {
    let uuid = Uuid(args.fixed_opaque().map_err(CallError::Arguments)?);
    reference(&service.summary(&uuid)?).encode(reply);
    Ok(())
}

/// The XML of a define or create, with its flags when the procedure has
/// them. VIR_NETWORK_DEFINE_VALIDATE / CREATE_VALIDATE ask for a schema
/// check the service does not do (virtnet's client checks before it
/// calls), so they are refused as libvirt refuses flags it lacks.
fn xml_and_flags(args: &mut Decoder<'_>, with_flags: bool, function: &str) -> Result<String> {
    let xml = args.string(STRING_MAX).map_err(CallError::Arguments)?;
    if with_flags {
        let flags = args.u32().map_err(CallError::Arguments)?;
        check_flags(flags, 0, function)?;
    }
    Ok(xml)
}

async fn define(
    service: &Service,
    args: &mut Decoder<'_>,
    reply: &mut Encoder,
    with_flags: bool,
) -> Result<()> {
    let xml = xml_and_flags(args, with_flags, "networkDefineXMLFlags")?;
    let summary = service.define(&xml).await?;
    reference(&summary).encode(reply);
    Ok(())
}

async fn create(
    service: &Service,
    args: &mut Decoder<'_>,
    reply: &mut Encoder,
    with_flags: bool,
) -> Result<()> {
    let xml = xml_and_flags(args, with_flags, "networkCreateXMLFlags")?;
    let summary = service.create(&xml).await?;
    reference(&summary).encode(reply);
    Ok(())
}

/// A procedure whose only argument is the network and whose result is
/// empty.
async fn on_network<F>(args: &mut Decoder<'_>, action: impl FnOnce(NetworkRef) -> F) -> Result<()>
where
    F: Future<Output = crate::service::Result<()>>,
{
    let network = network_of(args)?;
    let name = network.clone();
    action(network).await.map_err(|error| on(&name, error))
}

async fn set_autostart(service: &Service, args: &mut Decoder<'_>) -> Result<()> {
    let network = network_of(args)?;
    let autostart = args.i32().map_err(CallError::Arguments)?;
    service
        .set_autostart(&network.uuid, autostart != 0)
        .await
        .map_err(|error| on(&network, error))
}

async fn xml_desc(service: &Service, args: &mut Decoder<'_>, reply: &mut Encoder) -> Result<()> {
    let network = network_of(args)?;
    let flags = args.u32().map_err(CallError::Arguments)?;
    check_flags(flags, XML_INACTIVE, "networkGetXMLDesc")?;
    let xml = service
        .xml(&network.uuid, flags & XML_INACTIVE != 0)
        .await
        .map_err(|error| on(&network, error))?;
    reply.string(&xml);
    Ok(())
}

/// A procedure answered from the network's summary.
fn summary_field(
    service: &Service,
    args: &mut Decoder<'_>,
    reply: &mut Encoder,
    field: impl FnOnce(&Summary, &mut Encoder),
) -> Result<()> {
    let network = network_of(args)?;
    let summary = service
        .summary(&network.uuid)
        .map_err(|error| on(&network, error))?;
    field(&summary, reply);
    Ok(())
}

fn bridge_name(service: &Service, args: &mut Decoder<'_>, reply: &mut Encoder) -> Result<()> {
    let network = network_of(args)?;
    let summary = service
        .summary(&network.uuid)
        .map_err(|error| on(&network, error))?;
    // libvirt's words for a network without a bridge (networkGetBridgeName).
    let bridge = summary.bridge.ok_or_else(|| {
        ServiceError::Definition(crate::definition::DefinitionError::Internal(format!(
            "network '{}' does not have a bridge name.",
            summary.name
        )))
    })?;
    reply.string(&bridge);
    Ok(())
}

async fn update(service: &Service, args: &mut Decoder<'_>) -> Result<()> {
    let network = network_of(args)?;
    let mut field = || args.u32().map_err(CallError::Arguments);
    let command = field()?;
    let section = field()?;
    let parent_index = args.i32().map_err(CallError::Arguments)?;
    let xml = args.string(STRING_MAX).map_err(CallError::Arguments)?;
    let flags = args.u32().map_err(CallError::Arguments)?;
    service
        .update(&network.uuid, command, section, parent_index, &xml, flags)
        .await
        .map_err(|error| on(&network, error))
}

async fn leases(service: &Service, args: &mut Decoder<'_>, reply: &mut Encoder) -> Result<()> {
    let network = network_of(args)?;
    let mac = args
        .optional_string(STRING_MAX)
        .map_err(CallError::Arguments)?;
    let need_results = args.i32().map_err(CallError::Arguments)?;
    let flags = args.u32().map_err(CallError::Arguments)?;
    check_flags(flags, 0, "networkGetDHCPLeases")?;
    let leases = service
        .leases(&network.uuid, mac.as_deref())
        .await
        .map_err(|error| on(&network, error))?;
    let count = u32::try_from(leases.len()).unwrap_or(u32::MAX);
    if count > DHCP_LEASES_MAX {
        return Err(CallError::ReplyTooLarge);
    }
    let present = |text: String| Some(text).filter(|text| !text.is_empty());
    if need_results != 0 {
        reply.u32(count);
        for lease in leases {
            DhcpLease {
                iface: lease.interface,
                expirytime: lease.expiry_time,
                kind: i32::from(lease.ipv6),
                mac: present(lease.mac),
                iaid: present(lease.iaid),
                ipaddr: lease.address,
                prefix: lease.prefix,
                hostname: present(lease.hostname),
                clientid: present(lease.client_id),
            }
            .encode(reply);
        }
    } else {
        reply.u32(0);
    }
    reply.u32(count);
    Ok(())
}

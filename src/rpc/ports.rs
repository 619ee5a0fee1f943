//! The network port procedures (remote_network_port_*, and
//! remote_network_list_all_ports): each decodes its arguments, calls the
//! service and encodes its result; the ports' logic is the service's.

use super::error::CallError;
use super::network::{check_flags, network_of, on};
use super::protocol::{NETWORK_PORT_LIST_MAX, PortRef, Procedure, STRING_MAX};
use super::xdr::{Decoder, Encoder};
use crate::definition::Uuid;
use crate::service::{Service, port_create_flags};

type Result<T> = std::result::Result<T, CallError>;

/// Runs port procedure `procedure` with the arguments in `args`; the
/// encoded result. `None` when `procedure` is not a port procedure.
pub async fn call(
    service: &Service,
    procedure: Procedure,
    args: &mut Decoder<'_>,
) -> Option<Result<Encoder>> {
    let mut reply = Encoder::new();
    let outcome = match procedure {
        Procedure::NetworkListAllPorts => list_all(service, args, &mut reply).await,
        Procedure::NetworkPortLookupByUuid => lookup(service, args, &mut reply).await,
        Procedure::NetworkPortCreateXml => create(service, args, &mut reply).await,
        Procedure::NetworkPortGetXmlDesc => xml_desc(service, args, &mut reply).await,
        Procedure::NetworkPortDelete => delete(service, args).await,
        _ => return None,
    };
    Some(outcome.map(|()| reply))
}

fn port_of(args: &mut Decoder<'_>) -> Result<PortRef> {
    PortRef::decode(args).map_err(CallError::Arguments)
}

fn flags(args: &mut Decoder<'_>, known: u32, function: &str) -> Result<u32> {
    let flags = args.u32().map_err(CallError::Arguments)?;
    check_flags(flags, known, function)?;
    Ok(flags)
}

async fn list_all(service: &Service, args: &mut Decoder<'_>, reply: &mut Encoder) -> Result<()> {
    let network = network_of(args)?;
    let need_results = args.i32().map_err(CallError::Arguments)?;
    flags(args, 0, "networkListAllPorts")?;
    let ports = service
        .list_ports(&network.uuid)
        .await
        .map_err(|error| on(&network, error))?;
    let count = u32::try_from(ports.len()).unwrap_or(u32::MAX);
    if count > NETWORK_PORT_LIST_MAX {
        return Err(CallError::ReplyTooLarge);
    }
    if need_results != 0 {
        reply.u32(count);
        for uuid in ports {
            PortRef {
                network: network.clone(),
                uuid,
            }
            .encode(reply);
        }
    } else {
        reply.u32(0);
    }
    reply.u32(count);
    Ok(())
}

async fn lookup(service: &Service, args: &mut Decoder<'_>, reply: &mut Encoder) -> Result<()> {
    let network = network_of(args)?;
    let uuid = Uuid(args.fixed_opaque().map_err(CallError::Arguments)?);
    service
        .lookup_port(&network.uuid, &uuid)
        .await
        .map_err(|error| on(&network, error))?;
    PortRef { network, uuid }.encode(reply);
    Ok(())
}

async fn create(service: &Service, args: &mut Decoder<'_>, reply: &mut Encoder) -> Result<()> {
    let network = network_of(args)?;
    let xml = args.string(STRING_MAX).map_err(CallError::Arguments)?;
    let flags = flags(args, port_create_flags::RECLAIM, "networkPortCreateXML")?;
    let reclaim = flags & port_create_flags::RECLAIM != 0;
    let uuid = service
        .create_port(&network.uuid, &xml, reclaim)
        .await
        .map_err(|error| on(&network, error))?;
    PortRef { network, uuid }.encode(reply);
    Ok(())
}

async fn xml_desc(service: &Service, args: &mut Decoder<'_>, reply: &mut Encoder) -> Result<()> {
    let port = port_of(args)?;
    flags(args, 0, "networkPortGetXMLDesc")?;
    let xml = service
        .port_xml(&port.network.uuid, &port.uuid)
        .await
        .map_err(|error| on(&port.network, error))?;
    reply.string(&xml);
    Ok(())
}

async fn delete(service: &Service, args: &mut Decoder<'_>) -> Result<()> {
    let port = port_of(args)?;
    flags(args, 0, "networkPortDelete")?;
    service
        .delete_port(&port.network.uuid, &port.uuid)
        .await
        .map_err(|error| on(&port.network, error))
}

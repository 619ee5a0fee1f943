//! One call of the remote program, answered: the connection procedures
//! (authentication, open, features, event callbacks, close) here, the
//! network procedures
//! in `network`, the port procedures in `ports`; the read-only rule for every mutation.

use std::sync::atomic::{AtomicBool, Ordering};

use super::error::CallError;
use super::events::{Callbacks, LIFECYCLE_EVENT_ID};
use super::frame::{Frame, Header, Status};
use super::protocol::{
    AUTH_NONE, CONNECT_READ_ONLY, IDENTITY_PARAMS_MAX, NetworkRef, Procedure, RemoteError,
    STRING_MAX, TypedParam, feature,
};
use super::xdr::{Decoder, Encoder};
use super::{network, ports};
use crate::service::Service;

/// What one client connection has said so far.
#[derive(Debug)]
pub struct Session {
    /// The read-only socket, or CONNECT_OPEN's read-only flag.
    read_only: AtomicBool,
    opened: AtomicBool,
    pub callbacks: Callbacks,
}

impl Session {
    pub fn new(read_only: bool) -> Self {
        Self {
            read_only: AtomicBool::new(read_only),
            opened: AtomicBool::new(false),
            callbacks: Callbacks::default(),
        }
    }
}

/// The reply to `call`, a call of the remote program: its result, or the
/// error libvirt would answer with.
pub async fn answer(service: &Service, session: &Session, call: &Frame) -> Frame {
    let reply = match run(service, session, &call.header, &call.body).await {
        Ok(result) => Frame {
            header: call.header.reply(Status::Ok),
            body: result.into_bytes(),
        },
        Err(error) => error_reply(&call.header, &error),
    };
    if reply.fits() {
        reply
    } else {
        error_reply(&call.header, &CallError::ReplyTooLarge)
    }
}

fn error_reply(call: &Header, error: &CallError) -> Frame {
    let remote: RemoteError = error.to_remote();
    tracing::debug!(
        procedure = call.procedure,
        "call refused: {}",
        remote.message
    );
    let mut body = Encoder::new();
    remote.encode(&mut body);
    Frame {
        header: call.reply(Status::Error),
        body: body.into_bytes(),
    }
}

async fn run(
    service: &Service,
    session: &Session,
    header: &Header,
    body: &[u8],
) -> Result<Encoder, CallError> {
    let procedure = Procedure::from_number(header.procedure)
        .ok_or(CallError::UnknownProcedure(header.procedure))?;
    let mut args = Decoder::new(body);
    let mut reply = Encoder::new();
    match procedure {
        Procedure::AuthList => {
            reply.u32(1).i32(AUTH_NONE);
            return Ok(reply);
        }
        Procedure::ConnectOpen => {
            // The URI names the driver; a socket of virtnet's serves one.
            args.optional_string(STRING_MAX)
                .map_err(CallError::Arguments)?;
            let flags = args.u32().map_err(CallError::Arguments)?;
            if flags & CONNECT_READ_ONLY != 0 {
                session.read_only.store(true, Ordering::Relaxed);
            }
            session.opened.store(true, Ordering::Relaxed);
            return Ok(reply);
        }
        // virsh asks about keepalive before it opens the connection.
        Procedure::ConnectSupportsFeature => {
            let asked = args.i32().map_err(CallError::Arguments)?;
            reply.i32(supports(asked).into());
            return Ok(reply);
        }
        _ => {}
    }
    if !session.opened.load(Ordering::Relaxed) {
        return Err(CallError::NotOpen);
    }
    if let Some(function) = procedure.mutation()
        && session.read_only.load(Ordering::Relaxed)
    {
        return Err(CallError::ReadOnly(function));
    }
    match procedure {
        // The client closes the socket after the reply; close callbacks
        // need nothing kept: virtnet never closes a connection itself but
        // for bad input, which ends it anyway.
        Procedure::ConnectClose
        | Procedure::ConnectRegisterCloseCallback
        | Procedure::ConnectUnregisterCloseCallback => {}
        // The identity a driver daemon acts for (virtqemud's guests'
        // owner) matters for access control, which virtnet's sockets do
        // by their permissions: it is decoded (what does not decode is
        // refused, as libvirt refuses it), logged, and not needed.
        Procedure::ConnectSetIdentity => {
            let params = TypedParam::decode_list(&mut args, IDENTITY_PARAMS_MAX)
                .map_err(CallError::Arguments)?;
            args.u32().map_err(CallError::Arguments)?;
            let identity: Vec<String> = params.iter().map(ToString::to_string).collect();
            tracing::debug!(identity = identity.join(", "), "a client's identity");
        }
        Procedure::ConnectNetworkEventRegisterAny => {
            let event_id = args.i32().map_err(CallError::Arguments)?;
            let network = args
                .bool()
                .and_then(|present| present.then(|| NetworkRef::decode(&mut args)).transpose())
                .map_err(CallError::Arguments)?;
            if event_id != LIFECYCLE_EVENT_ID {
                return Err(CallError::UnknownEvent(event_id));
            }
            let network = network.map(|network| network.uuid);
            reply.i32(session.callbacks.register(network));
        }
        Procedure::ConnectNetworkEventDeregisterAny => {
            let callback = args.i32().map_err(CallError::Arguments)?;
            if !session.callbacks.deregister(callback) {
                return Err(CallError::UnknownCallback(callback));
            }
        }
        procedure => {
            if let Some(answer) = ports::call(service, procedure, &mut args).await {
                return answer;
            }
            return network::call(service, procedure, &mut args)
                .await
                .unwrap_or(Err(CallError::UnknownProcedure(header.procedure)));
        }
    }
    Ok(reply)
}

/// CONNECT_SUPPORTS_FEATURE's answer: keepalive, event and close callbacks, and
/// net-update's command before its section (without it virsh swaps them,
/// as libvirt's own network driver once had them).
fn supports(asked: i32) -> bool {
    matches!(
        asked,
        feature::PROGRAM_KEEPALIVE
            | feature::REMOTE_EVENT_CALLBACK
            | feature::REMOTE_CLOSE_CALLBACK
            | feature::NETWORK_UPDATE_HAS_CORRECT_ORDER
    )
}

//! Network lifecycle events for the connections that registered for them
//! (CONNECT_NETWORK_EVENT_REGISTER_ANY), pushed as
//! NETWORK_EVENT_LIFECYCLE messages with each callback's id.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;

use super::frame::{Frame, Header, MessageType, Status};
use super::protocol::{NetworkRef, REMOTE_PROGRAM, REMOTE_VERSION};
use super::xdr::Encoder;
use crate::definition::Uuid;
use crate::service::{NetworkEvent, Service};

/// REMOTE_PROC_NETWORK_EVENT_LIFECYCLE, the message an event goes out as.
const LIFECYCLE_MESSAGE: i32 = 315;
/// VIR_NETWORK_EVENT_ID_LIFECYCLE, the only event id libvirt 9.0 has.
pub const LIFECYCLE_EVENT_ID: i32 = 0;

/// One connection's event callbacks: id → the network it is for (all
/// when `None`).
#[derive(Debug, Default)]
pub struct Callbacks {
    registered: Mutex<BTreeMap<i32, Option<Uuid>>>,
}

impl Callbacks {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, Option<Uuid>>> {
        // Each change is one insert or remove: a panic cannot leave the
        // map half-changed.
        self.registered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new callback for `network` (or all); its id, counting from 1 as
    /// libvirt's do.
    pub fn register(&self, network: Option<Uuid>) -> i32 {
        let mut registered = self.lock();
        let id = registered.keys().next_back().map_or(1, |last| last + 1);
        registered.insert(id, network);
        id
    }

    /// Whether callback `id` was registered (and is no longer).
    pub fn deregister(&self, id: i32) -> bool {
        self.lock().remove(&id).is_some()
    }

    /// The callbacks `uuid`'s events go to.
    fn for_network(&self, uuid: &Uuid) -> Vec<i32> {
        self.lock()
            .iter()
            .filter(|(_, network)| network.is_none_or(|network| network == *uuid))
            .map(|(id, _)| *id)
            .collect()
    }
}

/// Sends `service`'s lifecycle events to the connection's callbacks until
/// the connection's reply queue closes.
pub async fn forward(
    service: &Service,
    mut events: broadcast::Receiver<NetworkEvent>,
    callbacks: &Callbacks,
    replies: mpsc::Sender<Frame>,
) {
    // Names of the networks seen, for events of those gone (undefined).
    let mut names: HashMap<Uuid, String> = service
        .list(0)
        .into_iter()
        .map(|summary| (summary.uuid, summary.name))
        .collect();
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = replies.closed() => return,
        };
        let event = match event {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "network events were dropped for an RPC client");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if let Ok(summary) = service.summary(&event.uuid) {
            names.insert(summary.uuid, summary.name);
        }
        let (Some(code), Some(name)) = (event.event.lifecycle_code(), names.get(&event.uuid))
        else {
            continue;
        };
        let network = NetworkRef {
            name: name.clone(),
            uuid: event.uuid,
        };
        for callback in callbacks.for_network(&event.uuid) {
            if replies
                .send(message(callback, &network, code))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// remote_network_event_lifecycle_msg (libvirt's detail is always 0).
fn message(callback: i32, network: &NetworkRef, event: i32) -> Frame {
    let mut body = Encoder::new();
    body.i32(callback);
    network.encode(&mut body);
    body.i32(event).i32(0);
    Frame {
        header: Header {
            program: REMOTE_PROGRAM,
            version: REMOTE_VERSION,
            procedure: LIFECYCLE_MESSAGE,
            kind: MessageType::Message,
            serial: 0,
            status: Status::Ok,
        },
        body: body.into_bytes(),
    }
}

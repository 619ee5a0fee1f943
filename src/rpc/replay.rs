//! One connection's bytes answered in order, without a socket: what the
//! golden tests replay of virsh's captured calls, and what the fuzz target
//! feeds arbitrary bytes through (the framing, the header, each call's
//! arguments and the service behind them).

use super::dispatch::{Session, answer};
use super::frame::read_frame;
use super::server::{Incoming, pong};
use crate::service::Service;

/// The bytes a connection to `service` (read-only or not) sends back for
/// the messages in `input`, answered one after the other, until the input
/// ends or holds what closes the connection (a bad length or header,
/// another program).
pub async fn replay(service: &Service, read_only: bool, input: &[u8]) -> Vec<u8> {
    let session = Session::new(read_only);
    let mut reader = input;
    let mut output = Vec::new();
    while let Ok(Some(frame)) = read_frame(&mut reader).await {
        let reply = match Incoming::of(&frame.header) {
            Incoming::Call => answer(service, &session, &frame).await,
            Incoming::Ping => pong(&frame.header),
            Incoming::Ignored => continue,
            Incoming::Unserved => break,
        };
        output.extend(reply.encode());
    }
    output
}

//! The sockets and their connections: a task per connection reads
//! messages, a task per call answers it (so a slow start does not hold up
//! a listing or a keepalive), and one writer sends the replies in the
//! order they are ready, each with its call's serial.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc};

use super::dispatch::{Session, answer};
use super::events::forward;
use super::frame::{Frame, Header, MessageType, Status, read_frame};
use super::protocol::{
    KEEPALIVE_PING, KEEPALIVE_PONG, KEEPALIVE_PROGRAM, KEEPALIVE_VERSION, REMOTE_PROGRAM,
    REMOTE_VERSION,
};
use crate::service::Service;

/// The read-write socket's name, virtnetworkd's.
pub const SOCKET: &str = "virtnetworkd-sock";
/// The read-only socket's name.
pub const READ_ONLY_SOCKET: &str = "virtnetworkd-sock-ro";

/// Calls of one connection answered at once (libvirt's
/// max_client_requests); further messages wait to be read.
const CALLS_PER_CONNECTION: usize = 5;
/// Connections served at once by default (libvirt's max_clients).
pub const MAX_CLIENTS: u32 = 5000;
/// Replies waiting for the writer, per connection.
const QUEUED_REPLIES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot remove the stale socket {}", .path.display())]
    Stale {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {}", .path.display())]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Listens on both sockets in `dir` and serves `service` there until the
/// runtime ends. The read-write socket is for its owner (root) only, the
/// read-only one for everyone, as libvirt's default permissions have them.
/// At most `max_clients` connections (both sockets together) are served at
/// once; one more is closed as soon as it is accepted.
pub async fn serve(service: Arc<Service>, dir: &Path, max_clients: u32) -> Result<(), ServeError> {
    let permits = usize::try_from(max_clients).unwrap_or(Semaphore::MAX_PERMITS);
    let clients = Arc::new(Semaphore::new(permits.min(Semaphore::MAX_PERMITS)));
    for (name, read_only, mode) in [(SOCKET, false, 0o700), (READ_ONLY_SOCKET, true, 0o777)] {
        let listener = listen(&dir.join(name), mode).await?;
        tokio::spawn(accept(
            service.clone(),
            listener,
            read_only,
            clients.clone(),
        ));
    }
    tracing::info!(dir = %dir.display(), "serving libvirt's RPC protocol");
    Ok(())
}

async fn listen(path: &Path, mode: u32) -> Result<UnixListener, ServeError> {
    // A socket left by an earlier run would refuse the bind; only a socket
    // is removed, never a file someone put there.
    if let Ok(metadata) = tokio::fs::symlink_metadata(path).await
        && metadata.file_type().is_socket()
    {
        tokio::fs::remove_file(path)
            .await
            .map_err(|source| ServeError::Stale {
                path: path.to_owned(),
                source,
            })?;
    }
    let listen_error = |source| ServeError::Listen {
        path: path.to_owned(),
        source,
    };
    let listener = UnixListener::bind(path).map_err(listen_error)?;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .await
        .map_err(listen_error)?;
    Ok(listener)
}

async fn accept(
    service: Arc<Service>,
    listener: UnixListener,
    read_only: bool,
    clients: Arc<Semaphore>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => match clients.clone().try_acquire_owned() {
                Ok(client) => {
                    let service = service.clone();
                    tokio::spawn(async move {
                        connection(service, stream, read_only).await;
                        drop(client);
                    });
                }
                // As libvirt's "Too many active clients": the new one is
                // closed, those served go on.
                Err(_) => {
                    tracing::warn!("too many RPC clients, dropping a new connection");
                    drop(stream);
                }
            },
            Err(error) => {
                // Out of descriptors, say: wait rather than spin.
                tracing::warn!("cannot accept an RPC connection: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one client until it closes the connection or sends what cannot
/// be answered (a bad length or header, another program): then the
/// connection is closed, as libvirt closes it.
async fn connection(service: Arc<Service>, stream: UnixStream, read_only: bool) {
    let (mut reader, writer) = stream.into_split();
    let (replies, queue) = mpsc::channel(QUEUED_REPLIES);
    let writing = tokio::spawn(write_replies(writer, queue));
    let session = Arc::new(Session::new(read_only));
    // Subscribed before any call, so no event after a registration is
    // missed.
    let events = service.subscribe();
    let forwarding = tokio::spawn({
        let (service, session, replies) = (service.clone(), session.clone(), replies.clone());
        async move { forward(&service, events, &session.callbacks, replies).await }
    });
    let calls = Arc::new(Semaphore::new(CALLS_PER_CONNECTION));
    loop {
        let frame = match read_frame(&mut reader).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                tracing::debug!("closing an RPC connection: {error}");
                break;
            }
        };
        match Incoming::of(&frame.header) {
            Incoming::Call => {
                let Ok(permit) = calls.clone().acquire_owned().await else {
                    break;
                };
                let (service, session, replies) =
                    (service.clone(), session.clone(), replies.clone());
                tokio::spawn(async move {
                    let reply = answer(&service, &session, &frame).await;
                    // A closed queue: the client went away meanwhile.
                    let _ = replies.send(reply).await;
                    drop(permit);
                });
            }
            Incoming::Ping => {
                if replies.send(pong(&frame.header)).await.is_err() {
                    break;
                }
            }
            Incoming::Ignored => {}
            Incoming::Unserved => {
                let header = frame.header;
                tracing::debug!(
                    program = header.program,
                    version = header.version,
                    kind = ?header.kind,
                    "closing an RPC connection: a message virtnet does not serve"
                );
                break;
            }
        }
    }
    // The writer ends once the calls still running have sent their replies.
    forwarding.abort();
    drop(replies);
    let _ = writing.await;
}

/// What a connection does with a message it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Incoming {
    /// A call of the remote program: answered.
    Call,
    /// A keepalive PING: answered with a PONG.
    Ping,
    /// Another keepalive message (a PONG): nothing to do.
    Ignored,
    /// Anything else: the connection is closed, as libvirt closes it.
    Unserved,
}

impl Incoming {
    pub(super) fn of(header: &Header) -> Self {
        match (header.program, header.version, header.kind) {
            (REMOTE_PROGRAM, REMOTE_VERSION, MessageType::Call) => Self::Call,
            (KEEPALIVE_PROGRAM, KEEPALIVE_VERSION, MessageType::Message) => {
                if header.procedure == KEEPALIVE_PING {
                    Self::Ping
                } else {
                    Self::Ignored
                }
            }
            _ => Self::Unserved,
        }
    }
}

/// The PONG answering the PING `ping`.
pub(super) fn pong(ping: &Header) -> Frame {
    Frame {
        header: Header {
            procedure: KEEPALIVE_PONG,
            status: Status::Ok,
            ..*ping
        },
        body: Vec::new(),
    }
}

async fn write_replies(
    mut writer: tokio::net::unix::OwnedWriteHalf,
    mut queue: mpsc::Receiver<Frame>,
) {
    while let Some(frame) = queue.recv().await {
        if let Err(error) = writer.write_all(&frame.encode()).await {
            tracing::debug!("cannot answer an RPC client: {error}");
            return;
        }
    }
}

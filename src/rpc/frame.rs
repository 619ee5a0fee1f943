//! libvirt's message framing (virnetprotocol.x): a big-endian u32 length
//! that counts itself, a 24-byte header, and the XDR body.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::xdr::{Decoder, Encoder, XdrError};

/// The length word's own size (VIR_NET_MESSAGE_LEN_MAX).
pub const LENGTH_SIZE: u32 = 4;
/// The header's size (VIR_NET_MESSAGE_HEADER_MAX).
pub const HEADER_SIZE: u32 = 24;
/// The largest message, length word excluded (libvirt 9.0's
/// VIR_NET_MESSAGE_MAX, 32 MiB).
pub const MESSAGE_MAX: u32 = 33_554_432;
/// A message body's first buffer (libvirt's VIR_NET_MESSAGE_INITIAL plus
/// room): most calls fit; longer ones grow it as their bytes arrive.
const INITIAL_BUFFER: usize = 65_536;

/// virNetMessageType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Call = 0,
    Reply = 1,
    Message = 2,
    Stream = 3,
    CallWithFds = 4,
    ReplyWithFds = 5,
    StreamHole = 6,
}

impl MessageType {
    fn from_wire(value: u32) -> Result<Self, XdrError> {
        Ok(match value {
            0 => Self::Call,
            1 => Self::Reply,
            2 => Self::Message,
            3 => Self::Stream,
            4 => Self::CallWithFds,
            5 => Self::ReplyWithFds,
            6 => Self::StreamHole,
            other => {
                return Err(XdrError::UnknownValue {
                    what: "message type",
                    value: other.into(),
                });
            }
        })
    }
}

/// virNetMessageStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    Error = 1,
    Continue = 2,
}

impl Status {
    fn from_wire(value: u32) -> Result<Self, XdrError> {
        Ok(match value {
            0 => Self::Ok,
            1 => Self::Error,
            2 => Self::Continue,
            other => {
                return Err(XdrError::UnknownValue {
                    what: "message status",
                    value: other.into(),
                });
            }
        })
    }
}

/// virNetMessageHeader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub program: u32,
    pub version: u32,
    pub procedure: i32,
    pub kind: MessageType,
    pub serial: u32,
    pub status: Status,
}

impl Header {
    /// The header of the reply to this call.
    pub fn reply(&self, status: Status) -> Self {
        Self {
            kind: MessageType::Reply,
            status,
            ..*self
        }
    }
}

/// One message: its header and its body, still XDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    pub body: Vec<u8>,
}

impl Frame {
    /// The message as sent: length, header, body.
    pub fn encode(&self) -> Vec<u8> {
        let mut encoder = Encoder::new();
        // Over 4 GiB cannot happen: replies are bounded well below (see
        // `fits`).
        let length = u32::try_from(self.body.len()).unwrap_or(u32::MAX);
        encoder
            .u32(length.saturating_add(LENGTH_SIZE + HEADER_SIZE))
            .u32(self.header.program)
            .u32(self.header.version)
            .i32(self.header.procedure)
            .u32(self.header.kind as u32)
            .u32(self.header.serial)
            .u32(self.header.status as u32);
        let mut bytes = encoder.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Whether the message is within libvirt's limit, so a client accepts it.
    pub fn fits(&self) -> bool {
        self.body.len() <= (MESSAGE_MAX - HEADER_SIZE) as usize
    }

    /// A message's header and body from its bytes after the length word.
    pub fn decode(bytes: &[u8]) -> Result<Self, XdrError> {
        let (header_bytes, body) = bytes
            .split_at_checked(HEADER_SIZE as usize)
            .ok_or(XdrError::Truncated)?;
        let mut decoder = Decoder::new(header_bytes);
        let header = Header {
            program: decoder.u32()?,
            version: decoder.u32()?,
            procedure: decoder.i32()?,
            kind: MessageType::from_wire(decoder.u32()?)?,
            serial: decoder.u32()?,
            status: Status::from_wire(decoder.u32()?)?,
        };
        Ok(Self {
            header,
            body: body.to_vec(),
        })
    }
}

/// Why no message could be read: the stream cannot go on after any of
/// these (the next length word's place is unknown), so the connection is
/// closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("cannot read from the client")]
    Io(#[source] std::io::Error),
    #[error("a message length of {0} is outside libvirt's limits")]
    Length(u32),
    #[error("the message header does not decode")]
    Header(#[source] XdrError),
}

/// The next message from `reader`; `None` when the client closed the
/// connection between messages. The length is checked before the body is
/// read or its buffer allocated.
pub async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
) -> Result<Option<Frame>, FrameError> {
    let mut length = [0; 4];
    match reader.read_exact(&mut length).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(FrameError::Io(error)),
    }
    let length = u32::from_be_bytes(length);
    if !(LENGTH_SIZE + HEADER_SIZE..=LENGTH_SIZE + MESSAGE_MAX).contains(&length) {
        return Err(FrameError::Length(length));
    }
    // The buffer grows with what arrives rather than with what the length
    // word claims: a client announcing 32 MiB and sending nothing holds a
    // few bytes of memory, not 32 MiB.
    let wanted = u64::from(length - LENGTH_SIZE);
    let mut bytes = Vec::with_capacity(INITIAL_BUFFER.min(wanted as usize));
    let read = reader
        .take(wanted)
        .read_to_end(&mut bytes)
        .await
        .map_err(FrameError::Io)?;
    if read as u64 != wanted {
        return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Frame::decode(&bytes).map(Some).map_err(FrameError::Header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            program: 0x2000_8086,
            version: 1,
            procedure: 66,
            kind: MessageType::Call,
            serial: 0,
            status: Status::Ok,
        }
    }

    #[tokio::test]
    async fn a_frame_reads_back_as_written() {
        let frame = Frame {
            header: header(),
            body: vec![0, 0, 0, 1],
        };
        let bytes = frame.encode();
        assert_eq!(&bytes[..4], &[0, 0, 0, 32]);
        let mut reader = bytes.as_slice();
        assert_eq!(read_frame(&mut reader).await.unwrap(), Some(frame));
        assert_eq!(read_frame(&mut reader).await.unwrap(), None);
    }

    #[tokio::test]
    async fn lengths_outside_the_limits_close_before_allocating() {
        for length in [0u32, 27, LENGTH_SIZE + MESSAGE_MAX + 1, u32::MAX] {
            let mut reader: &[u8] = &length.to_be_bytes();
            assert!(matches!(
                read_frame(&mut reader).await,
                Err(FrameError::Length(found)) if found == length
            ));
        }
    }

    #[tokio::test]
    async fn a_frame_cut_short_is_an_error() {
        let bytes = Frame {
            header: header(),
            body: vec![1; 8],
        }
        .encode();
        let mut reader = &bytes[..bytes.len() - 1];
        assert!(matches!(
            read_frame(&mut reader).await,
            Err(FrameError::Io(_))
        ));
    }

    #[tokio::test]
    async fn an_unknown_message_type_is_a_header_error() {
        let mut bytes = Frame {
            header: header(),
            body: vec![],
        }
        .encode();
        bytes[19] = 9;
        let mut reader = bytes.as_slice();
        assert!(matches!(
            read_frame(&mut reader).await,
            Err(FrameError::Header(XdrError::UnknownValue { .. }))
        ));
    }
}

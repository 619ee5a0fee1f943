//! XDR (RFC 4506), the part libvirt's protocol uses: 32-bit integers,
//! 64-bit hypers, booleans, strings and opaque data padded to four bytes,
//! counted arrays and optional values (`*T`, a boolean then the value).
//! Every length read is checked against the limit the protocol declares
//! before anything is allocated, so a hostile length costs nothing.

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XdrError {
    #[error("the message ends inside a value")]
    Truncated,
    #[error("a length of {length} is over the limit of {limit}")]
    TooLong { length: u32, limit: u32 },
    #[error("{0} is not a boolean")]
    NotBoolean(u32),
    #[error("a string is not UTF-8")]
    NotUtf8,
    #[error("a string holds a NUL byte")]
    Nul,
    #[error("{value} is not a known {what}")]
    UnknownValue { what: &'static str, value: i64 },
}

pub type Result<T, E = XdrError> = std::result::Result<T, E>;

/// Bytes being written, each value padded to four bytes.
#[derive(Debug, Default)]
pub struct Encoder {
    bytes: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn i32(&mut self, value: i32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.u32(u32::from(value))
    }

    /// Fixed-length opaque data (a UUID): no length, padded.
    pub fn fixed_opaque(&mut self, data: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(data);
        self.pad(data.len())
    }

    /// A string: its length, its bytes, padding. Our own strings are far
    /// below the protocol's limits; the frame's size limit catches a whole
    /// reply that is not.
    pub fn string(&mut self, value: &str) -> &mut Self {
        // A string over 4 GiB cannot be built within the frame limit.
        self.u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
        self.bytes.extend_from_slice(value.as_bytes());
        self.pad(value.len())
    }

    /// `*string`: a boolean saying whether a string follows.
    pub fn optional_string(&mut self, value: Option<&str>) -> &mut Self {
        self.bool(value.is_some());
        if let Some(value) = value {
            self.string(value);
        }
        self
    }

    fn pad(&mut self, length: usize) -> &mut Self {
        let padding = (4 - length % 4) % 4;
        self.bytes.extend(std::iter::repeat_n(0, padding));
        self
    }
}

/// Bytes being read.
#[derive(Debug)]
pub struct Decoder<'a> {
    bytes: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Whether every byte was read. Calls are not held to it: libvirt
    /// ignores what follows a call's arguments, and so does virtnet.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < length {
            return Err(XdrError::Truncated);
        }
        let (taken, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Ok(taken)
    }

    fn word(&mut self) -> Result<[u8; 4]> {
        let bytes = self.take(4)?;
        Ok([bytes[0], bytes[1], bytes[2], bytes[3]])
    }

    pub fn u32(&mut self) -> Result<u32> {
        self.word().map(u32::from_be_bytes)
    }

    pub fn i32(&mut self) -> Result<i32> {
        self.word().map(i32::from_be_bytes)
    }

    /// An unsigned hyper.
    pub fn u64(&mut self) -> Result<u64> {
        let bytes = self.take(8)?;
        let mut word = [0; 8];
        word.copy_from_slice(bytes);
        Ok(u64::from_be_bytes(word))
    }

    /// A hyper.
    pub fn i64(&mut self) -> Result<i64> {
        self.u64().map(|value| value as i64)
    }

    pub fn bool(&mut self) -> Result<bool> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(XdrError::NotBoolean(other)),
        }
    }

    /// Fixed-length opaque data of `N` bytes, padded.
    pub fn fixed_opaque<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut data = [0; N];
        data.copy_from_slice(self.take(N)?);
        self.skip_padding(N)?;
        Ok(data)
    }

    /// A counted array's length, at most `limit`.
    pub fn length(&mut self, limit: u32) -> Result<u32> {
        let length = self.u32()?;
        if length > limit {
            return Err(XdrError::TooLong { length, limit });
        }
        Ok(length)
    }

    /// A string of at most `limit` bytes. libvirt's strings are C strings:
    /// a NUL inside one is refused, and so is what is not UTF-8 (names and
    /// XML are UTF-8 for libvirt too).
    pub fn string(&mut self, limit: u32) -> Result<String> {
        let length = self.length(limit)? as usize;
        let bytes = self.take(length)?;
        self.skip_padding(length)?;
        if bytes.contains(&0) {
            return Err(XdrError::Nul);
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| XdrError::NotUtf8)
    }

    /// `*string`.
    pub fn optional_string(&mut self, limit: u32) -> Result<Option<String>> {
        if self.bool()? {
            self.string(limit).map(Some)
        } else {
            Ok(None)
        }
    }

    fn skip_padding(&mut self, length: usize) -> Result<()> {
        self.take((4 - length % 4) % 4).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_counted_and_padded_to_four_bytes() {
        let mut encoder = Encoder::new();
        encoder.string("abcde").optional_string(None).u32(7);
        let bytes = encoder.into_bytes();
        assert_eq!(
            bytes,
            [
                0, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7
            ]
        );
        let mut decoder = Decoder::new(&bytes);
        assert_eq!(decoder.string(16).unwrap(), "abcde");
        assert_eq!(decoder.optional_string(16).unwrap(), None);
        assert_eq!(decoder.u32().unwrap(), 7);
        assert!(decoder.is_empty());
    }

    #[test]
    fn hypers_are_eight_bytes_and_uuids_round_trip() {
        let mut encoder = Encoder::new();
        encoder.i64(-2);
        assert_eq!(
            encoder.into_bytes(),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]
        );
        let mut encoder = Encoder::new();
        encoder.fixed_opaque(&[9; 16]).bool(true);
        let bytes = encoder.into_bytes();
        let mut decoder = Decoder::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 1]);
        assert_eq!(decoder.i64(), Ok(-2));
        assert_eq!(decoder.u64(), Err(XdrError::Truncated));
        let mut decoder = Decoder::new(&bytes);
        assert_eq!(decoder.fixed_opaque::<16>().unwrap(), [9; 16]);
        assert!(decoder.bool().unwrap());
        assert!(decoder.is_empty());
    }

    #[test]
    fn lengths_over_the_limit_are_refused_before_reading() {
        let bytes = [0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            Decoder::new(&bytes).string(4_194_304),
            Err(XdrError::TooLong {
                length: u32::MAX,
                limit: 4_194_304
            })
        );
        assert_eq!(
            Decoder::new(&bytes).length(20),
            Err(XdrError::TooLong {
                length: u32::MAX,
                limit: 20
            })
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        // A string said to be 8 bytes long with 4 there.
        assert_eq!(
            Decoder::new(&[0, 0, 0, 8, b'a', b'b', b'c', b'd']).string(64),
            Err(XdrError::Truncated)
        );
        // Padding missing after the string.
        assert_eq!(
            Decoder::new(&[0, 0, 0, 1, b'a']).string(64),
            Err(XdrError::Truncated)
        );
        assert_eq!(
            Decoder::new(&[0, 0, 0, 2, 0xc3, 0x28, 0, 0]).string(64),
            Err(XdrError::NotUtf8)
        );
        assert_eq!(
            Decoder::new(&[0, 0, 0, 1, 0, 0, 0, 0]).string(64),
            Err(XdrError::Nul)
        );
        assert_eq!(
            Decoder::new(&[0, 0, 0, 2]).bool(),
            Err(XdrError::NotBoolean(2))
        );
        assert_eq!(Decoder::new(&[0, 0, 0]).u32(), Err(XdrError::Truncated));
    }
}

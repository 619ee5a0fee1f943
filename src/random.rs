//! Random bytes for generated UUIDs and MAC addresses.

use rustix::io::Errno;
use rustix::rand::{GetRandomFlags, getrandom};

/// Fills `buffer` from the kernel's random source (getrandom(2), which
/// needs no file descriptor and is fast enough to call per definition).
pub fn fill(buffer: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        match getrandom(&mut buffer[filled..], GetRandomFlags::empty()) {
            Ok(written) => filled += written,
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_is_filled_and_no_two_fills_agree() {
        let mut first = [0u8; 4096];
        let mut second = [0u8; 4096];
        fill(&mut first).unwrap();
        fill(&mut second).unwrap();
        // 32 random bytes are all zero once in 2^256 tries.
        for chunk in first.chunks(32).chain(second.chunks(32)) {
            assert_ne!(chunk, [0u8; 32]);
        }
        assert_ne!(first, second);
    }
}

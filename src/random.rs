//! Random bytes for generated UUIDs and MAC addresses.

use std::io::Read;

pub fn fill(buffer: &mut [u8]) -> std::io::Result<()> {
    std::fs::File::open("/dev/urandom")?.read_exact(buffer)
}

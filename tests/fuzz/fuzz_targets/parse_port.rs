//! Arbitrary bytes → `NetworkPortDef::parse`. Whatever parses must format
//! and parse again into an equal port, which formats to the same text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use virtnet_fuzz::{assert_port_round_trip, parse_port};

fuzz_target!(|data: &[u8]| {
    if let Some(port) = parse_port(data) {
        assert_port_round_trip(&port);
    }
});

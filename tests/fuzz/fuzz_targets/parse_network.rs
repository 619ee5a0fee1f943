//! Arbitrary bytes → `NetworkDef::parse`. Whatever parses must format and
//! parse again into an equal definition, and `validate()` must not panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use virtnet_fuzz::{assert_round_trip, parse_network};

fuzz_target!(|data: &[u8]| {
    let Some(def) = parse_network(data) else {
        return;
    };
    let _ = def.validate();
    assert_round_trip(&def);
});

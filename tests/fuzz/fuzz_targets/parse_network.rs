//! Arbitrary bytes → `NetworkDef::parse`. Whatever parses must format and
//! parse again into an equal definition, and `validate()` must not panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use virtnet::definition::NetworkDef;
use virtnet::xml::tree::MAX_DOCUMENT_BYTES;
use virtnet_fuzz::assert_round_trip;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_DOCUMENT_BYTES {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(def) = NetworkDef::parse(text) else {
        return;
    };
    let _ = def.validate();
    assert_round_trip(&def);
});

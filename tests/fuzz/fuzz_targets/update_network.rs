//! A base network and a net-update read from the input (see
//! `UpdateInput`). The update must not panic; a refused one leaves the
//! definition as it was, an accepted one formats and parses again into an
//! equal definition.

#![no_main]

use libfuzzer_sys::fuzz_target;
use virtnet::definition::NetworkDef;
use virtnet::xml::tree::MAX_DOCUMENT_BYTES;
use virtnet_fuzz::{UpdateInput, assert_round_trip};

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_DOCUMENT_BYTES {
        return;
    }
    let Some(input) = UpdateInput::read(data) else {
        return;
    };
    let Ok(mut def) = NetworkDef::parse(input.base) else {
        return;
    };
    let before = def.clone();
    match def.update(
        input.command,
        input.section,
        input.parent_index,
        input.update,
    ) {
        Ok(()) => assert_round_trip(&def),
        Err(_) => assert_eq!(def, before, "a refused update changed the definition"),
    }
});

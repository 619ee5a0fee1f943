//! Arbitrary bytes → `NetworkDef::parse`. Whatever parses must format, the
//! formatted XML must parse again and format to the identical string, and
//! `validate()` must not panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use virtnet::definition::{FormatFlags, NetworkDef};
use virtnet::xml::tree::MAX_DOCUMENT_BYTES;

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

    let flags = FormatFlags { inactive: false };
    let formatted = def.to_xml(flags);
    let reparsed = NetworkDef::parse(&formatted)
        .unwrap_or_else(|error| panic!("formatted XML does not parse: {error:?}\n{formatted}"));
    let reformatted = reparsed.to_xml(flags);
    assert_eq!(
        formatted, reformatted,
        "formatting is not idempotent (left: first format, right: after re-parse)"
    );
    let _ = reparsed.validate();
});

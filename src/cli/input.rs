//! Reading the XML files the verbs take (`-` for standard input), bounded
//! as virsh bounds them.

use std::io::Read;

use crate::definition::{NetworkDef, error_chain};
use crate::xml::tree::{MAX_DOCUMENT_BYTES, decode_document};

fn read_input(file: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    // Read one byte past the limit so an oversized input is detected
    // without reading all of it.
    let limit = MAX_DOCUMENT_BYTES as u64 + 1;
    let result = if file == "-" {
        std::io::stdin().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    result.map_err(|error| format!("Failed to read file '{file}': {error}"))?;
    Ok(bytes)
}

pub(super) fn read_text(file: &str) -> Result<String, String> {
    let bytes = read_input(file)?;
    decode_document(&bytes)
        .map(str::to_owned)
        .map_err(|error| error_chain(&error))
}

pub(super) fn parse_file(file: &str) -> Result<NetworkDef, String> {
    NetworkDef::parse(&read_text(file)?).map_err(|error| error_chain(&error))
}

//! libvirt's lease status files (the NSS module's input) read and written
//! back unchanged.

mod common;

use common::corpus_dir;
use virtnet::apply::dnsmasq::leases::{from_status_json, to_status_json};

#[test]
fn libvirt_status_files_round_trip() {
    let Some(corpus) = corpus_dir("libvirt_status_files_round_trip") else {
        return;
    };
    for bridge in ["virbr0", "virbr1"] {
        let text =
            std::fs::read_to_string(corpus.join(format!("nssdata/{bridge}.status"))).unwrap();
        let leases = from_status_json(&text).expect("libvirt's status file reads");
        assert!(!leases.is_empty());
        assert_eq!(to_status_json(&leases), text, "{bridge}.status");
    }
}

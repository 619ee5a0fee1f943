//! libvirt's own XML round-trip and net-update cases, and its network
//! port round-trip cases, run against virtnet.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ScratchDir, corpus_dir, read_tsv, virtnet};
use virtnet::definition::port::NetworkPortDef;
use virtnet::definition::{FormatFlags, NetworkDef, UpdateCommand, UpdateSection};

#[test]
fn networkxml2xml_cases_through_xml_format() {
    let Some(corpus) = corpus_dir("networkxml2xml_cases_through_xml_format") else {
        return;
    };
    let cases = read_tsv(&corpus.join("networkxml2xml-cases.tsv"));
    assert_eq!(cases.len(), 47, "libvirt 11.3's networkxml2xml cases");
    let mut failures = Vec::new();
    for case in &cases {
        let [name, flags, expect] = case.as_slice() else {
            panic!("malformed case line {case:?}");
        };
        let input = corpus.join(format!("networkxml2xmlin/{name}.xml"));
        let input = input.to_str().expect("utf-8 path");
        let mut args = vec!["xml-format"];
        if flags == "inactive" {
            args.push("--inactive");
        }
        args.push(input);
        let output = virtnet(&args, b"");
        let stderr = String::from_utf8_lossy(&output.stderr);
        match expect.as_str() {
            "ok" => {
                let expected =
                    std::fs::read(corpus.join(format!("networkxml2xmlout/{name}.xml"))).unwrap();
                if !output.status.success() {
                    failures.push(format!("{name}: refused: {stderr}"));
                } else if output.stdout != expected {
                    failures.push(format!(
                        "{name}: output differs:\n{}",
                        String::from_utf8_lossy(&output.stdout)
                    ));
                }
            }
            "parse-error" => {
                if output.status.success() {
                    failures.push(format!("{name}: accepted, libvirt refuses it"));
                } else if !stderr.starts_with("error: ") {
                    failures.push(format!("{name}: unclear error output {stderr:?}"));
                }
            }
            other => panic!("unknown expectation {other}"),
        }
    }
    let passed = cases.len() - failures.len();
    println!("networkxml2xml: {passed}/{} cases pass", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn networkxml2xmlupdate_cases() {
    let Some(corpus) = corpus_dir("networkxml2xmlupdate_cases") else {
        return;
    };
    let cases = read_tsv(&corpus.join("networkxml2xmlupdate-cases.tsv"));
    assert_eq!(cases.len(), 45, "libvirt 11.3's networkxml2xmlupdate cases");
    let mut failures = Vec::new();
    for case in &cases {
        let [
            section,
            test,
            command,
            _index,
            update,
            base,
            expected,
            expect,
        ] = case.as_slice()
        else {
            panic!("malformed case line {case:?}");
        };
        let section = UpdateSection::from_name(section).expect("known section");
        let command = UpdateCommand::from_name(command).expect("known command");
        let base_xml =
            std::fs::read_to_string(corpus.join(format!("networkxml2xmlin/{base}.xml"))).unwrap();
        let update_xml =
            std::fs::read_to_string(corpus.join(format!("networkxml2xmlupdatein/{update}.xml")))
                .unwrap();
        let mut def = NetworkDef::parse(&base_xml).expect("base definitions parse");
        let before = def.clone();
        // libvirt's test harness swaps its index and flags, so every case
        // really runs with parent index 0 (see the corpus README); it runs
        // the section's change alone, without the API's final parse.
        let result = def.update_section(command, section, 0, &update_xml);
        match (expect.as_str(), result) {
            ("ok", Ok(())) => {
                let wanted = std::fs::read_to_string(
                    corpus.join(format!("networkxml2xmlupdateout/{expected}.xml")),
                )
                .unwrap();
                let got = def.to_xml(FormatFlags::default());
                if got != wanted {
                    failures.push(format!("{test}: output differs:\n{got}"));
                }
            }
            ("ok", Err(error)) => failures.push(format!("{test}: refused: {error}")),
            ("fail", Ok(())) => failures.push(format!("{test}: accepted, libvirt refuses it")),
            ("fail", Err(_)) => {
                if def != before {
                    failures.push(format!("{test}: a refused update changed the definition"));
                }
            }
            (other, _) => panic!("unknown expectation {other}"),
        }
    }
    let passed = cases.len() - failures.len();
    println!("networkxml2xmlupdate: {passed}/{} cases pass", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The `<networkport>` documents of libvirt's virnetworkportxml2xml test.
fn network_port_cases(corpus: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus.join("virnetworkportxml2xmldata"))
        .expect("virnetworkportxml2xmldata is readable")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
        .collect();
    cases.sort();
    cases
}

#[test]
fn virnetworkportxml2xml_cases() {
    let Some(corpus) = corpus_dir("virnetworkportxml2xml_cases") else {
        return;
    };
    let cases = network_port_cases(&corpus);
    assert_eq!(cases.len(), 9, "libvirt 11.3's virnetworkportxml2xml cases");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_stem().unwrap().to_string_lossy();
        let xml = std::fs::read_to_string(case).unwrap();
        match NetworkPortDef::parse(&xml) {
            Err(error) => failures.push(format!("{name}: refused: {error}")),
            Ok(port) => {
                let formatted = port.to_xml();
                if formatted != xml {
                    failures.push(format!("{name}: output differs:\n{formatted}"));
                }
            }
        }
    }
    let passed = cases.len() - failures.len();
    println!("virnetworkportxml2xml: {passed}/{} cases pass", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Ports written from documents beyond libvirt's cases, so that every
/// element and plug the formatter writes meets libvirt's grammar.
const PORTS_BEYOND_THE_CORPUS: [&str; 3] = [
    "<networkport><uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207d</uuid>\
     <owner><name>g</name><uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2c</uuid></owner>\
     <mac address='52:54:00:7B:35:93'/><group>web1</group>\
     <virtualport type='openvswitch'><parameters interfaceid='5d744f21-ba4a-4d6e-bdb2-30a35ff3207d' profileid='p'/></virtualport>\
     <vlan><tag id='3' nativeMode='untagged'/><tag id='4'/></vlan>\
     <bandwidth classID='7'><inbound floor='100'/></bandwidth>\
     <port isolated='no'/><rxfilters trustGuest='no'/>\
     <plug type='direct' dev='ens3'/></networkport>",
    "<networkport><uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207d</uuid>\
     <owner><name>g</name><uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2c</uuid></owner>\
     <mac address='52:54:00:7b:35:93'/>\
     <plug type='hostdev-pci'><driver name='vfio'/><address bus='0x02' slot='0x10'/></plug>\
     </networkport>",
    "<networkport><uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207d</uuid>\
     <owner><name>g</name><uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2c</uuid></owner>\
     <mac address='52:54:00:7b:35:93'/>\
     <virtualport type='802.1Qbh'><parameters profileid='finance'/></virtualport>\
     <plug type='network' bridge='virbr0' macTableManager='kernel'/></networkport>",
];

#[test]
fn formatted_ports_validate_against_libvirts_networkport_schema() {
    let Some(corpus) = corpus_dir("formatted_ports_validate_against_libvirts_networkport_schema")
    else {
        return;
    };
    let scratch = ScratchDir::new("port-schema");
    let mut sources: Vec<String> = network_port_cases(&corpus)
        .iter()
        .map(|case| std::fs::read_to_string(case).unwrap())
        .collect();
    sources.extend(PORTS_BEYOND_THE_CORPUS.map(str::to_owned));
    let mut files = Vec::new();
    for (index, xml) in sources.iter().enumerate() {
        let port = NetworkPortDef::parse(xml).unwrap_or_else(|error| panic!("{error}: {xml}"));
        let path = scratch.0.join(format!("port-{index}.xml"));
        std::fs::write(&path, port.to_xml()).unwrap();
        files.push(path);
    }
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(corpus.join("schemas/networkport.rng"))
        .args(&files)
        .output()
        .expect("xmllint (Debian package libxml2-utils, installed by scripts/setup) runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let validated = stderr
        .lines()
        .filter(|line| line.ends_with(" validates"))
        .count();
    assert_eq!(validated, files.len(), "xmllint:\n{stderr}");
    println!("schema: {validated} formatted ports validate");
}

//! libvirt's own XML round-trip and net-update cases, run against virtnet.

mod common;

use common::{corpus_dir, read_tsv, virtnet};
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

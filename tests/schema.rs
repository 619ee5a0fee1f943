//! schemas/network.rng accepts every document we accept and every document
//! we print, checked with libxml2's xmllint.

mod common;

use std::path::{Path, PathBuf};

use std::process::Command;

use common::{ScratchDir, corpus_dir, project_dir, read_tsv, sample_paths};
use virtnet::definition::{FormatFlags, NetworkDef};

fn xmllint_failures(files: &[PathBuf]) -> Vec<String> {
    let schema = project_dir().join("schemas/network.rng");
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(&schema)
        .args(files)
        .output()
        .expect("xmllint (Debian package libxml2-utils, installed by scripts/setup) runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failures: Vec<String> = stderr
        .lines()
        .filter(|line| line.ends_with("fails to validate") || line.contains("error"))
        .map(str::to_owned)
        .collect();
    let validated = stderr
        .lines()
        .filter(|line| line.ends_with(" validates"))
        .count();
    assert!(
        !failures.is_empty() || validated == files.len(),
        "xmllint checked {validated} of {} files:\n{stderr}",
        files.len()
    );
    failures
}

fn formatted_copy(scratch: &Path, label: &str, xml: &str, flags: FormatFlags) -> PathBuf {
    let def = NetworkDef::parse(xml).unwrap_or_else(|error| panic!("{label} parses: {error}"));
    let path = scratch.join(format!("{label}.formatted.xml"));
    std::fs::write(&path, def.to_xml(flags)).expect("write formatted copy");
    path
}

#[test]
fn samples_and_their_canonical_form_validate() {
    let scratch = ScratchDir::new("schema-samples");
    let mut files = sample_paths();
    for sample in sample_paths() {
        let xml = std::fs::read_to_string(&sample).unwrap();
        let label = sample.file_stem().unwrap().to_string_lossy().into_owned();
        files.push(formatted_copy(
            &scratch.0,
            &label,
            &xml,
            FormatFlags::default(),
        ));
    }
    let failures = xmllint_failures(&files);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("schema: {} sample documents validate", files.len());
}

#[test]
fn corpus_inputs_and_our_output_validate() {
    let Some(corpus) = corpus_dir("corpus_inputs_and_our_output_validate") else {
        return;
    };
    let scratch = ScratchDir::new("schema-corpus");
    let mut files = Vec::new();
    for case in read_tsv(&corpus.join("networkxml2xml-cases.tsv")) {
        let (name, flags, expect) = (&case[0], &case[1], &case[2]);
        if expect != "ok" {
            continue;
        }
        let input = corpus.join(format!("networkxml2xmlin/{name}.xml"));
        let xml = std::fs::read_to_string(&input).unwrap();
        let flags = FormatFlags {
            inactive: flags == "inactive",
        };
        files.push(formatted_copy(&scratch.0, name, &xml, flags));
        files.push(input);
    }
    for folder in [
        "networkxml2xmlupdateout",
        "networkxml2confdata",
        "networkxml2firewalldata",
    ] {
        for entry in std::fs::read_dir(corpus.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "xml") {
                let xml = std::fs::read_to_string(&path).unwrap();
                let label = format!("{folder}-{}", path.file_stem().unwrap().to_string_lossy());
                // net-update can produce what libvirt's parser refuses
                // (several interfaces in nat mode); only the file is checked then.
                if NetworkDef::parse(&xml).is_ok() {
                    files.push(formatted_copy(
                        &scratch.0,
                        &label,
                        &xml,
                        FormatFlags::default(),
                    ));
                }
                files.push(path);
            }
        }
    }
    let failures = xmllint_failures(&files);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "schema: {} corpus documents and formatted copies validate",
        files.len()
    );
}

//! libvirt's networkxml2conf cases: the dnsmasq configuration and DHCP
//! hosts file written for each network, compared byte for byte.

mod common;

use std::path::{Path, PathBuf};

use common::{corpus_dir, read_tsv};
use virtnet::definition::NetworkDef;
use virtnet::plan::dnsmasq::{DnsmasqFiles, Profile, contents};

#[test]
fn networkxml2conf_cases() {
    let Some(corpus) = corpus_dir("networkxml2conf_cases") else {
        return;
    };
    let data = corpus.join("networkxml2confdata");
    let cases = read_tsv(&corpus.join("networkxml2conf-cases.tsv"));
    // As libvirt's test runs: this state directory, no pid file.
    let files = DnsmasqFiles {
        state_dir: PathBuf::from("/var/lib/libvirt/dnsmasq"),
        pid_file: None,
        lease_file: None,
        host_resolvers: None,
    };
    let mut failures = Vec::new();
    for case in &cases {
        let [name] = case.as_slice() else {
            panic!("malformed case line {case:?}");
        };
        if let Err(failure) = run_case(&data, name, &files) {
            failures.push(format!("{name}: {failure}"));
        }
    }
    let passed = cases.len() - failures.len();
    println!("networkxml2conf: {passed}/{} cases pass", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn run_case(data: &Path, name: &str, files: &DnsmasqFiles) -> Result<(), String> {
    let read = |suffix: &str| std::fs::read_to_string(data.join(format!("{name}.{suffix}")));
    let xml = read("xml").map_err(|e| format!("reading the XML: {e}"))?;
    let def = NetworkDef::parse(&xml).map_err(|e| format!("refused: {e}"))?;
    let bridge = def.bridge.name.as_ref().ok_or("no <bridge name>")?;
    // libvirt's test builds the files even where libvirt would start no
    // dnsmasq (routed-network-no-dns), so `contents`, not `plan`.
    let plan = contents(&def, bridge.as_str(), files, Profile::Libvirt)
        .map_err(|e| format!("no configuration: {e}"))?;
    let expected = read("conf").map_err(|e| format!("reading the expected config: {e}"))?;
    if plan.config != expected {
        return Err(format!(
            "config differs:\n--- expected\n{expected}--- ours\n{}",
            plan.config
        ));
    }
    match read("hostsfile") {
        Ok(expected) if plan.hosts_file != expected => Err(format!(
            "hosts file differs:\n--- expected\n{expected}--- ours\n{}",
            plan.hosts_file
        )),
        Err(_) if !plan.hosts_file.is_empty() => Err(format!(
            "hosts file expected empty, ours:\n{}",
            plan.hosts_file
        )),
        _ => Ok(()),
    }
}

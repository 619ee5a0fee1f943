//! libvirt's networkxml2conf cases: the dnsmasq configuration and DHCP
//! hosts file written for each network, compared byte for byte; and the
//! configuration virtnet runs, which must differ from it only as
//! `plan::dnsmasq` documents.

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
    assert_eq!(cases.len(), 27, "libvirt 11.3's networkxml2conf cases");
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
        Ok(expected) if plan.hosts_file != expected => {
            return Err(format!(
                "hosts file differs:\n--- expected\n{expected}--- ours\n{}",
                plan.hosts_file
            ));
        }
        Err(_) if !plan.hosts_file.is_empty() => {
            return Err(format!(
                "hosts file expected empty, ours:\n{}",
                plan.hosts_file
            ));
        }
        _ => {}
    }
    differs_as_documented(&def, bridge.as_str(), files, &plan.config, &plan.hosts_file)
}

/// What virtnet runs ([`Profile::Virtnet`]) is libvirt's configuration
/// plus the differences documented in `plan::dnsmasq`: undoing exactly
/// those gives libvirt's text back, and the hosts file is the same.
fn differs_as_documented(
    def: &NetworkDef,
    bridge: &str,
    files: &DnsmasqFiles,
    libvirt: &str,
    libvirt_hosts: &str,
) -> Result<(), String> {
    let resolver = "192.0.2.53";
    let lease_file = files.state_dir.join(format!("{bridge}.leases"));
    let virtnet_files = DnsmasqFiles {
        lease_file: Some(lease_file.clone()),
        host_resolvers: Some(vec![resolver.parse().unwrap()]),
        ..files.clone()
    };
    let virtnet = contents(def, bridge, &virtnet_files, Profile::Virtnet)
        .map_err(|e| format!("no virtnet configuration: {e}"))?;
    if virtnet.hosts_file != libvirt_hosts {
        return Err(format!(
            "virtnet's hosts file differs from libvirt's:\n{}",
            virtnet.hosts_file
        ));
    }
    let mut undone = Vec::new();
    let mut lines = virtnet.config.lines().peekable();
    while let Some(line) = lines.next() {
        match line {
            // server= for the host's resolvers and no-resolv, instead of
            // reading resolv.conf.
            _ if line == format!("server={resolver}") => {
                assert_eq!(
                    lines.next(),
                    Some("no-resolv"),
                    "after the host's resolvers"
                );
            }
            // bind-interfaces and listen-address= instead of bind-dynamic.
            "bind-interfaces" => {
                undone.push("bind-dynamic");
                // interface=, then the addresses bound.
                undone.extend(lines.next());
                while lines
                    .next_if(|next| next.starts_with("listen-address="))
                    .is_some()
                {}
            }
            // dnsmasq's own lease file, and no ping check.
            _ if line == format!("dhcp-leasefile={}", lease_file.display()) => {}
            "no-ping" => {}
            _ => undone.push(line),
        }
    }
    let undone = undone.join("\n") + "\n";
    if undone == libvirt {
        Ok(())
    } else {
        Err(format!(
            "virtnet's configuration, its documented differences undone, is not libvirt's:\n--- libvirt\n{libvirt}--- undone\n{undone}--- virtnet\n{}",
            virtnet.config
        ))
    }
}

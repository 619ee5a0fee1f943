//! The modes of virtnet's files do not depend on the umask: a daemon run
//! under umask 000 makes nothing that others may write, and one under
//! umask 077 still makes readable what others must read (dnsmasq's hosts
//! files, which it reads again after giving root up; the lease status,
//! which libvirt's NSS module reads as any user).
//!
//! The umask belongs to the whole process, so this file holds one test.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, DaemonConfig, client, start_bus};
use common::netns::Netns;
use common::{ScratchDir, project_dir};

const BUS_NAME: &str = "org.virtnet";

/// The mode each of virtnet's files must have, by where it is and what it
/// is called; `None` for a file virtnet is not expected to make.
fn expected_mode(path: &Path, root: &Path) -> Option<u32> {
    let relative = path.strip_prefix(root).ok()?.to_str()?;
    let name = path.file_name()?.to_str()?;
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let (dir, _) = relative.rsplit_once('/').unwrap_or(("", relative));
    match (dir, extension) {
        ("etc", "xml") | ("run/networks", "json") | ("run/dnsmasq", "conf") => Some(0o600),
        ("run", _) if name == "libvirt-published" => Some(0o600),
        // dnsmasq writes its pid and lease files, with its own umask (022).
        ("run/dnsmasq", "pid") => Some(0o644),
        ("lib/dnsmasq", "hostsfile" | "addnhosts" | "leases" | "status") => Some(0o644),
        _ => None,
    }
}

/// Every file and directory under `dir` (links are not followed: their
/// mode means nothing), with its permission bits.
fn modes(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("directory entry").path();
        let metadata = std::fs::symlink_metadata(&path).expect("metadata");
        if metadata.file_type().is_symlink() {
            continue;
        }
        let mode = metadata.permissions().mode() & 0o7777;
        found.push((path.clone(), metadata.is_dir(), mode));
        if metadata.is_dir() {
            found.extend(modes(&path));
        }
    }
    found
}

fn set_umask(mask: libc::mode_t) -> libc::mode_t {
    // SAFETY: umask(2) takes a plain integer and cannot fail.
    unsafe { libc::umask(mask) }
}

/// Runs a daemon under `umask` with keennet defined, autostarted and
/// started, until every kind of file it makes is there; checks each
/// mode.
fn files_made_under(umask: libc::mode_t) {
    let host = Netns::new("modes");
    let scratch = ScratchDir::new("modes");
    let bus = start_bus(&host, &scratch.0, None);
    let mut args = Vec::new();
    let uri = format!(
        "qemu+unix:///system?socket={}",
        scratch.0.join("no-libvirtd").display()
    );
    if cfg!(feature = "libvirt") {
        args.extend(["--libvirt-uri", uri.as_str()]);
    }
    let previous = set_umask(umask);
    let daemon = Daemon::start(&DaemonConfig::kernel(
        &host,
        &bus.address,
        BUS_NAME,
        &scratch.0,
        &args,
    ));
    set_umask(previous);
    let cli = |args: &[&str]| {
        let output = client(&bus.address, BUS_NAME, args);
        assert!(
            output.status.success(),
            "virtnet {args:?}: {}\ndaemon log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            daemon.log_text()
        );
    };
    let keennet = project_dir().join("xml-samples/keennet.xml");
    cli(&["net-define", &keennet.display().to_string()]);
    cli(&["net-autostart", "keennet"]);
    cli(&["net-start", "keennet"]);

    let root = scratch.0.join("virtnet");
    let mut kinds = vec![
        "etc/keennet.xml",
        "run/networks/keennet.json",
        "run/dnsmasq/keenbr0.conf",
        "run/dnsmasq/keenbr0.pid",
        "lib/dnsmasq/keennet.hostsfile",
        "lib/dnsmasq/keennet.addnhosts",
        "lib/dnsmasq/keenbr0.leases",
        // The daemon brings it in line with the lease file every 2 s.
        "lib/dnsmasq/keenbr0.status",
    ];
    if cfg!(feature = "libvirt") {
        kinds.push("run/libvirt-published");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(missing) = kinds.iter().find(|kind| !root.join(kind).exists()) {
        assert!(
            Instant::now() < deadline,
            "{missing} never appeared; daemon log:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let found = modes(&root);
    for (path, is_dir, mode) in &found {
        let expected = if *is_dir {
            0o755
        } else {
            expected_mode(path, &root)
                .unwrap_or_else(|| panic!("an unexpected file: {}", path.display()))
        };
        assert_eq!(
            *mode,
            expected,
            "{} under umask {umask:03o}: {mode:o}, not {expected:o}",
            path.display()
        );
    }
    for kind in kinds {
        assert!(found.iter().any(|(path, _, _)| path.ends_with(kind)));
    }
    cli(&["net-destroy", "keennet"]);
    drop(daemon);
}

#[test]
fn modes_hold_whatever_the_umask() {
    files_made_under(0o000);
    files_made_under(0o077);
}

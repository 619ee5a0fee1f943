//! The files in packaging/: the systemd unit passes `systemd-analyze
//! verify` without a word, and the unit, the D-Bus activation file and the
//! D-Bus policy all name the bus name the daemon owns by default.

mod common;

use std::process::Command;

use common::{ScratchDir, project_dir};

fn packaging(path: &str) -> String {
    std::fs::read_to_string(project_dir().join("packaging").join(path))
        .unwrap_or_else(|error| panic!("packaging/{path}: {error}"))
}

#[test]
fn systemd_unit_verifies_without_a_warning() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    let scratch = ScratchDir::new("unit");
    let unit = packaging("systemd/virtnetd.service")
        .replace("/usr/sbin/virtnetd", env!("CARGO_BIN_EXE_virtnetd"));
    let verify = |text: &str| {
        let path = scratch.0.join("virtnetd.service");
        std::fs::write(&path, text).unwrap();
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze runs")
    };
    let output = verify(&unit);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "",
        "systemd-analyze has remarks"
    );
    // The check can fail: a misspelt option is reported.
    let misspelt = verify(&unit.replace("KillMode=process", "KilMode=process"));
    assert!(String::from_utf8_lossy(&misspelt.stderr).contains("Unknown key 'KilMode'"));
}

#[test]
fn unit_activation_and_policy_agree_on_the_bus_name() {
    let name = virtnet::dbus::DEFAULT_BUS_NAME;
    let unit = packaging("systemd/virtnetd.service");
    assert!(unit.contains(&format!("\nBusName={name}\n")), "{unit}");
    assert!(unit.contains("\nType=dbus\n"));
    assert!(
        unit.contains("\nKillMode=process\n"),
        "stopping the daemon must leave each network's dnsmasq running"
    );
    assert!(unit.contains("\nRuntimeDirectoryPreserve=yes\n"));
    let activation = packaging("dbus/org.virtnet.service");
    assert!(activation.contains(&format!("\nName={name}\n")));
    assert!(activation.contains("\nSystemdService=virtnetd.service\n"));
    let policy = packaging("dbus/org.virtnet.conf");
    assert!(policy.contains(&format!("<allow own=\"{name}\"/>")));
    let drop_in = packaging("dbus/virtnet-org.libvirt.conf");
    assert!(drop_in.contains("<allow own=\"org.libvirt\"/>"));
    assert!(packaging("systemd/virtnet.tmpfiles.conf").contains("d /run/virtnet 0755 root root -"));
}

/// Purges the package when dropped, so a failing test leaves nothing.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "virtnet"]).output();
    }
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "virtnet"])
        .output()
        .is_ok_and(|output| {
            String::from_utf8_lossy(&output.stdout).contains("install ok installed")
        })
}

/// The Debian package built from this tree installs every file it lists,
/// its programs run, and `dpkg --purge` takes every file away again.
#[test]
fn debian_package_installs_runs_and_purges_cleanly() {
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        eprintln!("SKIPPED: dpkg-deb is not installed (not a Debian machine)");
        return;
    }
    if installed() {
        eprintln!(
            "SKIPPED: a virtnet package is installed on this machine already; not touching it"
        );
        return;
    }
    let scratch = ScratchDir::new("deb");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_virtnetd"))
        .parent()
        .unwrap();
    let built = Command::new(project_dir().join("scripts/package-deb"))
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out")
        .arg(&scratch.0)
        .output()
        .expect("package-deb runs");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let package = String::from_utf8_lossy(&built.stdout).trim().to_owned();
    let listing = Command::new("dpkg-deb")
        .args(["-c", &package])
        .output()
        .unwrap();
    let files: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter(|line| line.starts_with('-'))
        .filter_map(|line| line.split_whitespace().last())
        .map(|path| path.trim_start_matches('.').to_owned())
        .collect();
    for expected in [
        "/usr/sbin/virtnetd",
        "/usr/bin/virtnet",
        "/usr/lib/systemd/system/virtnetd.service",
        "/usr/share/dbus-1/system.d/org.virtnet.conf",
        "/usr/share/dbus-1/system.d/virtnet-org.libvirt.conf",
        "/usr/share/dbus-1/system-services/org.virtnet.service",
        "/usr/share/man/man1/virtnet.1.gz",
        "/usr/share/man/man8/virtnetd.8.gz",
        "/usr/share/bash-completion/completions/virtnet",
        "/usr/share/zsh/vendor-completions/_virtnetd",
        "/usr/share/fish/vendor_completions.d/virtnet.fish",
        "/usr/share/virtnet/samples/keennet.xml",
        "/usr/share/virtnet/schemas/network.rng",
    ] {
        assert!(
            files.iter().any(|file| file == expected),
            "{expected} not in {files:?}"
        );
    }

    let depends = Command::new("dpkg-deb")
        .args(["-f", &package, "Depends"])
        .output()
        .unwrap();
    let depends = String::from_utf8_lossy(&depends.stdout);
    for dependency in ["libvirt0", "dnsmasq-base", "nftables"] {
        assert!(depends.contains(dependency), "Depends: {depends}");
    }

    let _guard = Installed;
    let install = Command::new("dpkg")
        .arg("-i")
        .arg(&package)
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "dpkg -i: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    assert!(installed());
    for file in &files {
        assert!(
            std::path::Path::new(file).is_file(),
            "{file} was not installed"
        );
    }
    let version = Command::new("/usr/sbin/virtnetd")
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("virtnetd {}\n", env!("CARGO_PKG_VERSION"))
    );
    let man = Command::new("zcat")
        .arg("/usr/share/man/man8/virtnetd.8.gz")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&man.stdout).contains("\\-\\-bus\\-name"));
    // Packages are built with the libvirt feature (the test binaries are
    // too when the tests run with it, as scripts/test runs them).
    if cfg!(feature = "libvirt") {
        assert!(String::from_utf8_lossy(&man.stdout).contains("\\-\\-libvirt\\-uri"));
    }

    let purge = Command::new("dpkg")
        .args(["--purge", "virtnet"])
        .output()
        .unwrap();
    assert!(
        purge.status.success(),
        "{}",
        String::from_utf8_lossy(&purge.stderr)
    );
    assert!(!installed());
    let left: Vec<&String> = files
        .iter()
        .filter(|file| std::path::Path::new(file).exists())
        .collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
}

/// The RPM spec builds with rpmbuild, offline, from the project's sources
/// and the vendored crates, and the package holds the same files as the
/// Debian one and requires dnsmasq and nftables.
#[test]
fn rpm_builds_offline_from_vendored_sources() {
    if Command::new("rpmbuild").arg("--version").output().is_err() {
        eprintln!("SKIPPED: rpmbuild is not installed (scripts/setup installs Debian's rpm)");
        return;
    }
    let scratch = ScratchDir::new("rpm");
    let built = Command::new(project_dir().join("scripts/package-rpm"))
        .arg("--out")
        .arg(&scratch.0)
        .output()
        .expect("package-rpm runs");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let package = String::from_utf8_lossy(&built.stdout).trim().to_owned();
    let query = |what: &str| {
        let output = Command::new("rpm")
            .args(["-qp", what, &package])
            .output()
            .expect("rpm runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let files = query("--list");
    for expected in [
        "/usr/sbin/virtnetd",
        "/usr/bin/virtnet",
        "/usr/lib/systemd/system/virtnetd.service",
        "/usr/share/dbus-1/system.d/org.virtnet.conf",
        "/usr/share/dbus-1/system.d/virtnet-org.libvirt.conf",
        "/usr/share/man/man8/virtnetd.8",
        "/usr/share/bash-completion/completions/virtnet",
        "/usr/share/virtnet/samples/keennet.xml",
        "/usr/share/virtnet/schemas/network.rng",
    ] {
        assert!(
            files.lines().any(|file| file.starts_with(expected)),
            "{expected} not in {files}"
        );
    }
    let requires = query("--requires");
    for dependency in ["dnsmasq", "nftables"] {
        assert!(
            requires.lines().any(|line| line == dependency),
            "{requires}"
        );
    }
}

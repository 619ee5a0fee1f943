//! The files in packaging/: the systemd unit passes `systemd-analyze
//! verify` without a word; the unit, the D-Bus activation file and the
//! D-Bus policy all name the bus name the daemon owns by default; the
//! Debian package installs, enables the unit, defines `default` and purges
//! clean (installed into this machine's root by dpkg, its maintainer
//! scripts run in a network namespace of the test's); the RPM builds.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::daemon::{TestDriver, client};
use common::netns::Netns;
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
        common::missing_tool(
            true,
            "systemd-analyze is not installed (scripts/setup installs systemd)",
        );
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

/// The Debian package's maintainer scripts, with their functions put in,
/// are POSIX shell that shellcheck accepts without a remark.
#[test]
fn maintainer_scripts_are_clean_shell() {
    let shellcheck = Command::new("shellcheck").arg("--version").output().is_ok();
    if !shellcheck {
        eprintln!("shellcheck is not installed (scripts/setup installs it): only sh -n runs");
    }
    for script in ["postinst", "prerm", "postrm"] {
        let expanded = Command::new(project_dir().join("packaging/maintainer/expand"))
            .arg(project_dir().join("packaging/debian").join(script))
            .output()
            .expect("expand runs");
        assert!(expanded.status.success(), "{script}");
        let text = String::from_utf8(expanded.stdout).unwrap();
        assert!(!text.contains("#VIRTNET:"), "{script}: {text}");
        let mut checks = vec![Command::new("sh")];
        checks[0].arg("-n");
        if shellcheck {
            let mut check = Command::new("shellcheck");
            check.args(["--shell=sh", "-"]);
            checks.push(check);
        }
        for mut check in checks {
            let mut child = check
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{script}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

const NETWORKS: &str = "/etc/virtnet/networks";
const UNIT_LINK: &str = "/etc/systemd/system/multi-user.target.wants/virtnetd.service";
const HELPER_STATE: &str = "/var/lib/systemd/deb-systemd-helper-enabled";
/// Where systemd runs, the installed unit runs the test driver (no kernel,
/// no files touched) in a network namespace of its own.
const SAFE_UNIT: &str = "/run/systemd/system/virtnetd.service.d/50-virtnet-test.conf";

/// Purges the package when dropped, and removes the definitions the test
/// wrote and the unit's drop-in, so a failing test leaves nothing.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "virtnet"]).output();
        let _ = std::fs::remove_dir_all("/etc/virtnet");
        let _ = std::fs::remove_file(SAFE_UNIT);
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

/// `dpkg ARGS` in the test's network namespace, whose routes the
/// maintainer scripts see, and a mount namespace of its own where libvirt's
/// network directory is `libvirt_networks`; their system bus is `bus`.
fn dpkg(ns: &Netns, libvirt_networks: &Path, bus: &str, args: &[&str]) -> String {
    let output = ns.exec(
        &[
            &[
                "env",
                &format!("DBUS_SYSTEM_BUS_ADDRESS={bus}"),
                "sh",
                "-c",
                "mount --bind \"$0\" /etc/libvirt/qemu/networks && exec dpkg \"$@\"",
                libvirt_networks.to_str().unwrap(),
            ],
            args,
        ]
        .concat(),
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "dpkg {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn exists(path: &str) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Files of deb-systemd-helper's records that name the unit.
fn helper_records() -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::from(HELPER_STATE)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().contains("virtnetd") {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// The Debian package built from this tree installs every file it lists;
/// it enables the unit (and starts it where systemd runs), defines and
/// autostarts `default` on the first 192.168.N.0/24 no route holds unless
/// virtnet or libvirt has a `default` already (then it suggests `virtnet
/// import`); purge takes away what it made and keeps what a user defined.
#[test]
fn debian_package_installs_enables_defines_default_and_purges_cleanly() {
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        common::missing_tool(true, "dpkg-deb is not installed (not a Debian machine)");
        return;
    }
    if installed() || exists("/etc/virtnet") {
        eprintln!("SKIPPED: virtnet is installed or configured on this machine; not touching it");
        return;
    }
    assert!(
        Path::new("/etc/libvirt/qemu/networks").is_dir(),
        "libvirt's network directory (scripts/setup installs libvirt-daemon-system)"
    );
    let scratch = ScratchDir::new("deb");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_virtnetd")).parent().unwrap();
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
    let files = package_files(&package);
    let depends = Command::new("dpkg-deb")
        .args(["-f", &package, "Depends"])
        .output()
        .unwrap();
    let depends = String::from_utf8_lossy(&depends.stdout);
    for dependency in ["libvirt0", "dnsmasq-base", "nftables", "dbus"] {
        assert!(depends.contains(dependency), "Depends: {depends}");
    }

    // The subnet libvirt's default takes is routed here already.
    let ns = Netns::new("deb");
    ns.ip(&["route", "add", "192.168.122.0/24", "dev", "lo"]);
    let no_libvirt = scratch.0.join("libvirt-none");
    let libvirt_default = scratch.0.join("libvirt-default");
    std::fs::create_dir_all(&no_libvirt).unwrap();
    std::fs::create_dir_all(&libvirt_default).unwrap();
    std::fs::write(
        libvirt_default.join("default.xml"),
        read(
            &project_dir()
                .join("xml-samples/default.xml")
                .display()
                .to_string(),
        ),
    )
    .unwrap();
    // The maintainer scripts' system bus is a private one, where
    // virtnetd's test driver runs `default`.
    let daemon = TestDriver::start("debbus", "org.virtnet", |_| None);
    let bus = daemon.bus.clone();
    let _guard = Installed;
    let systemd = Path::new("/run/systemd/system").is_dir();
    if systemd {
        std::fs::create_dir_all(Path::new(SAFE_UNIT).parent().unwrap()).unwrap();
        std::fs::write(
            SAFE_UNIT,
            "[Service]\nExecStart=\nExecStart=/usr/sbin/virtnetd --system --driver test\n\
             PrivateNetwork=yes\nEnvironment=VIRTNETD_LIBVIRT_URI=\n",
        )
        .unwrap();
    }

    let said = dpkg(&ns, &no_libvirt, &bus, &["-i", &package]);
    assert!(installed());
    for file in &files {
        assert!(Path::new(file).is_file(), "{file} was not installed");
    }
    check_programs();
    assert!(
        std::fs::canonicalize(UNIT_LINK)
            .is_ok_and(|target| target == Path::new("/usr/lib/systemd/system/virtnetd.service")),
        "the unit is not enabled"
    );
    assert!(
        !helper_records().is_empty(),
        "deb-systemd-helper recorded nothing"
    );
    if systemd {
        let active = Command::new("systemctl")
            .args(["is-active", "virtnetd.service"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&active.stdout), "active\n");
    }
    assert!(
        said.contains("defined network default (192.168.124.0/24 on virbr0, autostarted)"),
        "{said}"
    );
    let default = format!("{NETWORKS}/default.xml");
    let xml = read(&default);
    assert!(
        xml.contains("<ip address='192.168.124.1' netmask='255.255.255.0'>"),
        "{xml}"
    );
    assert!(xml.contains("<uuid>"), "{xml}");
    let mode = std::fs::metadata(&default).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode of {default}");
    assert_eq!(
        std::fs::read_link(format!("{NETWORKS}/autostart/default.xml")).unwrap(),
        Path::new("../default.xml")
    );
    let valid = common::virtnet(&["xml-validate", &default], b"");
    assert_eq!(String::from_utf8_lossy(&valid.stdout), "valid\n", "{xml}");

    // A network of the user's, as net-define and net-autostart leave it.
    let lab = "<network>\n  <name>lab</name>\n  <bridge name='lab0'/>\n</network>\n";
    std::fs::write(format!("{NETWORKS}/lab.xml"), lab).unwrap();
    std::os::unix::fs::symlink("../lab.xml", format!("{NETWORKS}/autostart/lab.xml")).unwrap();

    let listed =
        |args: &[&str]| String::from_utf8(client(&bus, "org.virtnet", args).stdout).unwrap();
    assert_eq!(listed(&["net-list", "--name"]), "default\n\n");
    dpkg(&ns, &no_libvirt, &bus, &["--purge", "virtnet"]);
    assert!(!installed());
    assert_eq!(
        listed(&["net-list", "--inactive", "--name"]),
        "default\n\n",
        "the running networks are stopped"
    );
    let left: Vec<&String> = files.iter().filter(|file| exists(file)).collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    for gone in [
        &default,
        &format!("{NETWORKS}/autostart/default.xml"),
        "/var/lib/virtnet",
        "/run/virtnet",
        UNIT_LINK,
    ] {
        assert!(!exists(gone), "{gone} left after purge");
    }
    assert_eq!(helper_records(), Vec::<String>::new());
    assert_eq!(
        read(&format!("{NETWORKS}/lab.xml")),
        lab,
        "the user's network is kept"
    );
    assert!(exists(&format!("{NETWORKS}/autostart/lab.xml")));

    // virtnet has a default of the user's: it stays as it is, and stays at purge.
    let own = lab.replace("lab", "default");
    std::fs::write(&default, &own).unwrap();
    let said = dpkg(&ns, &no_libvirt, &bus, &["-i", &package]);
    assert!(!said.contains("defined network default"), "{said}");
    dpkg(&ns, &no_libvirt, &bus, &["--purge", "virtnet"]);
    assert_eq!(read(&default), own, "the user's default is kept");

    // libvirt has a default: virtnet defines none and suggests the import.
    std::fs::remove_file(&default).unwrap();
    let said = dpkg(&ns, &libvirt_default, &bus, &["-i", &package]);
    assert!(
        said.contains("'virtnet import --uri qemu:///system default'"),
        "{said}"
    );
    assert!(!exists(&default), "a default was defined beside libvirt's");
    dpkg(&ns, &libvirt_default, &bus, &["--purge", "virtnet"]);
    assert!(!installed());
}

/// The regular files the package holds.
fn package_files(package: &str) -> Vec<String> {
    let listing = Command::new("dpkg-deb")
        .args(["-c", package])
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
    files
}

/// The installed programs run, and the man page documents their options.
fn check_programs() {
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
}

/// The RPM spec builds with rpmbuild, offline, from the project's sources
/// and the vendored crates; the package holds the same files as the
/// Debian one, requires dnsmasq and nftables, and its scriptlets do what
/// the Debian package's maintainer scripts do.
#[test]
fn rpm_builds_offline_from_vendored_sources() {
    if Command::new("rpmbuild").arg("--version").output().is_err() {
        common::missing_tool(
            true,
            "rpmbuild is not installed (scripts/setup installs Debian's rpm)",
        );
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
        assert!(
            output.status.success(),
            "rpm -qp {what} {package}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
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
    assert!(
        files
            .lines()
            .any(|file| file == "/usr/lib/systemd/system-preset/85-virtnet.preset")
    );
    // The scriptlets: each is shell; together they define `default` at a
    // first install, enable (the preset) and start the unit, stop the
    // networks before an erase and keep users' networks after it.
    let scripts = query("--scripts");
    let mut scriptlets: Vec<(String, String)> = Vec::new();
    for line in scripts.lines() {
        if let Some(kind) = line.strip_suffix(" scriptlet (using /bin/sh):") {
            scriptlets.push((kind.to_owned(), String::new()));
        } else if let Some((_, body)) = scriptlets.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    let kinds: Vec<&str> = scriptlets.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["postinstall", "preuninstall", "postuninstall"],
        "{scripts}"
    );
    for (kind, body) in &scriptlets {
        let checked = Command::new("sh")
            .args(["-n", "-c", body])
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }
    for (kind, expected) in [
        ("postinstall", "    virtnet_define_default\n"),
        ("postinstall", "preset virtnetd.service"),
        ("postinstall", "systemctl start virtnetd.service"),
        ("preuninstall", "    virtnet_stop_networks\n"),
        ("preuninstall", "disable --now virtnetd.service"),
        ("postuninstall", "    virtnet_forget_default\n"),
        ("postuninstall", "try-restart virtnetd.service"),
    ] {
        assert!(
            scriptlets
                .iter()
                .any(|(found, body)| found == kind && body.contains(expected)),
            "{kind} lacks {expected:?}: {scripts}"
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

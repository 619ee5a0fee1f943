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
    assert!(packaging("systemd/virtnet.tmpfiles.conf").contains("d /run/virtnet 0755 root root -"));
}

//! A script of virsh net-* commands, written for virsh with its named
//! options, run unchanged by virsh on libvirt's test driver and by virtnet
//! on virtnetd's (`--driver test`, a private bus in a namespace of its
//! own): what they print must be the same, standard output and standard
//! error, byte for byte.
//!
//! The script is `tests/fixtures/virsh-script/script`: a command a line,
//! as typed after `virsh`, run in that directory (its files are named
//! relative to it). virsh's test driver keeps its state per connection,
//! so virsh runs each session of the script (sessions are separated by a
//! blank line) in one process, the session as one command string (virsh
//! takes commands separated by newlines there). virtnet's state is the
//! daemon's, so it runs each line as its own process, through `sh -c
//! "virtnet LINE"`: the line's quoting is the shell's, as in a script.
//! virsh reads a whole command string before running any of it, and a
//! usage error stops it all; the lines that are usage errors are hence
//! each a session of their own at the end.
//!
//! One thing is normalized, because it must differ: the schema `--validate`
//! checks against is libvirt's for virsh and virtnet's own for virtnet
//! (its path appears in the message).
//!
//! The whole script runs twice: as it is, and with `-q` (virsh's quiet
//! mode, given to virsh and to each virtnet).

mod common;

use std::path::Path;
use std::process::Command;

use common::daemon::TestDriver;
use common::project_dir;

const LIBVIRT_SCHEMA: &str = "/usr/share/libvirt/schemas/network.rng";
const SCHEMA_PLACEHOLDER: &str = "SCHEMA";

fn script_dir() -> std::path::PathBuf {
    project_dir().join("tests/fixtures/virsh-script")
}

/// The script's sessions: its lines, split at blank lines.
fn sessions() -> Vec<Vec<String>> {
    let script = std::fs::read_to_string(script_dir().join("script")).expect("the script");
    script
        .split("\n\n")
        .map(|session| {
            session
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|session| !session.is_empty())
        .collect()
}

/// Standard output and standard error of the whole script through virsh.
fn through_virsh(quiet: &[&str]) -> (String, String) {
    let (mut stdout, mut stderr) = (String::new(), String::new());
    for session in sessions() {
        let output = Command::new("virsh")
            .args(quiet)
            .args(["-c", "test:///default"])
            .arg(session.join("\n"))
            .current_dir(script_dir())
            .output()
            .expect("virsh runs");
        stdout.push_str(&String::from_utf8_lossy(&output.stdout));
        stderr.push_str(
            &String::from_utf8_lossy(&output.stderr).replace(LIBVIRT_SCHEMA, SCHEMA_PLACEHOLDER),
        );
    }
    (stdout, stderr)
}

/// The same through virtnet, a process a line.
fn through_virtnet(driver: &TestDriver, quiet: &[&str]) -> (String, String) {
    let virtnet = env!("CARGO_BIN_EXE_virtnet");
    let schema = project_dir().join("schemas/network.rng");
    let installed = Path::new("/usr/share/virtnet/schemas/network.rng");
    let (mut stdout, mut stderr) = (String::new(), String::new());
    for line in sessions().concat() {
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!("\"$VIRTNET\" {} {line}", quiet.join(" ")))
            .env("VIRTNET", virtnet)
            .env("VIRTNET_BUS_ADDRESS", &driver.bus)
            .current_dir(script_dir())
            .output()
            .expect("sh runs");
        stdout.push_str(&String::from_utf8_lossy(&output.stdout));
        stderr.push_str(
            &String::from_utf8_lossy(&output.stderr)
                .replace(&installed.display().to_string(), SCHEMA_PLACEHOLDER)
                .replace(&schema.display().to_string(), SCHEMA_PLACEHOLDER),
        );
    }
    (stdout, stderr)
}

#[test]
fn a_virsh_script_runs_unchanged_with_virtnet() {
    let no_virsh = Command::new("virsh").arg("--version").output().is_err();
    if common::missing_tool(
        no_virsh,
        "virsh is not installed (scripts/setup installs libvirt-clients)",
    ) {
        return;
    }
    let commands = sessions().concat().len();
    assert!(commands >= 30, "the script has {commands} commands");
    for quiet in [&[][..], &["-q"][..]] {
        // A fresh daemon each time: virsh starts from the test driver's
        // initial state each time too.
        let driver = TestDriver::start("virsh-script", virtnet::dbus::DEFAULT_BUS_NAME, |_| None);
        let (virsh_out, virsh_err) = through_virsh(quiet);
        let (ours_out, ours_err) = through_virtnet(&driver, quiet);
        assert_eq!(
            ours_out, virsh_out,
            "virtnet {quiet:?}: standard output differs from virsh's"
        );
        assert_eq!(
            ours_err, virsh_err,
            "virtnet {quiet:?}: standard error differs from virsh's"
        );
        // The script did what it says, not failing alike all through: t2
        // was created.
        assert!(virsh_out.contains(" mode=\"route\""), "{virsh_out}");
    }
}

/// Without virtnetd, one line says so (and not in the bus's words).
#[test]
fn without_virtnetd_one_line_says_so() {
    let driver = TestDriver::start("no-daemon", virtnet::dbus::DEFAULT_BUS_NAME, |_| None);
    driver.daemon.kill();
    let output = Command::new(env!("CARGO_BIN_EXE_virtnet"))
        .args(["--bus-address", &driver.bus, "net-list", "--all"])
        .output()
        .expect("virtnet runs");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: failed to connect to virtnetd: virtnetd is not running (nothing owns org.virtnet on the bus)\n"
    );
}

/// net-event prints virtnetd's events as virsh prints libvirt's: only the
/// network asked for, each line as it comes, then how the wait ended.
#[test]
fn net_event_prints_events_as_virsh_does() {
    let driver = TestDriver::start("net-event", virtnet::dbus::DEFAULT_BUS_NAME, |_| None);
    let virtnet = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_virtnet"))
            .args(["--bus-address", &driver.bus])
            .args(args)
            .output()
            .expect("virtnet runs")
    };
    let watch = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_virtnet"))
            .args([
                "--bus-address",
                &driver.bus,
                "net-event",
                "--event",
                "lifecycle",
            ])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("virtnet runs")
    };
    let looping = watch(&["--network", "default", "--loop", "--timeout", "3"]);
    let once = watch(&["--timestamp", "--timeout", "3"]);
    // Both subscribed (they need well under a second).
    std::thread::sleep(std::time::Duration::from_secs(1));
    let t2 = script_dir().join("t2.xml");
    for args in [
        &["net-destroy", "default"][..],
        &["net-create", t2.to_str().unwrap()],
        &["net-start", "default"],
    ] {
        assert!(virtnet(args).status.success(), "{args:?}");
    }
    let looped = looping.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&looped.stdout),
        "event 'lifecycle' for network default: Stopped\n\
         event 'lifecycle' for network default: Started\n\
         event loop timed out\n\
         events received: 2\n\n"
    );
    assert!(looped.status.success());
    let first = once.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&first.stdout).into_owned();
    // `2024-03-05 06:07:08.009+0000: event …`, as virsh's --timestamp.
    let (stamp, rest) = text.split_once(": ").expect("a timestamp");
    assert!(
        stamp.len() == 28 && stamp.ends_with("+0000") && stamp.as_bytes()[19] == b'.',
        "{text}"
    );
    assert_eq!(
        rest,
        "event 'lifecycle' for network default: Stopped\nevents received: 1\n\n"
    );
    // Nothing within the timeout: virsh fails, saying how the wait ended.
    let quiet = virtnet(&["net-event", "--event", "lifecycle", "--timeout", "1"]);
    assert_eq!(quiet.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&quiet.stdout),
        "event loop timed out\nevents received: 0\n\n"
    );
}

/// `virtnet complete` offers the networks each verb acts on, as `virsh
/// complete` does: active ones to net-destroy, inactive ones to net-start.
#[test]
fn completion_offers_the_networks_each_verb_acts_on() {
    let driver = TestDriver::start("complete", virtnet::dbus::DEFAULT_BUS_NAME, |_| None);
    let virtnet = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_virtnet"))
            .args(["--bus-address", &driver.bus])
            .args(args)
            .output()
            .expect("virtnet runs");
        assert!(output.status.success(), "{args:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let t1 = script_dir().join("t1.xml");
    virtnet(&["net-define", t1.to_str().unwrap()]);
    assert_eq!(virtnet(&["complete", "--", "net-destroy", ""]), "default\n");
    assert_eq!(
        virtnet(&["complete", "--", "net-start", "--network", ""]),
        "t1\n"
    );
    assert_eq!(virtnet(&["complete", "--", "net-info", "t"]), "t1\n");
    assert_eq!(
        virtnet(&["complete", "--", "net-update", "t1", "add", "ip-dhcp-"]),
        "ip-dhcp-host\nip-dhcp-range\n"
    );
    assert_eq!(virtnet(&["complete", "--", "net-und"]), "net-undefine\n");
}

/// A malformed definition is refused saying where, as virsh says it: the
/// line's number, the line, a caret under the place. The words between
/// differ: they are the XML parser's (libxml2's for libvirt).
#[test]
fn a_syntax_error_says_where_as_virsh_does() {
    let no_virsh = Command::new("virsh").arg("--version").output().is_err();
    if common::missing_tool(
        no_virsh,
        "virsh is not installed (scripts/setup installs libvirt-clients)",
    ) {
        return;
    }
    let driver = TestDriver::start("syntax", virtnet::dbus::DEFAULT_BUS_NAME, |_| None);
    let place = |stderr: &[u8]| {
        let stderr = String::from_utf8_lossy(stderr).into_owned();
        let lines: Vec<&str> = stderr.lines().collect();
        // `error: (network_definition):2: WORDS`, less the words.
        let number = lines[1]
            .splitn(4, ':')
            .take(3)
            .collect::<Vec<_>>()
            .join(":");
        (lines[0].to_owned(), number, lines[2..].join("\n"))
    };
    let virsh = Command::new("virsh")
        .args(["-c", "test:///default", "net-define malformed.xml"])
        .current_dir(script_dir())
        .output()
        .expect("virsh runs");
    let ours = Command::new(env!("CARGO_BIN_EXE_virtnet"))
        .args(["--bus-address", &driver.bus, "net-define", "malformed.xml"])
        .current_dir(script_dir())
        .output()
        .expect("virtnet runs");
    let expected = place(&virsh.stderr);
    assert_eq!(
        expected,
        (
            "error: Failed to define network from malformed.xml".to_owned(),
            "error: (network_definition):2".to_owned(),
            "  <name>t3</nam>\n----------------^".to_owned()
        )
    );
    assert_eq!(place(&ours.stderr), expected);
}

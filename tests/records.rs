//! Today's daemon reads the status records of the release before records
//! had a version (tests/fixtures/status-v0/, written by that release's
//! daemon) and adopts those networks without touching them.
//!
//! The networks are realized by today's daemon from the definitions the
//! records hold (same name, UUID, bridge name and MAC), which is then
//! stopped, leaving them running. Each record is put in place of the new
//! status file with only what names live objects substituted: the
//! bridge's ifindex, dnsmasq's pid, and the directory the old daemon ran
//! in (`/tmp/virtnet-fixtures/virtnet`, now the test's). The MAC needs no
//! substitution: the definition carries it, and the test checks the
//! bridge has it. Then the daemon starts again, and must leave everything
//! as it was: the same dnsmasq processes, the same bridges, the same rules
//! (with their handles), and no nftables change at all while it starts.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, DaemonConfig, client, start_bus};
use common::netns::Netns;
use common::{ScratchDir, project_dir};

const BUS_NAME: &str = "org.virtnet";
/// Where the previous release's daemon kept its directories.
const OLD_DIRS: &str = "/tmp/virtnet-fixtures/virtnet";

/// One record of the previous release.
struct Fixture {
    name: String,
    text: String,
    record: serde_json::Value,
}

fn fixtures() -> Vec<Fixture> {
    let dir = project_dir().join("tests/fixtures/status-v0");
    let mut fixtures: Vec<Fixture> = std::fs::read_dir(&dir)
        .expect("the fixtures")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("a fixture");
            let record: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            assert!(record.get("version").is_none(), "a record without version");
            Fixture {
                name: path.file_stem().unwrap().to_string_lossy().into_owned(),
                text,
                record,
            }
        })
        .collect();
    fixtures.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        fixtures.len(),
        7,
        "the fixtures of tests/fixtures/README.md"
    );
    fixtures
}

/// `nft monitor` in the namespace, its output in a file.
struct Monitor {
    child: Child,
    output: PathBuf,
}

impl Monitor {
    /// Starts it, and waits until it reports a change of the test's own.
    fn start(host: &Netns, output: PathBuf) -> Self {
        let file = std::fs::File::create(&output).expect("monitor output");
        let child = Command::new("ip")
            .args(["netns", "exec", &host.name, "nft", "monitor"])
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("nft monitor runs");
        let monitor = Self { child, output };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            host.exec_ok(&["nft", "add", "table", "inet", "vtprobe"]);
            host.exec_ok(&["nft", "delete", "table", "inet", "vtprobe"]);
            std::thread::sleep(Duration::from_millis(50));
            if monitor.text().contains("delete table inet vtprobe") {
                return monitor;
            }
            assert!(Instant::now() < deadline, "nft monitor never listened");
        }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the test compares before and after the daemon starts.
fn host_state(host: &Netns) -> String {
    let links = host.exec_ok(&["ip", "-o", "link"]);
    let addresses = host
        .exec_ok(&["ip", "-o", "addr"])
        .replace(" tentative", "");
    let rules = host.exec_ok(&["nft", "-a", "list", "ruleset"]);
    let qdiscs = host.exec_ok(&["tc", "qdisc", "show"]);
    format!("links:\n{links}\naddresses:\n{addresses}\nrules:\n{rules}\nqdiscs:\n{qdiscs}")
}

fn ifindex(host: &Netns, link: &str) -> u64 {
    host.exec_ok(&["cat", &format!("/sys/class/net/{link}/ifindex")])
        .trim()
        .parse()
        .expect("an ifindex")
}

fn dnsmasq_pid(dirs: &Path, bridge: &str) -> u64 {
    std::fs::read_to_string(dirs.join(format!("run/dnsmasq/{bridge}.pid")))
        .expect("dnsmasq's pid file")
        .trim()
        .parse()
        .expect("a pid")
}

/// Whether `pid` is a dnsmasq that runs (not ended, nor a zombie that
/// whoever inherited it has yet to reap).
fn runs(pid: u64) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().any(|line| line == "Name:\tdnsmasq")
        && !status.lines().any(|line| line.starts_with("State:\tZ"))
}

/// The fixture, with what names live objects set to those of `host`.
fn substituted(fixture: &Fixture, host: &Netns, dirs: &Path) -> String {
    let mut text = fixture
        .text
        .replace(OLD_DIRS, dirs.to_str().expect("utf-8"));
    let running = &fixture.record["running"];
    if let Some(bridge) = running["bridge"].as_object() {
        let name = bridge["name"].as_str().expect("a bridge name");
        let old = format!("\"ifindex\":{}", bridge["ifindex"]);
        assert_eq!(text.matches(&old).count(), 1);
        text = text.replace(&old, &format!("\"ifindex\":{}", ifindex(host, name)));
        // The definition carried the MAC: the bridge has the recorded one.
        let mac: Vec<String> = bridge["mac"]
            .as_array()
            .expect("a MAC")
            .iter()
            .map(|byte| format!("{:02x}", byte.as_u64().expect("a byte")))
            .collect();
        let live = host.exec_ok(&["cat", &format!("/sys/class/net/{name}/address")]);
        assert_eq!(live.trim(), mac.join(":"), "{}", fixture.name);
        if let Some(dnsmasq) = running["dnsmasq"].as_object() {
            let old = format!("\"pid\":{},", dnsmasq["pid"]);
            assert_eq!(text.matches(&old).count(), 1);
            let pid = dnsmasq_pid(dirs, name);
            text = text.replace(&old, &format!("\"pid\":{pid},"));
        }
    }
    text
}

#[test]
fn a_daemon_adopts_the_networks_of_the_previous_releases_records_untouched() {
    let fixtures = fixtures();
    let host = Netns::new("records");
    // The devices the macvtap and host-bridge networks name.
    host.ip(&[
        "link", "add", "eth3", "type", "veth", "peer", "name", "eth4",
    ]);
    host.ip(&["link", "add", "br0", "type", "bridge"]);
    let scratch = ScratchDir::new("records");
    let bus = start_bus(&host, &scratch.0, None);
    let config = DaemonConfig::kernel(&host, &bus.address, BUS_NAME, &scratch.0, &[]);
    let dirs = config
        .dirs
        .clone()
        .expect("the kernel driver's directories");
    let cli = |daemon: &Daemon, args: &[&str]| {
        let output = client(&bus.address, BUS_NAME, args);
        assert!(
            output.status.success(),
            "virtnet {args:?}: {}\ndaemon log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            daemon.log_text()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    let daemon = Daemon::start(&config);
    for fixture in &fixtures {
        let definition = fixture.record["definition"].as_str().expect("a definition");
        let file = scratch.0.join(format!("{}.xml", fixture.name));
        std::fs::write(&file, definition).expect("the definition");
        cli(&daemon, &["net-define", file.to_str().expect("utf-8")]);
        cli(&daemon, &["net-start", &fixture.name]);
    }
    assert!(daemon.terminate().success());

    for fixture in &fixtures {
        let status = dirs.join(format!("run/networks/{}.json", fixture.name));
        assert!(status.exists(), "{} is running", fixture.name);
        std::fs::write(&status, substituted(fixture, &host, &dirs)).expect("the old record");
    }
    let dnsmasq_pids: Vec<u64> = fixtures
        .iter()
        .filter_map(|fixture| fixture.record["running"]["bridge"]["name"].as_str())
        .filter(|bridge| dirs.join(format!("run/dnsmasq/{bridge}.pid")).exists())
        .map(|bridge| dnsmasq_pid(&dirs, bridge))
        .collect();
    assert_eq!(
        dnsmasq_pids.len(),
        5,
        "keennet, dual-stack, host-only, open, limited"
    );
    let before = host_state(&host);
    let monitor = Monitor::start(&host, scratch.0.join("nft-monitor"));
    let quiet = monitor.text();

    let daemon = Daemon::start(&config);
    let listing = cli(&daemon, &["net-list", "--name"]);
    let mut active: Vec<&str> = listing.lines().filter(|line| !line.is_empty()).collect();
    active.sort_unstable();
    let names: Vec<&str> = fixtures
        .iter()
        .map(|fixture| fixture.name.as_str())
        .collect();
    assert_eq!(active, names, "every network is active");
    // Whatever the daemon would do at start has had time to show.
    std::thread::sleep(Duration::from_secs(1));
    let log = daemon.log_text();
    assert_eq!(
        log.matches("network taken over, intact").count(),
        fixtures.len(),
        "{log}"
    );
    assert!(
        !log.contains("re-created") && !log.contains("ERROR"),
        "{log}"
    );
    assert_eq!(
        monitor.text(),
        quiet,
        "no nftables change while the daemon started"
    );
    assert_eq!(host_state(&host), before, "the host is as it was");
    for pid in &dnsmasq_pids {
        assert!(runs(*pid), "dnsmasq {pid} still runs");
    }
    // The records are this version's now.
    for fixture in &fixtures {
        let status = dirs.join(format!("run/networks/{}.json", fixture.name));
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&status).expect("the status")).expect("JSON");
        assert_eq!(record["version"], 1, "{}", fixture.name);
    }
    drop(monitor);

    // What the old records say is enough to take the networks down whole.
    for fixture in &fixtures {
        cli(&daemon, &["net-destroy", &fixture.name]);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let links = host.exec_ok(&["ip", "-o", "link"]);
        let rules = host.exec_ok(&["nft", "list", "ruleset"]);
        let gone = fixtures
            .iter()
            .filter_map(|fixture| fixture.record["running"]["bridge"]["name"].as_str())
            .all(|bridge| !links.contains(&format!(": {bridge}:")) && !rules.contains(bridge));
        if gone {
            break;
        }
        assert!(Instant::now() < deadline, "left behind:\n{links}\n{rules}");
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in &dnsmasq_pids {
        assert!(!runs(*pid), "dnsmasq {pid} stopped");
    }
    drop(daemon);
}

//! Benchmark of virtnetd through the `virtnet` CLI (one process per call,
//! as virsh), beside libvirt 9.0's figures on this kind of machine
//! (../shared/reference/libvirt-9.0-baseline.md). Runs as root in
//! namespaces of its own with a private bus; prints a markdown table.
//!
//!     cargo bench --bench daemon

#[path = "../common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ScratchDir;
use common::daemon::{Daemon, DaemonConfig, client, start_bus};
use common::guest::{dhcp, ping_flood, ping_summary, udhcpc_script};
use common::netns::{Netns, host_and_outside, plug_guest};

const BUS_NAME: &str = "org.virtnet";
const RUNNING: usize = 200;
const DEFINED: usize = 1000;

fn network(index: usize) -> String {
    let (high, low) = (index / 250, index % 250);
    format!(
        "<network><name>bench{index}</name><forward/><bridge name='vbn{index}' stp='off'/>\
         <ip address='10.{}.{low}.1' prefix='24'><dhcp>\
         <range start='10.{0}.{low}.2' end='10.{0}.{low}.254'/></dhcp></ip></network>",
        100 + high
    )
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

struct Bench {
    daemon: Option<Daemon>,
    bus: String,
    scratch: ScratchDir,
    _bus_daemon: common::daemon::Bus,
    _outside: Netns,
    host: Netns,
}

impl Bench {
    fn cli(&self, args: &[&str]) -> Duration {
        let started = Instant::now();
        let output = client(&self.bus, BUS_NAME, args);
        let elapsed = started.elapsed();
        assert!(
            output.status.success(),
            "virtnet {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        elapsed
    }

    fn start_daemon(&mut self) -> Duration {
        let started = Instant::now();
        self.daemon = Some(Daemon::start(&DaemonConfig::kernel(
            &self.host,
            &self.bus,
            BUS_NAME,
            &self.scratch.0,
            &[],
        )));
        started.elapsed()
    }

    fn definition(&self, index: usize) -> String {
        let path = self.scratch.0.join(format!("bench{index}.xml"));
        std::fs::write(&path, network(index)).unwrap();
        path.display().to_string()
    }

    fn rss_kb(&self) -> u64 {
        let pid = self.daemon.as_ref().map_or(0, Daemon::pid);
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// What a restart must leave exactly as it was.
    fn host_state(&self) -> String {
        let rules = self.host.exec_ok(&["nft", "list", "ruleset"]);
        let mut pids = self.host.pids();
        let daemon = self.daemon.as_ref().map_or(0, Daemon::pid).to_string();
        pids.retain(|pid| *pid != daemon);
        pids.sort();
        format!("{rules}\n{pids:?}")
    }
}

fn main() {
    let (host, outside) = host_and_outside("bd");
    let scratch = ScratchDir::new("bench-daemon");
    let bus_daemon = start_bus(&host, &scratch.0, None);
    let mut bench = Bench {
        daemon: None,
        bus: bus_daemon.address.clone(),
        scratch,
        _bus_daemon: bus_daemon,
        _outside: outside,
        host,
    };
    bench.start_daemon();

    // The test driver as a drop-in for libvirt-dbus's test harness: from
    // launch until its name is owned, and from SIGTERM until it exits.
    let (mut owned, mut exits) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let launched = Instant::now();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &bench.host.name])
            .arg(env!("CARGO_BIN_EXE_virtnetd"))
            .args(["--driver", "test", "--bus-name", "org.libvirt"])
            .args(["--bus-address", &bench.bus])
            .stderr(Stdio::piped())
            .spawn()
            .expect("virtnetd starts");
        loop {
            let answer = client(&bench.bus, "org.libvirt", &["net-list"]);
            if answer.status.success() {
                break;
            }
            if launched.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let daemon = child.wait_with_output().expect("virtnetd ends");
                panic!(
                    "the test driver never answered: {}\nits log: {}",
                    String::from_utf8_lossy(&answer.stderr),
                    String::from_utf8_lossy(&daemon.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        owned.push(launched.elapsed());
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        let terminated = Instant::now();
        // SAFETY: kill(2) on the pid of the child spawned just above, not
        // yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        child.wait().expect("virtnetd exits");
        exits.push(terminated.elapsed());
    }

    // A new network each time, up and down through the CLI (the same one
    // again at once would wait for its teardown, still running).
    // Back to back, the daemon holds the previous networks' removals back
    // (a bridge's removal holds the kernel's RTNL lock through an RCU grace
    // period) until it is idle; with a pause, they run in between.
    let (mut ups, mut downs, mut lone_ups) = (Vec::new(), Vec::new(), Vec::new());
    for index in DEFINED..DEFINED + 30 {
        let file = bench.definition(index);
        let name = format!("bench{index}");
        let alone = index >= DEFINED + 15;
        if alone {
            std::thread::sleep(Duration::from_millis(200));
        }
        let up = bench.cli(&["net-define", &file]) + bench.cli(&["net-start", &name]);
        if alone { &mut lone_ups } else { &mut ups }.push(up);
        let down = bench.cli(&["net-destroy", &name]) + bench.cli(&["net-undefine", &name]);
        if !alone {
            downs.push(down);
        }
    }

    eprintln!("starting {RUNNING} networks…");
    for index in 0..RUNNING {
        let file = bench.definition(index);
        bench.cli(&["net-define", &file]);
        bench.cli(&["net-start", &format!("bench{index}")]);
    }
    let lists: Vec<Duration> = (0..10).map(|_| bench.cli(&["net-list", "--all"])).collect();
    // The last network torn down goes once the daemon is idle.
    let last_bridge = format!("vbn{}", DEFINED + 29);
    let deadline = Instant::now() + Duration::from_secs(10);
    let name = format!("{last_bridge}\"");
    while bench
        .host
        .exec_ok(&["ip", "-o", "link"])
        .contains(&last_bridge)
        || bench
            .host
            .exec_ok(&["nft", "list", "ruleset"])
            .contains(&name)
    {
        assert!(Instant::now() < deadline, "{last_bridge} stays");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Restarts with 200 running networks: until the API answers, and
    // whether anything was touched.
    let before = bench.host_state();
    let mut restarts = Vec::new();
    for _ in 0..3 {
        let daemon = bench.daemon.take().expect("running");
        assert!(daemon.terminate().success());
        restarts.push(bench.start_daemon());
    }
    let untouched = bench.host_state() == before;

    // A guest on the oldest network pings the outside every 2 ms through
    // NAT while the daemon is killed and started again.
    let script = udhcpc_script(&bench.scratch.0);
    let guest = plug_guest(&bench.host, "vbn0", "bdg", "vbdg0", None);
    dhcp(&guest, &script);
    let ping = ping_flood(&guest, "10.255.0.2", 1500, "0.002");
    std::thread::sleep(Duration::from_millis(500));
    bench.daemon.take().expect("running").kill();
    bench.start_daemon();
    let output = ping.wait_with_output().expect("ping ends");
    let summary = String::from_utf8_lossy(&output.stdout);
    let lost = ping_summary(&summary).map_or_else(
        || format!("no summary: {summary}"),
        |(sent, got)| format!("{} of {sent} lost", sent - got),
    );

    eprintln!("defining {} more networks…", DEFINED - RUNNING);
    for index in RUNNING..DEFINED {
        let file = bench.definition(index);
        bench.cli(&["net-define", &file]);
    }
    let rss = bench.rss_kb();

    println!("| what | libvirt 9.0 here | goal | virtnet |");
    println!("|---|---|---|---|");
    println!(
        "| daemon restart with {RUNNING} running networks until the API answers (3 runs) | 78 s | < 1 s, nothing re-applied | {} (max {}); host {} |",
        ms(median(restarts.clone())),
        ms(restarts.iter().copied().max().unwrap_or_default()),
        if untouched { "untouched" } else { "CHANGED" }
    );
    println!(
        "| guest traffic during `kill -9` + start (ping every 2 ms) | ≈ 2 % lost | 0 lost | {lost} |"
    );
    println!(
        "| `net-list --all` with {RUNNING} networks, CLI process included (median of 10) | 78 ms | ≤ 15 ms | {} |",
        ms(median(lists))
    );
    println!(
        "| define+start / destroy+undefine of a network through the CLI, back to back (median of 15) | 92 / 396 ms | ≤ 20 / ≤ 20 ms | {} / {} |",
        ms(median(ups)),
        ms(median(downs))
    );
    println!(
        "| define+start of a network, 0.2 s after the previous teardown (median of 15) | 92 ms | ≤ 20 ms | {} |",
        ms(median(lone_ups))
    );
    println!(
        "| `--driver test --bus-name org.libvirt`: launch until it answers (a CLI call included) / SIGTERM until exit (median of 5) | — | ≤ 500 ms / prompt | {} / {} |",
        ms(median(owned)),
        ms(median(exits))
    );
    println!(
        "| daemon RSS, {DEFINED} defined, {RUNNING} running | 30–36 MB | < 20 MB | {:.1} MB |",
        rss as f64 / 1024.0
    );
    drop(guest);
}

//! Benchmark of realizing networks on the kernel, beside libvirt 9.0's
//! figures on this kind of machine (../shared/reference/libvirt-9.0-baseline.md).
//! Runs as root in namespaces of its own; prints a markdown table.
//!
//!     cargo bench --bench realize            # 1000 networks
//!     VIRTNET_BENCH_NETWORKS=200 cargo bench --bench realize

#[path = "../common/netns.rs"]
#[allow(dead_code)]
mod netns;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netns::{Netns, host_and_outside, plug_guest};
use virtnet::apply::RunningNetwork;
use virtnet::apply::firewall::Firewall;
use virtnet::apply::netlink::Netlink;
use virtnet::apply::{self, Environment, TrafficControl};
use virtnet::definition::NetworkDef;
use virtnet::plan::dnsmasq::DnsmasqFiles;
use virtnet::plan::network::BridgePlan;

const UDHCPC_SCRIPT: &str = "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\nip addr add \"$ip/$mask\" dev \"$interface\"\n[ -n \"$router\" ] && ip route replace default via \"${router%% *}\"\nexit 0\n";

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A background process killed by pid when dropped.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn network(index: usize) -> NetworkDef {
    let (high, low) = (index / 250, index % 250);
    let xml = format!(
        "<network><name>bench{index}</name><forward/><bridge name='vbn{index}' stp='off'/>
         <ip address='10.{}.{low}.1' prefix='24'><dhcp>
         <range start='10.{}.{low}.2' end='10.{}.{low}.254'/></dhcp></ip></network>",
        100 + high,
        100 + high,
        100 + high
    );
    NetworkDef::parse(&xml).expect("bench definitions parse")
}

/// The parts of a start that virtnet waits on but does not control, each
/// timed alone (medians of 10): dnsmasq, started by hand with the
/// configuration virtnet writes; the nft CLI adding one rule to a table of
/// its own; the dump of the host's routes that the collision check reads.
struct OutsideParts {
    dnsmasq: Duration,
    nft: Duration,
    routes: Duration,
}

/// A network beside the benchmark's, whose dnsmasq is started by hand.
struct ByHandNetwork {
    config: PathBuf,
    pid_file: PathBuf,
    bridge: u32,
}

const BY_HAND_NFT_TABLE: &str = r#"{"nftables":[{"add":{"table":{"family":"inet","name":"vtbyhand"}}},{"add":{"chain":{"family":"inet","table":"vtbyhand","name":"c"}}}]}"#;
const BY_HAND_NFT_RULE: &str = r#"{"nftables":[{"add":{"rule":{"family":"inet","table":"vtbyhand","chain":"c","expr":[{"accept":null}]}}}]}"#;
const BY_HAND_NFT_REMOVE: &str =
    r#"{"nftables":[{"delete":{"table":{"family":"inet","name":"vtbyhand"}}}]}"#;

impl ByHandNetwork {
    /// Its bridge and addresses, and dnsmasq's files, as a start makes them.
    fn set_up(host: &Netns, dir: &Path) -> Self {
        let def = NetworkDef::parse(
            "<network><name>byhand</name><forward/><bridge name='vbnbyhand' stp='off'/>
             <ip address='10.254.0.1' prefix='24'><dhcp>
             <range start='10.254.0.2' end='10.254.0.254'/></dhcp></ip></network>",
        )
        .expect("by-hand definition parses");
        let files = DnsmasqFiles {
            state_dir: dir.to_owned(),
            pid_file: Some(dir.join("byhand.pid")),
            lease_file: Some(dir.join("byhand.leases")),
            host_resolvers: Some(Vec::new()),
        };
        let mac = virtnet::definition::values::MacAddr([0x52, 0x54, 0x00, 0, 0, 2]);
        let plan =
            virtnet::plan::network::plan(&def, "vbnbyhand", mac, &files).expect("by-hand plan");
        let dnsmasq = plan.dnsmasq.expect("the by-hand network runs dnsmasq");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(files.hosts_file(&def.name), &dnsmasq.hosts_file).unwrap();
        std::fs::write(files.addn_hosts_file(&def.name), &dnsmasq.addn_hosts).unwrap();
        let config = dir.join("byhand.conf");
        std::fs::write(&config, &dnsmasq.config).unwrap();
        let bridge = host.block_on(async {
            let netlink = Netlink::connect().expect("netlink");
            let index = netlink.create_bridge(&plan.bridge).await.expect("bridge");
            for (address, prefix) in &plan.bridge.addresses {
                netlink
                    .add_address(index, *address, *prefix)
                    .await
                    .expect("address");
            }
            netlink.set_up(index).await.expect("link up");
            index
        });
        Self {
            config,
            pid_file: files.pid_file.expect("pid file"),
            bridge,
        }
    }

    /// Starts dnsmasq as virtnet does, until its first process exits, and
    /// stops it again.
    fn dnsmasq_start(&self, host: &Netns) -> Duration {
        let _ = std::fs::remove_file(&self.pid_file);
        let (status, took) = host.run_in(|| {
            let started = Instant::now();
            let status = Command::new("dnsmasq")
                .arg(format!("--conf-file={}", self.config.display()))
                .status()
                .expect("dnsmasq runs");
            (status, started.elapsed())
        });
        assert!(status.success(), "dnsmasq started by hand failed");
        let pid: i32 = std::fs::read_to_string(&self.pid_file)
            .expect("dnsmasq's pid file")
            .trim()
            .parse()
            .expect("a pid");
        // SAFETY: kill(2) with the pid dnsmasq wrote and a signal number.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        while Path::new(&format!("/proc/{pid}")).exists() {
            std::thread::sleep(Duration::from_millis(1));
        }
        took
    }

    fn remove(self, host: &Netns) {
        host.block_on(async {
            let netlink = Netlink::connect().expect("netlink");
            netlink
                .delete_link(self.bridge)
                .await
                .expect("delete bridge");
        });
    }
}

/// Runs `nft -j -f -` in the namespace with `input`, as virtnet does.
fn nft(host: &Netns, input: &str) -> Duration {
    let (output, took) = host.run_in(|| {
        let started = Instant::now();
        let mut child = Command::new("nft")
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nft runs");
        child
            .stdin
            .take()
            .expect("nft's input")
            .write_all(input.as_bytes())
            .expect("nft reads its input");
        let output = child.wait_with_output().expect("nft ends");
        (output, started.elapsed())
    });
    assert!(output.status.success(), "nft: {output:?}");
    took
}

impl OutsideParts {
    fn measure(host: &Netns, network: &ByHandNetwork) -> Self {
        nft(host, BY_HAND_NFT_TABLE);
        let nft_adds = (0..10).map(|_| nft(host, BY_HAND_NFT_RULE)).collect();
        nft(host, BY_HAND_NFT_REMOVE);
        Self {
            dnsmasq: median((0..10).map(|_| network.dnsmasq_start(host)).collect()),
            nft: median(nft_adds),
            routes: median(
                (0..10)
                    .map(|_| host.block_on(timed(Netlink::routes())).1)
                    .collect(),
            ),
        }
    }
}

fn compared(first: Duration, last: Duration) -> String {
    format!(
        "{} vs {} ({:+.0} %)",
        ms(last),
        ms(first),
        (last.as_secs_f64() / first.as_secs_f64() - 1.0) * 100.0
    )
}

/// Runs `future`, timing it alone (not the namespace thread around it).
async fn timed<T>(future: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let output = future.await;
    (output, started.elapsed())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> String {
    let millis = duration.as_secs_f64() * 1000.0;
    if millis < 1.0 {
        format!("{millis:.2} ms")
    } else {
        format!("{millis:.1} ms")
    }
}

fn pss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A guest namespace on `bridge`; returns the time its first lease took.
fn lease(host: &Netns, bridge: &str, label: &str, script: &str) -> (Netns, Duration) {
    let guest = plug_guest(host, bridge, label, &format!("p{label}"), None);
    let started = Instant::now();
    let output = guest.exec(&[
        "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "20", "-T", "1", "-s", script,
    ]);
    assert!(output.status.success(), "udhcpc: {output:?}");
    (guest, started.elapsed())
}

/// NAT TCP throughput from `guest` to `outside`, Gbit/s: median of three
/// 10-second iperf3 runs, as the libvirt baseline measured.
fn throughput(outside: &Netns, guest: &Netns) -> f64 {
    let mut runs: Vec<f64> = (0..3).map(|_| iperf(outside, guest)).collect();
    runs.sort_by(f64::total_cmp);
    runs[1]
}

fn iperf(outside: &Netns, guest: &Netns) -> f64 {
    let _server = Background(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &outside.name,
                "iperf3",
                "-s",
                "-1",
                "-B",
                "10.255.0.2",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("iperf3 server"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let output = guest.exec(&["iperf3", "-c", "10.255.0.2", "-t", "10", "-J"]);
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("iperf3 JSON report");
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
        / 1e9
}

fn main() {
    if std::env::args().any(|argument| argument == "--list") {
        return;
    }
    let count: usize = std::env::var("VIRTNET_BENCH_NETWORKS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1000);
    let (host, outside) = host_and_outside("bench");
    outside.ip(&["route", "add", "10.0.0.0/8", "via", "10.255.0.1"]);
    let scratch =
        Scratch(std::env::temp_dir().join(format!("virtnet-bench-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0).unwrap();
    let script = scratch.0.join("udhcpc.script");
    std::fs::write(&script, UDHCPC_SCRIPT).unwrap();
    Command::new("chmod")
        .args(["755", script.to_str().unwrap()])
        .status()
        .unwrap();
    let script = script.to_str().unwrap().to_owned();
    let env = Environment {
        state_dir: scratch.0.join("state"),
        run_dir: scratch.0.join("run"),
        dnsmasq: "dnsmasq".into(),
        tc: TrafficControl::new("tc"),
    };
    let firewall = Firewall::new();

    // One network: start and stop, repeated.
    let mut starts = Vec::new();
    let mut stops = Vec::new();
    for _ in 0..15 {
        let def = network(0);
        let (running, took) = host.block_on(timed(apply::start(&def, &env, &firewall, &[])));
        starts.push(took);
        let (stopped, took) =
            host.block_on(timed(apply::stop(&running.expect("start"), &firewall)));
        stopped.expect("stop");
        stops.push(took);
    }

    // The kernel's part of a stop: deleting an idle bridge waits in
    // br_multicast_dev_del for rcu_barrier(), whatever else the stop does.
    let bridge_deletes: Vec<Duration> = (0..15)
        .map(|_| {
            host.block_on(async {
                let netlink = Netlink::connect().expect("netlink");
                let plan = BridgePlan {
                    name: "vbnfloor".into(),
                    mac: [0x52, 0x54, 0x00, 0, 0, 1],
                    mtu: None,
                    stp: false,
                    delay: 0,
                    addresses: Vec::new(),
                    routes: Vec::new(),
                    ipv6: false,
                    port_isolated: false,
                };
                let index = netlink.create_bridge(&plan).await.expect("bridge");
                timed(netlink.delete_link(index)).await.1
            })
        })
        .collect();

    // One network with a guest: first lease, throughput through NAT.
    let first = host
        .block_on(apply::start(&network(0), &env, &firewall, &[]))
        .expect("start");
    let (guest, first_lease) = lease(&host, "vbn0", "lease0", &script);
    let concurrent: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=4)
            .map(|i| {
                let (host, script) = (&host, &script);
                scope.spawn(move || lease(host, "vbn0", &format!("lease{i}"), script))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("lease thread").1)
            .collect()
    });
    let single_throughput = throughput(&outside, &guest);

    let by_hand = ByHandNetwork::set_up(&host, &scratch.0.join("byhand"));
    let outside_first = OutsideParts::measure(&host, &by_hand);

    // Many networks: the start cost as they pile up.
    let mut running: Vec<RunningNetwork> = vec![first];
    let mut per_start = Vec::new();
    for index in 1..count {
        let def = network(index);
        let (started, took) = host.block_on(timed(apply::start(&def, &env, &firewall, &[])));
        running.push(started.expect("start"));
        per_start.push(took);
    }
    // Let the host settle after the burst of starts before measuring.
    std::thread::sleep(Duration::from_secs(10));
    let throughput_many = throughput(&outside, &guest);
    let outside_last = OutsideParts::measure(&host, &by_hand);
    by_hand.remove(&host);
    let pids = host.pids();
    let pss: u64 = pids.iter().map(|pid| pss_kib(pid)).sum();
    let mut per_stop = Vec::new();
    drop(guest);
    for network in running.iter().rev() {
        let (stopped, took) = host.block_on(timed(apply::stop(network, &firewall)));
        stopped.expect("stop");
        per_stop.push(took);
    }

    let first_ten = median(per_start[..10].to_vec());
    let last_ten = median(per_start[per_start.len() - 10..].to_vec());
    println!("| what | libvirt 9.0 here | goal | virtnet |");
    println!("|---|---|---|---|");
    println!(
        "| start one NAT+DHCP network (library call, median of 15) | 62 ms | ≤ 10 ms | {} |",
        ms(median(starts))
    );
    println!(
        "| stop it (median of 15) | 348 ms | ≤ 10 ms | {} |",
        ms(median(stops))
    );
    println!(
        "| for comparison: the kernel deleting an idle bridge alone (median of 15) | — | — | {} |",
        ms(median(bridge_deletes))
    );
    println!(
        "| start cost of network #{count} vs #2–11 (medians of 10) | +40 % at #200 | ≤ +10 % | {} |",
        compared(first_ten, last_ten)
    );
    for (what, first, last) in [
        (
            "dnsmasq started alone",
            outside_first.dnsmasq,
            outside_last.dnsmasq,
        ),
        (
            "the nft CLI adding one rule to a table of its own",
            outside_first.nft,
            outside_last.nft,
        ),
        (
            "reading the host's routes",
            outside_first.routes,
            outside_last.routes,
        ),
    ] {
        println!(
            "| for comparison: {what}, beside {count} networks vs 1 (medians of 10) | — | — | {} |",
            compared(first, last)
        );
    }
    println!(
        "| networks running on this host, no sysctl changed | ~127 | 1000 | {count} ({} processes) |",
        pids.len()
    );
    println!(
        "| NAT TCP throughput, guest on the oldest of {count} networks vs one network | 10 vs 19 Gbit/s | ≥ 95 % | {throughput_many:.1} vs {single_throughput:.1} Gbit/s ({:.0} %) |",
        throughput_many / single_throughput * 100.0
    );
    println!(
        "| new guest's first DHCP lease (udhcpc, stp off) | 3.1 s | ≤ 200 ms | {} |",
        ms(first_lease)
    );
    println!(
        "| 4 new guests at once, each | 9–15 s | ≤ 300 ms | {} |",
        concurrent
            .iter()
            .map(|d| ms(*d))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| processes and memory per running network | 2, ≈ 0.63 MB PSS | ≤ 1, ≤ 0.6 MB | {:.2}, {:.2} MB PSS |",
        pids.len() as f64 / count as f64,
        pss as f64 / 1024.0 / count as f64
    );
    println!(
        "| stop, median over all {count} | — | — | {} |",
        ms(median(per_stop))
    );
}

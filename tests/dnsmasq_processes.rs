//! A network's dnsmasq is found and stopped whatever state it is in: one
//! that ignores SIGTERM is killed, and the processes of a start cut short
//! before dnsmasq wrote its pid file are found by their command line.
//! Stand-ins play dnsmasq (given as `Environment::dnsmasq`): shell scripts
//! that fork into the background as dnsmasq does, and block on a FIFO so
//! that no child process of theirs outlives them.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::ScratchDir;
use common::netns::Netns;
use virtnet::apply::firewall::Firewall;
use virtnet::apply::{self, Environment, TrafficControl, recover};
use virtnet::definition::NetworkDef;

const NETWORK: &str = "<network><name>standin</name><bridge name='vt-standin0'/>\
    <ip address='10.96.0.1' prefix='24'><dhcp><range start='10.96.0.2' end='10.96.0.9'/>\
    </dhcp></ip></network>";

/// The daemon's half of the stand-in: the background process dnsmasq
/// leaves, here ignoring SIGTERM; `PIDFILE` says whether it writes the pid
/// file the configuration names.
const STAND_IN: &str = r#"#!/bin/bash
conf=${1#--conf-file=}
pidfile=$(sed -n 's/^pid-file=//p' "$conf")
(
    trap '' TERM
    PIDFILE && echo $BASHPID > "$pidfile"
    exec < /dev/null > /dev/null 2>&1
    read -r _ <> "FIFO"
) &
LAUNCHER
"#;

struct Lab {
    host: Netns,
    scratch: ScratchDir,
    env: Environment,
    def: NetworkDef,
}

impl Lab {
    /// A stand-in whose background process writes the pid file or not,
    /// and whose first process exits at once (as dnsmasq once set up) or
    /// blocks (as dnsmasq still setting up).
    fn new(label: &str, writes_pid_file: bool, launcher_returns: bool) -> Self {
        let host = Netns::new(label);
        let scratch = ScratchDir::new(label);
        let fifo = scratch.0.join("fifo");
        common::netns::run("mkfifo", &[fifo.to_str().expect("utf-8 path")]);
        let script = STAND_IN
            .replace("FIFO", fifo.to_str().expect("utf-8 path"))
            .replace("PIDFILE", if writes_pid_file { "true" } else { "false" })
            .replace(
                "LAUNCHER",
                if launcher_returns {
                    // dnsmasq's first process returns once the daemon is
                    // set up, its pid file written.
                    r#"until [ -s "$pidfile" ]; do sleep 0.01; done"#
                } else {
                    r#"read -r _ <> "FIFO""#
                },
            )
            .replace("FIFO", fifo.to_str().expect("utf-8 path"));
        let binary = scratch.0.join("dnsmasq");
        std::fs::write(&binary, script).expect("the stand-in");
        common::netns::run("chmod", &["755", binary.to_str().expect("utf-8 path")]);
        let env = Environment {
            state_dir: scratch.0.join("state"),
            run_dir: scratch.0.join("run"),
            dnsmasq: binary,
            tc: TrafficControl::new("tc"),
        };
        let def = NetworkDef::parse(NETWORK).expect("the network parses");
        Self {
            host,
            scratch,
            env,
            def,
        }
    }

    fn config(&self) -> PathBuf {
        self.env.run_dir.join("dnsmasq/vt-standin0.conf")
    }
}

/// The pids of the processes running with configuration `config`.
fn processes_of(config: &Path) -> Vec<u32> {
    let argument = format!("--conf-file={}", config.display());
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline
                    .split(|byte| *byte == 0)
                    .any(|found| found == argument.as_bytes())
            })
        })
        .collect()
}

/// A dnsmasq that ignores SIGTERM is killed after libvirt's 3 s, and the
/// stop succeeds.
#[test]
fn a_dnsmasq_that_ignores_sigterm_is_killed() {
    let lab = Lab::new("dnsterm", true, true);
    let firewall = Firewall::new();
    let running = lab
        .host
        .block_on(apply::start(&lab.def, &lab.env, &firewall, &[]))
        .map_err(|failed| failed.error)
        .expect("the network starts with the stand-in");
    let pid = running.dnsmasq.as_ref().expect("a dnsmasq").pid;
    assert_eq!(processes_of(&lab.config()), [pid]);

    let began = Instant::now();
    lab.host
        .block_on(apply::stop(&running, &firewall))
        .expect("the stop succeeds");
    let took = began.elapsed();
    assert!(
        processes_of(&lab.config()).is_empty(),
        "the stand-in is gone"
    );
    assert!(
        (Duration::from_secs(3)..Duration::from_secs(5)).contains(&took),
        "SIGKILL after the SIGTERM grace: {took:?}"
    );
}

/// A start cut short while dnsmasq sets up (its first process has not
/// returned, and no pid file is written) leaves processes no pid file
/// names: undoing the start stops them all.
#[test]
fn a_start_cut_short_before_the_pid_file_is_undone() {
    let lab = Lab::new("dnscut", false, false);
    let config = lab.config();
    let leftovers = lab.host.block_on(async {
        let env = lab.env.clone();
        let def = lab.def.clone();
        let start = tokio::spawn(async move {
            let firewall = Firewall::new();
            apply::start(&def, &env, &firewall, &[]).await.map(drop)
        });
        // The first process and the one in the background.
        let deadline = Instant::now() + Duration::from_secs(10);
        while processes_of(&config).len() < 2 {
            assert!(Instant::now() < deadline, "the stand-in never forked");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // As the daemon killed: the start goes no further.
        start.abort();
        assert!(start.await.is_err_and(|error| error.is_cancelled()));
        assert!(!lab.env.run_dir.join("dnsmasq/vt-standin0.pid").exists());
        recover::clean_up(&lab.def, &lab.env, None).await
    });
    let leftovers: Vec<String> = leftovers.iter().map(ToString::to_string).collect();
    assert_eq!(leftovers, Vec::<String>::new());
    assert_eq!(processes_of(&config), Vec::<u32>::new(), "none is left");
    assert!(!config.exists(), "nor its configuration");
    let links = lab.host.exec_ok(&["ip", "-o", "link"]);
    assert!(!links.contains("vt-standin0"), "{links}");
    drop(lab.scratch);
}

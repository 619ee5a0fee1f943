//! virtnetd killed right after each step of a start, a stop (net-destroy,
//! with the deletion of the bridge set aside) and a live update:
//! `VIRTNET_KILL_POINT` makes the daemon abort there, as if killed. The
//! daemon started again must find the network fully up (bridge up with its
//! address, rules, one dnsmasq, a status; an update's rules and dnsmasq
//! those of the live definition it reports) or fully gone, and nothing of
//! it may be left once it is destroyed and undefined.

mod common;

use std::time::Duration;

use common::ScratchDir;
use common::daemon::{Bus, Daemon, DaemonConfig, client, start_bus};
use common::guest::walk;
use common::netns::{Netns, host_and_outside};

const BUS_NAME: &str = "org.virtnet";

const NETWORK: &str = "<network><name>kp</name><forward mode='nat' dev='uplink'/>\
    <bridge name='vtkp0'/><ip address='10.67.0.1' prefix='24'><dhcp>\
    <range start='10.67.0.10' end='10.67.0.20'/></dhcp></ip></network>";

/// An update that changes the rules (the forward device goes).
const RULES_UPDATE: &[&str] = &[
    "net-update",
    "kp",
    "delete",
    "forward-interface",
    "<interface dev='uplink'/>",
];
/// An update that restarts dnsmasq (a new range).
const DNSMASQ_UPDATE: &[&str] = &[
    "net-update",
    "kp",
    "add",
    "ip-dhcp-range",
    "<range start='10.67.0.100' end='10.67.0.110'/>",
];

/// A step, what leads to it, and the command during which the daemon dies.
struct Case {
    step: &'static str,
    before: &'static [&'static [&'static str]],
    fatal: &'static [&'static str],
}

const START: &[&str] = &["net-start", "kp"];
const DESTROY: &[&str] = &["net-destroy", "kp"];

const CASES: &[Case] = &[
    Case {
        step: "start:recorded",
        before: &[],
        fatal: START,
    },
    Case {
        step: "start:bridge",
        before: &[],
        fatal: START,
    },
    Case {
        step: "start:addresses",
        before: &[],
        fatal: START,
    },
    Case {
        step: "start:up",
        before: &[],
        fatal: START,
    },
    Case {
        step: "start:rules",
        before: &[],
        fatal: START,
    },
    Case {
        step: "start:dnsmasq",
        before: &[],
        fatal: START,
    },
    Case {
        step: "start:running",
        before: &[],
        fatal: START,
    },
    Case {
        step: "stop:recorded",
        before: &[START],
        fatal: DESTROY,
    },
    Case {
        step: "stop:dnsmasq",
        before: &[START],
        fatal: DESTROY,
    },
    Case {
        step: "stop:rules",
        before: &[START],
        fatal: DESTROY,
    },
    Case {
        step: "stop:retired",
        before: &[START],
        fatal: DESTROY,
    },
    Case {
        step: "stop:deleted",
        before: &[START],
        fatal: DESTROY,
    },
    Case {
        step: "update:recorded",
        before: &[START],
        fatal: DNSMASQ_UPDATE,
    },
    Case {
        step: "update:rules",
        before: &[START],
        fatal: RULES_UPDATE,
    },
    Case {
        step: "update:dnsmasq",
        before: &[START],
        fatal: DNSMASQ_UPDATE,
    },
    Case {
        step: "update:saved",
        before: &[START],
        fatal: RULES_UPDATE,
    },
];

struct Lab {
    host: Netns,
    _outside: Netns,
    scratch: ScratchDir,
    bus: Bus,
}

impl Lab {
    fn daemon(&self, kill_point: Option<&str>) -> Daemon {
        let env = kill_point.map(|step| (virtnet::killpoint::VARIABLE, step));
        Daemon::start(&DaemonConfig {
            env: env.as_slice(),
            ..DaemonConfig::kernel(
                &self.host,
                &self.bus.address,
                BUS_NAME,
                &self.scratch.0,
                &[],
            )
        })
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        client(&self.bus.address, BUS_NAME, args)
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "virtnet {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Links, addresses, rules and virtnet's run files: what must come
    /// back once the network is gone.
    fn snapshot(&self) -> String {
        let links = self.host.exec_ok(&["ip", "-o", "link"]);
        let addresses = self
            .host
            .exec_ok(&["ip", "-o", "addr"])
            .replace(" tentative", "");
        let rules = self.host.exec_ok(&["nft", "list", "ruleset"]);
        let mut files = walk(&self.scratch.0.join("virtnet/run"));
        files.sort();
        format!(
            "{links}\n{addresses}\n{rules}\n{files:?}\n{:?}",
            self.host.dnsmasqs()
        )
    }
}

/// The network as the daemon reports it agrees with the host: fully up,
/// or fully gone.
fn assert_whole_or_gone(lab: &Lab, step: &str) {
    let active = lab.cli_ok(&["net-list", "--name"]) == "kp\n\n";
    let links = lab.host.exec_ok(&["ip", "-o", "link"]);
    let rules = lab.host.exec_ok(&["nft", "list", "ruleset"]);
    let statuses = walk(&lab.scratch.0.join("virtnet/run/networks"));
    let dnsmasqs = lab.host.dnsmasqs();
    assert!(
        !links.contains("vtgone"),
        "{step}: a bridge set aside stays\n{links}"
    );
    if !active {
        assert!(
            !links.contains("vtkp0"),
            "{step}: gone, but its bridge stays\n{links}"
        );
        assert!(
            !rules.contains("vtkp0"),
            "{step}: gone, but its rules stay\n{rules}"
        );
        assert!(
            dnsmasqs.is_empty(),
            "{step}: gone, but dnsmasq stays: {dnsmasqs:?}"
        );
        assert!(
            statuses.is_empty(),
            "{step}: gone, but its status stays: {statuses:?}"
        );
        return;
    }
    let link = lab.host.exec_ok(&["ip", "-o", "link", "show", "vtkp0"]);
    assert!(
        link.contains(",UP,") || link.contains(",UP>"),
        "{step}: the bridge is down\n{link}"
    );
    let addresses = lab.host.exec_ok(&["ip", "-o", "addr", "show", "vtkp0"]);
    assert!(addresses.contains("10.67.0.1/24"), "{step}: {addresses}");
    assert!(
        rules.contains("chain from_vtkp0"),
        "{step}: no rules\n{rules}"
    );
    assert_eq!(dnsmasqs.len(), 1, "{step}: one dnsmasq");
    assert_eq!(statuses.len(), 1, "{step}: one status");
    // What the live definition says is what the host has.
    let live = lab.cli_ok(&["net-dumpxml", "kp"]);
    let config =
        std::fs::read_to_string(lab.scratch.0.join("virtnet/run/dnsmasq/vtkp0.conf")).unwrap();
    assert_eq!(
        live.contains("10.67.0.100"),
        config.contains("10.67.0.100"),
        "{step}: dnsmasq runs another definition than the live one\n{live}\n{config}"
    );
    assert_eq!(
        live.contains("dev='uplink'"),
        rules.contains("oifname \"uplink\""),
        "{step}: the rules are another definition's than the live one\n{live}\n{rules}"
    );
}

fn killed_at(case: &Case) {
    let (host, outside) = host_and_outside("kp");
    let scratch = ScratchDir::new("kp");
    let bus = start_bus(&host, &scratch.0, None);
    let lab = Lab {
        host,
        _outside: outside,
        scratch,
        bus,
    };
    let before = lab.snapshot();
    let definition = lab.scratch.0.join("kp.xml");
    std::fs::write(&definition, NETWORK).unwrap();
    let daemon = lab.daemon(Some(case.step));
    lab.cli_ok(&["net-define", definition.to_str().unwrap()]);
    for command in case.before {
        lab.cli_ok(command);
    }
    // The command itself may fail (the daemon dies under it) or succeed
    // (the step was its last, or in the background).
    lab.cli(case.fatal);
    let status = daemon
        .ended(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{}: the daemon did not die there", case.step));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "{}: the daemon died otherwise: {status:?}",
        case.step
    );

    let daemon = lab.daemon(None);
    assert_whole_or_gone(&lab, case.step);
    lab.cli(&["net-destroy", "kp"]);
    lab.cli_ok(&["net-undefine", "kp"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while lab.snapshot() != before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        lab.snapshot(),
        before,
        "{}: something is left; daemon log:\n{}",
        case.step,
        daemon.log_text()
    );
    drop(daemon);
}

#[test]
fn killed_after_each_step_the_daemon_finds_networks_whole_or_gone() {
    for case in CASES {
        killed_at(case);
    }
}

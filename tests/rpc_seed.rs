//! The seed workflow of stock virsh, and libvirt's python binding, over
//! virtnetd's RPC sockets with the kernel driver, compared byte for byte
//! with the same commands against a real libvirtd 9.0 (its own network
//! driver) for the same network. Each side is a host namespace with an
//! outside machine beyond its uplink and a guest on the network's bridge
//! that gets its lease by real DHCP; the network's XML gives both the same
//! UUID, MAC and bridge, so only the leases' expiry times differ.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::daemon::{Bus, Daemon, DaemonConfig, start_bus};
use common::guest::{dhcp, udhcpc_script, wait_forwarding};
use common::libvirtd::Libvirtd;
use common::netns::{Netns, host_and_outside, plug_guest};
use common::{ScratchDir, project_dir};

const UUID: &str = "5eed5eed-0b1e-4c2a-9d3f-5eed00000001";
const BRIDGE_MAC: &str = "52:54:00:5e:ed:00";
const GUEST_MAC: &str = "52:54:00:5e:ed:01";
const GUEST_IP: &str = "192.168.132.22";
/// Debian's python, whose python3-libvirt this is (a python3 earlier on
/// PATH, such as pyenv's, does not have it).
const PYTHON3: &str = "/usr/bin/python3";
const DHCP_HOST: &str = "<host mac='52:54:00:5e:ed:01' name='seedguest' ip='192.168.132.22'/>";

/// Lists, defines, starts and updates a network through libvirt's python
/// binding, then the read-only socket refuses a change; the network goes.
const PYTHON: &str = r#"
import sys, libvirt
rw = libvirt.open(sys.argv[1])
xml = open(sys.argv[3]).read()
print("listed", [n.name() for n in rw.listAllNetworks()])
net = rw.networkDefineXML(xml)
print("defined", net.name(), net.UUIDString(), net.isActive(), net.isPersistent())
net.create()
print("started", net.isActive(), net.bridgeName())
flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
           libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1,
           "<host mac='52:54:00:5e:ed:02' name='py' ip='192.168.132.23'/>", flags)
print("updated", "name='py'" in net.XMLDesc(0),
      "name='py'" in net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE))
print("listed", [(n.name(), n.isActive()) for n in rw.listAllNetworks()])
ro = libvirt.open(sys.argv[2])
print("read-only", ro.networkLookupByName("keennet").isActive())
try:
    ro.networkLookupByName("keennet").destroy()
except libvirt.libvirtError as error:
    print("refused", error.get_error_code() == libvirt.VIR_ERR_OPERATION_DENIED,
          error.get_error_domain() == libvirt.VIR_FROM_NETWORK, error.get_error_message())
net.destroy()
net.undefine()
print("listed", [n.name() for n in rw.listAllNetworks()])
"#;

/// One side: a host namespace serving `network:///system` at `rw`/`ro`.
struct Side {
    host: Netns,
    dir: std::path::PathBuf,
    rw: String,
    ro: String,
}

fn network_xml() -> String {
    let sample = std::fs::read_to_string(project_dir().join("xml-samples/keennet.xml"))
        .expect("keennet.xml");
    sample.replace(
        "  <name>keennet</name>\n",
        &format!(
            "  <name>keennet</name>\n  <uuid>{UUID}</uuid>\n  <mac address='{BRIDGE_MAC}'/>\n"
        ),
    )
}

/// virsh in `dir` (so file arguments are the same on both sides); what
/// it printed, and how it ended, as a transcript entry.
fn virsh(dir: &Path, uri: &str, args: &[&str]) -> String {
    let output = Command::new("virsh")
        .args(["-c", uri])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("virsh runs");
    entry(&format!("virsh {}", args.join(" ")), &output)
}

fn entry(what: &str, output: &Output) -> String {
    format!(
        "$ {what}\n{}{}[exit {:?}]\n",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        output.status.code()
    )
}

/// The leases' expiry times (`YYYY-MM-DD hh:mm:ss` where a line starts
/// with one) replaced by a placeholder: each side's lease was given at
/// its own moment.
fn without_expiry(text: &str) -> String {
    const SHAPE: &[u8] = b"dddd-dd-dd dd:dd:dd";
    text.lines()
        .map(|line| {
            let bytes = line.as_bytes();
            let is_time = bytes.len() > SHAPE.len()
                && SHAPE.iter().zip(&bytes[1..]).all(|(shape, byte)| {
                    if *shape == b'd' {
                        byte.is_ascii_digit()
                    } else {
                        shape == byte
                    }
                });
            if is_time {
                format!(" <expiry time>{}\n", &line[1 + SHAPE.len()..])
            } else {
                format!("{line}\n")
            }
        })
        .collect()
}

/// The seed workflow on one side; its transcript.
fn seed(side: &Side, label: &str) -> String {
    std::fs::write(side.dir.join("keennet.xml"), network_xml()).expect("keennet.xml");
    let rw = |args: &[&str]| virsh(&side.dir, &side.rw, args);
    let ro = |args: &[&str]| virsh(&side.dir, &side.ro, args);
    let mut transcript = String::new();
    for args in [
        &["net-define", "keennet.xml"][..],
        &["net-autostart", "keennet"],
        &["net-start", "keennet"],
        &["net-list", "--all"],
        &["net-info", "keennet"],
        &["net-dumpxml", "keennet"],
        &["net-dumpxml", "--inactive", "keennet"],
        &[
            "net-update",
            "keennet",
            "add",
            "ip-dhcp-host",
            DHCP_HOST,
            "--live",
            "--config",
        ],
        &["net-dumpxml", "keennet"],
        &["net-dumpxml", "--inactive", "keennet"],
    ] {
        transcript += &rw(args);
    }

    let guest = plug_guest(
        &side.host,
        "keenbr0",
        &format!("{label}g"),
        "vport1",
        Some(GUEST_MAC),
    );
    wait_forwarding(&side.host, "vport1");
    let script = udhcpc_script(&side.dir);
    assert_eq!(dhcp(&guest, &script).to_string(), GUEST_IP, "{transcript}");
    transcript += &without_expiry(&rw(&["net-dhcp-leases", "keennet"]));

    // Reads on the read-only socket, and each mutation refused.
    for args in [
        &["net-list", "--all"][..],
        &["net-info", "keennet"],
        &["net-dumpxml", "--inactive", "keennet"],
        &["net-dhcp-leases", "keennet"],
        &["net-define", "keennet.xml"],
        &["net-autostart", "--disable", "keennet"],
        &[
            "net-update",
            "keennet",
            "delete",
            "ip-dhcp-host",
            DHCP_HOST,
            "--live",
        ],
        &["net-destroy", "keennet"],
        &["net-start", "keennet"],
        &["net-undefine", "keennet"],
    ] {
        transcript += &without_expiry(&ro(args));
    }

    let watch = Command::new("virsh")
        .args([
            "-c",
            &side.rw,
            "net-event",
            "--event",
            "lifecycle",
            "--loop",
        ])
        .args(["--timeout", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("virsh runs");
    // Registered well within this.
    std::thread::sleep(Duration::from_millis(1500));
    transcript += &rw(&["net-destroy", "keennet"]);
    transcript += &rw(&["net-start", "keennet"]);
    let watched = watch.wait_with_output().expect("virsh net-event ends");
    transcript += &entry(
        "virsh net-event --event lifecycle --loop --timeout 5",
        &watched,
    );

    for args in [
        &["net-destroy", "keennet"][..],
        &["net-undefine", "keennet"],
        &["net-list", "--all"],
    ] {
        transcript += &rw(args);
    }
    drop(guest);

    let python = Command::new(PYTHON3)
        .args(["-c", PYTHON, &side.rw, &side.ro])
        .arg(side.dir.join("keennet.xml"))
        .output()
        .expect("python3 runs");
    transcript + &entry("python3", &python)
}

fn uri(socket: &Path) -> String {
    format!("network:///system?socket={}", socket.display())
}

/// virtnetd's kernel driver serving its RPC sockets in its scratch dir.
fn virtnet_side() -> String {
    let (host, outside) = host_and_outside("rsv");
    let scratch = ScratchDir::new("rpc-seed-virtnet");
    let bus: Bus = start_bus(&host, &scratch.0, None);
    let sockets = scratch.0.to_str().expect("a UTF-8 path").to_owned();
    let daemon = Daemon::start(&DaemonConfig::kernel(
        &host,
        &bus.address,
        virtnet::dbus::DEFAULT_BUS_NAME,
        &scratch.0,
        &["--rpc-socket-dir", &sockets],
    ));
    let side = Side {
        rw: uri(&scratch.0.join("virtnetworkd-sock")),
        ro: uri(&scratch.0.join("virtnetworkd-sock-ro")),
        dir: scratch.0.clone(),
        host,
    };
    let transcript = seed(&side, "rsv");
    eprintln!("virtnetd's log:\n{}", daemon.log_text());
    drop((daemon, bus, side, outside));
    transcript
}

/// A real libvirtd with its own network driver, its sockets under its
/// directory in the scratch dir.
fn libvirt_side() -> String {
    let (host, outside) = host_and_outside("rsl");
    let scratch = ScratchDir::new("rpc-seed-libvirt");
    let libvirtd = Libvirtd::start(&host, &scratch.0.join("libvirt"));
    let run = scratch.0.join("libvirt/run");
    let side = Side {
        rw: uri(&run.join("libvirt-sock")),
        ro: uri(&run.join("libvirt-sock-ro")),
        dir: scratch.0.clone(),
        host,
    };
    let transcript = seed(&side, "rsl");
    drop((libvirtd, side, outside));
    transcript
}

fn no_clients() -> bool {
    let missing = Command::new("virsh").arg("--version").output().is_err()
        || !Command::new(PYTHON3)
            .args(["-c", "import libvirt"])
            .status()
            .is_ok_and(|status| status.success());
    common::missing_tool(
        missing,
        "virsh or python3-libvirt is missing (scripts/setup installs them)",
    )
}

#[test]
fn the_seed_workflow_prints_what_libvirtd_prints() {
    if no_clients() {
        return;
    }
    let (ours, libvirt) = std::thread::scope(|scope| {
        let ours = scope.spawn(virtnet_side);
        let libvirt = scope.spawn(libvirt_side);
        (
            ours.join().expect("virtnet's side"),
            libvirt.join().expect("libvirtd's side"),
        )
    });
    // What both must show, so that two identical failures cannot pass.
    for expected in [
        "Network keennet started",
        "Autostart:      yes",
        "192.168.132.22/24",
        "operation forbidden: read only access prevents virNetworkDestroy",
        "event 'lifecycle' for network keennet: Stopped\n\
         event 'lifecycle' for network keennet: Started\n",
        "updated True True",
        "refused True True operation forbidden",
    ] {
        assert!(
            libvirt.contains(expected),
            "libvirtd's side: {expected}\n{libvirt}"
        );
    }
    if ours != libvirt {
        let first = ours
            .lines()
            .zip(libvirt.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "the transcripts differ from line {}:\n--- virtnetd\n{ours}\n--- libvirtd\n{libvirt}",
            first + 1
        );
    }
}

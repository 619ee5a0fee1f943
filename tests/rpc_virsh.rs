//! Stock virsh against virtnetd's RPC sockets: virtnetd's test driver
//! (`--driver test`, a private bus, its sockets in a scratch directory, in
//! a namespace of its own), each virsh session compared byte for byte
//! with what the same session prints on libvirt's `test:///default`; the
//! read-only socket; and bad input on the socket.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::daemon::{Bus, Daemon, DaemonConfig, start_bus};
use common::netns::Netns;
use common::{ScratchDir, project_dir};

/// virtnetd's test driver serving its RPC sockets in its scratch dir.
struct RpcDaemon {
    // Field order is drop order: the daemon and bus go before the namespace.
    daemon: Daemon,
    _bus: Bus,
    scratch: ScratchDir,
    _ns: Netns,
}

impl RpcDaemon {
    fn start(label: &str) -> Self {
        let ns = Netns::new(label);
        let scratch = ScratchDir::new(label);
        let bus = start_bus(&ns, &scratch.0, None);
        let sockets = scratch.0.to_str().expect("a UTF-8 path").to_owned();
        let daemon = Daemon::start(&DaemonConfig {
            ns: &ns,
            bus: &bus.address,
            bus_name: virtnet::dbus::DEFAULT_BUS_NAME,
            dirs: None,
            log: scratch.0.join("virtnetd.log"),
            args: &["--rpc-socket-dir", &sockets],
            env: &[],
        });
        Self {
            daemon,
            _bus: bus,
            scratch,
            _ns: ns,
        }
    }

    fn socket(&self, name: &str) -> PathBuf {
        self.scratch.0.join(name)
    }

    /// One virsh process running `session` (commands separated by `;`)
    /// on socket `name`.
    fn virsh(&self, name: &str, session: &str) -> Output {
        let uri = format!("network:///system?socket={}", self.socket(name).display());
        virsh(&uri, session)
    }
}

fn script_dir() -> PathBuf {
    project_dir().join("tests/fixtures/virsh-script")
}

fn virsh(uri: &str, session: &str) -> Output {
    Command::new("virsh")
        .args(["-c", uri, session])
        .current_dir(script_dir())
        .output()
        .expect("virsh runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn no_virsh() -> bool {
    let missing = Command::new("virsh").arg("--version").output().is_err();
    if missing {
        eprintln!("SKIPPED: virsh is not installed (scripts/setup installs libvirt-clients)");
    }
    missing
}

const RW: &str = "virtnetworkd-sock";
const RO: &str = "virtnetworkd-sock-ro";

/// Sessions whose every line libvirt's test driver answers as libvirt's
/// network driver does: it refuses `--inactive` and leases, and words
/// starting an active network otherwise, so those are left out.
const SESSIONS: [&str; 3] = [
    "net-list --all; net-info default; net-dumpxml default; net-uuid default; \
     net-name dd8fe884-6c02-601e-7551-cca97df1c5df; net-info nosuch",
    "net-define t1.xml; net-list --all; net-start t1; net-autostart t1; \
     net-list --all --autostart; net-info t1; \
     net-update t1 add ip-dhcp-host \"<host mac='52:54:00:aa:bb:cc' name='h1' ip='10.9.0.50'/>\" --live --config; \
     net-dumpxml t1; net-destroy t1; net-autostart --disable t1; \
     net-info t1; net-undefine t1; net-list --all",
    "net-create t2.xml; net-list --all --transient; net-info t2; net-destroy t2; \
     net-list --all; net-destroy default; net-start default; net-start nosuch",
];

#[test]
fn virsh_prints_what_it_prints_on_libvirts_test_driver() {
    if no_virsh() {
        return;
    }
    for session in SESSIONS {
        // A fresh daemon each time: virsh's test:///default starts from
        // its initial state in each process.
        let daemon = RpcDaemon::start("rpc-virsh");
        let ours = daemon.virsh(RW, session);
        let libvirt = virsh("test:///default", session);
        assert_eq!(
            text(&ours),
            text(&libvirt),
            "{session}\nvirtnetd's log:\n{}",
            daemon.daemon.log_text()
        );
        assert_eq!(ours.status.code(), libvirt.status.code(), "{session}");
    }
}

#[test]
fn the_read_only_socket_reads_and_refuses_every_mutation() {
    if no_virsh() {
        return;
    }
    let daemon = RpcDaemon::start("rpc-ro");
    let reads = "net-list --all; net-info default; net-dumpxml default; \
                 net-dumpxml --inactive default; net-dhcp-leases default";
    let read_only = daemon.virsh(RO, reads);
    assert!(read_only.status.success(), "{}", text(&read_only));
    assert_eq!(text(&read_only), text(&daemon.virsh(RW, reads)));
    // The test driver's networks hold no leases: the table's head only,
    // as libvirt's network driver prints it for none.
    assert!(
        text(&read_only).ends_with(
            " Expiry Time   MAC address   Protocol   IP address   Hostname   Client ID or DUID\n\
             -----------------------------------------------------------------------------------\n\n"
        ),
        "{}",
        text(&read_only)
    );
    for (command, failure, function) in [
        (
            "net-destroy default",
            "Failed to destroy network default",
            "virNetworkDestroy",
        ),
        (
            "net-autostart default",
            "failed to mark network default as autostarted",
            "virNetworkSetAutostart",
        ),
        (
            "net-undefine default",
            "Failed to undefine network default",
            "virNetworkUndefine",
        ),
        (
            "net-define t1.xml",
            "Failed to define network from t1.xml",
            "virNetworkDefineXML",
        ),
        (
            "net-create t2.xml",
            "Failed to create network from t2.xml",
            "virNetworkCreateXML",
        ),
    ] {
        let refused = daemon.virsh(RO, command);
        assert_eq!(refused.status.code(), Some(1), "{command}");
        assert_eq!(
            String::from_utf8_lossy(&refused.stderr),
            format!(
                "error: {failure}\nerror: operation forbidden: read only access prevents {function}\n"
            ),
            "{command}"
        );
    }
    // Nothing changed.
    assert_eq!(
        text(&daemon.virsh(RW, "net-list --all --name")),
        "default\n\n"
    );
}

/// A raw client of the socket: just enough of the protocol to open a
/// connection and make calls.
struct RawClient {
    stream: UnixStream,
    serial: u32,
}

const REMOTE_PROGRAM: u32 = 0x2000_8086;

impl RawClient {
    fn connect(path: &Path) -> Self {
        let stream = UnixStream::connect(path).expect("the socket accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        Self { stream, serial: 0 }
    }

    /// A call's message, with `program` and `procedure` as given.
    fn message(program: u32, procedure: u32, serial: u32, body: &[u8]) -> Vec<u8> {
        let length = u32::try_from(28 + body.len()).expect("a small message");
        let mut bytes = Vec::new();
        for word in [length, program, 1, procedure, 0, serial, 0] {
            bytes.extend_from_slice(&word.to_be_bytes());
        }
        bytes.extend_from_slice(body);
        bytes
    }

    /// Calls `procedure`; the reply's status (0 OK, 1 error) and body.
    fn call(&mut self, procedure: u32, body: &[u8]) -> (u32, Vec<u8>) {
        self.serial += 1;
        let message = Self::message(REMOTE_PROGRAM, procedure, self.serial, body);
        self.stream.write_all(&message).expect("the call is sent");
        let mut length = [0; 4];
        self.stream.read_exact(&mut length).expect("a reply");
        let mut reply = vec![0; u32::from_be_bytes(length) as usize - 4];
        self.stream.read_exact(&mut reply).expect("the whole reply");
        let word = |at: usize| u32::from_be_bytes(reply[at..at + 4].try_into().unwrap());
        assert_eq!(
            (word(0), word(8), word(12), word(16)),
            (REMOTE_PROGRAM, procedure, 1, self.serial),
            "a reply to this call"
        );
        (word(20), reply[24..].to_vec())
    }

    /// AUTH_LIST and CONNECT_OPEN, as virsh starts.
    fn open(path: &Path) -> Self {
        let mut client = Self::connect(path);
        assert_eq!(client.call(66, &[]).0, 0);
        // No URI, flags 0.
        assert_eq!(client.call(1, &[0; 8]).0, 0);
        client
    }

    /// Whether the daemon closed the connection (rather than answering).
    fn closed(&mut self) -> bool {
        let mut byte = [0; 1];
        matches!(self.stream.read(&mut byte), Ok(0))
    }
}

/// remote_error's code and message from an error reply's body.
fn remote_error(body: &[u8]) -> (i32, String) {
    let code = i32::from_be_bytes(body[0..4].try_into().unwrap());
    assert_eq!(&body[8..12], &[0, 0, 0, 1], "a message is present");
    let length = u32::from_be_bytes(body[12..16].try_into().unwrap()) as usize;
    (
        code,
        String::from_utf8(body[16..16 + length].to_vec()).unwrap(),
    )
}

/// LOOKUP_BY_NAME's arguments: the name as an XDR string.
fn name_argument(name: &str) -> Vec<u8> {
    let mut bytes = u32::try_from(name.len()).unwrap().to_be_bytes().to_vec();
    bytes.extend_from_slice(name.as_bytes());
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes
}

#[test]
fn bad_input_gets_a_clean_error_or_a_close_and_others_are_served() {
    let daemon = RpcDaemon::start("rpc-bad");
    let socket = daemon.socket(RW);
    // A client that stays connected through it all.
    let mut bystander = RawClient::open(&socket);
    assert_eq!(bystander.call(46, &name_argument("default")).0, 0);

    // Truncated: a length of 100 and 10 bytes, then the client goes.
    let mut truncated = RawClient::connect(&socket);
    truncated.stream.write_all(&100u32.to_be_bytes()).unwrap();
    truncated.stream.write_all(&[0; 10]).unwrap();
    drop(truncated);

    // Lengths over the limit (and under a header) close the connection.
    for length in [u32::MAX, 32 * 1024 * 1024 + 5, 8] {
        let mut client = RawClient::connect(&socket);
        client.stream.write_all(&length.to_be_bytes()).unwrap();
        assert!(client.closed(), "length {length}");
    }

    // Another program, or a message type that is not a call: closed.
    let mut other_program = RawClient::connect(&socket);
    other_program
        .stream
        .write_all(&RawClient::message(0x1234_5678, 1, 1, &[]))
        .unwrap();
    assert!(other_program.closed());
    let mut not_a_call = RawClient::connect(&socket);
    let mut stream_message = RawClient::message(REMOTE_PROGRAM, 1, 1, &[]);
    stream_message[19] = 3;
    not_a_call.stream.write_all(&stream_message).unwrap();
    assert!(not_a_call.closed());

    // An unknown procedure and arguments that do not decode: errors, and
    // the connection goes on.
    let mut client = RawClient::open(&socket);
    let (status, body) = client.call(9999, &[]);
    assert_eq!(status, 1);
    assert_eq!(
        remote_error(&body),
        (
            3,
            "this function is not supported by the connection driver: unknown procedure: 9999"
                .to_owned()
        )
    );
    for garbage in [
        vec![0xff, 0xff, 0xff, 0xff],
        vec![0, 0, 0, 9, b'd'],
        vec![0, 0, 0, 2, 0xc3, 0x28, 0, 0],
    ] {
        let (status, body) = client.call(46, &garbage);
        assert_eq!(status, 1);
        assert_eq!(
            remote_error(&body),
            (
                39,
                "RPC error : Unable to decode message payload".to_owned()
            )
        );
    }
    // Before CONNECT_OPEN, a network call is refused.
    let mut unopened = RawClient::connect(&socket);
    let (status, body) = unopened.call(46, &name_argument("default"));
    assert_eq!((status, remote_error(&body).0), (1, 1));
    assert_eq!(client.call(46, &name_argument("default")).0, 0);

    // The bystander and virsh are still served.
    assert_eq!(bystander.call(46, &name_argument("default")).0, 0);
    if !no_virsh() {
        let listing = daemon.virsh(RW, "net-list --all --name");
        assert_eq!(text(&listing), "default\n\n");
    }
}

#[test]
fn keepalive_pings_are_answered() {
    let daemon = RpcDaemon::start("rpc-keepalive");
    let mut client = RawClient::open(&daemon.socket(RW));
    let mut ping = RawClient::message(0x6b65_6570, 1, 0, &[]);
    // Type MESSAGE, serial 0.
    ping[19] = 2;
    client.stream.write_all(&ping).unwrap();
    let mut pong = [0; 28];
    client.stream.read_exact(&mut pong).unwrap();
    let mut expected = RawClient::message(0x6b65_6570, 2, 0, &[]);
    expected[19] = 2;
    assert_eq!(pong.to_vec(), expected);
}

/// net-event prints the events of the networks asked for, as libvirt's
/// daemon sends them: to each registered callback, filtered by network.
#[test]
fn net_event_sees_the_lifecycle_of_networks() {
    if no_virsh() {
        return;
    }
    let daemon = RpcDaemon::start("rpc-event");
    let uri = format!("network:///system?socket={}", daemon.socket(RW).display());
    let watch = |args: &[&str]| {
        Command::new("virsh")
            .args([
                "-c",
                &uri,
                "net-event",
                "--event",
                "lifecycle",
                "--timeout",
                "3",
            ])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("virsh runs")
    };
    let every = watch(&["--loop"]);
    let default_only = watch(&["--loop", "--network", "default"]);
    // Both registered (they need well under a second).
    std::thread::sleep(Duration::from_secs(1));
    let changes = daemon.virsh(
        RW,
        "net-destroy default; net-define t1.xml; net-start default; net-undefine t1",
    );
    assert!(changes.status.success(), "{}", text(&changes));
    let every = every.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&every.stdout),
        "event 'lifecycle' for network default: Stopped\n\
         event 'lifecycle' for network t1: Defined\n\
         event 'lifecycle' for network default: Started\n\
         event 'lifecycle' for network t1: Undefined\n\
         event loop timed out\n\
         events received: 4\n\n"
    );
    let default_only = default_only.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&default_only.stdout),
        "event 'lifecycle' for network default: Stopped\n\
         event 'lifecycle' for network default: Started\n\
         event loop timed out\n\
         events received: 2\n\n"
    );
}

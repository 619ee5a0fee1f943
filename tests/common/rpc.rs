//! virtnetd's RPC sockets in tests: a daemon on the test driver serving
//! them, stock virsh on them, and a raw client speaking just enough of
//! libvirt's protocol to make calls, bad ones included.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::daemon::{Bus, Daemon, DaemonConfig, start_bus};
use super::netns::Netns;
use super::{ScratchDir, project_dir};

/// virtnetd's test driver serving its RPC sockets in its scratch dir.
pub struct RpcDaemon {
    // Field order is drop order: the daemon and bus go before the namespace.
    pub daemon: Daemon,
    _bus: Bus,
    scratch: ScratchDir,
    _ns: Netns,
}

impl RpcDaemon {
    pub fn start(label: &str) -> Self {
        Self::start_with(label, &[])
    }

    /// With more arguments for virtnetd.
    pub fn start_with(label: &str, args: &[&str]) -> Self {
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
            args: &[&["--rpc-socket-dir", &sockets], args].concat(),
            env: &[],
        });
        Self {
            daemon,
            _bus: bus,
            scratch,
            _ns: ns,
        }
    }

    pub fn socket(&self, name: &str) -> PathBuf {
        self.scratch.0.join(name)
    }

    /// One virsh process running `session` (commands separated by `;`)
    /// on socket `name`.
    pub fn virsh(&self, name: &str, session: &str) -> Output {
        let uri = format!("network:///system?socket={}", self.socket(name).display());
        virsh(&uri, session)
    }
}

pub fn script_dir() -> PathBuf {
    project_dir().join("tests/fixtures/virsh-script")
}

pub fn virsh(uri: &str, session: &str) -> Output {
    Command::new("virsh")
        .args(["-c", uri, session])
        .current_dir(script_dir())
        .output()
        .expect("virsh runs")
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn no_virsh() -> bool {
    let missing = Command::new("virsh").arg("--version").output().is_err();
    super::missing_tool(
        missing,
        "virsh is not installed (scripts/setup installs libvirt-clients)",
    )
}

pub const RW: &str = "virtnetworkd-sock";
pub const RO: &str = "virtnetworkd-sock-ro";

/// A raw client of the socket: just enough of the protocol to open a
/// connection and make calls.
pub struct RawClient {
    pub stream: UnixStream,
    serial: u32,
}

/// A message the daemon sent, its header's fields and its body.
#[derive(Debug)]
pub struct Reply {
    pub program: u32,
    pub procedure: u32,
    /// virNetMessageType: 1 REPLY, 2 MESSAGE.
    pub kind: u32,
    pub serial: u32,
    /// 0 OK, 1 error.
    pub status: u32,
    pub body: Vec<u8>,
}

pub const REMOTE_PROGRAM: u32 = 0x2000_8086;

impl RawClient {
    pub fn connect(path: &Path) -> Self {
        let stream = UnixStream::connect(path).expect("the socket accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        Self { stream, serial: 0 }
    }

    /// A call's message, with `program` and `procedure` as given.
    pub fn message(program: u32, procedure: u32, serial: u32, body: &[u8]) -> Vec<u8> {
        let length = u32::try_from(28 + body.len()).expect("a small message");
        let mut bytes = Vec::new();
        for word in [length, program, 1, procedure, 0, serial, 0] {
            bytes.extend_from_slice(&word.to_be_bytes());
        }
        bytes.extend_from_slice(body);
        bytes
    }

    /// Sends a call of `procedure` without waiting for its reply; its serial.
    pub fn send(&mut self, procedure: u32, body: &[u8]) -> u32 {
        self.serial += 1;
        let message = Self::message(REMOTE_PROGRAM, procedure, self.serial, body);
        self.stream.write_all(&message).expect("the call is sent");
        self.serial
    }

    /// The next message from the daemon.
    pub fn receive(&mut self) -> Reply {
        let mut length = [0; 4];
        self.stream.read_exact(&mut length).expect("a reply");
        let mut reply = vec![0; u32::from_be_bytes(length) as usize - 4];
        self.stream.read_exact(&mut reply).expect("the whole reply");
        let word = |at: usize| u32::from_be_bytes(reply[at..at + 4].try_into().unwrap());
        Reply {
            program: word(0),
            procedure: word(8),
            kind: word(12),
            serial: word(16),
            status: word(20),
            body: reply[24..].to_vec(),
        }
    }

    /// Calls `procedure`; the reply's status (0 OK, 1 error) and body.
    pub fn call(&mut self, procedure: u32, body: &[u8]) -> (u32, Vec<u8>) {
        let serial = self.send(procedure, body);
        let reply = self.receive();
        assert_eq!(
            (reply.program, reply.procedure, reply.kind, reply.serial),
            (REMOTE_PROGRAM, procedure, 1, serial),
            "a reply to this call"
        );
        (reply.status, reply.body)
    }

    /// AUTH_LIST and CONNECT_OPEN, as virsh starts.
    pub fn open(path: &Path) -> Self {
        let mut client = Self::connect(path);
        assert_eq!(client.call(66, &[]).0, 0);
        // No URI, flags 0.
        assert_eq!(client.call(1, &[0; 8]).0, 0);
        client
    }

    /// Whether the daemon closed the connection (rather than answering).
    pub fn closed(&mut self) -> bool {
        let mut byte = [0; 1];
        matches!(self.stream.read(&mut byte), Ok(0))
    }
}

/// remote_error's code and message from an error reply's body.
pub fn remote_error(body: &[u8]) -> (i32, String) {
    let code = i32::from_be_bytes(body[0..4].try_into().unwrap());
    assert_eq!(&body[8..12], &[0, 0, 0, 1], "a message is present");
    let length = u32::from_be_bytes(body[12..16].try_into().unwrap()) as usize;
    (
        code,
        String::from_utf8(body[16..16 + length].to_vec()).unwrap(),
    )
}

/// LOOKUP_BY_NAME's arguments: the name as an XDR string.
pub fn name_argument(name: &str) -> Vec<u8> {
    let mut bytes = u32::try_from(name.len()).unwrap().to_be_bytes().to_vec();
    bytes.extend_from_slice(name.as_bytes());
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes
}

/// A process's resident memory (VmRSS) in KiB and its open descriptors.
pub fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("its descriptors")
        .count();
    (rss, fds)
}

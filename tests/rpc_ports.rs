//! Network ports through virtnetd's RPC socket, with stock virsh: the
//! kernel driver in a namespace of the test's, a nat network with a
//! portgroup; net-port-create, net-port-list, net-port-dumpxml (the plug
//! on the network's bridge, the portgroup's bandwidth), the port still
//! there after virtnetd restarts, net-port-delete, and libvirt's errors for
//! a missing port and for the read-only socket.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::ScratchDir;
use common::daemon::{Bus, Daemon, DaemonConfig, start_bus};
use common::netns::Netns;

const RW: &str = "virtnetworkd-sock";
const RO: &str = "virtnetworkd-sock-ro";
const PORT_UUID: &str = "5d744f21-ba4a-4d6e-bdb2-30a35ff3207d";
const MISSING_UUID: &str = "11111111-2222-3333-4444-555555555555";

const NETWORK: &str = "<network>
  <name>ports</name>
  <forward mode='nat'/>
  <bridge name='vnports0'/>
  <ip address='10.77.0.1' prefix='24'/>
  <portgroup name='fast'>
    <bandwidth>
      <inbound average='1000' peak='2000'/>
    </bandwidth>
  </portgroup>
</network>
";

const PORT: &str = "<networkport>
  <uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207d</uuid>
  <owner>
    <name>guest</name>
    <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  </owner>
  <group>fast</group>
  <mac address='52:54:00:7b:35:93'/>
</networkport>
";

/// virtnetd's kernel driver serving its sockets in the scratch dir.
struct Lab {
    // Field order is drop order: the daemon and bus go before the namespace.
    daemon: Option<Daemon>,
    bus: Bus,
    scratch: ScratchDir,
    ns: Netns,
}

impl Lab {
    fn new(label: &str) -> Self {
        let ns = Netns::new(label);
        let scratch = ScratchDir::new(label);
        let bus = start_bus(&ns, &scratch.0, None);
        let mut lab = Self {
            daemon: None,
            bus,
            scratch,
            ns,
        };
        lab.start();
        lab
    }

    fn start(&mut self) {
        let sockets = self.scratch.0.to_str().expect("a UTF-8 path").to_owned();
        let args = ["--rpc-socket-dir", sockets.as_str()];
        self.daemon = Some(Daemon::start(&DaemonConfig::kernel(
            &self.ns,
            &self.bus.address,
            virtnet::dbus::DEFAULT_BUS_NAME,
            &self.scratch.0,
            &args,
        )));
    }

    /// SIGTERM and a new virtnetd on the same directories.
    fn restart(&mut self) {
        let daemon = self.daemon.take().expect("running");
        assert!(daemon.terminate().success());
        self.start();
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.scratch.0.join(name);
        std::fs::write(&path, contents).expect("scratch file");
        path
    }

    fn virsh(&self, socket: &str, args: &[&str]) -> Output {
        let uri = format!(
            "network:///system?socket={}",
            self.scratch.0.join(socket).display()
        );
        Command::new("virsh")
            .args(["-c", &uri])
            .args(args)
            .output()
            .expect("virsh runs")
    }

    /// virsh on the read-write socket, which must succeed; its stdout.
    fn virsh_ok(&self, args: &[&str]) -> String {
        let output = self.virsh(RW, args);
        assert!(
            output.status.success(),
            "virsh {args:?}: {}{}\nvirtnetd's log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.daemon
                .as_ref()
                .map(Daemon::log_text)
                .unwrap_or_default()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

fn no_virsh() -> bool {
    let missing = Command::new("virsh").arg("--version").output().is_err();
    common::missing_tool(
        missing,
        "virsh is not installed (scripts/setup installs libvirt-clients)",
    )
}

fn uuid_bytes(uuid: &str) -> Vec<u8> {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// One call of the remote program on `stream`; the reply's status and body.
fn call(stream: &mut UnixStream, procedure: u32, serial: u32, body: &[u8]) -> (u32, Vec<u8>) {
    let mut message = Vec::new();
    let length = u32::try_from(28 + body.len()).expect("small");
    for word in [length, 0x2000_8086, 1, procedure, 0, serial, 0] {
        message.extend_from_slice(&word.to_be_bytes());
    }
    message.extend_from_slice(body);
    stream.write_all(&message).expect("call sent");
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).expect("reply length");
    let mut reply = vec![0u8; u32::from_be_bytes(length) as usize - 4];
    stream.read_exact(&mut reply).expect("reply");
    let status = u32::from_be_bytes(reply[20..24].try_into().expect("4 bytes"));
    (status, reply[24..].to_vec())
}

/// The error PORT_GET_XML_DESC (409) answers for port `uuid` of network
/// `name` (`network_uuid`): its code and message.
fn port_xml_error(socket: &Path, name: &str, network_uuid: &str, uuid: &str) -> (i32, String) {
    let mut stream = UnixStream::connect(socket).expect("socket");
    // CONNECT_OPEN: no URI, no flags.
    assert_eq!(call(&mut stream, 1, 1, &[0; 8]).0, 0);
    let mut body = Vec::new();
    let padded = name.len().div_ceil(4) * 4;
    body.extend_from_slice(&u32::try_from(name.len()).expect("short").to_be_bytes());
    body.extend_from_slice(name.as_bytes());
    body.resize(4 + padded, 0);
    body.extend(uuid_bytes(network_uuid));
    body.extend(uuid_bytes(uuid));
    body.extend_from_slice(&[0; 4]);
    let (status, reply) = call(&mut stream, 409, 2, &body);
    assert_eq!(status, 1, "an error");
    let code = i32::from_be_bytes(reply[0..4].try_into().expect("4 bytes"));
    // domain, then the message: present (1), its length, its bytes.
    let length = u32::from_be_bytes(reply[12..16].try_into().expect("4 bytes")) as usize;
    (
        code,
        String::from_utf8_lossy(&reply[16..16 + length]).into_owned(),
    )
}

/// net-port-list's table, as virsh prints it.
fn table(uuids: &[&str]) -> String {
    // vshTable: the rule is as wide as the widest cell, plus 3.
    let width = if uuids.is_empty() { 7 } else { 39 };
    let mut table = format!(" UUID\n{}\n", "-".repeat(width));
    for uuid in uuids {
        table.push_str(&format!(" {uuid}\n"));
    }
    table + "\n"
}

fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn ports_are_created_listed_shown_kept_across_restarts_and_deleted() {
    if no_virsh() {
        return;
    }
    let mut lab = Lab::new("ports");
    let network = lab.file("ports.xml", NETWORK);
    let port = lab.file("port.xml", PORT);
    lab.virsh_ok(&["net-define", path(&network)]);
    lab.virsh_ok(&["net-start", "ports"]);

    let created = lab.virsh_ok(&["net-port-create", "ports", path(&port)]);
    assert_eq!(
        created,
        format!("Network port {PORT_UUID} created from {}\n\n", path(&port))
    );
    let listed = lab.virsh_ok(&["net-port-list", "ports"]);
    assert_eq!(listed, table(&[PORT_UUID]));

    let dumped = lab.virsh_ok(&["net-port-dumpxml", "ports", PORT_UUID]);
    let expected = "<networkport>
  <uuid>5d744f21-ba4a-4d6e-bdb2-30a35ff3207d</uuid>
  <owner>
    <name>guest</name>
    <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  </owner>
  <group>fast</group>
  <mac address='52:54:00:7b:35:93'/>
  <bandwidth>
    <inbound average='1000' peak='2000'/>
  </bandwidth>
  <plug type='network' bridge='vnports0'/>
</networkport>

";
    assert_eq!(dumped, expected);

    // The read-only socket reads ports and refuses their creation and
    // deletion, as libvirt's daemon does.
    let read_only = lab.virsh(RO, &["net-port-list", "ports"]);
    assert_eq!(String::from_utf8_lossy(&read_only.stdout), listed);
    let refused = lab.virsh(RO, &["net-port-create", "ports", path(&port)]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        format!(
            "error: Failed to create network from {}\n\
             error: operation forbidden: read only access prevents virNetworkPortCreateXML\n",
            path(&port)
        )
    );
    // virsh 9.0's net-port-delete says it failed and exits 0 without the
    // daemon's error (its own quirk, whatever the daemon): the port stays.
    let refused = lab.virsh(RO, &["net-port-delete", "ports", PORT_UUID]);
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        format!("error: Failed to delete network port {PORT_UUID}\n")
    );
    assert_eq!(lab.virsh_ok(&["net-port-list", "ports"]), listed);

    lab.restart();
    assert_eq!(lab.virsh_ok(&["net-port-list", "ports"]), listed);
    assert_eq!(
        lab.virsh_ok(&["net-port-dumpxml", "ports", PORT_UUID]),
        expected
    );

    assert_eq!(
        lab.virsh_ok(&["net-port-delete", "ports", PORT_UUID]),
        format!("Network port {PORT_UUID} deleted\n\n")
    );
    assert_eq!(lab.virsh_ok(&["net-port-list", "ports"]), table(&[]));
    // virsh 9.0 says only that it failed (and exits 0: its quirk); the
    // daemon's error, on the wire, is libvirt's VIR_ERR_NO_NETWORK_PORT.
    let network_uuid = lab.virsh_ok(&["net-uuid", "ports"]);
    for uuid in [PORT_UUID, MISSING_UUID] {
        let missing = lab.virsh(RW, &["net-port-dumpxml", "ports", uuid]);
        assert_eq!(
            String::from_utf8_lossy(&missing.stderr),
            format!("error: failed to get network port '{uuid}'\n")
        );
        let (code, message) =
            port_xml_error(&lab.scratch.0.join(RW), "ports", network_uuid.trim(), uuid);
        assert_eq!(
            (code, message),
            (
                107,
                format!("network port not found: Network port with UUID {uuid} does not exist")
            ),
            "as libvirt's virNetworkObjLookupPort words it"
        );
    }
    // Stopping the network drops its ports' records.
    lab.virsh_ok(&["net-port-create", "ports", path(&port)]);
    lab.virsh_ok(&["net-destroy", "ports"]);
    let ports_dir = lab.scratch.0.join("virtnet/run/ports/ports");
    assert!(!ports_dir.exists(), "{} left", ports_dir.display());
    let stopped = lab.virsh(RW, &["net-port-create", "ports", path(&port)]);
    assert_eq!(
        String::from_utf8_lossy(&stopped.stderr),
        format!(
            "error: Failed to create network from {}\n\
             error: Requested operation is not valid: network 'ports' is not active\n",
            path(&port)
        )
    );
}

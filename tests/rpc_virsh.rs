//! Stock virsh against virtnetd's RPC sockets: virtnetd's test driver
//! (`--driver test`, a private bus, its sockets in a scratch directory, in
//! a namespace of its own), each virsh session compared byte for byte
//! with what the same session prints on libvirt's `test:///default`; the
//! read-only socket; and bad input on the socket.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::rpc::{
    REMOTE_PROGRAM, RO, RW, RawClient, RpcDaemon, name_argument, no_virsh, remote_error, text,
    virsh,
};

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

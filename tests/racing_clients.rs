//! Clients racing each other, made deterministic: a network removed by
//! one client between another's lookup and its call is reported in
//! libvirt's words (org.libvirt.Error, "Network not found"), by the daemon
//! and, past the objects it keeps, by the client; a net-create that took
//! effect is reported as done even when a racer removes the network at
//! once. The CLI's calls go through a socket that holds them at the
//! chosen point while the racer acts.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::daemon::{TestDriver, client};
use virtnet::dbus::client::{ConnectProxy, NetworkProxy};

const BUS_NAME: &str = "org.libvirt";
const T1: &str = "<network><name>t1</name><uuid>0c7b2f4a-5f55-4a3c-9d3c-3d2f1b0e9a11</uuid>\
    <bridge name='vt1br0'/><ip address='10.9.0.1' prefix='24'/></network>";
const T1_UUID: &str = "0c7b2f4a-5f55-4a3c-9d3c-3d2f1b0e9a11";
const T1_PATH: &str = "/org/libvirt/Test/network/_0c7b2f4a_5f55_4a3c_9d3c_3d2f1b0e9a11";

/// A socket in front of the bus that passes bytes both ways, except that
/// once the client has sent a message holding `trigger` (a method name),
/// what it sends next waits until the test releases it.
struct HoldingSocket {
    address: String,
    held: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

impl HoldingSocket {
    fn new(driver: &TestDriver, name: &str, trigger: &'static str) -> Self {
        let socket = driver.scratch.0.join(name);
        let listener = UnixListener::bind(&socket).unwrap();
        let bus = driver.scratch.0.join("bus");
        let (held_tx, held) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let (mut from_client, _) = listener.accept().unwrap();
            let mut to_bus = UnixStream::connect(&bus).unwrap();
            let mut to_client = from_client.try_clone().unwrap();
            let mut from_bus = to_bus.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_bus, &mut to_client);
                let _ = to_client.shutdown(std::net::Shutdown::Both);
            });
            let mut tail: Vec<u8> = Vec::new();
            let (mut triggered, mut released) = (false, false);
            let mut buffer = [0u8; 65536];
            loop {
                let read = from_client.read(&mut buffer).unwrap_or(0);
                if triggered && !released {
                    // The client's next call, or its end: held until the
                    // racer is done (or the test is gone).
                    let _ = held_tx.send(());
                    let _ = release_rx.recv();
                    released = true;
                }
                if read == 0 || to_bus.write_all(&buffer[..read]).is_err() {
                    break;
                }
                if !triggered {
                    tail.extend_from_slice(&buffer[..read]);
                    triggered = contains(&tail, trigger.as_bytes());
                    let keep = tail.len().saturating_sub(trigger.len());
                    tail.drain(..keep);
                }
            }
            let _ = to_bus.shutdown(std::net::Shutdown::Both);
        });
        Self {
            address: format!("unix:path={}", socket.display()),
            held,
            release,
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// `virtnet ARGS` through `socket`, running.
fn cli_through(socket: &HoldingSocket, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_virtnet"))
        .args(["--bus-address", &socket.address, "--bus-name", BUS_NAME])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("virtnet runs")
}

/// Waits for the client's next call to be held (or for the client to end
/// without one), lets `racer` act, then lets the client go on.
fn race(socket: &HoldingSocket, cli: Child, racer: impl FnOnce()) -> Output {
    let _ = socket.held.recv_timeout(Duration::from_secs(10));
    racer();
    let _ = socket.release.send(());
    cli.wait_with_output().expect("virtnet ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
}

/// The network's object, for calls on it.
async fn network(connection: &zbus::Connection, path: &str) -> NetworkProxy<'static> {
    NetworkProxy::builder(connection)
        .destination(BUS_NAME)
        .path(path.to_owned())
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap()
}

fn libvirt_message<T: std::fmt::Debug>(result: zbus::Result<T>) -> String {
    match result {
        Err(zbus::Error::MethodError(name, Some(message), _))
            if name.as_str() == "org.libvirt.Error" =>
        {
            message
        }
        other => panic!("not libvirt's error: {other:?}"),
    }
}

/// One client looks t1 up, another undefines it, and every call the
/// first makes on it is answered as libvirt answers a vanished network;
/// a network defined again under that uuid with another name is named in
/// the answer once it is gone in turn.
#[tokio::test(flavor = "current_thread")]
async fn calls_on_a_network_removed_meanwhile_get_libvirts_error() {
    let driver = TestDriver::start("racedbus", BUS_NAME, |_| None);
    let first = zbus::connection::Builder::address(driver.bus.as_str())
        .build()
        .await
        .unwrap();
    let second = zbus::connection::Builder::address(driver.bus.as_str())
        .build()
        .await
        .unwrap();
    let connect = |connection| async move {
        ConnectProxy::builder(connection)
            .destination(BUS_NAME)
            .path("/org/libvirt/Test")
            .build()
            .await
            .unwrap()
    };
    connect(&second).await.network_define_xml(T1).await.unwrap();
    let path = connect(&first)
        .await
        .network_lookup_by_name("t1")
        .await
        .unwrap();
    assert_eq!(path.as_str(), T1_PATH);
    network(&second, T1_PATH).await.undefine().await.unwrap();

    let gone = format!("Network not found: no network with matching uuid '{T1_UUID}' (t1)");
    let t1 = network(&first, T1_PATH).await;
    assert_eq!(libvirt_message(t1.create().await), gone);
    assert_eq!(libvirt_message(t1.destroy().await), gone);
    assert_eq!(libvirt_message(t1.undefine().await), gone);
    assert_eq!(libvirt_message(t1.get_xml_desc(0).await), gone);
    assert_eq!(libvirt_message(t1.get_dhcp_leases("", 0).await), gone);
    assert_eq!(
        libvirt_message(t1.update(4, 4, -1, "<host/>", 0).await),
        gone
    );
    assert_eq!(libvirt_message(t1.set_autostart(true).await), gone);
    let property = first
        .call_method(
            Some(BUS_NAME),
            T1_PATH,
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &("org.libvirt.Network", "Active"),
        )
        .await;
    assert_eq!(libvirt_message(property), gone);
    assert_eq!(
        ok(&client(
            &driver.bus,
            BUS_NAME,
            &["net-list", "--all", "--name"]
        )),
        "default\n\n",
        "nothing came back"
    );

    let renamed = T1.replace("<name>t1</name>", "<name>t1b</name>");
    connect(&second)
        .await
        .network_define_xml(&renamed)
        .await
        .unwrap();
    assert!(
        t1.get_xml_desc(0)
            .await
            .unwrap()
            .contains("<name>t1b</name>")
    );
    network(&second, T1_PATH).await.undefine().await.unwrap();
    assert_eq!(
        libvirt_message(t1.create().await),
        format!("Network not found: no network with matching uuid '{T1_UUID}' (t1b)")
    );
}

/// net-start of a network another client undefines between the lookup
/// and the start: virsh's two lines, libvirt's "Network not found". When
/// so many networks went since that the daemon no longer keeps its
/// object, the client says the same without the name.
#[test]
fn net_start_of_a_network_undefined_meanwhile_says_network_not_found() {
    let driver = TestDriver::start("racestart", BUS_NAME, |_| None);
    let file = driver.scratch.0.join("t1.xml");
    std::fs::write(&file, T1).unwrap();
    ok(&client(
        &driver.bus,
        BUS_NAME,
        &["net-define", file.to_str().unwrap()],
    ));
    let socket = HoldingSocket::new(&driver, "start", "NetworkLookupByName");
    let output = race(&socket, cli_through(&socket, &["net-start", "t1"]), || {
        ok(&client(&driver.bus, BUS_NAME, &["net-undefine", "t1"]));
    });
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        format!(
            "error: Failed to start network t1\n\
             error: Network not found: no network with matching uuid '{T1_UUID}' (t1)\n"
        )
    );

    ok(&client(
        &driver.bus,
        BUS_NAME,
        &["net-define", file.to_str().unwrap()],
    ));
    let socket = HoldingSocket::new(&driver, "evicted", "NetworkLookupByName");
    let output = race(&socket, cli_through(&socket, &["net-start", "t1"]), || {
        ok(&client(&driver.bus, BUS_NAME, &["net-undefine", "t1"]));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(push_out_kept_objects(&driver.bus));
    });
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        format!(
            "error: Failed to start network t1\n\
             error: Network not found: no network with matching uuid '{T1_UUID}'\n"
        )
    );
}

/// Defines and undefines networks until the daemon drops t1's object.
async fn push_out_kept_objects(bus: &str) {
    let connection = zbus::connection::Builder::address(bus)
        .build()
        .await
        .unwrap();
    let connect = ConnectProxy::builder(&connection)
        .destination(BUS_NAME)
        .path("/org/libvirt/Test")
        .build()
        .await
        .unwrap();
    let t1_present = || async {
        !matches!(
            network(&connection, T1_PATH).await.get_xml_desc(0).await,
            Err(zbus::Error::FDO(ref error)) if matches!(**error, zbus::fdo::Error::UnknownObject(_))
        )
    };
    let mut count = 0u32;
    while t1_present().await {
        assert!(count < 1000, "t1's object is kept for ever");
        let xml = format!(
            "<network><name>churn{count}</name><uuid>00000000-0000-4000-8000-{count:012x}</uuid></network>"
        );
        let path = connect.network_define_xml(&xml).await.unwrap();
        network(&connection, path.as_str())
            .await
            .undefine()
            .await
            .unwrap();
        count += 1;
    }
    assert!(count > 100, "t1's object went after only {count} others");
}

/// net-create of a network a racer destroys (so removes) before the
/// client could read it back: the creation took effect and is reported.
#[test]
fn net_create_reports_what_its_call_did_though_a_racer_removes_the_network() {
    let driver = TestDriver::start("racecreate", BUS_NAME, |_| None);
    let file = driver.scratch.0.join("t1.xml");
    std::fs::write(&file, T1).unwrap();
    let file = file.to_str().unwrap();
    let socket = HoldingSocket::new(&driver, "create", "NetworkCreateXML");
    let racer = || {
        let listed = || ok(&client(&driver.bus, BUS_NAME, &["net-list", "--name"]));
        assert_eq!(listed(), "default\nt1\n\n", "the creation took effect");
        ok(&client(&driver.bus, BUS_NAME, &["net-destroy", "t1"]));
        assert_eq!(listed(), "default\n\n");
    };
    let output = race(&socket, cli_through(&socket, &["net-create", file]), racer);
    assert_eq!(
        ok(&output),
        format!("Network t1 created from {file}\n\n"),
        "{}",
        text(&output.stderr)
    );
}

//! virtnetd with its test driver (`--driver test`, like libvirt's
//! `test:///default`) on a private bus: the CLI against virsh's own output
//! on libvirt's test driver, the D-Bus contract against libvirt-dbus's
//! interface files, events and errors.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::daemon::{TestDriver, client};
use common::users::TestUser;
use futures_util::StreamExt;
use quick_xml::events::Event;
use zbus::{MatchRule, MessageStream, OwnedObjectPath};

const BUS_NAME: &str = "org.libvirt";
const DEFAULT_PATH: &str = "/org/libvirt/Test/network/_dd8fe884_6c02_601e_7551_cca97df1c5df";
const VIRTNET_PATH: &str = virtnet::dbus::VIRTNET_CONNECT_PATH;
const INTERFACES: &str = "/usr/share/dbus-1/interfaces";

fn setup(label: &str) -> TestDriver {
    TestDriver::start(label, BUS_NAME, |_| None)
}

const T1: &str = "<network>
  <name>t1</name>
  <uuid>0c7b2f4a-5f55-4a3c-9d3c-3d2f1b0e9a11</uuid>
  <bridge name='vt1br0'/>
  <ip address='10.9.0.1' prefix='24'>
    <dhcp>
      <range start='10.9.0.10' end='10.9.0.20'/>
    </dhcp>
  </ip>
</network>
";

const T2: &str = "<network>
  <name>t2</name>
  <uuid>5a0a3a2e-7b4e-4f44-8f6c-0b8e8c1f2d33</uuid>
  <forward mode='route'/>
  <bridge name='vt2br0' stp='off'/>
  <ip address='10.10.0.1' netmask='255.255.255.0'/>
</network>
";

/// The same commands through virsh on libvirt's test driver (one virsh
/// process, which keeps the driver's state) and through virtnet on
/// virtnetd's: standard output must be identical, byte for byte.
#[test]
fn cli_prints_what_virsh_prints_on_the_test_driver() {
    let no_virsh = Command::new("virsh").arg("--version").output().is_err();
    if common::missing_tool(
        no_virsh,
        "virsh is not installed (scripts/setup installs libvirt-clients)",
    ) {
        return;
    }
    let setup = setup("cli");
    let t1 = setup.scratch.0.join("t1.xml");
    let t2 = setup.scratch.0.join("t2.xml");
    std::fs::write(&t1, T1).unwrap();
    std::fs::write(&t2, T2).unwrap();
    let (t1, t2) = (t1.display().to_string(), t2.display().to_string());
    let host = "<host mac='00:16:3e:77:e2:ed' name='foo' ip='192.168.122.10'/>";
    let commands: Vec<Vec<&str>> = vec![
        vec!["net-list", "--all"],
        vec!["net-info", "default"],
        vec!["net-uuid", "default"],
        vec!["net-name", "dd8fe884-6c02-601e-7551-cca97df1c5df"],
        vec!["net-dumpxml", "default"],
        vec!["net-destroy", "default"],
        vec!["net-list"],
        vec!["net-list", "--inactive", "--name"],
        vec!["net-start", "default"],
        vec!["net-autostart", "default"],
        vec!["net-list", "--autostart"],
        vec!["net-autostart", "--disable", "default"],
        vec!["net-define", &t1],
        vec!["net-list", "--all"],
        vec!["net-dumpxml", "t1"],
        vec!["net-start", "t1"],
        vec!["net-list", "--all", "--uuid"],
        vec!["net-destroy", "t1"],
        vec!["net-undefine", "t1"],
        vec!["net-create", &t2],
        vec!["net-list", "--transient"],
        vec!["net-dumpxml", "t2"],
        vec!["net-destroy", "t2"],
        vec!["net-list", "--all"],
        vec![
            "net-update",
            "default",
            "add",
            "ip-dhcp-host",
            host,
            "--live",
            "--config",
        ],
        vec!["net-dumpxml", "default"],
        vec!["net-info", "nosuch"],
    ];
    let script: Vec<String> = commands
        .iter()
        .map(|words| {
            words
                .iter()
                .map(|word| {
                    if word.contains('\'') {
                        format!("\"{word}\"")
                    } else {
                        format!("'{word}'")
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let virsh = Command::new("virsh")
        .args(["-c", "test:///default", &script.join("; ")])
        .output()
        .expect("virsh runs");
    let expected = String::from_utf8_lossy(&virsh.stdout).into_owned();
    let mut ours = String::new();
    for words in &commands {
        let output = client(&setup.bus, BUS_NAME, words);
        ours.push_str(&String::from_utf8_lossy(&output.stdout));
    }
    assert_eq!(ours, expected, "virtnet's output differs from virsh's");
    assert!(expected.contains("Network t2 created from"), "{expected}");
}

/// One interface of an introspection document: members with their
/// signatures, in a form two documents can be compared by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Interface {
    /// Method name → arguments (name, type, direction).
    methods: BTreeMap<String, Vec<(String, String, String)>>,
    /// Property name → (type, access).
    properties: BTreeMap<String, (String, String)>,
    /// Signal name → arguments (name, type).
    signals: BTreeMap<String, Vec<(String, String)>>,
}

/// The interfaces of the introspected object itself (zbus describes its
/// children's too, in nested nodes, which are skipped).
fn interfaces(xml: &str) -> BTreeMap<String, Interface> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut found: BTreeMap<String, Interface> = BTreeMap::new();
    let mut interface = String::new();
    let mut member: Option<(String, String)> = None;
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().expect("introspection XML parses");
        let (element, closes) = match &event {
            Event::Start(element) => {
                if element.name().as_ref() == "node" {
                    depth += 1;
                }
                (element.clone(), false)
            }
            Event::Empty(element) => (element.clone(), true),
            Event::End(element) => {
                match element.name().as_ref() {
                    "node" => depth -= 1,
                    "method" | "signal" | "property" => member = None,
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        if depth != 1 {
            continue;
        }
        let attribute = |name: &str| {
            element
                .try_get_attribute(name)
                .ok()
                .flatten()
                .map(|value| value.value.to_string())
                .unwrap_or_default()
        };
        let entry = found.entry(interface.clone()).or_default();
        match element.name().as_ref() {
            "interface" => {
                interface = attribute("name");
                found.entry(interface.clone()).or_default();
            }
            "method" => {
                entry.methods.entry(attribute("name")).or_default();
                member = (!closes).then(|| ("method".into(), attribute("name")));
            }
            "signal" => {
                entry.signals.entry(attribute("name")).or_default();
                member = (!closes).then(|| ("signal".into(), attribute("name")));
            }
            "property" => {
                entry
                    .properties
                    .insert(attribute("name"), (attribute("type"), attribute("access")));
            }
            "arg" => match &member {
                Some((kind, name)) if kind == "method" => {
                    let direction = match attribute("direction").as_str() {
                        "" => "in".to_owned(),
                        other => other.to_owned(),
                    };
                    entry.methods.entry(name.clone()).or_default().push((
                        attribute("name"),
                        attribute("type"),
                        direction,
                    ));
                }
                Some((_, name)) => {
                    entry
                        .signals
                        .entry(name.clone())
                        .or_default()
                        .push((attribute("name"), attribute("type")));
                }
                None => {}
            },
            _ => {}
        }
    }
    found
}

async fn introspect(connection: &zbus::Connection, bus_name: &str, path: &str) -> String {
    let reply = connection
        .call_method(
            Some(bus_name),
            path,
            Some("org.freedesktop.DBus.Introspectable"),
            "Introspect",
            &(),
        )
        .await
        .expect("Introspect answers");
    reply.body().deserialize().expect("a string")
}

/// Our introspection declares what Debian's libvirt-dbus interface files
/// declare, signature for signature: all of org.libvirt.Network (plus the
/// BridgeName property), and the network part of org.libvirt.Connect.
#[tokio::test(flavor = "current_thread")]
async fn introspection_matches_libvirt_dbus_interface_files() {
    let Ok(network_file) = std::fs::read_to_string(format!("{INTERFACES}/org.libvirt.Network.xml"))
    else {
        common::missing_tool(
            true,
            &format!(
                "{INTERFACES} has no libvirt-dbus files (scripts/setup installs libvirt-dbus)"
            ),
        );
        return;
    };
    let connect_file =
        std::fs::read_to_string(format!("{INTERFACES}/org.libvirt.Connect.xml")).unwrap();
    let setup = setup("introspect");
    let connection = zbus::connection::Builder::address(setup.bus.as_str())
        .build()
        .await
        .unwrap();

    let ours = interfaces(&introspect(&connection, BUS_NAME, DEFAULT_PATH).await);
    let mut network = ours["org.libvirt.Network"].clone();
    assert_eq!(
        network.properties.remove("BridgeName"),
        Some(("s".into(), "read".into()))
    );
    assert_eq!(network, interfaces(&network_file)["org.libvirt.Network"]);

    let ours = interfaces(&introspect(&connection, BUS_NAME, "/org/libvirt/Test").await);
    let connect = &ours["org.libvirt.Connect"];
    let declared = &interfaces(&connect_file)["org.libvirt.Connect"];
    let network_members: BTreeSet<&String> = declared
        .methods
        .keys()
        .filter(|name| name.contains("Network"))
        .collect();
    assert_eq!(network_members.len(), 5, "{network_members:?}");
    for name in network_members {
        assert_eq!(
            connect.methods.get(name),
            declared.methods.get(name),
            "{name}"
        );
    }
    assert_eq!(connect.methods.len(), 5, "no method beyond networks");
    assert_eq!(connect.properties, declared.properties);
    assert_eq!(
        connect.signals.get("NetworkEvent"),
        declared.signals.get("NetworkEvent")
    );
    drop(setup);
}

/// Lifecycle events arrive as libvirt-dbus sends them, errors carry
/// libvirt's name and message, and the libvirt-dbus test suite's calls
/// (update with flags 0 on the active test network) behave.
#[tokio::test(flavor = "current_thread")]
async fn events_errors_and_updates_follow_libvirt_dbus() {
    let setup = setup("events");
    let connection = zbus::connection::Builder::address(setup.bus.as_str())
        .build()
        .await
        .unwrap();
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface("org.libvirt.Connect")
        .member("NetworkEvent")
        .build()
        .unwrap();
    let mut signals = MessageStream::for_match_rule(rule, &connection, None)
        .await
        .unwrap();
    let connect = virtnet::dbus::client::ConnectProxy::builder(&connection)
        .destination(BUS_NAME)
        .path("/org/libvirt/Test")
        .build()
        .await
        .unwrap();

    let path = connect.network_define_xml(T1).await.unwrap();
    assert_eq!(
        path.as_str(),
        "/org/libvirt/Test/network/_0c7b2f4a_5f55_4a3c_9d3c_3d2f1b0e9a11"
    );
    let network = virtnet::dbus::client::NetworkProxy::builder(&connection)
        .destination(BUS_NAME)
        .path(path.clone())
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    network.create().await.unwrap();
    network.destroy().await.unwrap();
    network.undefine().await.unwrap();
    let mut events = Vec::new();
    while events.len() < 4 {
        let message = signals.next().await.unwrap().unwrap();
        let (object, event): (OwnedObjectPath, i32) = message.body().deserialize().unwrap();
        assert_eq!(object, path);
        events.push(event);
    }
    assert_eq!(events, [0, 2, 3, 1], "DEFINED, STARTED, STOPPED, UNDEFINED");

    let error = connect.network_lookup_by_name("t1").await.unwrap_err();
    match error {
        zbus::Error::MethodError(name, description, _) => {
            assert_eq!(name.as_str(), "org.libvirt.Error");
            assert_eq!(
                description.as_deref(),
                Some("Network not found: no network with matching name 't1'")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let uuid_without_dashes = connect
        .network_lookup_by_uuid("dd8fe8846c02601e7551cca97df1c5df")
        .await
        .unwrap();
    assert_eq!(uuid_without_dashes.as_str(), DEFAULT_PATH);

    let default = virtnet::dbus::client::NetworkProxy::builder(&connection)
        .destination(BUS_NAME)
        .path(DEFAULT_PATH)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    let host = "<host mac='00:16:3e:77:e2:ed' name='foo.example.com' ip='192.168.122.10'/>";
    default.update(4, 4, 0, host, 0).await.unwrap();
    assert!(default.get_xml_desc(0).await.unwrap().contains(host));
    assert!(
        !default.get_xml_desc(1).await.unwrap().contains(host),
        "flags 0 on an active network change the live definition only"
    );
    default.set_autostart(true).await.unwrap();
    assert!(default.autostart().await.unwrap());

    let status = setup.daemon.terminate();
    assert!(status.success(), "SIGTERM ends virtnetd cleanly: {status}");
}

/// A bus configured as Debian's system bus, with these policy files from
/// packaging/dbus/ included.
fn system_like_bus(dir: &Path, policies: &[&str]) -> Option<PathBuf> {
    let includes: String = policies
        .iter()
        .map(|file| {
            let path = common::project_dir().join("packaging/dbus").join(file);
            format!("  <include>{}</include>\n", path.display())
        })
        .collect();
    let listen = format!("unix:path={}", dir.join("bus").display());
    let config = common::daemon::system_bus_config(&listen, &includes);
    let path = dir.join("system-like.conf");
    std::fs::write(&path, config).unwrap();
    Some(path)
}

/// What org.virtnet's policy lets every user call: reading.
const READS: [(&str, &str); 13] = [
    ("org.freedesktop.DBus.Introspectable", "Introspect"),
    ("org.freedesktop.DBus.Peer", "Ping"),
    ("org.freedesktop.DBus.Peer", "GetMachineId"),
    ("org.freedesktop.DBus.Properties", "Get"),
    ("org.freedesktop.DBus.Properties", "GetAll"),
    ("org.libvirt.Connect", "ListNetworks"),
    ("org.libvirt.Connect", "NetworkLookupByName"),
    ("org.libvirt.Connect", "NetworkLookupByUUID"),
    ("org.virtnet.Connect", "ListNetworkSummaries"),
    ("org.virtnet.Connect", "Diagnose"),
    ("org.libvirt.Network", "GetXMLDesc"),
    ("org.libvirt.Network", "GetDHCPLeases"),
    ("org.virtnet.Network", "GetMetadata"),
];

/// A call a client can make on one of the daemon's objects, with its
/// arguments in dbus-send's notation.
#[derive(Debug)]
struct Call {
    path: &'static str,
    interface: String,
    member: String,
    args: Vec<String>,
}

impl Call {
    fn is(&self, interface: &str, member: &str) -> bool {
        self.interface == interface && self.member == member
    }

    fn is_read(&self) -> bool {
        READS
            .iter()
            .any(|(interface, member)| self.is(interface, member))
    }
}

const HOST: &str = "<host mac='00:16:3e:77:e2:ed' name='foo' ip='192.168.122.10'/>";

/// Every call introspection declares at the daemon's objects: each
/// method, with arguments that would change something where it can, and
/// a property Set for each property (read-only ones too: the policy must
/// refuse before the daemon does).
async fn every_call(bus: &str, bus_name: &str) -> Vec<Call> {
    let connection = zbus::connection::Builder::address(bus)
        .build()
        .await
        .unwrap();
    let mut calls = Vec::new();
    for path in [VIRTNET_PATH, "/org/libvirt/Test", DEFAULT_PATH] {
        let introspected = interfaces(&introspect(&connection, bus_name, path).await);
        let properties: Vec<(String, String, String)> = introspected
            .iter()
            .flat_map(|(interface, members)| {
                members
                    .properties
                    .iter()
                    .map(|(name, (kind, _))| (interface.clone(), name.clone(), kind.clone()))
            })
            .collect();
        let (some_interface, some_property, _) = properties.first().expect("properties").clone();
        for (interface, members) in &introspected {
            for (member, arguments) in &members.methods {
                let args = match (interface.as_str(), member.as_str()) {
                    ("org.freedesktop.DBus.Properties", "Set") => {
                        for (owner, property, kind) in &properties {
                            calls.push(Call {
                                path,
                                interface: interface.clone(),
                                member: member.clone(),
                                args: vec![
                                    format!("string:{owner}"),
                                    format!("string:{property}"),
                                    format!("variant:{}", dummy(kind)),
                                ],
                            });
                        }
                        continue;
                    }
                    ("org.freedesktop.DBus.Properties", "Get") => vec![
                        format!("string:{some_interface}"),
                        format!("string:{some_property}"),
                    ],
                    ("org.freedesktop.DBus.Properties", "GetAll") => {
                        vec![format!("string:{some_interface}")]
                    }
                    ("org.libvirt.Connect", "NetworkCreateXML") => vec![format!("string:{T2}")],
                    ("org.libvirt.Connect", "NetworkDefineXML") => vec![format!("string:{T1}")],
                    ("org.libvirt.Connect", "NetworkLookupByName") => vec!["string:default".into()],
                    ("org.libvirt.Connect", "NetworkLookupByUUID") => {
                        vec!["string:dd8fe884-6c02-601e-7551-cca97df1c5df".into()]
                    }
                    // The title, which the test gives the network.
                    ("org.virtnet.Network", "GetMetadata") => {
                        vec!["int32:1".into(), "string:".into(), "uint32:0".into()]
                    }
                    ("org.libvirt.Network", "Update") => vec![
                        "uint32:4".into(),
                        "uint32:4".into(),
                        "int32:-1".into(),
                        format!("string:{HOST}"),
                        "uint32:0".into(),
                    ],
                    // libvirt's test driver (opened inside virtnetd) runs
                    // a network of our default's name and uuid.
                    ("org.virtnet.Connect", "ImportFromLibvirt") => vec![
                        "string:test:///default".into(),
                        "array:string:default".into(),
                        "uint32:1".into(),
                    ],
                    // Every active network.
                    ("org.virtnet.Connect", "Diagnose") => vec!["string:".into()],
                    ("org.libvirt.Network", "GetDHCPLeases") => {
                        vec!["string:".into(), "uint32:0".into()]
                    }
                    _ => arguments
                        .iter()
                        .filter(|(_, _, direction)| direction == "in")
                        .map(|(_, kind, _)| dummy(kind))
                        .collect(),
                };
                calls.push(Call {
                    path,
                    interface: interface.clone(),
                    member: member.clone(),
                    args,
                });
            }
        }
    }
    calls
}

/// A value of D-Bus type `kind` in dbus-send's notation.
fn dummy(kind: &str) -> String {
    match kind {
        "s" => "string:x".into(),
        "b" => "boolean:true".into(),
        "u" => "uint32:0".into(),
        "i" => "int32:0".into(),
        "t" => "uint64:0".into(),
        "x" => "int64:0".into(),
        "as" => "array:string:x".into(),
        other => panic!("no dummy value for D-Bus type {other}: add one"),
    }
}

/// setpriv as `nobody`, with the supplementary `groups` only.
fn as_nobody(groups: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534"]);
    if groups.is_empty() {
        command.arg("--clear-groups");
    } else {
        command.arg(format!("--groups={groups}"));
    }
    command
}

/// `call` made by dbus-send as `nobody` with `groups`.
fn send(bus: &str, bus_name: &str, groups: &str, call: &Call) -> std::process::Output {
    as_nobody(groups)
        .arg("dbus-send")
        .arg(format!("--bus={bus}"))
        .args(["--print-reply", &format!("--dest={bus_name}"), call.path])
        .arg(format!("{}.{}", call.interface, call.member))
        .args(&call.args)
        .output()
        .expect("dbus-send runs")
}

fn access_denied(output: &std::process::Output) -> bool {
    !output.status.success()
        && String::from_utf8_lossy(&output.stderr)
            .contains("Error org.freedesktop.DBus.Error.AccessDenied")
}

/// Everything a client could see of the networks, read as root.
fn everything(bus: &str, bus_name: &str) -> String {
    let read = |args: &[&str]| String::from_utf8(client(bus, bus_name, args).stdout).unwrap();
    let mut seen = read(&["net-list", "--all"]);
    for name in read(&["net-list", "--all", "--name"]).split_whitespace() {
        for args in [
            &["net-dumpxml", name][..],
            &["net-dumpxml", "--inactive", name],
        ] {
            seen.push_str(&read(args));
        }
    }
    seen
}

/// With org.virtnet's policy on a system-like bus, a user other than root
/// and outside group `libvirt` may make the reading calls, and every other
/// call introspection declares (methods and property settings alike) is
/// refused with AccessDenied,
/// changing nothing, with the network active and inactive; nor may that
/// user own virtnet's name.
#[tokio::test(flavor = "current_thread")]
async fn policy_lets_other_users_read_only() {
    let setup = TestDriver::start("policy", "org.virtnet", |dir| {
        system_like_bus(dir, &["org.virtnet.conf"])
    });
    let titled = client(
        &setup.bus,
        "org.virtnet",
        &[
            "net-desc", "default", "--title", "--live", "--config", "Lab",
        ],
    );
    assert!(titled.status.success(), "{titled:?}");
    let calls = every_call(&setup.bus, "org.virtnet").await;
    for (interface, member) in READS {
        assert!(
            calls.iter().any(|call| call.is(interface, member)),
            "{interface}.{member} is not declared"
        );
    }
    for (interface, member) in [
        ("org.libvirt.Connect", "NetworkCreateXML"),
        ("org.libvirt.Connect", "NetworkDefineXML"),
        ("org.virtnet.Connect", "ReloadFirewall"),
        ("org.libvirt.Network", "Create"),
        ("org.libvirt.Network", "Destroy"),
        ("org.libvirt.Network", "Undefine"),
        ("org.libvirt.Network", "Update"),
        ("org.virtnet.Connect", "ImportFromLibvirt"),
    ] {
        assert!(calls.iter().any(|call| call.is(interface, member)));
    }
    assert!(
        calls
            .iter()
            .any(|call| call.member == "Set" && call.args[1] == "string:Autostart")
    );
    for active in [true, false] {
        if !active {
            let destroyed = client(&setup.bus, "org.virtnet", &["net-destroy", "default"]);
            assert!(destroyed.status.success());
        }
        let before = everything(&setup.bus, "org.virtnet");
        assert_eq!(before.contains(" active "), active, "{before}");
        for call in &calls {
            let output = send(&setup.bus, "org.virtnet", "", call);
            if call.is_read() {
                assert!(
                    output.status.success(),
                    "{call:?}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            } else {
                assert!(
                    access_denied(&output),
                    "{call:?} was not refused: {}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        assert_eq!(
            everything(&setup.bus, "org.virtnet"),
            before,
            "nothing changed"
        );
    }
    // virtnet says so in one line, not in the bus's words.
    let refused = as_nobody("")
        .arg(env!("CARGO_BIN_EXE_virtnet"))
        .args(["--bus-address", &setup.bus, "net-destroy", "default"])
        .output()
        .expect("setpriv runs");
    assert!(!refused.status.success());
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "error: access denied: the bus's policy does not let this user call Destroy on virtnetd\n"
    );
    let rival = as_nobody("")
        .arg(env!("CARGO_BIN_EXE_virtnetd"))
        .args(["--driver", "test", "--bus-address", &setup.bus])
        .output()
        .expect("setpriv runs");
    assert!(!rival.status.success());
    assert!(
        String::from_utf8_lossy(&rival.stderr).contains("cannot own the name org.virtnet"),
        "{}",
        String::from_utf8_lossy(&rival.stderr)
    );
}

/// With org.virtnet's policy, a member of group `libvirt` (in /etc/group,
/// as `adduser alice libvirt` makes one) manages networks without sudo,
/// as on Debian's libvirt, while a user outside the group may not.
#[tokio::test(flavor = "current_thread")]
async fn policy_lets_the_libvirt_group_manage_networks() {
    let member = TestUser::in_group("pol", "libvirt");
    let setup = TestDriver::start("policygrp", "org.virtnet", |dir| {
        system_like_bus(dir, &["org.virtnet.conf"])
    });
    let as_user = |mut command: Command, args: &[&str]| {
        command
            .arg(env!("CARGO_BIN_EXE_virtnet"))
            .args(["--bus-address", &setup.bus])
            .args(args)
            .output()
            .expect("setpriv runs")
    };
    let state = || {
        String::from_utf8(client(&setup.bus, "org.virtnet", &["net-list", "--all"]).stdout).unwrap()
    };
    for change in [
        &["net-destroy", "default"][..],
        &["net-autostart", "default"],
    ] {
        let before = state();
        let refused = as_user(as_nobody(""), change);
        assert!(!refused.status.success(), "{change:?} by a non-member");
        assert_eq!(
            state(),
            before,
            "{change:?} by a non-member changed nothing"
        );
        let output = as_user(member.command(), change);
        assert!(
            output.status.success(),
            "{change:?} by a member of libvirt: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(
        client(
            &setup.bus,
            "org.virtnet",
            &["net-list", "--inactive", "--autostart", "--name"]
        )
        .stdout,
        b"default\n\n"
    );
}

/// packaging's policy for the drop-in name org.libvirt is libvirt-dbus's:
/// root owns the name (the daemon starts), root and the libvirt group
/// call everything, and any other user calls nothing at all, reading
/// included; no other user may own the name.
#[tokio::test(flavor = "current_thread")]
async fn libvirt_name_policy_gives_libvirt_dbuss_access() {
    let group = Command::new("getent")
        .args(["group", "libvirt"])
        .output()
        .expect("getent runs");
    let group = String::from_utf8_lossy(&group.stdout);
    let gid = group
        .split(':')
        .nth(2)
        .expect("a libvirt group (scripts/setup installs libvirt-daemon)")
        .to_owned();
    let setup = TestDriver::start("policylv", BUS_NAME, |dir| {
        system_like_bus(dir, &["virtnet-org.libvirt.conf"])
    });
    let before = everything(&setup.bus, BUS_NAME);
    for call in every_call(&setup.bus, BUS_NAME).await {
        let output = send(&setup.bus, BUS_NAME, "", &call);
        assert!(
            access_denied(&output),
            "{call:?} was not refused: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(everything(&setup.bus, BUS_NAME), before, "nothing changed");

    let as_libvirt_member = |args: &[&str]| {
        as_nobody(&gid)
            .arg(env!("CARGO_BIN_EXE_virtnet"))
            .args(["--bus-address", &setup.bus, "--bus-name", BUS_NAME])
            .args(args)
            .output()
            .expect("setpriv runs")
    };
    for change in [
        &["net-destroy", "default"][..],
        &["net-autostart", "default"],
    ] {
        let output = as_libvirt_member(change);
        assert!(
            output.status.success(),
            "{change:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(
        client(
            &setup.bus,
            BUS_NAME,
            &["net-list", "--inactive", "--autostart", "--name"]
        )
        .stdout,
        b"default\n\n"
    );
    let rival = as_nobody(&gid)
        .arg(env!("CARGO_BIN_EXE_virtnetd"))
        .args([
            "--driver",
            "test",
            "--bus-name",
            BUS_NAME,
            "--bus-address",
            &setup.bus,
        ])
        .output()
        .expect("setpriv runs");
    assert!(
        String::from_utf8_lossy(&rival.stderr).contains("cannot own the name org.libvirt"),
        "{}",
        String::from_utf8_lossy(&rival.stderr)
    );
}

/// import: libvirt's persistent networks, as libvirt keeps them on disk
/// (its header comment, assigned bridge and MAC, autostart links), defined
/// in virtnet as they are; --dry-run changes nothing.
#[test]
fn import_takes_libvirt_definitions_as_they_are() {
    let setup = setup("import");
    let dir = setup.scratch.0.join("libvirt-networks");
    std::fs::create_dir_all(dir.join("autostart")).unwrap();
    let header = "<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n\
        OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:\n  \
        virsh net-edit lab\nor other application using the libvirt API.\n-->\n\n";
    let lab = "<network>\n  <name>lab</name>\n  <uuid>7a3b1c52-0d5e-4f6a-9b8c-1d2e3f405162</uuid>\n  \
        <forward mode='nat'/>\n  <bridge name='virbr7' stp='on' delay='0'/>\n  \
        <mac address='52:54:00:12:34:56'/>\n  <ip address='192.168.150.1' netmask='255.255.255.0'>\n    \
        <dhcp>\n      <range start='192.168.150.2' end='192.168.150.254'/>\n    </dhcp>\n  </ip>\n</network>\n";
    std::fs::write(dir.join("lab.xml"), format!("{header}{lab}")).unwrap();
    std::os::unix::fs::symlink(dir.join("lab.xml"), dir.join("autostart/lab.xml")).unwrap();
    std::fs::write(
        dir.join("quiet.xml"),
        "<network><name>quiet</name><uuid>0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0</uuid>\
         <bridge name='virbr8'/><ip address='10.8.0.1' prefix='24'/></network>",
    )
    .unwrap();
    let dir_arg = dir.to_str().unwrap();

    let dry = client(
        &setup.bus,
        BUS_NAME,
        &["import", "--dir", dir_arg, "--dry-run"],
    );
    assert_eq!(
        String::from_utf8_lossy(&dry.stdout),
        "Would import network lab (uuid 7a3b1c52-0d5e-4f6a-9b8c-1d2e3f405162, bridge virbr7, mac 52:54:00:12:34:56, autostart)\n\
         Would import network quiet (uuid 0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0, bridge virbr8, mac -)\n\n"
    );
    let list = || client(&setup.bus, BUS_NAME, &["net-list", "--all", "--name"]).stdout;
    assert_eq!(list(), b"default\n\n", "a dry run defines nothing");

    let imported = client(&setup.bus, BUS_NAME, &["import", "--dir", dir_arg]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert_eq!(list(), b"default\nlab\nquiet\n\n");
    let xml = client(&setup.bus, BUS_NAME, &["net-dumpxml", "--inactive", "lab"]);
    assert_eq!(String::from_utf8_lossy(&xml.stdout), format!("{lab}\n"));
    let autostarted = client(
        &setup.bus,
        BUS_NAME,
        &["net-list", "--all", "--autostart", "--name"],
    );
    assert_eq!(autostarted.stdout, b"lab\n\n");

    let unknown = client(
        &setup.bus,
        BUS_NAME,
        &["import", "--dir", dir_arg, "nosuch"],
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no network named 'nosuch'"));
}

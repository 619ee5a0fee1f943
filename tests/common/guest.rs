//! Guests: namespaces configured by real DHCP (busybox udhcpc).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::netns::Netns;

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    ;;
esac
exit 0
"#;

/// Writes udhcpc's event script into `dir`; returns its path.
pub fn udhcpc_script(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("udhcpc.script");
    std::fs::write(&script, UDHCPC_SCRIPT).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Runs real DHCP in the guest; returns the address it was given.
pub fn dhcp(guest: &Netns, script: &Path) -> Ipv4Addr {
    guest.exec_ok(&[
        "busybox",
        "udhcpc",
        "-i",
        "eth0",
        "-n",
        "-q",
        "-t",
        "30",
        "-T",
        "1",
        "-s",
        script.to_str().unwrap(),
    ]);
    ipv4_of(guest)
}

pub fn ipv4_of(ns: &Netns) -> Ipv4Addr {
    let output = ns.exec_ok(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    output
        .split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("no IPv4 address in {output}"))
}

/// With STP on (libvirt's default) a new port learns for a while before
/// it forwards.
pub fn wait_forwarding(host: &Netns, port: &str) {
    for _ in 0..200 {
        let state = host.exec_ok(&["bridge", "link", "show", "dev", port]);
        if state.contains("state forwarding") {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("port {port} never forwarded");
}

pub fn pings(ns: &Netns, address: &str) -> bool {
    ns.exec(&["busybox", "ping", "-c", "1", "-W", "2", address])
        .status
        .success()
}

/// Pings `target` from `guest` every `interval` seconds, `count` times, in
/// the background; its standard output is piped.
pub fn ping_flood(guest: &Netns, target: &str, count: u32, interval: &str) -> std::process::Child {
    std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &guest.name,
            "busybox",
            "ping",
            "-q",
            "-i",
            interval,
        ])
        .args(["-c", &count.to_string(), target])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ping runs")
}

/// Packets sent and received, from ping's summary.
pub fn ping_summary(output: &str) -> Option<(u32, u32)> {
    let line = output
        .lines()
        .find(|line| line.contains("packets transmitted"))?;
    let numbers: Vec<u32> = line
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    Some((*numbers.first()?, *numbers.get(1)?))
}

/// Opens a TCP connection from `client` to `listen` in `server` and
/// returns the peer (address and port) the server saw.
pub fn peer_seen(server: &Netns, client: &Netns, listen: SocketAddr) -> SocketAddr {
    let listener = server.run_in(|| TcpListener::bind(listen).expect("listen in the server"));
    // Polled with a deadline: a connection that never comes fails the test
    // instead of hanging it.
    listener.set_nonblocking(true).unwrap();
    let (peer, nc) = std::thread::scope(|scope| {
        let accept = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match listener.accept() {
                    Ok((mut stream, peer)) => {
                        stream.set_nonblocking(false).unwrap();
                        let mut buffer = [0u8; 16];
                        let _ = stream.read(&mut buffer);
                        return Some(peer);
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return None;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(error) => panic!("accept in the server: {error}"),
                }
            }
        });
        let nc = client.exec(&[
            "sh",
            "-c",
            &format!(
                "echo hello | busybox nc -w 3 {} {}",
                listen.ip(),
                listen.port()
            ),
        ]);
        (accept.join().expect("accept thread"), nc)
    });
    assert!(nc.status.success(), "nc from the client: {nc:?}");
    peer.expect("the server accepted the client's connection")
}

/// Whether the DNS server at `server` answers, within 700 ms, a query
/// sent from `ns` for `localhost`, which dnsmasq answers itself (from the
/// host's /etc/hosts) rather than forwarding.
pub fn dns_answers(ns: &Netns, server: IpAddr) -> bool {
    // Header: id 0x1234, recursion desired, one question; then the name,
    // type A, class IN.
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.push(9);
    query.extend(b"localhost");
    query.extend([0, 0, 1, 0, 1]);
    ns.run_in(|| {
        let local: SocketAddr = match server {
            IpAddr::V4(_) => "0.0.0.0:0".parse().unwrap(),
            IpAddr::V6(_) => "[::]:0".parse().unwrap(),
        };
        let socket = UdpSocket::bind(local).expect("a UDP socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        if socket.send_to(&query, (server, 53)).is_err() {
            return false;
        }
        let mut answer = [0u8; 512];
        matches!(socket.recv(&mut answer), Ok(size) if size >= 12 && answer[..2] == query[..2])
    })
}

/// Every file under `dir`.
pub fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

//! Calls stock virsh sent, replayed: the replies must be those virsh
//! accepted (tests/fixtures/rpc, where their capture is described).

use super::frame::{Frame, read_frame};
use crate::service::{Service, TestDriver};

pub(super) fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rpc")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

async fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut reader = bytes;
    let mut frames = Vec::new();
    while let Some(frame) = read_frame(&mut reader).await.expect("a whole frame") {
        frames.push(frame);
    }
    frames
}

/// The replies to the calls of `capture`.client, on a socket read-only or
/// not, against the test driver's initial state.
async fn replay(capture: &str, read_only: bool) -> Vec<u8> {
    let service = Service::new(TestDriver);
    service.load().await.expect("the test driver loads");
    super::replay(&service, read_only, &fixture(&format!("{capture}.client"))).await
}

#[tokio::test]
async fn virsh_calls_decode_in_the_order_virsh_makes_them() {
    let calls = frames(&fixture("netlist.client")).await;
    let procedures: Vec<i32> = calls.iter().map(|call| call.header.procedure).collect();
    // AUTH_LIST, keepalive?, OPEN, event callbacks?, close callbacks?,
    // REGISTER_CLOSE_CALLBACK, LIST_ALL_NETWORKS, then per network and
    // for net-info, UNREGISTER_CLOSE_CALLBACK, CLOSE.
    assert_eq!(
        procedures,
        [
            66, 60, 1, 60, 60, 360, 283, 44, 153, 152, 46, 152, 153, 44, 45, 361, 2
        ]
    );
    let serials: Vec<u32> = calls.iter().map(|call| call.header.serial).collect();
    assert_eq!(serials, (0..17).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_replies_are_those_virsh_accepted() {
    assert!(replay("netlist", false).await == fixture("netlist.server"));
}

#[tokio::test]
async fn the_read_only_refusal_is_the_one_virsh_printed() {
    assert!(replay("readonly", true).await == fixture("readonly.server"));
    // The same calls on the read-write socket are answered otherwise.
    assert!(replay("readonly", false).await != fixture("readonly.server"));
}

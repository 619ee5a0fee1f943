//! The fuzz target's property over virsh's captured sessions, every one cut
//! short at each byte and with each bit flipped: no panic, no hang, and
//! every reply a whole message within libvirt's limit, carrying the serial
//! of a call that was made. (tests/fuzz's `rpc_messages` runs the same
//! under libFuzzer.)

use super::frame::{Frame, MESSAGE_MAX, read_frame};
use super::golden_tests::fixture;
use super::replay;
use crate::service::{Service, TestDriver};

const CAPTURES: [&str; 4] = [
    "netlist.client",
    "readonly.client",
    // Replies are not calls: the connection closes at the first.
    "netlist.server",
    "readonly.server",
];

/// `input` answered on a fresh test driver; the replies checked.
async fn answers_cleanly(input: &[u8]) {
    let service = Service::new(TestDriver);
    service.load().await.expect("the test driver loads");
    let mut calls = Vec::new();
    let mut reader = input;
    while let Ok(Some(call)) = read_frame(&mut reader).await {
        calls.push(call.header.serial);
    }
    let output = replay(&service, false, input).await;
    let mut reader = output.as_slice();
    while let Some(reply) = read_frame(&mut reader)
        .await
        .expect("replies are whole messages")
    {
        assert!(reply.fits(), "a reply over the limit");
        assert!(
            calls.contains(&reply.header.serial),
            "a reply to no call: {reply:?}"
        );
    }
    assert!(output.len() <= calls.len() * (4 + MESSAGE_MAX as usize));
}

async fn capture_frames(name: &str) -> Vec<Frame> {
    let bytes = fixture(name);
    let mut reader = bytes.as_slice();
    let mut frames = Vec::new();
    while let Some(frame) = read_frame(&mut reader).await.expect("a whole frame") {
        frames.push(frame);
    }
    frames
}

#[tokio::test]
async fn captures_cut_short_anywhere_are_answered_cleanly() {
    for name in CAPTURES {
        let bytes = fixture(name);
        for end in 0..bytes.len() {
            answers_cleanly(&bytes[..end]).await;
        }
    }
}

#[tokio::test]
async fn captures_with_any_bit_flipped_are_answered_cleanly() {
    for name in CAPTURES {
        let bytes = fixture(name);
        for bit in 0..bytes.len() * 8 {
            let mut mutated = bytes.clone();
            mutated[bit / 8] ^= 1 << (bit % 8);
            answers_cleanly(&mutated).await;
        }
    }
}

/// Each captured call alone, its arguments cut at every byte and every
/// word replaced by values XDR decoders trip on (lengths at and over the
/// limits, booleans that are not, negative counts).
#[tokio::test]
async fn every_call_with_mangled_arguments_is_answered_cleanly() {
    const WORDS: [u32; 6] = [0, 1, 2, 0x7fff_ffff, 0x8000_0000, u32::MAX];
    for name in ["netlist.client", "readonly.client"] {
        let frames = capture_frames(name).await;
        // AUTH_LIST and CONNECT_OPEN first, as a client opens.
        let opening: Vec<u8> = frames[..3].iter().flat_map(Frame::encode).collect();
        for call in &frames {
            for end in 0..=call.body.len() {
                let cut = Frame {
                    header: call.header,
                    body: call.body[..end].to_vec(),
                };
                answers_cleanly(&[opening.clone(), cut.encode()].concat()).await;
            }
            for at in (0..call.body.len()).step_by(4) {
                for word in WORDS {
                    let mut body = call.body.clone();
                    let end = (at + 4).min(body.len());
                    body[at..end].copy_from_slice(&word.to_be_bytes()[..end - at]);
                    let mangled = Frame {
                        header: call.header,
                        body,
                    };
                    answers_cleanly(&[opening.clone(), mangled.encode()].concat()).await;
                }
            }
        }
    }
}

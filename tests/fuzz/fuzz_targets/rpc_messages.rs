//! Arbitrary bytes → one RPC connection's messages, answered in order on a
//! fresh test driver (`virtnet::rpc::replay`): the framing, the headers,
//! each call's arguments and the service behind them. No panic, and no
//! allocation beyond what the bytes ask within libvirt's limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use virtnet::service::{Service, TestDriver};

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let service = Service::new(TestDriver);
        service.load().await.expect("the test driver loads");
        virtnet::rpc::replay(&service, false, data).await;
    });
});

//! `virtnet`: virsh-style command-line client of virtnetd, with virsh's
//! verbs, options, output and messages (see `virtnet::cli`).

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    virtnet::cli::main(std::env::args().collect()).await
}

//! `virtnetd`: the virtnet daemon.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "virtnetd", version, about = "The virtnet network daemon")]
struct Cli {}

fn main() -> ExitCode {
    Cli::parse();
    eprintln!(
        "error: virtnetd cannot serve networks yet: this version only has the offline XML tools of `virtnet`"
    );
    ExitCode::FAILURE
}

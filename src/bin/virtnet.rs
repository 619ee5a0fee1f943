//! `virtnet`: virsh-style command-line client of virtnetd, with virsh's
//! verbs, output and messages (see `virtnet::cli`).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use virtnet::cli::args::virtnet::{Cli, Command};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let offline = matches!(
        cli.command,
        Command::XmlFormat { .. } | Command::XmlValidate { .. } | Command::GenerateDocs { .. }
    );
    match virtnet::cli::run(cli).await {
        Ok(output) => match std::io::stdout().write_all(output.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: cannot write output: {error}");
                ExitCode::FAILURE
            }
        },
        Err(failure) => {
            print!("{}", failure.output());
            eprint!("{}", failure.report());
            if !offline && failure.output().is_empty() {
                // virsh ends every command with a blank line, failed ones
                // too (doctor, not virsh's, ends with its summary).
                println!();
            }
            ExitCode::FAILURE
        }
    }
}

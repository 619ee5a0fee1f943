//! `virtnet` from command line to exit status: the command line read (and
//! refused in virsh's words), the verb run, what it printed written out.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use super::args::virtnet::Cli;
use super::output::Output;
use super::{usage, verbs};

/// Runs `virtnet` with `argv` (its own name first).
pub async fn main(argv: Vec<String>) -> ExitCode {
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(error) => {
            let verbs: Vec<String> = Cli::command()
                .get_subcommands()
                .map(|verb| verb.get_name().to_owned())
                .collect();
            match usage::from_clap(&error, &argv, &verbs) {
                Some(refusal) => {
                    eprint!("{}", refusal.report());
                    return ExitCode::FAILURE;
                }
                // Help and version: clap prints them.
                None => error.exit(),
            }
        }
    };
    let blank_line = verbs::closes_with_blank_line(&cli.command);
    let mut out = Output::new(cli.quiet);
    let result = verbs::run(cli, &mut out).await;
    let closing = blank_line
        && result
            .as_ref()
            .err()
            .is_none_or(|failure| !failure.is_usage());
    let written = std::io::stdout().write_all(out.finish(closing).as_bytes());
    match (result, written) {
        (Ok(()), Ok(())) => ExitCode::SUCCESS,
        (Ok(()), Err(error)) => {
            eprintln!("error: cannot write output: {error}");
            ExitCode::FAILURE
        }
        (Err(failure), _) => {
            eprint!("{}", failure.report());
            ExitCode::FAILURE
        }
    }
}

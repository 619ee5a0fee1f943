//! `virtnet`: virsh-style command-line client. The offline verbs work on
//! XML files without a daemon.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use virtnet::definition::{FormatFlags, NetworkDef, error_chain};
use virtnet::xml::tree::{MAX_DOCUMENT_BYTES, decode_document};

#[derive(Parser)]
#[command(name = "virtnet", version, about = "Manage virtnet virtual networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse a network XML file and print it in canonical form (as
    /// `virsh net-dumpxml --inactive` would after net-define).
    XmlFormat {
        /// The XML file, or `-` for standard input.
        file: String,
        /// Print the persistent configuration only.
        #[arg(long)]
        inactive: bool,
    },
    /// Check a network XML file as net-define would; prints "valid".
    XmlValidate {
        /// The XML file, or `-` for standard input.
        file: String,
    },
}

fn read_input(file: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    // Read one byte past the limit so an oversized input is detected
    // without reading all of it.
    let limit = MAX_DOCUMENT_BYTES as u64 + 1;
    let result = if file == "-" {
        std::io::stdin().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    result.map_err(|error| format!("Failed to read file '{file}': {error}"))?;
    Ok(bytes)
}

fn parse_file(file: &str) -> Result<NetworkDef, String> {
    let bytes = read_input(file)?;
    let text = decode_document(&bytes).map_err(|error| error_chain(&error))?;
    NetworkDef::parse(text).map_err(|error| error_chain(&error))
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::XmlFormat { file, inactive } => {
            let def = parse_file(&file)?;
            let xml = def.to_xml(FormatFlags { inactive });
            std::io::stdout()
                .write_all(xml.as_bytes())
                .map_err(|error| format!("cannot write output: {error}"))
        }
        Command::XmlValidate { file } => {
            let def = parse_file(&file)?;
            def.validate().map_err(|error| error_chain(&error))?;
            println!("valid");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

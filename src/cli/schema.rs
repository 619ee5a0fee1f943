//! `--validate` of net-define and net-create: the document checked against
//! the network schema before it is sent, as virsh has libvirt check it
//! against libvirt's (with libxml2's RELAX NG validator, through xmllint).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::failure::Failure;

/// Where packages install the schema.
const INSTALLED_SCHEMA: &str = "/usr/share/virtnet/schemas/network.rng";

/// The schema: the installed one, else the one of the source tree this
/// program was built from (a build run in place).
fn schema() -> PathBuf {
    let installed = PathBuf::from(INSTALLED_SCHEMA);
    if installed.exists() {
        installed
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/network.rng"))
    }
}

/// Checks `xml` against the schema: the failure says what xmllint found,
/// in libvirt's words.
pub(super) fn validate(xml: &str) -> Result<(), Failure> {
    let schema = schema();
    let unable = |reason: String| {
        Failure::new(format!(
            "XML document failed to validate against schema: Unable to validate doc against {}\n{reason}",
            schema.display()
        ))
    };
    let mut child = Command::new("xmllint")
        .args(["--noout", "--relaxng"])
        .arg(&schema)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| unable(format!("cannot run xmllint: {error}")))?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(xml.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|error| unable(format!("xmllint failed: {error}")))?;
    if let Some(Err(error)) = written {
        return Err(unable(format!("cannot write to xmllint: {error}")));
    }
    if output.status.success() {
        return Ok(());
    }
    // xmllint's lines read `-:3: element bogus: Relax-NG validity error :
    // Element network has extra content: bogus`; libvirt prints what
    // follows the last " : ", each finding ending with libxml2's newline
    // (so virsh's report ends with a blank line).
    let stderr = String::from_utf8_lossy(&output.stderr);
    let findings: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.ends_with("fails to validate"))
        .map(|line| line.rsplit(" : ").next().unwrap_or(line))
        .collect();
    Err(unable(format!("{}\n", findings.join("\n"))))
}

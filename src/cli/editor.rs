//! The editor `net-edit` runs, as virsh runs it (vshEditWriteToTempFile,
//! vshEditFile, vshEditReadBackFile): the XML in a private temporary file
//! (mode 0600, a random name in `$TMPDIR` or /tmp, created anew so no
//! planted file or link is followed), `$VISUAL`, else `$EDITOR`, else the
//! system's editor, and the file read back bounded like any document.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use tempfile::NamedTempFile;

use crate::xml::tree::{MAX_DOCUMENT_BYTES, XmlError, decode_document};

/// What virsh lets through unquoted: an editor made of these alone is run
/// directly, anything else through the shell, with the file name appended.
const ACCEPTED_CHARS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/_.:@";

#[derive(Debug, thiserror::Error)]
pub(super) enum EditorError {
    #[error("failed to create temporary file")]
    Create(#[source] std::io::Error),
    #[error("{path}: failed to write to temporary file")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0}: temporary filename contains shell meta or other unacceptable characters (is $TMPDIR wrong?)"
    )]
    UnsafeFileName(String),
    #[error("Cannot run '{command}'")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("internal error: Child process ({command}) unexpected {status}")]
    Status { command: String, status: String },
    #[error("{path}: failed to read temporary file")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot take the edited file")]
    Document {
        path: String,
        #[source]
        source: XmlError,
    },
    #[error("cannot wait for the file to be written or read")]
    Background(#[from] tokio::task::JoinError),
}

/// `xml` in a new private temporary file, removed when dropped.
pub(super) async fn write_temporary(xml: String) -> Result<NamedTempFile, EditorError> {
    tokio::task::spawn_blocking(move || {
        let mut file = tempfile::Builder::new()
            .prefix("virtnet")
            .suffix(".xml")
            .tempfile()
            .map_err(EditorError::Create)?;
        file.write_all(xml.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|source| EditorError::Write {
                path: file.path().display().to_string(),
                source,
            })?;
        Ok(file)
    })
    .await?
}

/// Runs the editor on `path`, on this terminal, and waits for it.
pub(super) async fn run(path: &Path) -> Result<(), EditorError> {
    let editor = chosen_editor();
    let file = path.display().to_string();
    let direct = |text: &str| text.chars().all(|c| ACCEPTED_CHARS.contains(c));
    let editor_text = editor.to_string_lossy();
    let (mut command, shown) = if direct(&editor_text) {
        let mut command = tokio::process::Command::new(&editor);
        command.arg(path);
        (command, format!("{editor_text} {file}"))
    } else {
        // The editor may carry options or shell syntax ("code --wait"):
        // the shell reads it, so the file name must need no quoting.
        if !direct(&file) {
            return Err(EditorError::UnsafeFileName(file));
        }
        let line = format!("{editor_text} {file}");
        let mut command = tokio::process::Command::new("sh");
        command.arg("-c").arg(&line);
        (command, format!("sh -c '{line}'"))
    };
    let status = command
        .status()
        .await
        .map_err(|source| EditorError::Spawn {
            command: shown.clone(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(EditorError::Status {
            command: shown,
            status: describe(status),
        })
    }
}

/// `$VISUAL`, `$EDITOR`, then what Debian's virsh falls back to
/// (`sensible-editor`, the system's choice), else `vi`.
fn chosen_editor() -> OsString {
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    set("VISUAL").or_else(|| set("EDITOR")).unwrap_or_else(|| {
        let sensible = std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join("sensible-editor").is_file())
        });
        if sensible { "sensible-editor" } else { "vi" }.into()
    })
}

/// An exit status in virCommand's words.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("fatal signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// The edited file, as text within virsh's size limit.
pub(super) async fn read_back(path: PathBuf) -> Result<String, EditorError> {
    tokio::task::spawn_blocking(move || {
        let shown = || path.display().to_string();
        let mut bytes = Vec::new();
        // One byte past the limit tells an oversized file.
        std::fs::File::open(&path)
            .and_then(|file| {
                file.take(MAX_DOCUMENT_BYTES as u64 + 1)
                    .read_to_end(&mut bytes)
            })
            .map_err(|source| EditorError::Read {
                path: shown(),
                source,
            })?;
        decode_document(&bytes)
            .map(str::to_owned)
            .map_err(|source| EditorError::Document {
                path: shown(),
                source,
            })
    })
    .await?
}

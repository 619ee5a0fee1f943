//! virsh's question after an edit that could not be defined
//! (vshAskReedit): on a terminal, `Failed. Try again? [y,n,f,?]:`
//! answered with one key, read in raw mode.

use std::io::{IsTerminal, Read, Write};

use rustix::termios::{OptionalActions, Termios, tcgetattr, tcsetattr};

/// What the user chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// y: the editor again, on the same file.
    EditAgain,
    /// f: define the same edit again.
    Force,
    /// n: throw the edit away.
    GiveUp,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum AskError {
    #[error("cannot ask on the terminal")]
    Terminal(#[source] std::io::Error),
    #[error("cannot ask on the terminal")]
    Background(#[from] tokio::task::JoinError),
}

const HELP: &str = "\r\n\
    y - yes, start editor again\r\n\
    n - no, throw away my changes\r\n\
    f - force, try to redefine again\r\n\
    ? - print this help\r\n";

/// Asks whether to try again after `verdict` ("Failed.", …), first
/// writing libvirt's `reason` as an error, as virsh does. `None` when
/// standard input is no terminal: there is no one to ask.
pub(super) async fn ask(
    verdict: &'static str,
    reason: Option<String>,
) -> Result<Option<Answer>, AskError> {
    tokio::task::spawn_blocking(move || ask_on_terminal(verdict, reason.as_deref()))
        .await?
        .map_err(AskError::Terminal)
}

fn ask_on_terminal(verdict: &str, reason: Option<&str>) -> std::io::Result<Option<Answer>> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(None);
    }
    if let Some(reason) = reason {
        eprintln!("error: {reason}");
    }
    let Ok(raw) = RawMode::enter() else {
        return Ok(None);
    };
    let mut out = std::io::stdout().lock();
    let mut input = stdin.lock();
    let answer = loop {
        write!(out, "\r{verdict} Try again? [y,n,f,?]: ")?;
        out.flush()?;
        let mut key = [0u8];
        if input.read(&mut key)? == 0 {
            break Answer::GiveUp;
        }
        match key[0].to_ascii_lowercase() {
            b'y' => break Answer::EditAgain,
            b'f' => break Answer::Force,
            // Raw mode turns ^C and ^D into plain keys: they give up too
            // (virsh would ask again).
            b'n' | 0x03 | 0x04 => break Answer::GiveUp,
            b'?' => out.write_all(HELP.as_bytes())?,
            _ => {}
        }
    };
    drop(raw);
    out.write_all(b"\r\n")?;
    out.flush()?;
    Ok(Some(answer))
}

/// Standard input in raw mode (one key at a time, no echo) until dropped,
/// as vshTTYMakeRaw sets it.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> std::io::Result<Self> {
        let saved = tcgetattr(std::io::stdin())?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(std::io::stdin(), OptionalActions::Flush, &raw)?;
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Nothing more to do if the terminal is gone.
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Flush, &self.saved);
    }
}

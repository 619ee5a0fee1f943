//! net-edit as virsh does it, against virtnetd's test driver: the editor
//! chosen and run as virsh runs it, on a private temporary file that is
//! gone afterwards; a failed definition asked about on a terminal
//! (`Failed. Try again? [y,n,f,?]:`) so the edit is not lost.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::{TestDriver, client};

const BUS_NAME: &str = "org.libvirt";
const NARROWED: &str = "end='192.168.122.100'";
/// What every editor script starts with: the file is its last argument,
/// and each run logs the file's path and mode.
const PROLOGUE: &str = "for file; do :; done\necho \"$file $(stat -c %a \"$file\")\" >> \"$(dirname \"$0\")/edits.log\"";

struct Edit {
    driver: TestDriver,
    /// `TMPDIR` of the client: where its temporary files must go.
    tmp: PathBuf,
}

impl Edit {
    fn new(label: &str) -> Self {
        let driver = TestDriver::start(label, BUS_NAME, |_| None);
        let tmp = driver.scratch.0.join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        Self { driver, tmp }
    }

    /// An editor script in the scratch directory.
    fn editor(&self, name: &str, body: &str) -> String {
        let path = self.driver.scratch.0.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{PROLOGUE}\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    /// A directory for PATH holding an editor script `program` that runs
    /// `sed -i SCRIPT` on the file, and the tools editor scripts use.
    fn path_with(&self, dir: &str, program: &str, script: &str) -> String {
        let dir = self.driver.scratch.0.join(dir);
        std::fs::create_dir(&dir).unwrap();
        for tool in ["sed", "stat", "dirname"] {
            std::os::unix::fs::symlink(Path::new("/usr/bin").join(tool), dir.join(tool)).unwrap();
        }
        let path = dir.join(program);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\n{}\nsed -i '{script}' \"$file\"\n",
                // The log is one directory up.
                PROLOGUE.replace("edits.log", "../edits.log")
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir.display().to_string()
    }

    /// `virtnet net-edit default` with standard input from /dev/null and
    /// these editor variables (others cleared).
    fn edit(&self, editors: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_virtnet"));
        command
            .args(["--bus-address", &self.driver.bus, "--bus-name", BUS_NAME])
            .args(["net-edit", "default"])
            .env_remove("VISUAL")
            .env_remove("EDITOR")
            .env("TMPDIR", &self.tmp)
            .stdin(Stdio::null());
        for (name, value) in editors {
            command.env(name, value);
        }
        command.output().expect("virtnet runs")
    }

    fn definition(&self) -> String {
        let output = client(
            &self.driver.bus,
            BUS_NAME,
            &["net-dumpxml", "--inactive", "default"],
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// The files the editors were given, with their modes; checks that
    /// each was private, in TMPDIR, named at random, and is gone.
    fn edited_files(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.driver.scratch.0.join("edits.log")).unwrap();
        let mut files = Vec::new();
        for line in log.lines() {
            let (file, mode) = line.rsplit_once(' ').unwrap();
            assert_eq!(mode, "600", "{file} is private");
            let name = Path::new(file).file_name().unwrap().to_str().unwrap();
            assert_eq!(Path::new(file).parent(), Some(self.tmp.as_path()));
            let random = name
                .strip_prefix("virtnet")
                .and_then(|rest| rest.strip_suffix(".xml"))
                .unwrap_or_else(|| panic!("{name} is virtnetXXXXXX.xml"));
            assert_eq!(random.len(), 6, "{name}");
            assert!(!Path::new(file).exists(), "{file} was removed");
            files.push(file.to_owned());
        }
        assert_eq!(
            std::fs::read_dir(&self.tmp).unwrap().count(),
            0,
            "nothing left in TMPDIR"
        );
        files
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// $VISUAL before $EDITOR, an editor with options through the shell, a
/// changed definition defined and an unchanged one left; without a
/// terminal, a refused definition or a network changed meanwhile fails
/// and changes nothing; each run had a file of its own.
#[test]
fn net_edit_runs_the_editor_as_virsh_does() {
    let edit = Edit::new("edit");
    let narrow = edit.editor(
        "narrow",
        "sed -i 's/192.168.122.254/192.168.122.100/' \"$file\"",
    );
    let broken = edit.editor("break", "sed -i 's/<network>/<netwrk>/' \"$file\"");
    let output = edit.edit(&[("VISUAL", &narrow), ("EDITOR", &broken)]);
    assert_eq!(
        text(&output.stdout),
        "Network default XML configuration edited.\n\n",
        "{}",
        text(&output.stderr)
    );
    let narrowed = edit.definition();
    assert!(narrowed.contains(NARROWED), "{narrowed}");

    // An editor with an option is a shell command line, as in virsh.
    let keep = edit.editor("keep", "[ \"$1\" = --wait ] || exit 7");
    let output = edit.edit(&[("EDITOR", &format!("{keep} --wait"))]);
    assert_eq!(
        text(&output.stdout),
        "Network default XML configuration not changed.\n\n",
        "{}",
        text(&output.stderr)
    );
    let output = edit.edit(&[("EDITOR", &keep)]);
    assert!(!output.status.success());
    assert_eq!(
        text(&output.stderr),
        format!(
            "error: internal error: Child process ({keep} {}) unexpected exit status 7\n",
            edit.edited_files().last().unwrap()
        )
    );

    let output = edit.edit(&[("EDITOR", &broken)]);
    assert!(!output.status.success());
    assert_eq!(
        text(&output.stderr),
        // Where, as libvirt says it: the line's number, the line, a caret.
        "error: (network_definition):11: XML error: mismatched closing tag </network>, \
         expected </netwrk>\n</network>\n----------^\nerror: Failed.\n"
    );
    assert_eq!(edit.definition(), narrowed, "the definition stays");

    // Someone else changes the network while the editor runs.
    let host = "<host mac='00:16:3e:77:e2:ed' name='foo' ip='192.168.122.10'/>";
    let racer = edit.editor(
        "racer",
        &format!(
            "{} --bus-address {} --bus-name {BUS_NAME} net-update default add ip-dhcp-host \"{host}\" --config >/dev/null\n\
             sed -i 's/192.168.122.100/192.168.122.50/' \"$file\"",
            env!("CARGO_BIN_EXE_virtnet"),
            edit.driver.bus
        ),
    );
    let output = edit.edit(&[("EDITOR", &racer)]);
    assert!(!output.status.success());
    assert_eq!(
        text(&output.stderr),
        "error: The XML configuration was changed by another user.\n"
    );
    let after = edit.definition();
    assert!(after.contains(host) && after.contains(NARROWED), "{after}");

    // Neither variable set: sensible-editor from PATH, else vi.
    let sensible = edit.path_with(
        "debian",
        "sensible-editor",
        "s/192.168.122.100/192.168.122.90/",
    );
    let output = edit.edit(&[("PATH", &sensible)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(edit.definition().contains("end='192.168.122.90'"));
    let plain = edit.path_with("plain", "vi", "s/192.168.122.90/192.168.122.80/");
    let output = edit.edit(&[("PATH", &plain)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(edit.definition().contains("end='192.168.122.80'"));

    let files = edit.edited_files();
    assert_eq!(files.len(), 7, "{files:?}");
    let mut distinct = files.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        files.len(),
        "a new name each time: {files:?}"
    );
}

/// `virtnet net-edit default` on a pseudo-terminal (util-linux `script`),
/// its output collected as it comes, keys typed when asked.
struct Terminal {
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    fn start(edit: &Edit, editor: &str) -> Self {
        let command = format!(
            "{} --bus-address {} --bus-name {BUS_NAME} net-edit default",
            env!("CARGO_BIN_EXE_virtnet"),
            edit.driver.bus
        );
        let mut child = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env_remove("VISUAL")
            .env("EDITOR", editor)
            .env("TMPDIR", &edit.tmp)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script runs");
        let mut stdout = child.stdout.take().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let collected = output.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read) = stdout.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                collected.lock().unwrap().extend_from_slice(&buffer[..read]);
            }
        });
        Self { child, output }
    }

    fn transcript(&self) -> String {
        text(&self.output.lock().unwrap())
    }

    /// Waits until the transcript holds `pattern` `count` times.
    fn wait_for(&self, pattern: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.transcript().matches(pattern).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {count}× {pattern:?} in {:?}",
                self.transcript()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn type_key(&mut self, key: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(key.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// The exit status, once the client is done.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader take the last bytes.
                std::thread::sleep(Duration::from_millis(50));
                return (status, self.transcript());
            }
            assert!(Instant::now() < deadline, "{}", self.transcript());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PROMPT: &str = "\rFailed. Try again? [y,n,f,?]: ";
const HELP: &str = "\r\ny - yes, start editor again\r\nn - no, throw away my changes\r\n\
    f - force, try to redefine again\r\n? - print this help\r\n";
const REFUSED: &str = "error: (network_definition):11: XML error: mismatched closing tag \
     </network>, expected </netwrk>\r\n</network>\r\n----------^\r\n";

/// On a terminal, a refused edit is asked about: `?` prints virsh's help,
/// `f` defines the same edit again (refused again), `y` opens the editor
/// again on the same file with the edit in it, and the fixed edit is
/// defined; `n` gives up and changes nothing.
#[test]
fn net_edit_on_a_terminal_asks_instead_of_losing_the_edit() {
    let edit = Edit::new("edittty");
    // First run: breaks the XML and narrows the range; second run (the
    // broken edit must still be there): mends it.
    let mend = edit.editor(
        "mend",
        "if grep -q '<netwrk>' \"$file\"; then sed -i 's/<netwrk>/<network>/' \"$file\"; \
         else sed -i 's/<network>/<netwrk>/; s/192.168.122.254/192.168.122.100/' \"$file\"; fi",
    );
    let before = edit.definition();
    let mut terminal = Terminal::start(&edit, &mend);
    terminal.wait_for(PROMPT, 1);
    terminal.type_key("?");
    terminal.wait_for(PROMPT, 2);
    terminal.type_key("f");
    terminal.wait_for(PROMPT, 3);
    terminal.type_key("y");
    let (status, transcript) = terminal.finish();
    assert!(status.success(), "{transcript:?}");
    assert_eq!(
        transcript,
        format!(
            "{REFUSED}{PROMPT}{HELP}{PROMPT}\r\r\n{REFUSED}{PROMPT}\r\r\n\
             Network default XML configuration edited.\r\n\r\n"
        )
    );
    assert!(edit.definition().contains(NARROWED));
    let files = edit.edited_files();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0], files[1], "the editor came back to the same file");

    let broken = edit.editor("break", "sed -i 's/<network>/<netwrk>/' \"$file\"");
    let narrowed = edit.definition();
    assert_ne!(narrowed, before);
    let mut terminal = Terminal::start(&edit, &broken);
    terminal.wait_for(PROMPT, 1);
    terminal.type_key("n");
    let (status, transcript) = terminal.finish();
    assert_eq!(status.code(), Some(1), "{transcript:?}");
    assert_eq!(transcript, format!("{REFUSED}{PROMPT}\r\r\n\r\n"));
    assert_eq!(edit.definition(), narrowed, "nothing changed");

    // Someone else changes the network meanwhile: f defines the edit over
    // that change.
    let host = "<host mac='00:16:3e:77:e2:ed' name='foo' ip='192.168.122.10'/>";
    let racer = edit.editor(
        "racer",
        &format!(
            "{} --bus-address {} --bus-name {BUS_NAME} net-update default add ip-dhcp-host \"{host}\" --config >/dev/null\n\
             sed -i 's/192.168.122.100/192.168.122.60/' \"$file\"",
            env!("CARGO_BIN_EXE_virtnet"),
            edit.driver.bus
        ),
    );
    let changed = "\rThe XML configuration was changed by another user. Try again? [y,n,f,?]: ";
    let mut terminal = Terminal::start(&edit, &racer);
    terminal.wait_for(changed, 1);
    terminal.type_key("f");
    let (status, transcript) = terminal.finish();
    assert!(status.success(), "{transcript:?}");
    assert_eq!(
        transcript,
        format!("{changed}\r\r\nNetwork default XML configuration edited.\r\n\r\n")
    );
    let forced = edit.definition();
    assert!(
        forced.contains("end='192.168.122.60'") && !forced.contains(host),
        "{forced}"
    );
    assert_eq!(edit.edited_files().len(), 4);
}

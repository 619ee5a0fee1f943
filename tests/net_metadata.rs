//! net-desc, net-metadata, net-list --title and the metadata-change event
//! (libvirt 9.7's verbs, with virsh 9.7's messages) against virtnetd's test
//! driver on a private bus: what they print, and what the definition keeps.

mod common;

use std::process::{Command, Output, Stdio};

use common::daemon::TestDriver;

const APP: &str = "http://example.org/app/";

struct Setup {
    driver: TestDriver,
}

impl Setup {
    fn new(label: &str) -> Self {
        Self {
            driver: TestDriver::start(label, virtnet::dbus::DEFAULT_BUS_NAME, |_| None),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_virtnet"));
        command.args(["--bus-address", &self.driver.bus]).args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("virtnet runs")
    }

    /// Standard output of a command that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Standard error of a command that must fail.
    fn refused(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        String::from_utf8(output.stderr).unwrap()
    }
}

#[test]
fn title_and_description_as_virsh_shows_and_sets_them() {
    let setup = Setup::new("net-desc");
    assert_eq!(
        setup.ok(&["net-desc", "default"]),
        "No description for network: default\n"
    );
    assert_eq!(
        setup.ok(&[
            "net-desc",
            "--network",
            "default",
            "--title",
            "Lab",
            "network"
        ]),
        "Network title updated successfully\n"
    );
    assert_eq!(
        setup.ok(&["net-desc", "default", "--title"]),
        "Lab network\n"
    );
    assert_eq!(
        setup.ok(&["net-desc", "default", "--config", "--new-desc", "The lab's"]),
        "Network description updated successfully\n"
    );
    // The running network got the title; the persistent definition the
    // description, kept as libvirt keeps them.
    let live = setup.ok(&["net-dumpxml", "default"]);
    assert!(live.contains("  <title>Lab network</title>\n"), "{live}");
    assert!(!live.contains("<description>"), "{live}");
    let persistent = setup.ok(&["net-dumpxml", "default", "--inactive"]);
    assert!(
        persistent.contains("  <uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid>\n  <description>The lab&apos;s</description>\n"),
        "{persistent}"
    );
    assert_eq!(
        setup.ok(&["net-list", "--all", "--title"]),
        " Name      State    Autostart   Persistent   Title\n\
         ----------------------------------------------------------\n \
         default   active   no          yes          Lab network\n\n"
    );
    assert_eq!(
        setup.refused(&["net-desc", "default", "--title", "--new-desc", "a\nb"]),
        "error: Failed to set new network title\n\
         error: invalid argument: network title can't contain newlines\n"
    );
}

#[test]
fn metadata_elements_as_virsh_shows_and_sets_them() {
    let setup = Setup::new("net-metadata");
    assert_eq!(
        setup.refused(&["net-metadata", "default", APP]),
        "error: metadata not found: Requested metadata element is not present\n"
    );
    assert_eq!(
        setup.refused(&["net-metadata", "default", APP, "--set", "<owner/>"]),
        "error: namespace key is required when modifying metadata\n"
    );
    // Watching for the change before making it.
    let watch = setup
        .command(&["net-event", "--event", "metadata-change", "--timeout", "5"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(
        setup.ok(&[
            "net-metadata",
            "--network",
            "default",
            "--uri",
            APP,
            "--key",
            "app",
            "--set",
            "<owner id='7'><team>net</team></owner>",
            "--config",
            "--live",
        ]),
        "Metadata modified\n\n"
    );
    assert_eq!(
        String::from_utf8(watch.wait_with_output().unwrap().stdout).unwrap(),
        format!(
            "event 'metadata-change' for network default: type element, uri {APP}\nevents received: 1\n\n"
        )
    );
    assert_eq!(
        setup.ok(&["net-metadata", "default", APP]),
        format!("<app:owner xmlns:app=\"{APP}\" id=\"7\">\n  <team>net</team>\n</app:owner>\n\n")
    );
    let persistent = setup.ok(&["net-dumpxml", "default", "--inactive"]);
    assert!(
        persistent.contains(&format!(
            "  <metadata>\n    <app:owner xmlns:app=\"{APP}\" id=\"7\">\n      <team>net</team>\n    </app:owner>\n  </metadata>\n"
        )),
        "{persistent}"
    );
    assert_eq!(
        setup.ok(&["net-metadata", "default", APP, "--remove", "--config"]),
        "Metadata removed\n\n"
    );
    assert!(
        !setup
            .ok(&["net-dumpxml", "default", "--inactive"])
            .contains("<metadata>")
    );
    // The live definition keeps its own until changed.
    assert!(setup.ok(&["net-dumpxml", "default"]).contains("<metadata>"));
}

/// `--edit` hands the text to the editor, and what it leaves is set.
#[test]
fn edit_sets_what_the_editor_leaves() {
    use std::os::unix::fs::PermissionsExt;
    let setup = Setup::new("net-desc-edit");
    let editor = setup.driver.scratch.0.join("editor");
    // Writes what the test gives it, ending with a newline as editors do.
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf '%s\\n' \"$NEW_TEXT\" > \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let edit = |args: &[&str], new: &str| {
        let output = setup
            .command(args)
            .env("VISUAL", &editor)
            .env("NEW_TEXT", new)
            .output()
            .expect("virtnet runs");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(
        edit(
            &["net-desc", "default", "--title", "--edit"],
            "Edited title"
        ),
        "Network title updated successfully\n"
    );
    assert_eq!(
        setup.ok(&["net-desc", "default", "--title"]),
        "Edited title\n"
    );
    let metadata_edit = ["net-metadata", "default", APP, "--key", "app", "--edit"];
    assert_eq!(
        edit(&metadata_edit, "<owner id='1'/>"),
        "Metadata modified\n\n"
    );
    assert_eq!(
        setup.ok(&["net-metadata", "default", APP]),
        format!("<app:owner xmlns:app=\"{APP}\" id=\"1\"/>\n\n")
    );
    assert_eq!(
        edit(&metadata_edit, "<owner id='9'/>"),
        "Metadata modified\n\n"
    );
    assert_eq!(
        setup.ok(&["net-metadata", "default", APP]),
        format!("<app:owner xmlns:app=\"{APP}\" id=\"9\"/>\n\n")
    );
}

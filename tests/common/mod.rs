//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod daemon;
pub mod guest;
pub mod libvirtd;
pub mod netns;
pub mod rpc;
pub mod users;

pub fn project_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Set (to anything but `0`) by scripts/test: a missing corpus then fails
/// the tests that compare with it, so that they cannot pass unseen.
pub const REQUIRE_CORPUS: &str = "VIRTNET_REQUIRE_CORPUS";

/// Set by `scripts/test`, whose setup installs every tool the tests use:
/// a missing one then fails the test that needs it instead of skipping it.
pub const REQUIRE_TOOLS: &str = "VIRTNET_REQUIRE_TOOLS";

/// Whether a tool a test needs is `missing` (`what` says which, and which
/// package brings it): the test says it skips, or fails under
/// `scripts/test`.
pub fn missing_tool(missing: bool, what: &str) -> bool {
    if missing {
        assert!(
            std::env::var(REQUIRE_TOOLS).as_deref() != Ok("1"),
            "{what}: the tests need it ({REQUIRE_TOOLS}=1)"
        );
        eprintln!("SKIPPED: {what}");
    }
    missing
}

/// libvirt's conformance corpus, kept beside the project (never copied
/// into it). `None`, with a message saying so, when it is not there;
/// a failure instead when [`REQUIRE_CORPUS`] is set.
pub fn corpus_dir(test: &str) -> Option<PathBuf> {
    let dir = project_dir().join("../shared/conformance/libvirt");
    if dir.is_dir() {
        return Some(dir);
    }
    let required = std::env::var_os(REQUIRE_CORPUS).is_some_and(|value| value != "0");
    assert!(
        !required,
        "{test}: libvirt's conformance corpus is not at {}, and {REQUIRE_CORPUS} requires it",
        dir.display()
    );
    eprintln!(
        "SKIPPED {test}: libvirt's conformance corpus is not at {} (it lives in ../shared beside the project)",
        dir.display()
    );
    None
}

pub fn sample_paths() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(project_dir().join("xml-samples"))
        .expect("xml-samples exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
        .collect();
    paths.sort();
    paths
}

/// Runs the `virtnet` binary with `input` on standard input.
pub fn virtnet(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_virtnet"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("virtnet starts");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // The binary may stop reading early (size limit); a broken pipe is fine.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().expect("virtnet finishes")
}

/// A scratch directory removed when the test ends, pass or fail.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> Self {
        let mut bytes = [0u8; 4];
        virtnet::random::fill(&mut bytes).expect("random bytes");
        let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("virtnet-{name}-{suffix}"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn read_tsv(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .expect("case table is readable")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

//! Crash points for the tests that kill the daemon at every step of its
//! work: when `VIRTNET_KILL_POINT` names a step, the process aborts right
//! after that step, as if killed there (no destructor runs, children live
//! on). Nothing sets the variable outside those tests.

/// The variable naming the step to die after.
pub const VARIABLE: &str = "VIRTNET_KILL_POINT";

/// Aborts the process when `step` is the step named by [`VARIABLE`].
pub fn reached(step: &str) {
    if std::env::var_os(VARIABLE).is_some_and(|wanted| wanted == step) {
        tracing::warn!(step, "dying here, as {VARIABLE} asks");
        std::process::abort();
    }
}

//! Traffic control on a network's bridge, through the tc program:
//! libvirt's DHCP checksum fix-up and the inbound `<bandwidth>` classes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::plan::network::{InboundShaping, LEAF_QDISC, ROOT_QDISC};

use super::{Environment, StartError};

/// The tc program, and the kernel features it found missing: once found
/// missing (each warned about once), a feature is not looked for again.
#[derive(Debug, Clone)]
pub struct TrafficControl {
    pub program: PathBuf,
    missing: Arc<MissingFeatures>,
}

#[derive(Debug, Default)]
struct MissingFeatures {
    /// The csum action (CONFIG_NET_ACT_CSUM).
    csum: AtomicBool,
    /// The sfq qdisc (CONFIG_NET_SCH_SFQ).
    sfq: AtomicBool,
}

impl TrafficControl {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            missing: Arc::default(),
        }
    }
}

/// Whether the inbound `<bandwidth>` classes are on `bridge`.
pub(crate) async fn shaping_in_place(env: &Environment, bridge: &str) -> bool {
    let output = tokio::process::Command::new(&env.tc.program)
        .args(["class", "show", "dev", bridge])
        .output()
        .await;
    output.is_ok_and(|output| {
        String::from_utf8_lossy(&output.stdout).contains("class htb 1:2 parent 1:1")
    })
}

/// Sets the bridge's traffic control up again from scratch.
pub(crate) async fn reset_traffic_control(
    env: &Environment,
    bridge: &str,
    checksum_fix: bool,
    shaping: Option<&InboundShaping>,
) -> Result<(), StartError> {
    // Absent already, most likely: the error says nothing then.
    let _ = remove_root_qdisc(env, bridge).await;
    set_up_traffic_control(env, bridge, checksum_fix, shaping).await
}

/// The bridge's root qdisc, for libvirt's fix-up for guests that drop DHCP
/// replies with an unfilled UDP checksum (a `csum` action on udp port 68
/// leaving the bridge: nftables has no checksum statement) and for the
/// inbound `<bandwidth>` classes. The qdisc goes with the bridge. A kernel
/// without the csum action (CONFIG_NET_ACT_CSUM) gets no fix-up, and one
/// without sfq (CONFIG_NET_SCH_SFQ) no fair queueing within the network's
/// class, each with a warning.
pub(super) async fn set_up_traffic_control(
    env: &Environment,
    bridge: &str,
    checksum_fix: bool,
    shaping: Option<&InboundShaping>,
) -> Result<(), StartError> {
    let missing = &env.tc.missing;
    let checksum_fix = checksum_fix && !missing.csum.load(Ordering::Relaxed);
    if !checksum_fix && shaping.is_none() {
        return Ok(());
    }
    let failed = |message| StartError::TrafficControl {
        bridge: bridge.to_owned(),
        message,
    };
    let tc = |verb: &'static str, arguments: &[&str]| {
        let mut command = vec![verb, "add", "dev", bridge];
        command.extend(arguments);
        let command: Vec<String> = command.into_iter().map(str::to_owned).collect();
        run_tc(env, command)
    };
    tc("qdisc", &ROOT_QDISC).await.map_err(failed)?;
    if let Some(shaping) = shaping {
        for class in shaping.classes() {
            let class: Vec<&str> = class.iter().map(String::as_str).collect();
            tc("class", &class).await.map_err(failed)?;
        }
        if !missing.sfq.load(Ordering::Relaxed) {
            match tc("qdisc", &LEAF_QDISC).await {
                Ok(()) => {}
                Err(message) if message.contains("qdisc kind is unknown") => {
                    missing.sfq.store(true, Ordering::Relaxed);
                    tracing::warn!(
                        bridge,
                        "the kernel has no sfq qdisc (CONFIG_NET_SCH_SFQ); a shaped network's flows share one queue"
                    );
                }
                Err(message) => return Err(failed(message)),
            }
        }
    }
    if !checksum_fix {
        return Ok(());
    }
    let filter = [
        "prio", "2", "protocol", "ip", "parent", "1:", "u32", "match", "ip", "dport", "68", "ffff",
        "action", "csum", "ip", "and", "udp",
    ];
    match tc("filter", &filter).await {
        Ok(()) => Ok(()),
        Err(message) if message.contains("Failed to load TC action module") => {
            missing.csum.store(true, Ordering::Relaxed);
            tracing::warn!(
                bridge,
                "the kernel has no tc csum action (CONFIG_NET_ACT_CSUM); DHCP replies keep the checksum the host computed"
            );
            if shaping.is_some() {
                return Ok(());
            }
            remove_root_qdisc(env, bridge).await.map_err(failed)
        }
        Err(message) => Err(failed(message)),
    }
}

/// Removes the bridge's root qdisc, with whatever hangs from it.
async fn remove_root_qdisc(env: &Environment, bridge: &str) -> Result<(), String> {
    let remove = ["qdisc", "del", "dev", bridge, "root"].map(str::to_owned);
    run_tc(env, remove.to_vec()).await
}

/// Runs tc with `arguments`; on failure, returns what it said.
async fn run_tc(env: &Environment, arguments: Vec<String>) -> Result<(), String> {
    let output = tokio::process::Command::new(&env.tc.program)
        .args(arguments)
        .output()
        .await
        .map_err(|error| format!("cannot run {}: {error}", env.tc.program.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

//! Taking a network away again: after a failed start (undo), when it stops
//! ([`take_down`], then [`remove_retired`] in the background, or [`stop`]
//! at once). Stopping goes on past errors so that as much as possible is
//! removed, and reports every one of them.

use std::fmt;

use crate::apply::{RunningBridge, RunningNetwork};
use crate::definition::error_chain;
use crate::killpoint;
use crate::plan::firewall::FirewallPlan;

use super::dnsmasq::{DnsmasqError, DnsmasqInstance};
use super::firewall::{Firewall, FirewallError};
use super::netlink::{Netlink, NetlinkError};

/// One step of a stop that failed.
#[derive(Debug, thiserror::Error)]
pub enum StopStep {
    #[error(transparent)]
    Dnsmasq(#[from] DnsmasqError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

/// Every step of a stop that failed.
#[derive(Debug, thiserror::Error)]
#[error("stopping network '{network}' left work undone: {}", Steps(.errors))]
pub struct StopError {
    pub network: String,
    pub errors: Vec<StopStep>,
}

struct Steps<'a>(&'a [StopStep]);

impl fmt::Display for Steps<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let steps: Vec<String> = self.0.iter().map(|step| error_chain(step)).collect();
        f.write_str(&steps.join("; "))
    }
}

/// What a network holds on the host, to take away.
#[derive(Default)]
pub(super) struct Holdings {
    pub(super) bridge: Option<RunningBridge>,
    pub(super) rules: Option<FirewallPlan>,
    pub(super) dnsmasq: Option<DnsmasqInstance>,
}

impl Holdings {
    fn of(running: &RunningNetwork) -> Self {
        Self {
            bridge: running.bridge.clone(),
            rules: running.firewall.clone(),
            dnsmasq: running.dnsmasq.clone(),
        }
    }
}

/// How a bridge leaves: deleted now, or retired (down, without addresses,
/// renamed) for a deletion later.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaving {
    Delete,
    Retire,
}

/// The name a stopped network's bridge carries while it waits to be
/// deleted: virtnet's own, never a network's (`vtgone` and the link's
/// index).
pub fn retired_name(ifindex: u32) -> String {
    format!("vtgone{ifindex}")
}

/// Removes `holdings`. The three removals do not depend on each other, and
/// each waits on the kernel or a process, so they run side by side: the
/// rules match the bridge by name, and dnsmasq is stopping. Returns the
/// retired bridge's index, when it was retired.
async fn remove(
    firewall: &Firewall,
    holdings: &Holdings,
    leaving: Leaving,
) -> (Option<u32>, Vec<StopStep>) {
    let (dns, rules, link) = tokio::join!(
        async {
            match &holdings.dnsmasq {
                Some(instance) => instance.stop().await.map_err(StopStep::from).map(|()| {
                    killpoint::reached("stop:dnsmasq");
                }),
                None => Ok(()),
            }
        },
        async {
            match &holdings.rules {
                Some(rules) => firewall
                    .stop(rules)
                    .await
                    .map_err(StopStep::from)
                    .map(|()| {
                        killpoint::reached("stop:rules");
                    }),
                None => Ok(()),
            }
        },
        async {
            let Some(bridge) = &holdings.bridge else {
                return Ok(None);
            };
            let netlink = Netlink::connect()?;
            if leaving == Leaving::Retire {
                match netlink
                    .retire(bridge.ifindex, &retired_name(bridge.ifindex))
                    .await
                {
                    Ok(true) => {
                        killpoint::reached("stop:retired");
                        return Ok(Some(bridge.ifindex));
                    }
                    Ok(false) => return Ok(None),
                    Err(error) => tracing::warn!(
                        bridge = bridge.name,
                        "cannot set the bridge aside, deleting it now: {}",
                        error_chain(&error)
                    ),
                }
            }
            match netlink.delete_link(bridge.ifindex).await {
                Err(error) if error.is_no_such_device() => Ok(None),
                deleted => deleted.map(|()| None),
            }
        },
    );
    let mut errors = Vec::new();
    errors.extend(dns.err());
    errors.extend(rules.err());
    let retired = match link {
        Ok(retired) => retired,
        Err(error) => {
            errors.push(StopStep::from(error));
            None
        }
    };
    (retired, errors)
}

/// Removes what a failed start made; the errors of what could not be.
pub(super) async fn undo(firewall: &Firewall, holdings: &Holdings) -> Vec<StopStep> {
    remove(firewall, holdings, Leaving::Delete).await.1
}

fn stopped(running: &RunningNetwork, errors: Vec<StopStep>) -> Result<(), StopError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StopError {
            network: running.name.clone(),
            errors,
        })
    }
}

/// Takes a running network away at once: its dnsmasq has exited, its rules
/// are gone, and its bridge is gone or, when deleting it would wait in the
/// kernel, retired: down, without addresses, and renamed to
/// [`retired_name`], so that nothing of the network remains under its
/// names. Returns the retired bridge's index, for [`remove_retired`]. A
/// bridge someone else deleted already is no error.
pub async fn take_down(
    running: &RunningNetwork,
    firewall: &Firewall,
) -> Result<Option<u32>, StopError> {
    let (retired, errors) = remove(firewall, &Holdings::of(running), Leaving::Retire).await;
    stopped(running, errors).map(|()| retired)
}

/// Deletes a bridge [`take_down`] retired, if it is still there under its
/// retired name.
pub async fn remove_retired(ifindex: u32) -> Result<(), NetlinkError> {
    let netlink = Netlink::connect()?;
    if netlink.link_name(ifindex).await? == Some(retired_name(ifindex)) {
        netlink.delete_link(ifindex).await?;
    }
    Ok(())
}

/// Stops a running network: everything `start` made goes. It returns
/// once the kernel has committed the rules' removal and unlisted the
/// bridge; the kernel finishes freeing them in the background.
pub async fn stop(running: &RunningNetwork, firewall: &Firewall) -> Result<(), StopError> {
    let (_, errors) = remove(firewall, &Holdings::of(running), Leaving::Delete).await;
    stopped(running, errors)
}

//! A running network brought in line with a definition: after a live
//! update ([`refresh`], which puts the network back as it was when it
//! cannot finish), and when an earlier run's network is taken over.

use crate::apply::RunningNetwork;
use crate::definition::{MacAddr, NetworkDef};
use crate::killpoint;
use crate::plan::dnsmasq::DnsmasqPlan;
use crate::plan::firewall::FirewallPlan;
use crate::plan::network::{self, BridgedPlan};

use super::dnsmasq::{self, DnsmasqInstance, DnsmasqPaths};
use super::firewall::Firewall;
use super::{Environment, StartError};

/// What bringing dnsmasq in line did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DnsmasqChange {
    Unchanged,
    /// It re-read its hosts files (SIGHUP).
    Reloaded,
    /// It was started (again) with the new configuration, or stopped.
    Restarted,
    /// It runs as it should, under a pid other than the one recorded (a
    /// daemon killed before it recorded it).
    Found,
}

pub(super) fn bridged_plan(
    def: &NetworkDef,
    bridge: &str,
    mac: MacAddr,
    env: &Environment,
) -> Result<BridgedPlan, StartError> {
    let (files, _) = env.dnsmasq_files(&def.name, bridge);
    Ok(network::plan(def, bridge, mac, &files)?)
}

/// Whether `path` holds exactly `contents`.
fn holds(path: &std::path::Path, contents: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|found| found == contents)
}

/// Brings the network's dnsmasq in line with `plan`: left alone when it
/// runs with that configuration and those hosts files; told to re-read its
/// hosts files (SIGHUP) when only those differ; otherwise stopped and,
/// when `plan` wants one, started again.
pub(super) async fn converge_dnsmasq(
    current: Option<&DnsmasqInstance>,
    plan: Option<&DnsmasqPlan>,
    paths: &DnsmasqPaths,
    env: &Environment,
) -> Result<(Option<DnsmasqInstance>, DnsmasqChange), StartError> {
    if current.is_none() && plan.is_none() {
        return Ok((None, DnsmasqChange::Unchanged));
    }
    let recorded = current.filter(|instance| instance.is_running());
    let running = recorded
        .cloned()
        .or_else(|| DnsmasqInstance::named_by_pid_file(paths));
    if let (Some(instance), Some(plan)) = (&running, plan)
        && holds(&instance.paths.config, &plan.config)
    {
        if holds(&instance.paths.hosts, &plan.hosts_file)
            && holds(&instance.paths.addn_hosts, &plan.addn_hosts)
        {
            let change = if recorded.is_some() {
                DnsmasqChange::Unchanged
            } else {
                DnsmasqChange::Found
            };
            return Ok((running, change));
        }
        instance.reload_hosts(plan)?;
        return Ok((running, DnsmasqChange::Reloaded));
    }
    match &running {
        Some(instance) => instance.stop().await?,
        // None known: whatever runs with this configuration goes all the
        // same, or the new one could not bind its addresses.
        None => dnsmasq::stop_all(paths).await?,
    }
    let started = match plan {
        Some(plan) => Some(dnsmasq::start(plan, paths, &env.dnsmasq).await?),
        None => None,
    };
    Ok((started, DnsmasqChange::Restarted))
}

/// Replaces a running network's rules `old` by `new`, in one transaction.
async fn replace_rules(
    firewall: &Firewall,
    old: Option<&FirewallPlan>,
    new: Option<&FirewallPlan>,
) -> Result<(), StartError> {
    match (old, new) {
        (Some(old), Some(new)) if old != new => firewall.replace(old, new).await?,
        (Some(old), None) => firewall.stop(old).await?,
        (None, Some(new)) => firewall.start(new).await?,
        _ => {}
    }
    Ok(())
}

/// Brings a running network (made from `old_def`) in line with its updated
/// definition `def`: rules replaced in one transaction when they changed;
/// dnsmasq told to re-read its hosts files when only those changed,
/// restarted when its configuration did. When a step fails, the rules and
/// dnsmasq are put back as `old_def` has them and the error is returned.
/// Returns the network's new running state.
pub async fn refresh(
    old_def: &NetworkDef,
    def: &NetworkDef,
    running: &RunningNetwork,
    env: &Environment,
    firewall: &Firewall,
) -> Result<RunningNetwork, StartError> {
    let mut refreshed = running.clone();
    let Some(bridge) = &running.bridge else {
        let devices = network::host_devices(def);
        let mut pool = super::pool_for(def, &devices);
        if let (Some(pool), Some(old)) = (pool.as_mut(), &running.pool) {
            pool.keep_connections(old);
        }
        refreshed.host_devices = Some(devices);
        refreshed.pool = pool;
        return Ok(refreshed);
    };
    let mac = MacAddr(bridge.mac);
    let plan = bridged_plan(def, &bridge.name, mac, env)?;
    let (_, paths) = env.dnsmasq_files(&def.name, &bridge.name);
    replace_rules(firewall, running.firewall.as_ref(), plan.firewall.as_ref()).await?;
    killpoint::reached("update:rules");
    match converge_dnsmasq(running.dnsmasq.as_ref(), plan.dnsmasq.as_ref(), &paths, env).await {
        Ok((instance, _)) => {
            killpoint::reached("update:dnsmasq");
            refreshed.firewall.clone_from(&plan.firewall);
            refreshed.dnsmasq = instance;
            Ok(refreshed)
        }
        Err(error) => {
            let back = async {
                let old = bridged_plan(old_def, &bridge.name, mac, env)?;
                replace_rules(firewall, plan.firewall.as_ref(), old.firewall.as_ref()).await?;
                // The old dnsmasq was stopped, or is running as before.
                let current = running.dnsmasq.as_ref().filter(|dns| dns.is_running());
                converge_dnsmasq(current, old.dnsmasq.as_ref(), &paths, env).await
            };
            match back.await {
                Ok((instance, _)) => {
                    tracing::warn!(
                        network = %def.name,
                        "the update failed; the network runs as before"
                    );
                    // A dnsmasq started again has a new pid.
                    refreshed.dnsmasq = instance;
                    Err(StartError::UpdateUndone {
                        error: Box::new(error),
                        running: Box::new(refreshed),
                    })
                }
                Err(rollback) => Err(StartError::UpdateNotUndone {
                    error: Box::new(error),
                    rollback: Box::new(rollback),
                }),
            }
        }
    }
}

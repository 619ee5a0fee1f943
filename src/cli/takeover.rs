//! `import --uri`: libvirt's networks taken from a running libvirtd.

use super::args::virtnet::Import;
use super::client::Client;
use super::failure::{Context, Failure};
use super::import::{Found, define_imported, describe_import};
use crate::apply::netlink::Netlink;
use crate::definition::{ForwardMode, error_chain};
use crate::libvirtd::import::{Libvirt, LibvirtError, LibvirtNetwork};

fn failure(error: &(dyn std::error::Error + 'static)) -> Failure {
    Failure::new(error_chain(error))
}

pub(super) async fn import(client: &Client, uri: &str, args: &Import) -> Result<String, Failure> {
    let libvirt = Libvirt::open(uri).map_err(|error| failure(&error))?;
    let networks = libvirt
        .networks(&args.names)
        .map_err(|error| failure(&error))?;
    let mut out = String::new();
    for network in networks {
        let LibvirtNetwork {
            def,
            xml,
            active,
            persistent,
            autostart,
        } = network;
        let found = Found {
            def,
            xml,
            autostart,
            active,
        };
        out.push_str(&describe_import(&found, args.dry_run));
        if args.dry_run {
            if active {
                out.push_str(
                    "  would stop libvirt's copy, start virtnet's, and move its guests' ports\n",
                );
            }
            continue;
        }
        // A transient network stays transient: created when moved.
        if persistent {
            define_imported(client, &found).await?;
        }
        let undefine = args.undefine && persistent;
        if active {
            let moved = move_running(client, &libvirt, &found, persistent, undefine).await?;
            out.push_str(&format!(
                "  running in virtnet; libvirt's copy stopped; {moved} guest port(s) moved\n"
            ));
        } else if undefine {
            libvirt
                .undefine(&found.def.uuid)
                .map_err(|error| failure(&error))?;
        }
        if autostart {
            // Undefining took libvirt's autostart link with it.
            if !undefine {
                libvirt
                    .set_autostart(&found.def.uuid, false)
                    .map_err(|error| failure(&error))?;
            }
            out.push_str("  autostart moved to virtnet\n");
        }
        if undefine {
            out.push_str("  libvirt's copy undefined\n");
        }
    }
    out.push('\n');
    Ok(out)
}

/// Stops libvirt's copy (and undefines it when asked) and starts
/// virtnet's (the two share the bridge name, so they cannot run at
/// once), then puts the guests' ports on virtnet's bridge. Returns how
/// many ports moved. When virtnet's fails to start, libvirt's is
/// defined and started again with its ports.
///
/// The undefining comes before virtnet's start because virtnetd then
/// publishes its network in libvirtd under the same uuid, and libvirtd
/// can lose a network created while another client undefines it.
async fn move_running(
    client: &Client,
    libvirt: &Libvirt,
    found: &Found,
    persistent: bool,
    undefine: bool,
) -> Result<usize, Failure> {
    let netlink = Netlink::connect().map_err(|error| failure(&error))?;
    let bridge = ForwardMode::has_own_bridge(found.def.forward_mode())
        .then(|| found.def.bridge.name.as_ref().map(ToString::to_string))
        .flatten();
    let ports = match &bridge {
        Some(bridge) => match netlink
            .link_index(bridge)
            .await
            .map_err(|error| failure(&error))?
        {
            Some(index) => netlink
                .ports(index)
                .await
                .map_err(|error| failure(&error))?,
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    let uuid = found.def.uuid;
    libvirt.stop(&uuid).map_err(|error| failure(&error))?;
    let context = || format!("Failed to start network {}", found.def.name);
    let started = async {
        if undefine {
            libvirt.undefine(&uuid).map_err(|error| failure(&error))?;
        }
        if persistent {
            client
                .network(&uuid.to_string())
                .await?
                .create()
                .await
                .context(context)
        } else {
            client
                .connect()
                .await?
                .network_create_xml(&found.xml)
                .await
                .map(drop)
                .context(context)
        }
    }
    .await;
    if let Err(mut error) = started {
        let restarted = restore(libvirt, found, undefine);
        let reattached = reattach(&netlink, bridge.as_deref(), &ports).await;
        error.message.push_str(&match (restarted, reattached) {
            (Ok(()), Ok(())) => {
                "\nlibvirt's copy is running again, with its guests' ports".to_owned()
            }
            (Err(restart), _) => format!(
                "\nand libvirt's copy did not start again: {}",
                error_chain(&restart)
            ),
            (Ok(()), Err(reattach)) => format!(
                "\nlibvirt's copy is running again, but {}",
                reattach.message
            ),
        });
        return Err(error);
    }
    reattach(&netlink, bridge.as_deref(), &ports).await?;
    Ok(ports.len())
}

/// Starts libvirt's copy again, defined again first when it was
/// undefined.
fn restore(libvirt: &Libvirt, found: &Found, undefined: bool) -> Result<(), LibvirtError> {
    if undefined {
        libvirt.define(&found.xml)?;
        if found.autostart {
            libvirt.set_autostart(&found.def.uuid, true)?;
        }
    }
    libvirt.start(&found.def.uuid)
}

/// Puts `ports` (that still exist) on `bridge`.
async fn reattach(
    netlink: &Netlink,
    bridge: Option<&str>,
    ports: &[(u32, String)],
) -> Result<(), Failure> {
    let Some(bridge) = bridge else {
        return Ok(());
    };
    let Some(index) = netlink
        .link_index(bridge)
        .await
        .map_err(|error| failure(&error))?
    else {
        return Err(Failure::new(format!("bridge {bridge} is missing")));
    };
    for (port, name) in ports {
        if netlink.link_index(name).await.ok().flatten() == Some(*port) {
            netlink
                .attach(*port, index)
                .await
                .map_err(|error| Failure {
                    context: Some(format!("cannot move port {name} to {bridge}")),
                    message: error_chain(&error),
                })?;
        }
    }
    Ok(())
}

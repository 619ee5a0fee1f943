//! `import --uri`: libvirt's networks taken over from a running libvirtd.
//! virtnetd does the work (it runs where the bridges are); this asks it
//! and reports what it did.

use super::args::virtnet::Import;
use super::client::Client;
use super::failure::{Context, Failure};
use super::import::Described;
use crate::service::import::import_flags;

pub(super) async fn import(client: &Client, uri: &str, args: &Import) -> Result<String, Failure> {
    let mut flags = 0;
    if args.undefine {
        flags |= import_flags::UNDEFINE;
    }
    if args.dry_run {
        flags |= import_flags::DRY_RUN;
    }
    let networks = client
        .virtnet()
        .await?
        .import_from_libvirt(uri, &args.names, flags)
        .await
        .context(|| format!("Failed to import networks from {uri}"))?;
    let mut out = String::new();
    for (name, uuid, bridge, mac, autostart, running, _, undefined, moved) in networks {
        let described = Described {
            name: &name,
            uuid: &uuid,
            bridge: &bridge,
            mac: &mac,
            autostart,
            running,
        };
        out.push_str(&described.line(args.dry_run));
        if args.dry_run {
            if running {
                out.push_str(
                    "  would stop libvirt's copy, start virtnet's, and move its guests' ports\n",
                );
            }
            continue;
        }
        if running {
            out.push_str(&format!(
                "  running in virtnet; libvirt's copy stopped; {moved} guest port(s) moved\n"
            ));
        }
        if autostart {
            out.push_str("  autostart moved to virtnet\n");
        }
        if undefined {
            out.push_str("  libvirt's copy undefined\n");
        }
    }
    // Output ends it with virsh's blank line.
    Ok(out)
}

//! `import`: libvirt's networks defined in virtnet as they are, from the
//! directory libvirt keeps them in (or, with `--uri`, taken over from a
//! running libvirtd by virtnetd: see `takeover`).

use super::args::virtnet::Import;
use super::client::Client;
use super::failure::{Context, Failure};
use super::input::read_text;
use crate::definition::{NetworkDef, error_chain};

/// One of libvirt's persistent networks found on disk.
struct Found {
    def: NetworkDef,
    xml: String,
    autostart: bool,
}

/// What import's report says of a network.
pub(super) struct Described<'a> {
    pub(super) name: &'a str,
    pub(super) uuid: &'a str,
    /// "" when none.
    pub(super) bridge: &'a str,
    /// "" when none.
    pub(super) mac: &'a str,
    pub(super) autostart: bool,
    /// Running in libvirtd (known with --uri only).
    pub(super) running: bool,
}

/// libvirt's network definitions in `dir` (those named in `names`, or all).
fn libvirt_networks(dir: &std::path::Path, names: &[String]) -> Result<Vec<Found>, Failure> {
    let entries = std::fs::read_dir(dir)
        .map_err(|error| Failure::new(format!("cannot read {}: {error}", dir.display())))?;
    let mut paths: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
        .collect();
    paths.sort();
    let mut found = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        let xml = read_text(&file).map_err(Failure::new)?;
        let def = NetworkDef::parse(&xml).map_err(|error| {
            Failure::new(error_chain(&error)).within(format!("cannot import {file}"))
        })?;
        if !names.is_empty() && !names.iter().any(|name| name == def.name.as_str()) {
            continue;
        }
        let autostart = dir
            .join("autostart")
            .join(format!("{}.xml", def.name))
            .exists();
        found.push(Found {
            def,
            xml,
            autostart,
        });
    }
    if let Some(missing) = names.iter().find(|name| {
        !found
            .iter()
            .any(|net| net.def.name.as_str() == name.as_str())
    }) {
        return Err(Failure::new(format!(
            "no network named '{missing}' in {}",
            dir.display()
        )));
    }
    Ok(found)
}

/// import: libvirt's networks defined in virtnet as they are; from a
/// running libvirtd, the running ones moved over too.
pub(super) async fn import(client: &Client, args: Import) -> Result<String, Failure> {
    #[cfg(feature = "libvirt")]
    if let Some(uri) = &args.uri {
        return super::takeover::import(client, uri, &args).await;
    }
    let networks = libvirt_networks(&args.dir, &args.names)?;
    let mut out = String::new();
    for network in &networks {
        let def = &network.def;
        let (name, uuid) = (def.name.to_string(), def.uuid.to_string());
        let bridge = def.bridge.name.as_ref().map(ToString::to_string);
        let mac = def.mac.map(|mac| mac.to_string());
        let described = Described {
            name: &name,
            uuid: &uuid,
            bridge: bridge.as_deref().unwrap_or_default(),
            mac: mac.as_deref().unwrap_or_default(),
            autostart: network.autostart,
            running: false,
        };
        out.push_str(&described.line(args.dry_run));
        if !args.dry_run {
            define_imported(client, network).await?;
        }
    }
    if !args.dry_run && !networks.is_empty() {
        out.push_str(
            "\nNot started: stop libvirt's copy first (virsh net-destroy NAME), then virtnet net-start NAME.\n",
        );
    }
    // Output ends it with virsh's blank line.
    Ok(out)
}

impl Described<'_> {
    /// The report's line for the network.
    pub(super) fn line(&self, dry_run: bool) -> String {
        let dash = |text: &str| if text.is_empty() { "-" } else { text }.to_owned();
        format!(
            "{} network {} (uuid {}, bridge {}, mac {}{}{})\n",
            if dry_run { "Would import" } else { "Importing" },
            self.name,
            self.uuid,
            dash(self.bridge),
            dash(self.mac),
            if self.autostart { ", autostart" } else { "" },
            if self.running { ", running" } else { "" },
        )
    }
}

/// Defines an imported network in virtnet, with libvirt's autostart.
async fn define_imported(client: &Client, network: &Found) -> Result<(), Failure> {
    let context = || format!("Failed to define network {}", network.def.name);
    let path = client
        .connect()
        .await?
        .network_define_xml(&network.xml)
        .await
        .context(context)?;
    if network.autostart {
        client
            .network_at(path)
            .await?
            .set_autostart(true)
            .await
            .context(context)?;
    }
    Ok(())
}

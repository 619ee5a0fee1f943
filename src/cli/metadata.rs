//! net-desc and net-metadata (libvirt 9.7's verbs), and the titles
//! net-list --title shows: a network's title, description and metadata
//! elements through virtnetd's org.virtnet.Network, with virsh's messages.

use zbus::OwnedObjectPath;

use super::args::virtnet::{AffectArgs, DescArgs, MetadataArgs};
use super::client::Client;
use super::editor::{self, EditorError};
use super::failure::{Context, Failure};
use super::output::Output;
use super::usage::{UsageError, exclusive, operands};
use crate::dbus::client::VirtnetNetworkProxy;
use crate::definition::{MetadataType, error_chain};
use crate::service::update_flags;

impl AffectArgs {
    /// libvirt's flags: the live definition, the persistent one, or (none)
    /// the current one.
    fn flags(&self) -> Result<u32, Failure> {
        exclusive(&[
            (("current", self.current), ("live", self.live)),
            (("current", self.current), ("config", self.config)),
        ])?;
        let mut flags = 0;
        if self.live {
            flags |= update_flags::LIVE;
        }
        if self.config {
            flags |= update_flags::CONFIG;
        }
        Ok(flags)
    }
}

/// The title or description, empty when there is none (virsh's
/// virshGetNetworkDescription).
pub(super) async fn text(
    network: &VirtnetNetworkProxy<'static>,
    kind: MetadataType,
    flags: u32,
) -> zbus::Result<String> {
    match network.get_metadata(kind as i32, "", flags).await {
        Err(zbus::Error::MethodError(_, Some(message), _))
            if message.starts_with("metadata not found") =>
        {
            Ok(String::new())
        }
        other => other,
    }
}

/// The network's object: its name, and its org.virtnet.Network proxy.
async fn network_of(
    client: &Client,
    network: &str,
) -> Result<(String, VirtnetNetworkProxy<'static>), Failure> {
    let proxy = client.network(network).await?;
    let name = proxy
        .name()
        .await
        .context(|| "failed to get network name".into())?;
    let path: OwnedObjectPath = proxy.inner().path().to_owned().into();
    Ok((name, client.virtnet_network(path).await?))
}

pub(super) async fn desc(client: &Client, args: DescArgs, out: &mut Output) -> Result<(), Failure> {
    let mut words = args.words.into_iter();
    let network = match args.network {
        Some(network) => network,
        None => words.next().ok_or_else(|| {
            UsageError(vec!["command 'net-desc' requires <network> option".into()])
        })?,
    };
    let words: Vec<String> = words.collect();
    let new = args
        .new_desc
        .or_else(|| (!words.is_empty()).then(|| words.join(" ")));
    let (kind, what) = if args.title {
        (MetadataType::Title, "title")
    } else {
        (MetadataType::Description, "description")
    };
    let flags = args.affect.flags()?;
    let (name, proxy) = network_of(client, &network).await?;
    let new = if args.edit {
        let current = text(&proxy, kind, flags).await.reason_only()?;
        let mut edited = edit(new.unwrap_or_else(|| current.clone())).await?;
        // Editors end files with a newline, which a title cannot hold.
        if args.title && edited.ends_with('\n') {
            edited.pop();
        }
        if edited == current {
            out.extra(&format!("Network {what} not changed\n"));
            return Ok(());
        }
        Some(edited)
    } else {
        new
    };
    match new {
        Some(new) => {
            proxy
                .set_metadata(kind as i32, &new, "", "", flags)
                .await
                .context(|| format!("Failed to set new network {what}"))?;
            out.extra(&format!("Network {what} updated successfully"));
        }
        None => {
            let current = text(&proxy, kind, flags).await.reason_only()?;
            if current.is_empty() {
                out.extra(&format!("No {what} for network: {name}"));
            } else {
                out.data(&current);
            }
        }
    }
    Ok(())
}

pub(super) async fn metadata(
    client: &Client,
    args: MetadataArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    let [network, uri] = operands(
        "net-metadata",
        [
            ("network", args.network_named, args.network),
            ("uri", args.uri_named, args.uri),
        ],
    )?;
    let flags = args.affect.flags()?;
    exclusive(&[
        (("edit", args.edit), ("set", args.set.is_some())),
        (("remove", args.remove), ("set", args.set.is_some())),
        (("remove", args.remove), ("edit", args.edit)),
    ])?;
    if (args.set.is_some() || args.edit) && args.key.is_none() {
        return Err(Failure::new(
            "namespace key is required when modifying metadata",
        ));
    }
    let (_, proxy) = network_of(client, &network).await?;
    let element = MetadataType::Element as i32;
    if args.edit {
        // virsh offers a blank line to write a first element on.
        let current = proxy
            .get_metadata(element, &uri, flags)
            .await
            .unwrap_or_else(|_| "\n".to_owned());
        let edited = edit(current.clone()).await?;
        if edited == current {
            out.extra("Metadata not changed");
            return Ok(());
        }
        let key = args.key.unwrap_or_default();
        proxy
            .set_metadata(element, &edited, &key, &uri, flags)
            .await
            .reason_only()?;
        out.extra("Metadata modified\n");
    } else if args.set.is_some() || args.remove {
        let set = args.set.unwrap_or_default();
        let key = args.key.unwrap_or_default();
        proxy
            .set_metadata(element, &set, &key, &uri, flags)
            .await
            .reason_only()?;
        out.extra(if args.remove {
            "Metadata removed\n"
        } else {
            "Metadata modified\n"
        });
    } else {
        let xml = proxy
            .get_metadata(element, &uri, flags)
            .await
            .reason_only()?;
        out.data(&format!("{xml}\n"));
    }
    Ok(())
}

/// `text` as the user leaves it in their editor.
async fn edit(text: String) -> Result<String, Failure> {
    let failed = |error: EditorError| Failure::new(error_chain(&error));
    // Removed when dropped, whichever way this returns.
    let file = editor::write_temporary(text).await.map_err(failed)?;
    editor::run(file.path()).await.map_err(failed)?;
    editor::read_back(file.path().to_owned())
        .await
        .map_err(failed)
}

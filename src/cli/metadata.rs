//! net-desc and net-metadata (libvirt 9.7's verbs), and the titles
//! net-list --title shows: a network's title, description and metadata
//! elements through virtnetd's org.virtnet.Network, with virsh's messages.

use zbus::OwnedObjectPath;

use super::args::virtnet::{AffectArgs, DescArgs, MetadataArgs};
use super::client::Client;
use super::failure::{Context, Failure};
use super::output::Output;
use super::usage::{UsageError, operands};
use crate::dbus::client::VirtnetNetworkProxy;
use crate::definition::MetadataType;
use crate::service::update_flags;

impl AffectArgs {
    /// libvirt's flags: the live definition, the persistent one, or (none)
    /// the current one.
    fn flags(&self) -> u32 {
        let mut flags = 0;
        if self.live {
            flags |= update_flags::LIVE;
        }
        if self.config {
            flags |= update_flags::CONFIG;
        }
        flags
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
    let flags = args.affect.flags();
    let (name, proxy) = network_of(client, &network).await?;
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
    if args.set.is_some() && args.key.is_none() {
        return Err(Failure::new(
            "namespace key is required when modifying metadata",
        ));
    }
    let flags = args.affect.flags();
    let (_, proxy) = network_of(client, &network).await?;
    let element = MetadataType::Element as i32;
    if args.set.is_some() || args.remove {
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

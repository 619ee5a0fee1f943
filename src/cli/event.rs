//! net-event: virtnetd's NetworkEvent signals printed as virsh prints
//! libvirt's network events (virsh-network.c's cmdNetworkEvent).

use std::collections::HashMap;

use futures_util::StreamExt;
use jiff::Timestamp;

use super::args::virtnet::EventArgs;
use super::client::Client;
use super::failure::{Context, Failure};
use super::output::Output;
use crate::dbus;
use crate::definition::MetadataType;

/// The event types, as `net-event --list` names them, and the signals
/// (interface, member) virtnetd sends them as.
const EVENT_TYPES: [(&str, &str, &str); 2] = [
    ("lifecycle", "org.libvirt.Connect", "NetworkEvent"),
    (
        "metadata-change",
        "org.virtnet.Connect",
        "NetworkMetadataChange",
    ),
];

/// libvirt's virNetworkEventLifecycleType, as virsh names its values.
fn lifecycle_name(event: i32) -> &'static str {
    match event {
        0 => "Defined",
        1 => "Undefined",
        2 => "Started",
        3 => "Stopped",
        _ => "unknown",
    }
}

/// A metadata change as virsh prints it: what changed, and the namespace
/// of a changed element (`<null>` for others, as virsh's NULLSTR).
fn metadata_change(kind: i32, uri: &str) -> String {
    let kind = MetadataType::from_code(kind).map_or("unknown", MetadataType::name);
    let uri = if uri.is_empty() { "<null>" } else { uri };
    format!("type {kind}, uri {uri}")
}

/// Now, as virsh's `--timestamp` prints it (virTimeStringNowRaw: UTC,
/// milliseconds).
fn timestamp(now: Timestamp) -> String {
    now.strftime("%Y-%m-%d %H:%M:%S%.3f+0000").to_string()
}

/// Why the wait ended.
enum End {
    Done,
    TimedOut,
    Interrupted,
}

pub(super) async fn watch<Open, Opening>(
    open: Open,
    args: EventArgs,
    out: &mut Output,
) -> Result<(), Failure>
where
    Open: FnOnce() -> Opening,
    Opening: Future<Output = Result<Client, Failure>>,
{
    if args.list {
        for (kind, ..) in EVENT_TYPES {
            out.data(&format!("{kind}\n"));
        }
        return Ok(());
    }
    let Some(wanted) = args.event.as_deref() else {
        return Err(Failure::new("either --list or --event <type> is required"));
    };
    let Some(&(kind, interface, member)) = EVENT_TYPES.iter().find(|(kind, ..)| *kind == wanted)
    else {
        return Err(Failure::new(format!("unknown event type {wanted}")));
    };
    let client = open().await?;
    let only = match args.network_named.or(args.network) {
        Some(network) => Some(
            client
                .network(&network)
                .await?
                .uuid()
                .await
                .context(|| format!("failed to get network '{network}'"))?,
        ),
        None => None,
    };
    // Subscribed before the names are read: no event is missed between.
    let mut events = client.network_events(interface, member).await?;
    // Names of networks that may be gone by the time their event is read
    // (an undefined network's object no longer answers).
    let mut names: HashMap<String, String> = client
        .virtnet()
        .await?
        .list_network_summaries(0)
        .await
        .context(|| "failed to list networks".into())?
        .into_iter()
        .map(|(name, uuid, ..)| (uuid, name))
        .collect();
    let deadline = args
        .timeout
        .map(|seconds| tokio::time::Instant::now() + std::time::Duration::from_secs(seconds));
    let mut count = 0usize;
    let end = loop {
        let timeout = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let message = tokio::select! {
            message = events.next() => message,
            () = timeout => break End::TimedOut,
            _ = tokio::signal::ctrl_c() => break End::Interrupted,
        };
        let Some(Ok(message)) = message else {
            return Err(Failure::new(
                "failed to connect to virtnetd: the bus connection ended",
            ));
        };
        let body = message.body();
        let (path, what) = if kind == "lifecycle" {
            let Ok((path, event)) = body.deserialize::<(zbus::OwnedObjectPath, i32)>() else {
                continue;
            };
            (path, lifecycle_name(event).to_owned())
        } else {
            let Ok((path, changed, uri)) =
                body.deserialize::<(zbus::OwnedObjectPath, i32, String)>()
            else {
                continue;
            };
            (path, metadata_change(changed, &uri))
        };
        let Some(uuid) = dbus::network_uuid(path.as_str()).map(|uuid| uuid.to_string()) else {
            continue;
        };
        if only.as_ref().is_some_and(|only| *only != uuid) {
            continue;
        }
        if let Ok(name) = client.network_at(path).await?.name().await {
            names.insert(uuid.clone(), name);
        }
        let name = names.get(&uuid).map_or(uuid.as_str(), String::as_str);
        let line = format!("event '{kind}' for network {name}: {what}\n");
        if args.timestamp {
            out.data(&format!("{}: {line}", timestamp(Timestamp::now())));
        } else {
            out.data(&line);
        }
        out.flush()
            .map_err(|error| Failure::new(format!("cannot write output: {error}")))?;
        count += 1;
        if !args.repeat {
            break End::Done;
        }
    };
    match end {
        End::Done => {}
        End::TimedOut => out.data("event loop timed out\n"),
        End::Interrupted => out.data("event loop interrupted\n"),
    }
    out.data(&format!("events received: {count}\n"));
    if count == 0 {
        // virsh fails when nothing came, saying no more.
        return Err(Failure::given_up());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_changes_read_as_virshs() {
        assert_eq!(metadata_change(1, ""), "type title, uri <null>");
        assert_eq!(
            metadata_change(2, "http://example.org/"),
            "type element, uri http://example.org/"
        );
    }

    #[test]
    fn timestamps_read_as_virshs() {
        let instant: Timestamp = "2024-03-05T06:07:08.009Z".parse().unwrap();
        assert_eq!(timestamp(instant), "2024-03-05 06:07:08.009+0000");
    }

    #[test]
    fn lifecycle_events_are_named_as_virsh_names_them() {
        let names: Vec<_> = (0..5).map(lifecycle_name).collect();
        assert_eq!(
            names,
            ["Defined", "Undefined", "Started", "Stopped", "unknown"]
        );
    }
}

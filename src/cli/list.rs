//! The verbs that print tables: `net-list` and `net-dhcp-leases`, laid out
//! as virsh lays them out.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::args::virtnet::ListArgs;
use super::client::{Client, Properties};
use super::failure::{Context, Failure};
use super::metadata;
use super::output::Output;
use super::table::{self, yes_no};
use crate::definition::MetadataType;
use crate::service::list_flags;

pub(super) async fn list(
    client: &Client,
    args: &ListArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    if [args.table, args.name, args.uuid]
        .iter()
        .filter(|given| **given)
        .count()
        > 1
    {
        return Err(Failure::new(
            "Only one argument from --table, --name and --uuid may be specified.",
        ));
    }
    // virsh: active networks unless --all or --inactive.
    let mut flags = match (args.all, args.inactive) {
        (true, _) => 0,
        (false, true) => list_flags::INACTIVE,
        (false, false) => list_flags::ACTIVE,
    };
    for (given, flag) in [
        (args.persistent, list_flags::PERSISTENT),
        (args.transient, list_flags::TRANSIENT),
        (args.autostart, list_flags::AUTOSTART),
        (args.no_autostart, list_flags::NO_AUTOSTART),
    ] {
        if given {
            flags |= flag;
        }
    }
    let mut networks: Vec<Properties> = client
        .virtnet()
        .await?
        .list_network_summaries(flags)
        .await
        .context(|| "Failed to list networks".into())?
        .into_iter()
        .map(
            |(name, uuid, active, persistent, autostart, bridge)| Properties {
                name,
                uuid,
                active,
                autostart,
                persistent,
                bridge,
            },
        )
        .collect();
    networks.sort_by_key(|network| network.name.to_lowercase());
    if args.name || args.uuid {
        for network in &networks {
            out.data(if args.name {
                &network.name
            } else {
                &network.uuid
            });
            out.data("\n");
        }
        return Ok(());
    }
    let mut rows: Vec<Vec<String>> = networks
        .iter()
        .map(|network| {
            vec![
                network.name.clone(),
                if network.active { "active" } else { "inactive" }.to_owned(),
                yes_no(network.autostart).to_owned(),
                yes_no(network.persistent).to_owned(),
            ]
        })
        .collect();
    let mut headers = vec!["Name", "State", "Autostart", "Persistent"];
    if args.title {
        headers.push("Title");
        for (row, network) in rows.iter_mut().zip(&networks) {
            row.push(title(client, &network.uuid).await?);
        }
    }
    let quiet = out.quiet();
    out.data(&table::render(&headers, &rows, quiet));
    Ok(())
}

/// The network's title, empty when it has none (its current definition,
/// as virsh's net-list shows it).
async fn title(client: &Client, uuid: &str) -> Result<String, Failure> {
    let path = client
        .connect()
        .await?
        .network_lookup_by_uuid(uuid)
        .await
        .context(|| format!("failed to get network '{uuid}'"))?;
    let network = client.virtnet_network(path).await?;
    metadata::text(&network, MetadataType::Title, 0)
        .await
        .reason_only()
}

/// net-dhcp-leases: the network's leases, by MAC and address.
pub(super) async fn leases(
    client: &Client,
    network: &str,
    mac: Option<&str>,
    out: &mut Output,
) -> Result<(), Failure> {
    let proxy = client.network(network).await?;
    let mut leases = proxy
        .get_dhcp_leases(mac.unwrap_or(""), 0)
        .await
        .context(|| format!("Failed to get leases info for {network}"))?;
    leases.sort_by(|a, b| (&a.3, &a.5).cmp(&(&b.3, &b.5)));
    // The system's zone, as localtime_r finds it (TZ, else /etc/localtime):
    // reading it reads files.
    let zone = tokio::task::spawn_blocking(TimeZone::system)
        .await
        .map_err(|error| Failure::new(format!("cannot read the local time zone: {error}")))?;
    let dash = |text: String| {
        if text.is_empty() {
            "-".to_owned()
        } else {
            text
        }
    };
    let rows: Vec<Vec<String>> = leases
        .into_iter()
        .map(
            |(_, expiry, kind, mac, _, address, prefix, hostname, client_id)| {
                vec![
                    local_time(expiry, &zone),
                    dash(mac),
                    if kind == 0 { "ipv4" } else { "ipv6" }.to_owned(),
                    format!("{address}/{prefix}"),
                    dash(hostname),
                    dash(client_id),
                ]
            },
        )
        .collect();
    let quiet = out.quiet();
    out.data(&table::render(
        &[
            "Expiry Time",
            "MAC address",
            "Protocol",
            "IP address",
            "Hostname",
            "Client ID or DUID",
        ],
        &rows,
        quiet,
    ));
    Ok(())
}

/// `expiry` (seconds since the epoch) in `zone`, as virsh prints it
/// (strftime's `%Y-%m-%d %H:%M:%S` of localtime_r).
fn local_time(expiry: i64, zone: &TimeZone) -> String {
    let Ok(instant) = Timestamp::from_second(expiry) else {
        return expiry.to_string();
    };
    let time = zone.to_datetime(instant);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_printed_in_the_given_zone() {
        // Central European time: UTC+1 in winter, UTC+2 from the last
        // Sunday of March.
        let zone = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        // 2023-11-14 22:13:20 UTC.
        assert_eq!(local_time(1_700_000_000, &zone), "2023-11-14 23:13:20");
        // 2024-07-01 00:00:05 UTC.
        assert_eq!(local_time(1_719_792_005, &zone), "2024-07-01 02:00:05");
        assert_eq!(local_time(0, &TimeZone::UTC), "1970-01-01 00:00:00");
    }

    #[test]
    fn an_expiry_out_of_range_is_printed_as_a_number() {
        assert_eq!(local_time(i64::MAX, &TimeZone::UTC), i64::MAX.to_string());
    }
}

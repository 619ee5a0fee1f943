//! `virtnet`'s verbs: each one call (or a few) to virtnetd, with virsh's
//! messages; the offline verbs (`xml-format`, `xml-validate`) work on XML
//! files without a daemon.

use super::args::virtnet::{Cli, Command};
use super::client::Client;
use super::failure::{Context, Failure};
use super::input::{parse_file, read_text};
use super::table::yes_no;
use super::{doctor, edit, import, list};
use crate::dbus::client::NetworkProxy;
use crate::definition::{FormatFlags, NetworkDef, UpdateCommand, UpdateSection, error_chain};
use crate::service::update_flags;

/// Runs the command: what to print, or why it failed.
pub async fn run(cli: Cli) -> Result<String, Failure> {
    match cli.command {
        Command::XmlFormat { file, inactive } => {
            let def = parse_file(&file).map_err(Failure::new)?;
            return Ok(def.to_xml(FormatFlags { inactive }));
        }
        Command::GenerateDocs { dir } => {
            super::docs::generate(&dir).map_err(|error| {
                Failure::new(format!("cannot write into {}: {error}", dir.display()))
            })?;
            return Ok(String::new());
        }
        Command::XmlValidate { file } => {
            let def = parse_file(&file).map_err(Failure::new)?;
            def.validate()
                .map_err(|error| Failure::new(error_chain(&error)))?;
            return Ok("valid\n".into());
        }
        _ => {}
    }
    let client = Client::open(&cli.bus).await?;
    match cli.command {
        Command::XmlFormat { .. } | Command::XmlValidate { .. } | Command::GenerateDocs { .. } => {
            Ok(String::new())
        }
        Command::NetDefine { file } => {
            let context = || format!("Failed to define network from {file}");
            let xml = read_text(&file).map_err(Failure::new)?;
            client
                .connect()
                .await?
                .network_define_xml(&xml)
                .await
                .context(context)?;
            let name = name_in(&xml, &file);
            Ok(format!("Network {name} defined from {file}\n\n"))
        }
        Command::NetCreate { file } => {
            let context = || format!("Failed to create network from {file}");
            let xml = read_text(&file).map_err(Failure::new)?;
            client
                .connect()
                .await?
                .network_create_xml(&xml)
                .await
                .context(context)?;
            // The reply says it is created: reading the network back could
            // fail for nothing, when another client removes it at once.
            let name = name_in(&xml, &file);
            Ok(format!("Network {name} created from {file}\n\n"))
        }
        Command::NetStart { network } => {
            let start = |proxy: NetworkProxy<'static>| async move { proxy.create().await };
            network_verb(&client, &network, start, "start", "started").await
        }
        Command::NetDestroy { network } => {
            let destroy = |proxy: NetworkProxy<'static>| async move { proxy.destroy().await };
            network_verb(&client, &network, destroy, "destroy", "destroyed").await
        }
        Command::NetUndefine { network } => {
            let undefine = |proxy: NetworkProxy<'static>| async move { proxy.undefine().await };
            network_verb(
                &client,
                &network,
                undefine,
                "undefine",
                "has been undefined",
            )
            .await
        }
        Command::NetAutostart { network, disable } => {
            let proxy = client.network(&network).await?;
            let (verb, done) = if disable {
                ("unmark", "unmarked")
            } else {
                ("mark", "marked")
            };
            proxy
                .set_autostart(!disable)
                .await
                .context(|| format!("failed to {verb} network {network} as autostarted"))?;
            Ok(format!("Network {network} {done} as autostarted\n\n"))
        }
        Command::NetList(args) => list::list(&client, &args).await,
        Command::NetInfo { network } => {
            let proxy = client.network(&network).await?;
            let path = proxy.inner().path().to_owned().into();
            let info = client.properties(&[path]).await?.pop().unwrap_or_default();
            let mut out = String::new();
            for (label, value) in [
                ("Name:", info.name.as_str()),
                ("UUID:", info.uuid.as_str()),
                ("Active:", yes_no(info.active)),
                ("Persistent:", yes_no(info.persistent)),
                ("Autostart:", yes_no(info.autostart)),
            ] {
                out.push_str(&format!("{label:<15} {value}\n"));
            }
            if !info.bridge.is_empty() {
                out.push_str(&format!("{:<15} {}\n", "Bridge:", info.bridge));
            }
            out.push('\n');
            Ok(out)
        }
        Command::NetDumpxml { network, inactive } => {
            let proxy = client.network(&network).await?;
            let xml = proxy
                .get_xml_desc(u32::from(inactive))
                .await
                .context(|| format!("Failed to get the XML of network {network}"))?;
            Ok(format!("{xml}\n"))
        }
        Command::NetUuid { network } => {
            let proxy = client.network(&network).await?;
            let uuid = proxy
                .uuid()
                .await
                .context(|| "failed to get network UUID".into())?;
            Ok(format!("{uuid}\n\n"))
        }
        Command::NetName { uuid } => {
            let path = client
                .connect()
                .await?
                .network_lookup_by_uuid(&uuid)
                .await
                .context(|| format!("failed to get network '{uuid}'"))?;
            let name = client
                .network_at(path)
                .await?
                .name()
                .await
                .context(|| "failed to get network name".into())?;
            Ok(format!("{name}\n\n"))
        }
        Command::NetUpdate {
            network,
            command,
            section,
            xml,
            parent_index,
            config,
            live,
            current: _,
        } => {
            let command_code = UpdateCommand::from_name(&command)
                .ok_or_else(|| Failure::new(format!("unrecognized command name '{command}'")))?;
            let section_code = UpdateSection::from_name(&section)
                .ok_or_else(|| Failure::new(format!("unrecognized section name '{section}'")))?;
            let xml = if xml.trim_start().starts_with('<') {
                xml
            } else {
                read_text(&xml).map_err(Failure::new)?
            };
            let proxy = client.network(&network).await?;
            let mut flags = 0;
            if config {
                flags |= update_flags::CONFIG;
            }
            if live {
                flags |= update_flags::LIVE;
            }
            proxy
                .update(
                    command_code as u32,
                    section_code as u32,
                    parent_index,
                    &xml,
                    flags,
                )
                .await
                .context(|| format!("Failed to update network {network}"))?;
            let affected = match (config, live) {
                (true, true) => "persistent config and live state",
                (true, false) => "persistent config",
                (false, true) => "live state",
                (false, false) => {
                    if proxy.active().await.unwrap_or(false) {
                        "live state"
                    } else {
                        "persistent config"
                    }
                }
            };
            Ok(format!("Updated network {network} {affected}\n"))
        }
        Command::NetDhcpLeases { network, mac } => {
            list::leases(&client, &network, mac.as_deref()).await
        }
        Command::NetEdit { network } => edit::edit(&client, &network).await,
        Command::Import(args) => import::import(&client, args).await,
        Command::Doctor { network, json } => doctor::doctor(&client, network, json).await,
        Command::ReloadFirewall => {
            let restored = client
                .virtnet()
                .await?
                .reload_firewall()
                .await
                .context(|| "Failed to reload the firewall".into())?;
            Ok(if restored {
                "Firewall rules restored\n\n".to_owned()
            } else {
                "Firewall rules already in place\n\n".to_owned()
            })
        }
    }
}

/// The name of the network `xml` (read from `file`) defines. The daemon
/// took the definition, so it parses.
fn name_in(xml: &str, file: &str) -> String {
    NetworkDef::parse(xml).map_or_else(|_| file.to_owned(), |def| def.name.to_string())
}

/// net-start, net-destroy, net-undefine: one call on the network, and
/// virsh's messages for it.
async fn network_verb<Call, Done>(
    client: &Client,
    network: &str,
    call: Call,
    verb: &str,
    done: &str,
) -> Result<String, Failure>
where
    Call: FnOnce(NetworkProxy<'static>) -> Done,
    Done: Future<Output = zbus::Result<()>>,
{
    let proxy = client.network(network).await?;
    call(proxy)
        .await
        .context(|| format!("Failed to {verb} network {network}"))?;
    Ok(format!("Network {network} {done}\n\n"))
}

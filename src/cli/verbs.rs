//! `virtnet`'s verbs: each one call (or a few) to virtnetd, with virsh's
//! messages; the offline verbs (`xml-format`, `xml-validate`) work on XML
//! files without a daemon.

use super::args::virtnet::{Cli, Command, FileOperand, NetworkOperand, UpdateArgs};
use super::client::Client;
use super::failure::{Context, Failure};
use super::input::{parse_file, read_text};
use super::output::Output;
use super::table::yes_no;
use super::usage::{exclusive, operands};
use super::{complete, doctor, dumpxml, edit, event, import, list, metadata, schema};
use crate::dbus::client::NetworkProxy;
use crate::definition::{FormatFlags, NetworkDef, UpdateCommand, UpdateSection, error_chain};
use crate::service::update_flags;

impl NetworkOperand {
    /// The network, by position or by `--network`.
    pub(super) fn resolve(self, verb: &str) -> Result<String, Failure> {
        let [network] = operands(verb, [("network", self.named, self.positional)])?;
        Ok(network)
    }
}

impl FileOperand {
    /// The file, by position or by `--file`.
    fn resolve(self, verb: &str) -> Result<String, Failure> {
        let [file] = operands(verb, [("file", self.named, self.positional)])?;
        Ok(file)
    }
}

/// Whether what the command prints ends with virsh's blank line: not for
/// the offline verbs, whose output is a file's, nor for completion, which
/// shells read.
pub fn closes_with_blank_line(command: &Command) -> bool {
    !matches!(
        command,
        Command::XmlFormat { .. }
            | Command::XmlValidate { .. }
            | Command::GenerateDocs { .. }
            | Command::Complete { .. }
            // Not virsh's: it ends with its summary.
            | Command::Doctor { .. }
    )
}

/// Runs the command, writing what it prints into `out`.
pub async fn run(cli: Cli, out: &mut Output) -> Result<(), Failure> {
    match cli.command {
        Command::XmlFormat { file, inactive } => {
            let def = parse_file(&file).map_err(Failure::new)?;
            out.data(&def.to_xml(FormatFlags { inactive }));
            return Ok(());
        }
        Command::GenerateDocs { dir } => {
            return super::docs::generate(&dir).map_err(|error| {
                Failure::new(format!("cannot write into {}: {error}", dir.display()))
            });
        }
        Command::XmlValidate { file } => {
            let def = parse_file(&file).map_err(Failure::new)?;
            def.validate()
                .map_err(|error| Failure::new(error_chain(&error)))?;
            out.data("valid\n");
            return Ok(());
        }
        _ => {}
    }
    // Operands first: a usage error is reported before any connection.
    let client = || Client::open(&cli.bus);
    match cli.command {
        Command::XmlFormat { .. } | Command::XmlValidate { .. } | Command::GenerateDocs { .. } => {
            Ok(())
        }
        Command::NetDefine(operand) => {
            let validate = operand.validate;
            let file = operand.resolve("net-define")?;
            let context = || format!("Failed to define network from {file}");
            let xml = read_text(&file).map_err(Failure::new)?;
            if validate {
                schema::validate(&xml).map_err(|failure| failure.within(context()))?;
            }
            client()
                .await?
                .connect()
                .await?
                .network_define_xml(&xml)
                .await
                .context(context)?;
            let name = name_in(&xml, &file);
            out.extra(&format!("Network {name} defined from {file}\n"));
            Ok(())
        }
        Command::NetCreate(operand) => {
            let validate = operand.validate;
            let file = operand.resolve("net-create")?;
            let context = || format!("Failed to create network from {file}");
            let xml = read_text(&file).map_err(Failure::new)?;
            if validate {
                schema::validate(&xml).map_err(|failure| failure.within(context()))?;
            }
            client()
                .await?
                .connect()
                .await?
                .network_create_xml(&xml)
                .await
                .context(context)?;
            // The reply says it is created: reading the network back could
            // fail for nothing, when another client removes it at once.
            let name = name_in(&xml, &file);
            out.extra(&format!("Network {name} created from {file}\n"));
            Ok(())
        }
        Command::NetStart(operand) => {
            let network = operand.resolve("net-start")?;
            let start = |proxy: NetworkProxy<'static>| async move { proxy.create().await };
            let client = client().await?;
            network_verb(&client, &network, start, ("start", "started"), out).await
        }
        Command::NetDestroy(operand) => {
            let network = operand.resolve("net-destroy")?;
            let destroy = |proxy: NetworkProxy<'static>| async move { proxy.destroy().await };
            let client = client().await?;
            network_verb(&client, &network, destroy, ("destroy", "destroyed"), out).await
        }
        Command::NetUndefine(operand) => {
            let network = operand.resolve("net-undefine")?;
            let undefine = |proxy: NetworkProxy<'static>| async move { proxy.undefine().await };
            let client = client().await?;
            let words = ("undefine", "has been undefined");
            network_verb(&client, &network, undefine, words, out).await
        }
        Command::NetAutostart { network, disable } => {
            let network = network.resolve("net-autostart")?;
            let proxy = client().await?.network(&network).await?;
            let (verb, done) = if disable {
                ("unmark", "unmarked")
            } else {
                ("mark", "marked")
            };
            proxy
                .set_autostart(!disable)
                .await
                .context(|| format!("failed to {verb} network {network} as autostarted"))?;
            out.extra(&format!("Network {network} {done} as autostarted\n"));
            Ok(())
        }
        Command::NetList(args) => list::list(&client().await?, &args, out).await,
        Command::NetInfo(operand) => {
            let network = operand.resolve("net-info")?;
            let client = client().await?;
            let proxy = client.network(&network).await?;
            let path = proxy.inner().path().to_owned().into();
            let info = client.properties(&[path]).await?.pop().unwrap_or_default();
            for (label, value) in [
                ("Name:", info.name.as_str()),
                ("UUID:", info.uuid.as_str()),
                ("Active:", yes_no(info.active)),
                ("Persistent:", yes_no(info.persistent)),
                ("Autostart:", yes_no(info.autostart)),
            ] {
                out.data(&format!("{label:<15} {value}\n"));
            }
            if !info.bridge.is_empty() {
                out.data(&format!("{:<15} {}\n", "Bridge:", info.bridge));
            }
            Ok(())
        }
        Command::NetDumpxml(args) => {
            let network = args.network.resolve("net-dumpxml")?;
            let proxy = client().await?.network(&network).await?;
            let xml = proxy
                .get_xml_desc(u32::from(args.inactive))
                .await
                .context(|| format!("Failed to get the XML of network {network}"))?;
            match &args.xpath {
                Some(expression) => out.data(&dumpxml::select(&xml, expression, args.wrap)?),
                // The XML ends with a newline; the command's closing one
                // follows.
                None => out.data(&xml),
            }
            Ok(())
        }
        Command::NetUuid(operand) => {
            let network = operand.resolve("net-uuid")?;
            let proxy = client().await?.network(&network).await?;
            let uuid = proxy
                .uuid()
                .await
                .context(|| "failed to get network UUID".into())?;
            out.data(&format!("{uuid}\n"));
            Ok(())
        }
        Command::NetName(operand) => {
            let uuid = operand.resolve("net-name")?;
            let client = client().await?;
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
            out.data(&format!("{name}\n"));
            Ok(())
        }
        Command::NetUpdate(args) => update(&client().await?, args, out).await,
        Command::NetDhcpLeases { network, mac } => {
            let network = network.resolve("net-dhcp-leases")?;
            list::leases(&client().await?, &network, mac.as_deref(), out).await
        }
        Command::NetEdit(operand) => {
            let network = operand.resolve("net-edit")?;
            edit::edit(&client().await?, &network, out).await
        }
        Command::NetEvent(args) => event::watch(client, args, out).await,
        Command::NetDesc(args) => metadata::desc(&client().await?, args, out).await,
        Command::NetMetadata(args) => metadata::metadata(&client().await?, args, out).await,
        Command::Complete { words } => complete::complete(client, &words, out).await,
        Command::Import(args) => {
            let report = import::import(&client().await?, args).await?;
            out.extra(&report);
            Ok(())
        }
        Command::Doctor { network, json } => {
            doctor::doctor(&client().await?, network, json, out).await
        }
        Command::ReloadFirewall => {
            let restored = client()
                .await?
                .virtnet()
                .await?
                .reload_firewall()
                .await
                .context(|| "Failed to reload the firewall".into())?;
            out.extra(if restored {
                "Firewall rules restored\n"
            } else {
                "Firewall rules already in place\n"
            });
            Ok(())
        }
    }
}

/// net-update, with virsh's operands and report.
async fn update(client: &Client, args: UpdateArgs, out: &mut Output) -> Result<(), Failure> {
    exclusive(&[
        (("current", args.current), ("live", args.live)),
        (("current", args.current), ("config", args.config)),
    ])?;
    let [network, command, section, xml] = operands(
        "net-update",
        [
            ("network", args.network_named, args.network),
            ("command", args.command_named, args.command),
            ("section", args.section_named, args.section),
            ("xml", args.xml_named, args.xml),
        ],
    )?;
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
    if args.config {
        flags |= update_flags::CONFIG;
    }
    if args.live {
        flags |= update_flags::LIVE;
    }
    proxy
        .update(
            command_code as u32,
            section_code as u32,
            args.parent_index,
            &xml,
            flags,
        )
        .await
        .context(|| format!("Failed to update network {network}"))?;
    let affected = match (args.config, args.live) {
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
    // virsh's message has no newline of its own: the command's closing
    // one ends it.
    out.extra(&format!("Updated network {network} {affected}"));
    Ok(())
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
    (verb, done): (&str, &str),
    out: &mut Output,
) -> Result<(), Failure>
where
    Call: FnOnce(NetworkProxy<'static>) -> Done,
    Done: Future<Output = zbus::Result<()>>,
{
    let proxy = client.network(network).await?;
    call(proxy)
        .await
        .context(|| format!("Failed to {verb} network {network}"))?;
    out.extra(&format!("Network {network} {done}\n"));
    Ok(())
}

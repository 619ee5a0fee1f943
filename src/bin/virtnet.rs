//! `virtnet`: virsh-style command-line client of virtnetd, with virsh's
//! verbs, output and messages. The offline verbs (`xml-format`,
//! `xml-validate`) work on XML files without a daemon.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::ExitCode;

use clap::Parser;
use futures_util::future::join_all;
use virtnet::cli::args::virtnet::{BusArgs, Cli, Command, Import, ListArgs};
use virtnet::cli::table;
use virtnet::dbus::client::{ConnectProxy, NetworkProxy, VirtnetConnectProxy};
use virtnet::dbus::{self, Bus};
use virtnet::definition::{FormatFlags, NetworkDef, UpdateCommand, UpdateSection, error_chain};
use virtnet::service::{list_flags, update_flags};
use virtnet::xml::tree::{MAX_DOCUMENT_BYTES, decode_document};
use zbus::{Connection, OwnedObjectPath, OwnedVariant};

/// A failed command: virsh prints what it was doing, then why.
struct Failure {
    context: Option<String>,
    message: String,
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Self {
            context: None,
            message: message.into(),
        }
    }
}

/// What went wrong on the bus: for daemon errors, libvirt's message.
fn bus_error(error: zbus::Error) -> String {
    match error {
        zbus::Error::MethodError(name, description, _) => match description {
            Some(text) if name.as_str() == "org.libvirt.Error" => text,
            Some(text) => format!("{}: {text}", name.as_str()),
            None => name.as_str().to_owned(),
        },
        zbus::Error::FDO(error) => error.to_string(),
        other => other.to_string(),
    }
}

trait Context<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T> Context<T> for zbus::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|error| Failure {
            context: Some(context()),
            message: bus_error(error),
        })
    }
}

fn read_input(file: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    // Read one byte past the limit so an oversized input is detected
    // without reading all of it.
    let limit = MAX_DOCUMENT_BYTES as u64 + 1;
    let result = if file == "-" {
        std::io::stdin().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    result.map_err(|error| format!("Failed to read file '{file}': {error}"))?;
    Ok(bytes)
}

fn read_text(file: &str) -> Result<String, String> {
    let bytes = read_input(file)?;
    decode_document(&bytes)
        .map(str::to_owned)
        .map_err(|error| error_chain(&error))
}

fn parse_file(file: &str) -> Result<NetworkDef, String> {
    NetworkDef::parse(&read_text(file)?).map_err(|error| error_chain(&error))
}

/// A connection to virtnetd.
struct Client {
    connection: Connection,
    bus_name: String,
}

impl Client {
    async fn open(args: &BusArgs) -> Result<Self, Failure> {
        let bus = match (&args.bus_address, args.session) {
            (Some(address), _) => Bus::Address(address.clone()),
            (None, true) => Bus::Session,
            (None, false) => Bus::System,
        };
        let connection = bus.builder().build().await.map_err(|error| Failure {
            context: Some("failed to connect to virtnetd".into()),
            message: bus_error(error),
        })?;
        Ok(Self {
            connection,
            bus_name: args.bus_name.clone(),
        })
    }

    /// A proxy of the daemon's object at `path` (no property cache: the
    /// interfaces emit no change signals).
    async fn proxy<P>(&self, path: OwnedObjectPath) -> Result<P, Failure>
    where
        P: From<zbus::Proxy<'static>> + zbus::proxy::Defaults,
    {
        zbus::proxy::Builder::<P>::new(&self.connection)
            .destination(self.bus_name.clone())
            .path(path)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .context(|| "failed to connect to virtnetd".into())
    }

    /// virtnetd's connect object, at the path that does not depend on its
    /// driver.
    fn connect_object(&self) -> OwnedObjectPath {
        OwnedObjectPath::try_from(dbus::VIRTNET_CONNECT_PATH).unwrap_or_default()
    }

    async fn connect(&self) -> Result<ConnectProxy<'static>, Failure> {
        self.proxy(self.connect_object()).await
    }

    async fn virtnet(&self) -> Result<VirtnetConnectProxy<'static>, Failure> {
        self.proxy(self.connect_object()).await
    }

    async fn network_at(&self, path: OwnedObjectPath) -> Result<NetworkProxy<'static>, Failure> {
        self.proxy(path).await
    }

    /// A network by UUID or name, as virsh looks networks up.
    async fn network(&self, network: &str) -> Result<NetworkProxy<'static>, Failure> {
        let connect = self.connect().await?;
        let context = || format!("failed to get network '{network}'");
        let by_uuid = if network.parse::<virtnet::definition::Uuid>().is_ok() {
            connect.network_lookup_by_uuid(network).await.ok()
        } else {
            None
        };
        let path = match by_uuid {
            Some(path) => path,
            None => connect
                .network_lookup_by_name(network)
                .await
                .context(context)?,
        };
        self.network_at(path).await
    }

    /// Name and other properties of networks, asked for all at once.
    async fn properties(&self, paths: &[OwnedObjectPath]) -> Result<Vec<Properties>, Failure> {
        let calls = paths.iter().map(|path| {
            self.connection.call_method(
                Some(self.bus_name.as_str()),
                path.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "GetAll",
                &("org.libvirt.Network",),
            )
        });
        let mut networks = Vec::new();
        for reply in join_all(calls).await {
            let reply = reply.context(|| "Failed to list networks".into())?;
            let values: HashMap<String, OwnedVariant> = reply
                .body()
                .deserialize()
                .context(|| "Failed to list networks".into())?;
            networks.push(Properties::from(values));
        }
        Ok(networks)
    }
}

#[derive(Default)]
struct Properties {
    name: String,
    uuid: String,
    active: bool,
    autostart: bool,
    persistent: bool,
    bridge: String,
}

impl From<HashMap<String, OwnedVariant>> for Properties {
    fn from(values: HashMap<String, OwnedVariant>) -> Self {
        let text = |key: &str| {
            values
                .get(key)
                .and_then(|value| String::try_from(value.clone()).ok())
                .unwrap_or_default()
        };
        let flag = |key: &str| {
            values
                .get(key)
                .and_then(|value| bool::try_from(value).ok())
                .unwrap_or_default()
        };
        Self {
            name: text("Name"),
            uuid: text("UUID"),
            active: flag("Active"),
            autostart: flag("Autostart"),
            persistent: flag("Persistent"),
            bridge: text("BridgeName"),
        }
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

async fn run(cli: Cli) -> Result<String, Failure> {
    match cli.command {
        Command::XmlFormat { file, inactive } => {
            let def = parse_file(&file).map_err(Failure::new)?;
            return Ok(def.to_xml(FormatFlags { inactive }));
        }
        Command::GenerateDocs { dir } => {
            virtnet::cli::docs::generate(&dir).map_err(|error| {
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
            // The daemon took the definition, so it parses: its name is ours.
            let name =
                NetworkDef::parse(&xml).map_or_else(|_| file.clone(), |def| def.name.to_string());
            Ok(format!("Network {name} defined from {file}\n\n"))
        }
        Command::NetCreate { file } => {
            let context = || format!("Failed to create network from {file}");
            let xml = read_text(&file).map_err(Failure::new)?;
            let path = client
                .connect()
                .await?
                .network_create_xml(&xml)
                .await
                .context(context)?;
            let name = client
                .network_at(path)
                .await?
                .name()
                .await
                .context(context)?;
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
        Command::NetList(args) => list(&client, &args).await,
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
            let proxy = client.network(&network).await?;
            let mut leases = proxy
                .get_dhcp_leases(mac.as_deref().unwrap_or(""), 0)
                .await
                .context(|| format!("Failed to get leases info for {network}"))?;
            leases.sort_by(|a, b| (&a.3, &a.5).cmp(&(&b.3, &b.5)));
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
                            local_time(expiry),
                            dash(mac),
                            if kind == 0 { "ipv4" } else { "ipv6" }.to_owned(),
                            format!("{address}/{prefix}"),
                            dash(hostname),
                            dash(client_id),
                        ]
                    },
                )
                .collect();
            Ok(table::render(
                &[
                    "Expiry Time",
                    "MAC address",
                    "Protocol",
                    "IP address",
                    "Hostname",
                    "Client ID or DUID",
                ],
                &rows,
            ))
        }
        Command::NetEdit { network } => edit(&client, &network).await,
        Command::Import(args) => import(&client, args).await,
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

async fn list(client: &Client, args: &ListArgs) -> Result<String, Failure> {
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
        let mut out = String::new();
        for network in &networks {
            out.push_str(if args.name {
                &network.name
            } else {
                &network.uuid
            });
            out.push('\n');
        }
        out.push('\n');
        return Ok(out);
    }
    let rows: Vec<Vec<String>> = networks
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
    Ok(table::render(
        &["Name", "State", "Autostart", "Persistent"],
        &rows,
    ))
}

/// One of libvirt's persistent networks found on disk.
struct Found {
    def: NetworkDef,
    xml: String,
    autostart: bool,
    /// Running in libvirtd (known with --uri only).
    active: bool,
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
        let def = NetworkDef::parse(&xml).map_err(|error| Failure {
            context: Some(format!("cannot import {file}")),
            message: error_chain(&error),
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
            active: false,
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
async fn import(client: &Client, args: Import) -> Result<String, Failure> {
    #[cfg(feature = "libvirt")]
    if let Some(uri) = &args.uri {
        return takeover::import(client, uri, &args).await;
    }
    let networks = libvirt_networks(&args.dir, &args.names)?;
    let mut out = String::new();
    for network in &networks {
        out.push_str(&describe_import(network, args.dry_run));
        if !args.dry_run {
            define_imported(client, network).await?;
        }
    }
    if !args.dry_run && !networks.is_empty() {
        out.push_str(
            "\nNot started: stop libvirt's copy first (virsh net-destroy NAME), then virtnet net-start NAME.\n",
        );
    }
    out.push('\n');
    Ok(out)
}

fn describe_import(network: &Found, dry_run: bool) -> String {
    let def = &network.def;
    let bridge = def
        .bridge
        .name
        .as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string);
    let mac = def
        .mac
        .map_or_else(|| "-".to_owned(), |mac| mac.to_string());
    format!(
        "{} network {} (uuid {}, bridge {bridge}, mac {mac}{}{})\n",
        if dry_run { "Would import" } else { "Importing" },
        def.name,
        def.uuid,
        if network.autostart { ", autostart" } else { "" },
        if network.active { ", running" } else { "" },
    )
}

/// Defines an imported network in virtnet, with libvirt's autostart.
async fn define_imported(client: &Client, network: &Found) -> Result<OwnedObjectPath, Failure> {
    let context = || format!("Failed to define network {}", network.def.name);
    let path = client
        .connect()
        .await?
        .network_define_xml(&network.xml)
        .await
        .context(context)?;
    if network.autostart {
        client
            .network_at(path.clone())
            .await?
            .set_autostart(true)
            .await
            .context(context)?;
    }
    Ok(path)
}

/// net-edit: the persistent XML in $EDITOR (then $VISUAL, then vi),
/// redefined when changed.
async fn edit(client: &Client, network: &str) -> Result<String, Failure> {
    const INACTIVE: u32 = 1;
    let proxy = client.network(network).await?;
    let xml = proxy
        .get_xml_desc(INACTIVE)
        .await
        .context(|| format!("Failed to get the XML of network {network}"))?;
    let path = std::env::temp_dir().join(format!("virtnet-{network}-{}.xml", std::process::id()));
    std::fs::write(&path, &xml)
        .map_err(|error| Failure::new(format!("cannot write {}: {error}", path.display())))?;
    let edited = edit_file(&path);
    let _ = std::fs::remove_file(&path);
    let edited = edited?;
    if edited == xml {
        return Ok(format!(
            "Network {network} XML configuration not changed.\n\n"
        ));
    }
    client
        .connect()
        .await?
        .network_define_xml(&edited)
        .await
        .context(|| format!("Failed to define network from {}", path.display()))?;
    Ok(format!("Network {network} XML configuration edited.\n\n"))
}

fn edit_file(path: &std::path::Path) -> Result<String, Failure> {
    let editor = std::env::var("EDITOR")
        .or_else(|_| std::env::var("VISUAL"))
        .unwrap_or_else(|_| "vi".into());
    // The editor may carry arguments ("code --wait"), as virsh allows.
    let mut words = editor.split_whitespace();
    let program = words.next().unwrap_or("vi");
    let status = std::process::Command::new(program)
        .args(words)
        .arg(path)
        .status()
        .map_err(|error| Failure::new(format!("cannot run editor '{editor}': {error}")))?;
    if !status.success() {
        return Err(Failure::new(format!("editor '{editor}' failed: {status}")));
    }
    std::fs::read_to_string(path)
        .map_err(|error| Failure::new(format!("cannot read {}: {error}", path.display())))
}

/// `expiry` (seconds since the epoch) as virsh prints it, in local time.
fn local_time(expiry: i64) -> String {
    let time: libc::time_t = expiry;
    // SAFETY: `tm` is plain data that localtime_r fills in; both pointers
    // are valid for the call.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&time, &mut tm).is_null() {
            return expiry.to_string();
        }
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let offline = matches!(
        cli.command,
        Command::XmlFormat { .. } | Command::XmlValidate { .. } | Command::GenerateDocs { .. }
    );
    match run(cli).await {
        Ok(output) => match std::io::stdout().write_all(output.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: cannot write output: {error}");
                ExitCode::FAILURE
            }
        },
        Err(failure) => {
            if let Some(context) = failure.context {
                eprintln!("error: {context}");
            }
            eprintln!("error: {}", failure.message);
            if !offline {
                // virsh ends every command with a blank line, failed ones too.
                println!();
            }
            ExitCode::FAILURE
        }
    }
}

/// `import --uri`: libvirt's networks taken from a running libvirtd.
#[cfg(feature = "libvirt")]
mod takeover {
    use virtnet::apply::netlink::Netlink;
    use virtnet::cli::args::virtnet::Import;
    use virtnet::definition::{ForwardMode, error_chain};
    use virtnet::libvirtd::import::{Libvirt, LibvirtError, LibvirtNetwork};

    use super::{Client, Context, Failure, Found, define_imported, describe_import};

    fn failure(error: &(dyn std::error::Error + 'static)) -> Failure {
        Failure::new(error_chain(error))
    }

    pub(super) async fn import(
        client: &Client,
        uri: &str,
        args: &Import,
    ) -> Result<String, Failure> {
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
                    out.push_str("  would stop libvirt's copy, start virtnet's, and move its guests' ports\n");
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
}

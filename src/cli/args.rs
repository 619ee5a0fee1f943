//! The command lines of `virtnet` and `virtnetd`, kept here so that their
//! man pages and shell completions are generated from the definitions the
//! programs parse with.

/// `virtnet`'s command line. The verbs take virsh's options under virsh's
/// names: an operand virsh shows as `[--network] <string>` may be given
/// positionally or by name (`cli::usage::operands`).
pub mod virtnet {
    use clap::{Args, Parser, Subcommand};

    use crate::dbus;

    #[derive(Parser)]
    #[command(name = "virtnet", version, about = "Manage virtnet virtual networks")]
    pub struct Cli {
        #[command(flatten)]
        pub bus: BusArgs,
        /// Quiet mode: no table headers, no informational messages, no blank
        /// line after each command (virsh's -q).
        #[arg(short, long, global = true)]
        pub quiet: bool,
        #[command(subcommand)]
        pub command: Command,
    }

    #[derive(Args)]
    pub struct BusArgs {
        /// The daemon to talk to, named as virsh names it: qemu:///system or
        /// network:///system (the system bus, the default),
        /// qemu:///session or network:///session (the session bus).
        #[arg(
            short = 'c',
            long,
            global = true,
            value_name = "URI",
            conflicts_with_all = ["system", "session", "bus_address"]
        )]
        pub connect: Option<String>,
        /// Use the system bus (the default).
        #[arg(long, global = true, conflicts_with_all = ["session", "bus_address"])]
        pub system: bool,
        /// Use the session bus.
        #[arg(long, global = true, conflicts_with = "bus_address")]
        pub session: bool,
        /// Use the bus at this address.
        #[arg(long, global = true, value_name = "ADDR", env = "VIRTNET_BUS_ADDRESS")]
        pub bus_address: Option<String>,
        /// The daemon's bus name.
        #[arg(long, global = true, value_name = "NAME", default_value = dbus::DEFAULT_BUS_NAME)]
        pub bus_name: String,
    }

    /// A network operand: positional, or `--network`.
    #[derive(Args)]
    pub struct NetworkOperand {
        /// Network name or UUID.
        #[arg(value_name = "NETWORK", id = "network_operand")]
        pub positional: Option<String>,
        /// Network name or UUID (the operand, by name).
        #[arg(long = "network", value_name = "NETWORK")]
        pub named: Option<String>,
    }

    /// A file operand: positional, or `--file`.
    #[derive(Args)]
    pub struct FileOperand {
        /// File containing an XML network description (`-` for standard
        /// input).
        #[arg(value_name = "FILE", id = "file_operand", value_hint = clap::ValueHint::FilePath)]
        pub positional: Option<String>,
        /// The file (the operand, by name).
        #[arg(long = "file", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
        pub named: Option<String>,
        /// Validate the XML against virtnet's network schema before sending
        /// it (xmllint and schemas/network.rng).
        #[arg(long)]
        pub validate: bool,
    }

    #[derive(Subcommand)]
    pub enum Command {
        /// Define a persistent network from an XML file.
        NetDefine(FileOperand),
        /// Create and start a transient network from an XML file.
        NetCreate(FileOperand),
        /// Start an inactive network.
        NetStart(NetworkOperand),
        /// Stop a network (a transient one is gone afterwards).
        NetDestroy(NetworkOperand),
        /// Undefine a persistent network.
        NetUndefine(NetworkOperand),
        /// Start a network when virtnetd starts.
        NetAutostart {
            #[command(flatten)]
            network: NetworkOperand,
            /// Do not start it when virtnetd starts.
            #[arg(long)]
            disable: bool,
        },
        /// List networks (the active ones unless told otherwise).
        NetList(ListArgs),
        /// Show a network's information.
        NetInfo(NetworkOperand),
        /// Print a network's XML.
        NetDumpxml(DumpxmlArgs),
        /// Print a network's UUID.
        NetUuid(NetworkOperand),
        /// Print a network's name, given its UUID.
        NetName(NetworkOperand),
        /// Update part of a network's definition.
        NetUpdate(UpdateArgs),
        /// List a network's DHCP leases.
        NetDhcpLeases {
            #[command(flatten)]
            network: NetworkOperand,
            /// Only the leases of this MAC address.
            #[arg(long, value_name = "MAC")]
            mac: Option<String>,
        },
        /// Edit a network's persistent XML with $EDITOR, then redefine it.
        NetEdit(NetworkOperand),
        /// Wait for network events and print them, or list the event types.
        NetEvent(EventArgs),
        /// Show or set a network's description or title.
        NetDesc(DescArgs),
        /// Show or set a network's custom XML metadata.
        NetMetadata(MetadataArgs),
        /// Put back virtnet's firewall rules where something removed them.
        ReloadFirewall,
        /// Explain why guests may have no connectivity: one line per
        /// finding, each with its fix. Exit status 0 only when nothing is
        /// wrong.
        Doctor {
            /// The network to examine (name or UUID); every active one by
            /// default.
            network: Option<String>,
            /// Print the findings as JSON.
            #[arg(long)]
            json: bool,
        },
        /// Take over libvirt's networks: same name, UUID, bridge, MAC and
        /// addresses, and autostart as libvirt had it. From the directory
        /// libvirt keeps definitions in, networks are defined only; from a
        /// running libvirtd (--uri), running ones are moved too.
        Import(Import),
        /// The words that may come next on a command line, one a line (as
        /// `virsh complete`; the bash completion script calls it).
        #[command(hide = true)]
        Complete {
            /// The command line after `virtnet`, its last word the one
            /// being completed (after `--`).
            #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
            words: Vec<String>,
        },
        /// Write the man pages and shell completions into DIR (for packages).
        #[command(hide = true)]
        GenerateDocs {
            /// Where to write them.
            dir: std::path::PathBuf,
        },
        /// Parse a network XML file and print it in canonical form (as
        /// `virsh net-dumpxml --inactive` would after net-define).
        XmlFormat {
            /// The XML file, or `-` for standard input.
            #[arg(value_hint = clap::ValueHint::FilePath)]
            file: String,
            /// Print the persistent configuration only.
            #[arg(long)]
            inactive: bool,
        },
        /// Check a network XML file as net-define would; prints "valid".
        XmlValidate {
            /// The XML file, or `-` for standard input.
            #[arg(value_hint = clap::ValueHint::FilePath)]
            file: String,
        },
    }

    #[derive(Args)]
    pub struct ListArgs {
        /// Inactive networks only.
        #[arg(long)]
        pub inactive: bool,
        /// Active and inactive networks.
        #[arg(long)]
        pub all: bool,
        /// Persistent networks only.
        #[arg(long)]
        pub persistent: bool,
        /// Transient networks only.
        #[arg(long)]
        pub transient: bool,
        /// Networks started when virtnetd starts.
        #[arg(long)]
        pub autostart: bool,
        /// Networks not started when virtnetd starts.
        #[arg(long)]
        pub no_autostart: bool,
        /// UUIDs only.
        #[arg(long)]
        pub uuid: bool,
        /// Names only.
        #[arg(long)]
        pub name: bool,
        /// The table (the default).
        #[arg(long)]
        pub table: bool,
        /// A column with each network's title.
        #[arg(long)]
        pub title: bool,
    }

    /// Which definition a metadata verb reads or changes (virsh's
    /// --live, --config, --current).
    #[derive(Args)]
    pub struct AffectArgs {
        /// The running network's definition.
        #[arg(long)]
        pub live: bool,
        /// The persistent definition.
        #[arg(long)]
        pub config: bool,
        /// The running network's if active, else the persistent one.
        #[arg(long)]
        pub current: bool,
    }

    #[derive(Args)]
    pub struct DescArgs {
        /// The network (name or UUID), then the words of the new
        /// description (joined by spaces).
        #[arg(value_name = "WORDS", id = "words")]
        pub words: Vec<String>,
        /// Network name or UUID (the operand, by name).
        #[arg(long = "network", value_name = "NETWORK")]
        pub network: Option<String>,
        /// The new description (or title).
        #[arg(long = "new-desc", value_name = "TEXT")]
        pub new_desc: Option<String>,
        /// The title instead of the description.
        #[arg(long)]
        pub title: bool,
        /// Edit it with $VISUAL or $EDITOR.
        #[arg(long)]
        pub edit: bool,
        #[command(flatten)]
        pub affect: AffectArgs,
    }

    #[derive(Args)]
    pub struct MetadataArgs {
        /// Network name or UUID.
        #[arg(value_name = "NETWORK", id = "network_operand")]
        pub network: Option<String>,
        /// The namespace URI of the metadata element.
        #[arg(value_name = "URI", id = "uri_operand")]
        pub uri: Option<String>,
        /// Network name or UUID (the operand, by name).
        #[arg(long = "network", value_name = "NETWORK")]
        pub network_named: Option<String>,
        /// The namespace URI (the operand, by name).
        #[arg(long = "uri", value_name = "URI")]
        pub uri_named: Option<String>,
        /// The prefix the element is written with (needed with --set).
        #[arg(long, value_name = "KEY")]
        pub key: Option<String>,
        /// The new element (XML).
        #[arg(long, value_name = "XML")]
        pub set: Option<String>,
        /// Remove the element of that namespace.
        #[arg(long)]
        pub remove: bool,
        /// Edit the element with $VISUAL or $EDITOR (needs --key).
        #[arg(long)]
        pub edit: bool,
        #[command(flatten)]
        pub affect: AffectArgs,
    }

    #[derive(Args)]
    pub struct DumpxmlArgs {
        #[command(flatten)]
        pub network: NetworkOperand,
        /// The persistent definition instead of the live one.
        #[arg(long)]
        pub inactive: bool,
        /// Print only what this XPath expression selects.
        #[arg(long, value_name = "EXPR")]
        pub xpath: Option<String>,
        /// With --xpath: wrap what it selects in a <nodes> element.
        #[arg(long)]
        pub wrap: bool,
    }

    #[derive(Args)]
    pub struct UpdateArgs {
        /// Network name or UUID.
        #[arg(value_name = "NETWORK", id = "network_operand")]
        pub network: Option<String>,
        /// add (add-last), add-first, delete or modify.
        #[arg(value_name = "COMMAND", id = "command_operand")]
        pub command: Option<String>,
        /// The part of the definition: ip-dhcp-host, ip-dhcp-range,
        /// dns-host, dns-txt, dns-srv, forward, forward-interface,
        /// portgroup, bridge, domain, ip.
        #[arg(value_name = "SECTION", id = "section_operand")]
        pub section: Option<String>,
        /// The XML element (when it starts with '<'), or a file holding it.
        #[arg(value_name = "XML", id = "xml_operand", value_hint = clap::ValueHint::FilePath)]
        pub xml: Option<String>,
        /// Network name or UUID (the operand, by name).
        #[arg(long = "network", value_name = "NETWORK")]
        pub network_named: Option<String>,
        /// The command (the operand, by name).
        #[arg(long = "command", value_name = "COMMAND")]
        pub command_named: Option<String>,
        /// The section (the operand, by name).
        #[arg(long = "section", value_name = "SECTION")]
        pub section_named: Option<String>,
        /// The XML element or file (the operand, by name).
        #[arg(long = "xml", value_name = "XML", value_hint = clap::ValueHint::FilePath)]
        pub xml_named: Option<String>,
        /// Which parent object to search through (the index of the <ip>
        /// element for DHCP sections; -1 for any).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "NUMBER")]
        pub parent_index: i32,
        /// Change the persistent definition.
        #[arg(long)]
        pub config: bool,
        /// Change the running network.
        #[arg(long)]
        pub live: bool,
        /// Change the running network if active, else the persistent one.
        #[arg(long)]
        pub current: bool,
    }

    #[derive(Args)]
    pub struct EventArgs {
        /// Only this network's events (name or UUID).
        #[arg(value_name = "NETWORK", id = "network_operand")]
        pub network: Option<String>,
        /// Only this network's events (the operand, by name).
        #[arg(long = "network", value_name = "NETWORK")]
        pub network_named: Option<String>,
        /// The event type to wait for: lifecycle or metadata-change.
        #[arg(long, value_name = "TYPE")]
        pub event: Option<String>,
        /// Go on until the timeout or an interrupt, rather than one event.
        #[arg(long = "loop")]
        pub repeat: bool,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        pub timeout: Option<u64>,
        /// List the event types.
        #[arg(long)]
        pub list: bool,
        /// Print the time of each event before it.
        #[arg(long)]
        pub timestamp: bool,
    }

    /// What `import` takes.
    #[derive(clap::Args)]
    pub struct Import {
        /// libvirt's network directory (definitions only: nothing is stopped).
        #[arg(long, default_value = "/etc/libvirt/qemu/networks", value_hint = clap::ValueHint::DirPath)]
        pub dir: std::path::PathBuf,
        /// Take the networks from the libvirtd at this URI (e.g.
        /// qemu:///system): a running one is stopped there and started in
        /// virtnet, its guests' ports moved to virtnet's bridge.
        #[cfg(feature = "libvirt")]
        #[arg(long, value_name = "URI", conflicts_with = "dir")]
        pub uri: Option<String>,
        /// With --uri: undefine libvirt's copy once virtnet's is in place
        /// (otherwise it stays defined, with autostart off).
        #[cfg(feature = "libvirt")]
        #[arg(long, requires = "uri")]
        pub undefine: bool,
        /// Print what would be imported, change nothing.
        #[arg(long)]
        pub dry_run: bool,
        /// Only these networks (all by default).
        pub names: Vec<String>,
    }
}

/// `virtnetd`'s command line.
pub mod virtnetd {
    use std::path::PathBuf;

    use clap::{Parser, ValueEnum};

    use crate::dbus::{self, Bus};

    #[derive(Clone, Copy, ValueEnum)]
    pub enum DriverKind {
        /// Networks on this host's kernel, definitions on disk.
        Kernel,
        /// In memory, like libvirt's test:///default (no kernel, no files).
        Test,
    }

    #[derive(Parser)]
    #[command(name = "virtnetd", version, about = "The virtnet network daemon")]
    pub struct Cli {
        /// Use the system bus (the default).
        #[arg(long, conflicts_with_all = ["session", "bus_address"])]
        pub system: bool,
        /// Use the session bus.
        #[arg(long, conflicts_with = "bus_address")]
        pub session: bool,
        /// Use the bus at this address (e.g. unix:path=/run/x/bus).
        #[arg(long, value_name = "ADDR")]
        pub bus_address: Option<String>,
        /// The well-known name to own (`org.libvirt` for drop-in use).
        #[arg(long, value_name = "NAME", default_value = dbus::DEFAULT_BUS_NAME)]
        pub bus_name: String,
        /// Where networks live: the kernel, or memory only (tests).
        #[arg(long, value_enum, default_value = "kernel")]
        pub driver: DriverKind,
        /// Persistent network definitions (NAME.xml, autostart/).
        #[arg(long, value_name = "DIR", default_value = "/etc/virtnet/networks")]
        pub config_dir: PathBuf,
        /// Persistent state (dnsmasq leases and hosts files).
        #[arg(long, value_name = "DIR", default_value = "/var/lib/virtnet")]
        pub state_dir: PathBuf,
        /// Runtime state (network status, dnsmasq configuration and pids).
        #[arg(long, value_name = "DIR", default_value = "/run/virtnet")]
        pub run_dir: PathBuf,
        /// What to do about other tools' firewalls (Docker's, ufw's, a
        /// table with `policy drop`) that would drop the networks'
        /// traffic: `open` adds accepts for each network's bridge where
        /// that tool expects them, `warn` only warns.
        #[arg(
            long,
            value_enum,
            value_name = "WHAT",
            default_value = "open",
            env = "VIRTNETD_FOREIGN_FIREWALLS"
        )]
        pub foreign_firewalls: crate::apply::openings::ForeignFirewalls,
        /// Also serve libvirt's RPC protocol, as virtnetworkd does, on the
        /// sockets `virtnetworkd-sock` (read-write) and
        /// `virtnetworkd-sock-ro` (read-only) in this directory, for
        /// virsh -c 'network:///system?socket=DIR/virtnetworkd-sock'.
        #[arg(long, value_name = "DIR")]
        pub rpc_socket_dir: Option<PathBuf>,
        /// The most RPC connections served at once (libvirt's
        /// max_clients); one more is closed as soon as it is accepted.
        #[arg(long, value_name = "N", default_value_t = crate::rpc::MAX_CLIENTS)]
        pub rpc_max_clients: u32,
        /// Publish every running network to the libvirtd at this URI (e.g.
        /// qemu:///system), so its guests can use it by name, and refuse
        /// networks that clash with libvirtd's own.
        #[cfg(feature = "libvirt")]
        #[arg(long, value_name = "URI", env = "VIRTNETD_LIBVIRT_URI")]
        pub libvirt_uri: Option<String>,
    }

    impl Cli {
        pub fn bus(&self) -> Bus {
            match (&self.bus_address, self.session) {
                (Some(address), _) => Bus::Address(address.clone()),
                (None, true) => Bus::Session,
                (None, false) => Bus::System,
            }
        }
    }
}

//! The command lines of `virtnet` and `virtnetd`, kept here so that their
//! man pages and shell completions are generated from the definitions the
//! programs parse with.

/// `virtnet`'s command line.
pub mod virtnet {
    use clap::{Args, Parser, Subcommand};

    use crate::dbus;

    #[derive(Parser)]
    #[command(name = "virtnet", version, about = "Manage virtnet virtual networks")]
    pub struct Cli {
        #[command(flatten)]
        pub bus: BusArgs,
        #[command(subcommand)]
        pub command: Command,
    }

    #[derive(Args)]
    pub struct BusArgs {
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

    #[derive(Subcommand)]
    pub enum Command {
        /// Define a persistent network from an XML file.
        NetDefine { file: String },
        /// Create and start a transient network from an XML file.
        NetCreate { file: String },
        /// Start an inactive network.
        NetStart { network: String },
        /// Stop a network (a transient one is gone afterwards).
        NetDestroy { network: String },
        /// Undefine a persistent network.
        NetUndefine { network: String },
        /// Start a network when virtnetd starts.
        NetAutostart {
            network: String,
            #[arg(long)]
            disable: bool,
        },
        /// List networks.
        NetList(ListArgs),
        /// Show a network's information.
        NetInfo { network: String },
        /// Print a network's XML.
        NetDumpxml {
            network: String,
            /// The persistent definition instead of the live one.
            #[arg(long)]
            inactive: bool,
        },
        /// Print a network's UUID.
        NetUuid { network: String },
        /// Print a network's name.
        NetName { uuid: String },
        /// Update part of a network's definition.
        NetUpdate {
            network: String,
            /// add, add-first, add-last, delete or modify.
            command: String,
            /// ip-dhcp-host, ip-dhcp-range, dns-host, dns-txt, dns-srv,
            /// forward-interface, portgroup, ...
            section: String,
            /// The XML element, or a file holding it.
            xml: String,
            #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
            parent_index: i32,
            /// Change the persistent definition.
            #[arg(long)]
            config: bool,
            /// Change the running network.
            #[arg(long)]
            live: bool,
            /// Change the running network if active, else the persistent one.
            #[arg(long, conflicts_with_all = ["config", "live"])]
            current: bool,
        },
        /// List a network's DHCP leases.
        NetDhcpLeases {
            network: String,
            #[arg(long)]
            mac: Option<String>,
        },
        /// Edit a network's persistent XML with $EDITOR, then redefine it.
        NetEdit { network: String },
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
        /// Write the man pages and shell completions into DIR (for packages).
        #[command(hide = true)]
        GenerateDocs { dir: std::path::PathBuf },
        /// Parse a network XML file and print it in canonical form (as
        /// `virsh net-dumpxml --inactive` would after net-define).
        XmlFormat {
            /// The XML file, or `-` for standard input.
            file: String,
            /// Print the persistent configuration only.
            #[arg(long)]
            inactive: bool,
        },
        /// Check a network XML file as net-define would; prints "valid".
        XmlValidate {
            /// The XML file, or `-` for standard input.
            file: String,
        },
    }

    #[derive(Args)]
    pub struct ListArgs {
        #[arg(long)]
        pub all: bool,
        #[arg(long)]
        pub inactive: bool,
        #[arg(long)]
        pub persistent: bool,
        #[arg(long)]
        pub transient: bool,
        #[arg(long)]
        pub autostart: bool,
        #[arg(long)]
        pub no_autostart: bool,
        /// Names only.
        #[arg(long)]
        pub name: bool,
        /// UUIDs only.
        #[arg(long)]
        pub uuid: bool,
        /// The table (the default).
        #[arg(long)]
        pub table: bool,
    }

    /// What `import` takes.
    #[derive(clap::Args)]
    pub struct Import {
        /// libvirt's network directory (definitions only: nothing is stopped).
        #[arg(long, default_value = "/etc/libvirt/qemu/networks")]
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

//! The man pages: clap_mangen's title, synopsis and options from the
//! programs' own definitions, then every verb of `virtnet` with its
//! options (clap_mangen lists verbs by name only), and the sections a man
//! page is read for: examples, files, environment, exit status, see also.
//! The pages refer only to each other: both are shipped.

use std::io::Write;

/// `virtnet`'s examples: each a command and what it does.
const VIRTNET_EXAMPLES: &[(&str, &str)] = &[
    (
        "virtnet net-define --file /usr/share/libvirt/networks/default.xml",
        "Define libvirt's default network.",
    ),
    (
        "virtnet net-start default && virtnet net-autostart --network default",
        "Start it, and start it whenever virtnetd starts.",
    ),
    ("virtnet net-list --all", "List every network."),
    (
        "virtnet net-update default add ip-dhcp-host \"<host mac='52:54:00:00:00:01' ip='192.168.122.10'/>\" --live --config",
        "Give a guest a fixed address, now and after a restart.",
    ),
    (
        "virtnet net-dumpxml default --xpath //ip/@address",
        "Print the address of the network's bridge.",
    ),
    (
        "virtnet net-event --event lifecycle --loop --timestamp",
        "Print networks' starts and stops as they happen.",
    ),
    (
        "virtnet net-desc default --title Lab network",
        "Give the network a title, which net-list --title shows.",
    ),
    (
        "virtnet net-metadata default http://example.org/app/ --key app --set \"<owner id='7'/>\"",
        "Keep an application's element in the network's <metadata>.",
    ),
    (
        "virtnet -c qemu:///session -q net-list --name",
        "The names of the session daemon's active networks.",
    ),
];

const VIRTNET_FILES: &[(&str, &str)] = &[
    (
        "/etc/virtnet/networks/NAME.xml",
        "Persistent network definitions (read and written by virtnetd).",
    ),
    (
        "/usr/share/virtnet/schemas/network.rng",
        "The schema net-define and net-create check against with --validate.",
    ),
    ("/usr/share/virtnet/samples/", "Sample network definitions."),
];

const VIRTNET_ENVIRONMENT: &[(&str, &str)] = &[
    (
        "VIRTNET_BUS_ADDRESS",
        "The D-Bus address to reach virtnetd at, as --bus-address.",
    ),
    (
        "VISUAL, EDITOR",
        "The editor net-edit runs (else sensible-editor where installed, else vi).",
    ),
    (
        "TZ",
        "The time zone net-dhcp-leases prints expiry times in.",
    ),
];

const VIRTNET_EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "The command succeeded."),
    (
        "1",
        "The command failed, or its command line was wrong (as virsh; the error says which), or net-event received no event.",
    ),
];

const VIRTNETD_FILES: &[(&str, &str)] = &[
    (
        "/etc/virtnet/networks/",
        "Persistent definitions (NAME.xml) and autostart links (autostart/NAME.xml).",
    ),
    ("/var/lib/virtnet/", "dnsmasq's leases and hosts files."),
    (
        "/run/virtnet/",
        "The status of each active network, dnsmasq's configuration and pid files.",
    ),
];

const VIRTNETD_ENVIRONMENT: &[(&str, &str)] = &[
    (
        "VIRTNET_LOG",
        "The log level (error, warn, info, debug, trace); info by default.",
    ),
    (
        "VIRTNETD_LIBVIRT_URI",
        "The libvirtd to publish networks to, as --libvirt-uri.",
    ),
];

const VIRTNETD_EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "Stopped by SIGTERM or SIGINT (running networks are left running).",
    ),
    (
        "1",
        "It could not start: the bus, its name, or its directories were not to be had.",
    ),
    ("2", "Its command line was wrong."),
];

/// roff's escapes for text: backslashes, hyphens (else typeset as
/// hyphens, not minus signs, and not searchable), and a line starting
/// with a control character.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

fn section(out: &mut dyn Write, title: &str, entries: &[(&str, &str)]) -> std::io::Result<()> {
    writeln!(out, ".SH {title}")?;
    for (term, text) in entries {
        writeln!(out, ".TP\n\\fB{}\\fR\n{}", escape(term), escape(text))?;
    }
    Ok(())
}

/// One verb: its synopsis, what it does, and each argument.
fn verb(out: &mut dyn Write, verb: &clap::Command) -> std::io::Result<()> {
    let usage = verb
        .clone()
        .bin_name(format!("virtnet {}", verb.get_name()))
        .render_usage()
        .to_string();
    let usage = usage.trim_start_matches("Usage: ");
    writeln!(out, ".SS {}", escape(verb.get_name()))?;
    writeln!(out, ".B {}", escape(usage))?;
    writeln!(out, ".br")?;
    if let Some(about) = verb.get_long_about().or(verb.get_about()) {
        writeln!(out, "{}", escape(&about.to_string()))?;
    }
    for arg in verb.get_arguments().filter(|arg| !arg.is_hide_set()) {
        let value = Some(arg)
            .filter(|arg| arg.get_action().takes_values())
            .and_then(clap::Arg::get_value_names)
            .map(|names| format!(" \\fI{}\\fR", escape(&names.join(" "))))
            .unwrap_or_default();
        let term = match (arg.get_short(), arg.get_long()) {
            (_, Some(long)) => format!("\\fB\\-\\-{}\\fR{value}", escape(long)),
            (Some(short), None) => format!("\\fB\\-{short}\\fR{value}"),
            (None, None) => value.trim_start().to_owned(),
        };
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        writeln!(out, ".TP\n{term}\n{}", escape(&help))?;
    }
    Ok(())
}

/// `virtnet`'s page, virtnet(1).
pub(super) fn virtnet(command: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command.clone()).section("1");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    writeln!(
        out,
        ".SH DESCRIPTION\nvirtnet manages virtnetd's virtual networks with virsh's net\\-* verbs, \
         options, output and messages: a script written for virsh runs with virtnet in its \
         place. An operand virsh shows as \\fB[\\-\\-network] <string>\\fR may be given by \
         position or by name; usage errors are virsh's, with exit status 1."
    )?;
    man.render_options_section(out)?;
    writeln!(out, ".SH COMMANDS")?;
    for subcommand in command.get_subcommands().filter(|verb| !verb.is_hide_set()) {
        verb(out, subcommand)?;
    }
    writeln!(out, ".SH EXAMPLES")?;
    for (example, meaning) in VIRTNET_EXAMPLES {
        writeln!(out, ".TP\n\\fB{}\\fR\n{}", escape(example), escape(meaning))?;
    }
    section(out, "FILES", VIRTNET_FILES)?;
    section(out, "ENVIRONMENT", VIRTNET_ENVIRONMENT)?;
    section(out, "EXIT STATUS", VIRTNET_EXIT_STATUS)?;
    writeln!(out, ".SH SEE ALSO\n.BR virtnetd (8)")?;
    man.render_version_section(out)
}

/// `virtnetd`'s page, virtnetd(8).
pub(super) fn virtnetd(command: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command).section("8");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    writeln!(
        out,
        ".SH DESCRIPTION\nvirtnetd realizes virtual networks defined in libvirt's network XML \
         (bridges, addresses, routes, an nftables table of its own, dnsmasq for DHCP and DNS) \
         and serves them over libvirt\\-dbus's D\\-Bus interfaces. SIGHUP reads the \
         definitions again; SIGTERM stops the daemon and leaves the networks running."
    )?;
    man.render_options_section(out)?;
    section(out, "FILES", VIRTNETD_FILES)?;
    section(out, "ENVIRONMENT", VIRTNETD_ENVIRONMENT)?;
    section(out, "EXIT STATUS", VIRTNETD_EXIT_STATUS)?;
    writeln!(out, ".SH SEE ALSO\n.BR virtnet (1)")?;
    man.render_version_section(out)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cli::args;

    #[test]
    fn every_argument_has_help() {
        for program in [
            args::virtnet::Cli::command(),
            args::virtnetd::Cli::command(),
        ] {
            let verbs = std::iter::once(&program).chain(program.get_subcommands());
            for verb in verbs.filter(|verb| !verb.is_hide_set()) {
                for arg in verb.get_arguments().filter(|arg| !arg.is_hide_set()) {
                    assert!(
                        arg.get_help().is_some(),
                        "{} {}: --{:?} has no help",
                        program.get_name(),
                        verb.get_name(),
                        arg.get_id()
                    );
                }
            }
        }
    }

    #[test]
    fn the_page_has_every_verbs_options_and_its_sections() {
        let mut page = Vec::new();
        virtnet(args::virtnet::Cli::command(), &mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        for wanted in [
            ".SS net\\-update",
            "\\fB\\-\\-parent\\-index\\fR \\fINUMBER\\fR",
            ".SS net\\-event",
            ".SH EXAMPLES",
            ".SH FILES",
            ".SH ENVIRONMENT",
            ".SH EXIT STATUS",
            ".SH SEE ALSO\n.BR virtnetd (8)",
        ] {
            assert!(page.contains(wanted), "{wanted} missing:\n{page}");
        }
        assert!(
            !page.contains(".SS generate\\-docs"),
            "hidden verbs stay hidden"
        );
    }
}

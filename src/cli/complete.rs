//! `virtnet complete -- WORDS…`: the words that may come next on a command
//! line, as `virsh complete` gives them to shells (one a line): verbs,
//! options, the networks a verb acts on (active ones for net-destroy,
//! inactive ones for net-start…), net-update's commands and sections, the
//! event types. Where a file comes, it prints nothing, and the shell
//! completes file names (the bash script asks it to: `complete -o
//! default`).

use clap::CommandFactory;

use super::args::virtnet::Cli;
use super::client::Client;
use super::failure::{Context, Failure};
use super::output::Output;
use crate::definition::{UpdateCommand, UpdateSection};
use crate::service::list_flags;

/// What comes at the place being completed.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Verbs,
    Options(String),
    Networks(u32),
    Words(Vec<&'static str>),
    Nothing,
}

/// The networks `verb` acts on, as list flags (virsh's completers).
fn networks_of(verb: &str) -> u32 {
    match verb {
        "net-destroy" => list_flags::ACTIVE,
        "net-start" => list_flags::INACTIVE,
        "net-undefine" | "net-autostart" => list_flags::PERSISTENT,
        _ => 0,
    }
}

/// What the verb takes at its `index`th operand (counted from 0).
fn operand(verb: &str, index: usize) -> Place {
    match (verb, index) {
        ("net-update", 1) => Place::Words(UpdateCommand::NAMES.to_vec()),
        ("net-update", 2) => Place::Words(UpdateSection::names().collect()),
        ("net-name", 0) => Place::Nothing,
        (
            "net-start" | "net-destroy" | "net-undefine" | "net-autostart" | "net-info"
            | "net-dumpxml" | "net-uuid" | "net-update" | "net-dhcp-leases" | "net-edit"
            | "net-event" | "net-desc" | "net-metadata",
            0,
        ) => Place::Networks(networks_of(verb)),
        _ => Place::Nothing,
    }
}

/// Where `words` (the command line after `virtnet`, the last one being
/// completed) ends.
fn place(words: &[String]) -> Place {
    let command = Cli::command();
    let takes_value = |verb: Option<&clap::Command>, option: &str| {
        let named = |arg: &&clap::Arg| {
            arg.get_long()
                .is_some_and(|long| option == format!("--{long}"))
                || arg
                    .get_short()
                    .is_some_and(|short| option == format!("-{short}"))
        };
        verb.into_iter()
            .flat_map(clap::Command::get_arguments)
            .chain(command.get_arguments())
            .find(named)
            .is_some_and(|arg| arg.get_action().takes_values())
    };
    let Some((current, before)) = words.split_last() else {
        return Place::Verbs;
    };
    let mut verb: Option<&clap::Command> = None;
    let mut operands = 0;
    let mut value_of: Option<&str> = None;
    for word in before {
        if value_of.take().is_some() {
            continue;
        }
        if word.starts_with('-') {
            if !word.contains('=') && takes_value(verb, word) {
                value_of = Some(word);
            }
        } else if verb.is_none() {
            verb = command.find_subcommand(word);
        } else {
            operands += 1;
        }
    }
    let Some(verb) = verb else {
        return match value_of {
            Some(_) => Place::Nothing,
            None if current.starts_with('-') => Place::Options(String::new()),
            None => Place::Verbs,
        };
    };
    let name = verb.get_name();
    match value_of {
        Some("--network") => Place::Networks(networks_of(name)),
        Some("--command") => operand(name, 1),
        Some("--section") => operand(name, 2),
        Some("--event") => Place::Words(vec!["lifecycle", "metadata-change"]),
        Some(_) => Place::Nothing,
        None if current.starts_with('-') => Place::Options(name.to_owned()),
        None => operand(name, operands),
    }
}

pub(super) async fn complete(
    open: impl AsyncFnOnce() -> Result<Client, Failure>,
    words: &[String],
    out: &mut Output,
) -> Result<(), Failure> {
    let current = words.last().map_or("", String::as_str);
    let command = Cli::command();
    let candidates: Vec<String> = match place(words) {
        Place::Verbs => command
            .get_subcommands()
            .filter(|verb| !verb.is_hide_set())
            .map(|verb| verb.get_name().to_owned())
            .collect(),
        Place::Options(verb) => command
            .find_subcommand(&verb)
            .into_iter()
            .flat_map(clap::Command::get_arguments)
            .chain(command.get_arguments())
            .filter(|arg| !arg.is_hide_set())
            .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
            .collect(),
        Place::Networks(flags) => open()
            .await?
            .virtnet()
            .await?
            .list_network_summaries(flags)
            .await
            .context(|| "Failed to list networks".into())?
            .into_iter()
            .map(|(name, ..)| name)
            .collect(),
        Place::Words(words) => words.into_iter().map(str::to_owned).collect(),
        Place::Nothing => Vec::new(),
    };
    for candidate in candidates {
        if candidate.starts_with(current) {
            out.data(&format!("{candidate}\n"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: &str) -> Place {
        let mut words: Vec<String> = line.split(' ').map(str::to_owned).collect();
        if line.is_empty() {
            words.clear();
        }
        place(&words)
    }

    #[test]
    fn each_place_offers_what_virsh_offers() {
        assert_eq!(at(""), Place::Verbs);
        assert_eq!(at("net-s"), Place::Verbs);
        assert_eq!(at("-c qemu:///system net-"), Place::Verbs);
        assert_eq!(at("net-start "), Place::Networks(list_flags::INACTIVE));
        assert_eq!(
            at("net-destroy --network "),
            Place::Networks(list_flags::ACTIVE)
        );
        assert_eq!(at("net-info de"), Place::Networks(0));
        assert_eq!(at("net-start default "), Place::Nothing);
        assert_eq!(at("net-define "), Place::Nothing);
        assert_eq!(at("net-dumpxml --x"), Place::Options("net-dumpxml".into()));
        assert_eq!(
            at("net-update default a"),
            Place::Words(UpdateCommand::NAMES.to_vec())
        );
        assert_eq!(
            at("net-update --parent-index 0 default add "),
            Place::Words(UpdateSection::names().collect())
        );
        assert_eq!(
            at("net-update default --section "),
            Place::Words(UpdateSection::names().collect())
        );
        assert_eq!(at("net-update default add ip-dhcp-host "), Place::Nothing);
        assert_eq!(
            at("net-event --event "),
            Place::Words(vec!["lifecycle", "metadata-change"])
        );
    }
}

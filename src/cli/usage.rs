//! Usage errors in virsh's words (vshCommandParse, vshCommandOpt*): a
//! script written for virsh that gets its options wrong fails the same way
//! with virtnet, exit status 1 and all.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// A command line virsh would refuse, with virsh's message.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub Vec<String>);

impl UsageError {
    /// What virsh writes to standard error.
    pub fn report(&self) -> String {
        self.0
            .iter()
            .map(|line| format!("error: {line}\n"))
            .collect()
    }
}

/// virsh's operands (`[--network] <string>`): each given by name or by
/// position. Named ones take their place; the positional values fill the
/// others in order, as virsh fills them. `slots` holds, per operand, its
/// name and the values clap saw for it by name and by position (clap puts
/// the positional values into the first positional fields, in order).
pub fn operands<const N: usize>(
    verb: &str,
    slots: [(&str, Option<String>, Option<String>); N],
) -> Result<[String; N], UsageError> {
    let mut positional = slots
        .iter()
        .filter_map(|(_, _, value)| value.clone())
        .collect::<Vec<_>>()
        .into_iter();
    let mut missing = Vec::new();
    let filled = slots.map(|(name, named, _)| {
        named.or_else(|| positional.next()).unwrap_or_else(|| {
            missing.push(format!("command '{verb}' requires <{name}> option"));
            String::new()
        })
    });
    if let Some(extra) = positional.next() {
        return Err(UsageError(vec![format!("unexpected data '{extra}'")]));
    }
    if missing.is_empty() {
        Ok(filled)
    } else {
        Err(UsageError(missing))
    }
}

/// An option's name, and whether it was given.
pub type GivenOption<'a> = (&'a str, bool);

/// virsh's VSH_EXCLUSIVE_OPTIONS, checked as the command starts (so, unlike
/// a refused command line, the failure ends with virsh's blank line): the
/// first pair of options (name, given) given together is refused.
pub fn exclusive(pairs: &[(GivenOption, GivenOption)]) -> Result<(), super::Failure> {
    match pairs
        .iter()
        .find(|((_, first), (_, second))| *first && *second)
    {
        Some(((first, _), (second, _))) => Err(super::Failure::new(format!(
            "Options --{first} and --{second} are mutually exclusive"
        ))),
        None => Ok(()),
    }
}

/// clap's refusal of `argv` in virsh's words; `None` for what is not a
/// usage error (help and version requests, which clap prints itself).
pub fn from_clap(error: &clap::Error, argv: &[String], verbs: &[String]) -> Option<UsageError> {
    let verb = argv
        .iter()
        .find(|word| verbs.contains(word))
        .map_or("virtnet", String::as_str);
    let context = |kind| match error.get(kind) {
        Some(ContextValue::String(text)) => text.clone(),
        Some(ContextValue::Strings(texts)) => texts.first().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    // clap names an option `--name <VALUE>`; virsh names it `--name`.
    let option = |text: String| text.split([' ', '=']).next().unwrap_or_default().to_owned();
    let line = match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => return None,
        ErrorKind::InvalidSubcommand => {
            format!(
                "unknown command: '{}'",
                context(ContextKind::InvalidSubcommand)
            )
        }
        ErrorKind::UnknownArgument => {
            let argument = context(ContextKind::InvalidArg);
            if argument.starts_with('-') {
                format!(
                    "command '{verb}' doesn't support option {}",
                    option(argument)
                )
            } else {
                format!("unexpected data '{argument}'")
            }
        }
        ErrorKind::InvalidValue if context(ContextKind::InvalidValue).is_empty() => {
            let argument = context(ContextKind::InvalidArg);
            // virsh names the value by its type.
            let kind = match argument.split(' ').nth(1) {
                Some("<NUMBER>" | "<SECONDS>") => "<number>",
                _ => "<string>",
            };
            format!("expected syntax: {} {kind}", option(argument))
        }
        ErrorKind::ValueValidation => {
            let name = option(context(ContextKind::InvalidArg));
            format!(
                "Numeric value '{}' for <{}> option is malformed or out of range",
                context(ContextKind::InvalidValue),
                name.trim_start_matches('-')
            )
        }
        ErrorKind::ArgumentConflict
            if context(ContextKind::InvalidArg) == context(ContextKind::PriorArg) =>
        {
            format!(
                "option {} already seen",
                option(context(ContextKind::InvalidArg))
            )
        }
        ErrorKind::ArgumentConflict => format!(
            "Options {} and {} are mutually exclusive",
            option(context(ContextKind::PriorArg)),
            option(context(ContextKind::InvalidArg))
        ),
        _ => first_line(error),
    };
    Some(UsageError(vec![line]))
}

/// clap's own message, without its `error: ` and usage lines.
fn first_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let line = rendered.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::cli::args::virtnet::Cli;

    fn refusal(words: &[&str]) -> Vec<String> {
        let argv: Vec<String> = std::iter::once("virtnet")
            .chain(words.iter().copied())
            .map(str::to_owned)
            .collect();
        let verbs: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|verb| verb.get_name().to_owned())
            .collect();
        let error = Cli::try_parse_from(&argv).err().expect("refused");
        from_clap(&error, &argv, &verbs).expect("a usage error").0
    }

    #[test]
    fn clap_refusals_read_as_virshs() {
        assert_eq!(
            refusal(&["net-start", "--bogus", "x"]),
            ["command 'net-start' doesn't support option --bogus"]
        );
        assert_eq!(refusal(&["net-bogus"]), ["unknown command: 'net-bogus'"]);
        assert_eq!(
            refusal(&["net-dhcp-leases", "default", "--mac"]),
            ["expected syntax: --mac <string>"]
        );
        assert_eq!(
            refusal(&[
                "net-update",
                "n",
                "add",
                "ip",
                "<ip/>",
                "--parent-index",
                "x"
            ]),
            ["Numeric value 'x' for <parent-index> option is malformed or out of range"]
        );
        assert_eq!(
            refusal(&["net-start", "--network", "a", "--network", "b"]),
            ["option --network already seen"]
        );
        assert_eq!(refusal(&["net-start", "a", "b"]), ["unexpected data 'b'"]);
    }

    #[test]
    fn the_first_pair_given_together_is_refused() {
        assert!(exclusive(&[(("current", true), ("live", false))]).is_ok());
        let refused = exclusive(&[
            (("current", true), ("live", false)),
            (("current", true), ("config", true)),
        ])
        .expect_err("refused");
        assert_eq!(
            refused.report(),
            "error: Options --current and --config are mutually exclusive\n"
        );
        assert!(!refused.is_usage(), "checked as the command runs");
    }

    #[test]
    fn operands_are_filled_by_name_then_in_order() {
        let slot = |name, named: Option<&str>, positional: Option<&str>| {
            (
                name,
                named.map(str::to_owned),
                positional.map(str::to_owned),
            )
        };
        assert_eq!(
            operands(
                "net-update",
                [
                    slot("network", None, Some("default")),
                    slot("command", Some("add"), Some("ip-dhcp-host")),
                    slot("section", None, Some("<host/>")),
                    slot("xml", None, None),
                ]
            ),
            Ok(["default", "add", "ip-dhcp-host", "<host/>"].map(str::to_owned))
        );
        assert_eq!(
            operands(
                "net-update",
                [
                    slot("network", None, Some("default")),
                    slot("command", None, Some("add")),
                    slot("section", None, None),
                    slot("xml", None, None),
                ]
            ),
            Err(UsageError(vec![
                "command 'net-update' requires <section> option".into(),
                "command 'net-update' requires <xml> option".into()
            ]))
        );
        assert_eq!(
            operands("net-start", [slot("network", Some("a"), Some("b"))]),
            Err(UsageError(vec!["unexpected data 'b'".into()]))
        );
    }
}

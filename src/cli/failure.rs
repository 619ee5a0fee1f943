//! How a failed command is reported: virsh prints what it was doing, then
//! why (for daemon errors, libvirt's message).

use super::usage::UsageError;
use crate::dbus;

/// A failed command: virsh prints what it was doing, then why.
pub struct Failure {
    pub(super) context: Option<String>,
    /// Empty when there is nothing to say (the user gave up). May span
    /// lines (a schema's findings).
    pub(super) message: String,
    /// The command line was wrong: virsh ran nothing, so it prints no
    /// closing blank line.
    pub(super) usage: bool,
}

impl Failure {
    pub(super) fn new(message: impl Into<String>) -> Self {
        Self {
            context: None,
            message: message.into(),
            usage: false,
        }
    }

    /// This failure, as the reason why `context` failed.
    pub(super) fn within(self, context: String) -> Self {
        Self {
            context: Some(context),
            ..self
        }
    }

    /// Whether the command line itself was refused.
    pub fn is_usage(&self) -> bool {
        self.usage
    }

    /// The user chose to stop (net-edit's `n`): virsh fails silently.
    pub(super) fn given_up() -> Self {
        Self::new(String::new())
    }

    /// What virsh writes to standard error: an `error:` line for what it
    /// was doing and one for why.
    pub fn report(&self) -> String {
        [self.context.as_deref(), Some(self.message.as_str())]
            .into_iter()
            .flatten()
            .filter(|line| !line.is_empty())
            .map(|line| format!("error: {line}\n"))
            .collect()
    }
}

/// The start of the line that says virtnetd could not be reached.
pub(super) const NOT_CONNECTED: &str = "failed to connect to virtnetd";

/// A call the bus itself answered: it refused it, virtnetd is gone, or
/// virtnetd ended while the call was under way.
enum BusAnswer<'e> {
    Denied(&'e str),
    Gone(&'e str),
    Cut(&'e str),
}

/// zbus gives the bus's standard errors as fdo errors, or as method errors
/// by name.
fn bus_answer(error: &zbus::Error) -> Option<BusAnswer<'_>> {
    use zbus::fdo::Error as Fdo;
    match error {
        zbus::Error::FDO(fdo) => match fdo.as_ref() {
            Fdo::AccessDenied(text) => Some(BusAnswer::Denied(text)),
            Fdo::ServiceUnknown(text) | Fdo::NameHasNoOwner(text) => Some(BusAnswer::Gone(text)),
            Fdo::NoReply(text) => Some(BusAnswer::Cut(text)),
            _ => None,
        },
        zbus::Error::MethodError(name, text, _) => {
            let text = text.as_deref().unwrap_or_default();
            match name.as_str() {
                "org.freedesktop.DBus.Error.AccessDenied" => Some(BusAnswer::Denied(text)),
                "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner" => Some(BusAnswer::Gone(text)),
                "org.freedesktop.DBus.Error.NoReply" => Some(BusAnswer::Cut(text)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A failed call: what it was doing and why, or, when the bus refused the
/// call or virtnetd is gone, just that (what it was doing says nothing
/// more).
fn call_failure(error: zbus::Error, context: Option<impl FnOnce() -> String>) -> Failure {
    match bus_answer(&error) {
        Some(BusAnswer::Denied(text)) => Failure::new(format!("access denied: {}", denial(text))),
        Some(BusAnswer::Gone(text)) => {
            Failure::new(format!("{NOT_CONNECTED}: virtnetd is not running ({text})"))
        }
        // What it was doing stays said: it may or may not have been done.
        Some(BusAnswer::Cut(text)) => Failure {
            context: context.map(|context| context()),
            message: format!("virtnetd ended before it answered ({text})"),
            usage: false,
        },
        None => Failure {
            context: context.map(|context| context()),
            message: bus_error(error),
            usage: false,
        },
    }
}

/// The bus's refusal, which names every matched rule, said shortly: the
/// method refused.
fn denial(description: &str) -> String {
    let member = description
        .split("member=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next());
    match member {
        Some(member) => {
            format!("the bus's policy does not let this user call {member} on virtnetd")
        }
        None => description.to_owned(),
    }
}

impl From<UsageError> for Failure {
    fn from(error: UsageError) -> Self {
        Self {
            context: None,
            message: error.0.join("\nerror: "),
            usage: true,
        }
    }
}

/// What went wrong on the bus: for daemon errors, libvirt's message.
pub(super) fn bus_error(error: zbus::Error) -> String {
    match error {
        zbus::Error::MethodError(name, description, _) => match description {
            Some(text) if name.as_str() == "org.libvirt.Error" => text,
            Some(text) => format!("{}: {text}", name.as_str()),
            None => name.as_str().to_owned(),
        },
        zbus::Error::FDO(error) => match *error {
            zbus::fdo::Error::UnknownObject(description) => vanished_network(&description)
                .unwrap_or_else(|| zbus::fdo::Error::UnknownObject(description).to_string()),
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}

/// libvirt's words for a network's object that is gone (`Unknown object
/// 'PATH'` from the daemon, when another client removed the network after
/// this one looked it up and the daemon no longer keeps its object).
fn vanished_network(description: &str) -> Option<String> {
    let path = description.split('\'').nth(1)?;
    let uuid = dbus::network_uuid(path)?;
    Some(format!(
        "Network not found: no network with matching uuid '{uuid}'"
    ))
}

pub(super) trait Context<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, Failure>;

    /// The failure with libvirt's reason only, as virsh reports calls it
    /// says nothing of.
    fn reason_only(self) -> Result<T, Failure>;
}

impl<T> Context<T> for zbus::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|error| call_failure(error, Some(context)))
    }

    fn reason_only(self) -> Result<T, Failure> {
        self.map_err(|error| call_failure(error, None::<fn() -> String>))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_call_is_one_line() {
        let denied = zbus::Error::MethodError(
            "org.freedesktop.DBus.Error.AccessDenied"
                .try_into()
                .unwrap(),
            Some(
                "Rejected send message, 2 matched rules; type=\"method_call\", \
                 sender=\":1.7\" (uid=1000 pid=9 comm=\"virtnet\") \
                 interface=\"org.libvirt.Connect\" member=\"NetworkDefineXML\""
                    .into(),
            ),
            zbus::message::Message::method_call("/", "Ping")
                .build(&())
                .unwrap(),
        );
        let failure = Err::<(), _>(denied).context(|| "Failed to define network".into());
        assert_eq!(
            failure.err().unwrap().report(),
            "error: access denied: the bus's policy does not let this user call \
             NetworkDefineXML on virtnetd\n"
        );
    }

    #[test]
    fn a_vanished_networks_object_is_reported_in_libvirts_words() {
        let gone = zbus::fdo::Error::UnknownObject(
            "Unknown object '/org/virtnet/network/_0c7b2f4a_5f55_4a3c_9d3c_3d2f1b0e9a11'".into(),
        );
        assert_eq!(
            bus_error(zbus::Error::FDO(Box::new(gone))),
            "Network not found: no network with matching uuid '0c7b2f4a-5f55-4a3c-9d3c-3d2f1b0e9a11'"
        );
        let other = zbus::fdo::Error::UnknownObject("Unknown object '/org/virtnet'".into());
        assert_eq!(
            bus_error(zbus::Error::FDO(Box::new(other))),
            "org.freedesktop.DBus.Error.UnknownObject: Unknown object '/org/virtnet'"
        );
    }
}

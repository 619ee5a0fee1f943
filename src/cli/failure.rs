//! How a failed command is reported: virsh prints what it was doing, then
//! why (for daemon errors, libvirt's message).

use crate::dbus;

/// A failed command: virsh prints what it was doing, then why.
pub struct Failure {
    pub(super) context: Option<String>,
    /// Empty when there is nothing to say (the user gave up).
    pub(super) message: String,
    /// What goes to standard output all the same (doctor's findings).
    pub(super) output: String,
}

impl Failure {
    pub(super) fn new(message: impl Into<String>) -> Self {
        Self {
            context: None,
            message: message.into(),
            output: String::new(),
        }
    }

    /// A command that did its work and found something wrong: `output`
    /// is printed as a success's would be, the exit status says failure.
    pub(super) fn found(output: String) -> Self {
        Self {
            output,
            ..Self::given_up()
        }
    }

    /// What the command printed before it failed.
    pub fn output(&self) -> &str {
        &self.output
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
}

impl<T> Context<T> for zbus::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|error| Failure {
            context: Some(context()),
            message: bus_error(error),
            output: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

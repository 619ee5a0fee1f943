//! How a failed command is reported: virsh prints what it was doing, then
//! why (for daemon errors, libvirt's message).

/// A failed command: virsh prints what it was doing, then why.
pub struct Failure {
    pub(super) context: Option<String>,
    /// Empty when there is nothing to say (the user gave up).
    pub(super) message: String,
}

impl Failure {
    pub(super) fn new(message: impl Into<String>) -> Self {
        Self {
            context: None,
            message: message.into(),
        }
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
        zbus::Error::FDO(error) => error.to_string(),
        other => other.to_string(),
    }
}

pub(super) trait Context<T> {
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

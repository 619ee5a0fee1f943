//! `net-edit` as virsh does it (virsh-edit.c): the persistent XML in an
//! editor; unchanged, nothing happens; changed, it is defined, unless
//! someone else changed the network meanwhile. When that or the definition
//! fails, a terminal is asked whether to edit again, force or give up, so
//! the edit is not lost.

use super::client::Client;
use super::editor::{self, EditorError};
use super::failure::{Context, Failure, bus_error};
use super::output::Output;
use super::reedit::{self, Answer};
use crate::dbus::client::NetworkProxy;
use crate::definition::{NetworkDef, error_chain};

const INACTIVE: u32 = 1;

/// virsh's verdict when the definition was refused.
const FAILED: &str = "Failed.";
/// virsh's verdict when the network changed while it was being edited.
const CHANGED: &str = "The XML configuration was changed by another user.";

fn editor_failure(error: &EditorError) -> Failure {
    Failure::new(error_chain(error))
}

pub(super) async fn edit(client: &Client, network: &str, out: &mut Output) -> Result<(), Failure> {
    let proxy = client.network(network).await?;
    let name = proxy
        .name()
        .await
        .context(|| "failed to get network name".into())?;
    let mut original = persistent_xml(&proxy, network).await?;
    // Removed when dropped, whichever way this returns.
    let file = editor::write_temporary(original.clone())
        .await
        .map_err(|error| editor_failure(&error))?;
    'edit: loop {
        editor::run(file.path())
            .await
            .map_err(|error| editor_failure(&error))?;
        let edited = editor::read_back(file.path().to_owned())
            .await
            .map_err(|error| editor_failure(&error))?;
        if edited == original {
            out.extra(&format!("Network {name} XML configuration not changed.\n"));
            return Ok(());
        }
        loop {
            // Read again: someone may have changed the network, or removed
            // it, while the editor ran.
            let current = persistent_xml(&proxy, network).await?;
            let (verdict, reason) = if current == original {
                match client.connect().await?.network_define_xml(&edited).await {
                    Ok(_) => {
                        // Defined, so it parses; its name may be a new one.
                        let edited_name = NetworkDef::parse(&edited)
                            .map_or_else(|_| name.clone(), |def| def.name.to_string());
                        out.extra(&format!(
                            "Network {edited_name} XML configuration edited.\n"
                        ));
                        return Ok(());
                    }
                    Err(error) => (FAILED, Some(bus_error(error))),
                }
            } else {
                // Forcing now overwrites the other change.
                original = current;
                (CHANGED, None)
            };
            match reedit::ask(verdict, reason.clone())
                .await
                .map_err(|error| Failure::new(error_chain(&error)))?
            {
                Some(Answer::EditAgain) => continue 'edit,
                Some(Answer::Force) => {}
                Some(Answer::GiveUp) => return Err(Failure::given_up()),
                // No terminal to ask: libvirt's reason, then virsh's
                // verdict, and the edit is refused.
                None => {
                    return Err(Failure {
                        context: reason,
                        message: verdict.to_owned(),
                        usage: false,
                    });
                }
            }
        }
    }
}

async fn persistent_xml(proxy: &NetworkProxy<'static>, network: &str) -> Result<String, Failure> {
    proxy
        .get_xml_desc(INACTIVE)
        .await
        .context(|| format!("Failed to get the XML of network {network}"))
}

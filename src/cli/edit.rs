//! `net-edit`: a network's persistent XML through an editor, redefined
//! when changed.

use super::client::Client;
use super::failure::{Context, Failure};

/// net-edit: the persistent XML in $EDITOR (then $VISUAL, then vi),
/// redefined when changed.
pub(super) async fn edit(client: &Client, network: &str) -> Result<String, Failure> {
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

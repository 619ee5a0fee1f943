//! libvirtd's side of `virtnet import --uri`: its networks as they are
//! defined and running, and the verbs that hand one over to virtnet.

use virt::connect::Connect;
use virt::network::Network;

use crate::definition::{DefinitionError, NetworkDef, Uuid};

#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    #[error("cannot connect to libvirtd at {uri}")]
    Connect {
        uri: String,
        #[source]
        source: virt::error::Error,
    },
    #[error("libvirtd cannot {action}")]
    Call {
        action: String,
        #[source]
        source: virt::error::Error,
    },
    #[error("cannot read libvirtd's network '{name}'")]
    Definition {
        name: String,
        #[source]
        source: DefinitionError,
    },
    #[error("libvirtd has no network named '{0}'")]
    NoSuchNetwork(String),
}

fn call(action: impl Into<String>) -> impl FnOnce(virt::error::Error) -> LibvirtError {
    let action = action.into();
    move |source| LibvirtError::Call { action, source }
}

/// One of libvirtd's networks.
pub struct LibvirtNetwork {
    /// The persistent definition (the live one for a transient network).
    pub def: NetworkDef,
    pub xml: String,
    pub active: bool,
    pub persistent: bool,
    pub autostart: bool,
}

/// A connection to libvirtd for importing its networks.
pub struct Libvirt {
    connection: Connect,
}

impl Libvirt {
    pub fn open(uri: &str) -> Result<Self, LibvirtError> {
        virt::error::clear_error_callback();
        let connection = Connect::open(Some(uri)).map_err(|source| LibvirtError::Connect {
            uri: uri.to_owned(),
            source,
        })?;
        Ok(Self { connection })
    }

    /// The networks named in `names`, or all, in name order.
    pub fn networks(&self, names: &[String]) -> Result<Vec<LibvirtNetwork>, LibvirtError> {
        let mut found = Vec::new();
        for network in self
            .connection
            .list_all_networks(0)
            .map_err(call("list its networks"))?
        {
            let name = network.get_name().map_err(call("name a network"))?;
            if !names.is_empty() && !names.contains(&name) {
                continue;
            }
            found.push(describe(&network, name)?);
        }
        if let Some(missing) = names.iter().find(|name| {
            !found
                .iter()
                .any(|net| net.def.name.as_str() == name.as_str())
        }) {
            return Err(LibvirtError::NoSuchNetwork(missing.clone()));
        }
        found.sort_by(|a, b| a.def.name.as_str().cmp(b.def.name.as_str()));
        Ok(found)
    }

    fn network(&self, uuid: &Uuid) -> Result<Network, LibvirtError> {
        Network::lookup_by_uuid_string(&self.connection, &uuid.to_string())
            .map_err(call(format!("find network {uuid}")))
    }

    /// net-destroy in libvirtd.
    pub fn stop(&self, uuid: &Uuid) -> Result<(), LibvirtError> {
        self.network(uuid)?
            .destroy()
            .map_err(call(format!("stop network {uuid}")))
    }

    /// net-start in libvirtd.
    pub fn start(&self, uuid: &Uuid) -> Result<(), LibvirtError> {
        self.network(uuid)?
            .create()
            .map(drop)
            .map_err(call(format!("start network {uuid}")))
    }

    pub fn set_autostart(&self, uuid: &Uuid, autostart: bool) -> Result<(), LibvirtError> {
        let turn = if autostart { "on" } else { "off" };
        self.network(uuid)?
            .set_autostart(autostart)
            .map(drop)
            .map_err(call(format!("turn {turn} autostart of network {uuid}")))
    }

    /// net-define in libvirtd.
    pub fn define(&self, xml: &str) -> Result<(), LibvirtError> {
        Network::define_xml(&self.connection, xml)
            .map(drop)
            .map_err(call("define a network again"))
    }

    /// net-undefine in libvirtd.
    pub fn undefine(&self, uuid: &Uuid) -> Result<(), LibvirtError> {
        self.network(uuid)?
            .undefine()
            .map_err(call(format!("undefine network {uuid}")))
    }
}

impl Drop for Libvirt {
    fn drop(&mut self) {
        let _ = self.connection.close();
    }
}

fn describe(network: &Network, name: String) -> Result<LibvirtNetwork, LibvirtError> {
    let action = |what: &str| call(format!("{what} of network '{name}'"));
    let active = network.is_active().map_err(action("tell the state"))?;
    let persistent = network.is_persistent().map_err(action("tell the kind"))?;
    let autostart = persistent && network.get_autostart().map_err(action("tell autostart"))?;
    let flags = if persistent {
        virt::sys::VIR_NETWORK_XML_INACTIVE
    } else {
        0
    };
    let xml = network
        .get_xml_desc(flags)
        .map_err(action("get the definition"))?;
    let def = NetworkDef::parse(&xml).map_err(|source| LibvirtError::Definition {
        name: name.clone(),
        source,
    })?;
    Ok(LibvirtNetwork {
        def,
        xml,
        active,
        persistent,
        autostart,
    })
}

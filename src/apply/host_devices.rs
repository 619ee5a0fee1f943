//! The host's devices that networks without a bridge of their own hand to
//! guests: a host bridge, interfaces for macvtap, SR-IOV functions, PCI
//! devices.

use std::path::PathBuf;

use crate::apply::pool::InterfacePool;
use crate::definition::{NetworkDef, PciAddress};
use crate::plan::network::HostDevices;

use super::StartError;
use super::netlink::Netlink;

pub(super) async fn check_host_devices(
    def: &NetworkDef,
    devices: &HostDevices,
    netlink: &Netlink,
) -> Result<(), StartError> {
    let missing = |what, device: &str| StartError::MissingDevice {
        network: def.name.to_string(),
        what,
        device: device.to_owned(),
    };
    match devices {
        HostDevices::Bridge(bridge) => {
            if !netlink.is_bridge(bridge).await? {
                return Err(missing("bridge", bridge));
            }
        }
        HostDevices::Netdevs(names) => {
            for name in names {
                if netlink.link_index(name).await?.is_none() {
                    return Err(missing("interface", name));
                }
            }
        }
        HostDevices::PhysicalFunction(pf) => {
            if netlink.link_index(pf).await?.is_none() {
                return Err(missing("interface", pf));
            }
        }
        HostDevices::Pci(addresses) => {
            if let Some(address) = addresses
                .iter()
                .find(|address| !std::path::Path::new(&pci_sysfs(address)).exists())
            {
                return Err(missing("PCI device", &pci_name(address)));
            }
        }
    }
    Ok(())
}

fn pci_name(address: &PciAddress) -> String {
    format!(
        "{:04x}:{:02x}:{:02x}.{:x}",
        address.domain, address.bus, address.slot, address.function
    )
}

fn pci_sysfs(address: &PciAddress) -> String {
    format!("/sys/bus/pci/devices/{}", pci_name(address))
}

pub(crate) fn pool_for(def: &NetworkDef, devices: &HostDevices) -> Option<InterfacePool> {
    let mode = def.forward_mode()?;
    let members: Vec<String> = match devices {
        HostDevices::Bridge(_) => return None,
        HostDevices::Netdevs(names) => names.clone(),
        HostDevices::Pci(addresses) => addresses.iter().map(pci_name).collect(),
        HostDevices::PhysicalFunction(pf) => virtual_functions(pf),
    };
    Some(InterfacePool::new(mode, members))
}

/// The network devices of a physical function's virtual functions.
fn virtual_functions(pf: &str) -> Vec<String> {
    let device = PathBuf::from(format!("/sys/class/net/{pf}/device"));
    let Ok(entries) = std::fs::read_dir(&device) else {
        return Vec::new();
    };
    let mut functions: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("virtfn"))
        .filter_map(|entry| std::fs::read_dir(entry.path().join("net")).ok())
        .flat_map(|names| names.filter_map(Result::ok))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    functions.sort();
    functions
}

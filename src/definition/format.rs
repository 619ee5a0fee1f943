//! [`NetworkDef`] → XML in libvirt's canonical form (what `virsh net-dumpxml`
//! prints): fixed element order, single quotes, defaults made explicit
//! where libvirt makes them explicit.

use std::net::IpAddr;

use crate::xml::write::{Tag, XmlWriter};

use super::*;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormatFlags {
    /// `--inactive`: the persistent configuration, without live-only details.
    pub inactive: bool,
}

pub(super) fn network(def: &NetworkDef, flags: FormatFlags) -> String {
    let mut w = XmlWriter::default();
    let has_dnsmasq = !def.dnsmasq_options.is_empty();
    w.tag("network")
        .attr_opt("xmlns:dnsmasq", has_dnsmasq.then_some(DNSMASQ_NAMESPACE))
        .attr_opt("ipv6", def.ipv6_without_gateway.then_some("yes"))
        .attr_opt(
            "trustGuestRxFilters",
            def.trust_guest_rx_filters.map(yes_no),
        )
        .open();
    w.text_element("name", def.name.as_str());
    w.text_element("uuid", &def.uuid.to_string());
    if let Some(title) = &def.title {
        w.text_element("title", title.as_str());
    }
    if let Some(description) = &def.description {
        w.text_element("description", description);
    }
    if let Some(metadata) = &def.metadata {
        w.foreign_element(&metadata.element, &metadata.inherited);
    }
    if let Some(forward) = &def.forward {
        write_forward(&mut w, forward, flags);
    }
    write_bridge(&mut w, def);
    if let Some(mtu) = def.mtu {
        w.tag("mtu").attr("size", mtu).empty();
    }
    if let Some(mac) = def.mac {
        w.tag("mac").attr("address", mac).empty();
    }
    if let Some(domain) = &def.domain {
        w.tag("domain")
            .attr("name", &domain.name)
            .attr_opt("localOnly", domain.local_only.map(yes_no))
            .attr_opt("register", domain.register.map(yes_no))
            .empty();
    }
    write_dns(&mut w, &def.dns);
    if let Some(vlan) = &def.vlan {
        write_vlan(&mut w, vlan);
    }
    if let Some(bandwidth) = &def.bandwidth {
        write_bandwidth(&mut w, bandwidth);
    }
    if let Some(isolated) = def.port_isolated {
        w.tag("port").attr("isolated", yes_no(isolated)).empty();
    }
    for ip in &def.ips {
        write_ip(&mut w, ip);
    }
    for route in &def.routes {
        w.tag("route")
            .attr_opt("family", route.family.map(IpFamily::as_str))
            .attr("address", address(&route.address))
            .attr_opt("netmask", route.netmask)
            .attr_opt("prefix", route.prefix)
            .attr("gateway", address(&route.gateway))
            .attr_opt("metric", route.metric)
            .empty();
    }
    if let Some(port) = &def.virtualport {
        write_virtualport(&mut w, port);
    }
    for group in &def.portgroups {
        w.tag("portgroup")
            .attr("name", &group.name)
            .attr_opt("default", group.is_default.then_some("yes"))
            .attr_opt(
                "trustGuestRxFilters",
                group.trust_guest_rx_filters.map(yes_no),
            )
            .open();
        if let Some(vlan) = &group.vlan {
            write_vlan(&mut w, vlan);
        }
        if let Some(port) = &group.virtualport {
            write_virtualport(&mut w, port);
        }
        if let Some(bandwidth) = &group.bandwidth {
            write_bandwidth(&mut w, bandwidth);
        }
        w.close("portgroup");
    }
    if has_dnsmasq {
        w.tag("dnsmasq:options").open();
        for option in &def.dnsmasq_options {
            w.tag("dnsmasq:option").attr("value", option).empty();
        }
        w.close("dnsmasq:options");
    }
    w.close("network");
    w.finish()
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// An address as glibc's inet_ntop prints it, which differs from Rust's
/// `Display` for IPv4-compatible IPv6 addresses (`::0.10.0.11`).
pub fn address(address: &IpAddr) -> String {
    if let IpAddr::V6(v6) = address {
        let segments = v6.segments();
        let octets = v6.octets();
        let compatible = segments[..6] == [0; 6] && segments[6] != 0;
        let mapped = segments[..5] == [0; 5] && segments[5] == 0xffff;
        if compatible || mapped {
            let prefix = if mapped { "::ffff:" } else { "::" };
            return format!(
                "{prefix}{}.{}.{}.{}",
                octets[12], octets[13], octets[14], octets[15]
            );
        }
    }
    address.to_string()
}

fn write_forward(w: &mut XmlWriter, forward: &Forward, flags: FormatFlags) {
    let interfaces_shown =
        !forward.interfaces.is_empty() && (forward.pf.is_none() || !flags.inactive);
    let nat_shown = forward.nat.as_ref().is_some_and(|nat| {
        forward.mode == ForwardMode::Nat
            && (nat.ipv6.is_some() || nat.addresses.is_some() || nat.ports.is_some())
    });
    let has_children = !forward.interfaces.is_empty()
        || forward.pf.is_some()
        || nat_shown
        || forward.driver.is_some();
    w.tag("forward")
        .attr_opt("dev", forward.dev())
        .attr("mode", forward.mode.as_str())
        .attr_opt(
            "managed",
            (forward.mode == ForwardMode::Hostdev).then_some(yes_no(forward.managed)),
        )
        .empty_or_open(has_children);
    if !has_children {
        return;
    }
    if let Some(driver) = &forward.driver {
        w.tag("driver")
            .attr_opt("name", driver.name.map(DriverName::as_str))
            .attr_opt("model", driver.model.as_ref())
            .empty();
    }
    if let Some(nat) = forward.nat.as_ref().filter(|_| nat_shown) {
        let has_ranges = nat.addresses.is_some() || nat.ports.is_some();
        w.tag("nat")
            .attr_opt("ipv6", nat.ipv6.map(yes_no))
            .empty_or_open(has_ranges);
        if has_ranges {
            if let Some((start, end)) = nat.addresses {
                w.tag("address")
                    .attr("start", start)
                    .attr("end", end)
                    .empty();
            }
            if let Some((start, end)) = nat.ports {
                w.tag("port")
                    .attr("start", start)
                    .attr_opt("end", (end != 0).then_some(end))
                    .empty();
            }
            w.close("nat");
        }
    }
    if let Some(pf) = &forward.pf {
        w.tag("pf").attr("dev", pf).empty();
    }
    if interfaces_shown {
        for interface in &forward.interfaces {
            match interface {
                ForwardInterface::Netdev(name) => w.tag("interface").attr("dev", name).empty(),
                ForwardInterface::Pci(pci) => {
                    pci_address_attributes(w.tag("address").attr("type", "pci"), pci).empty()
                }
            }
        }
    }
    w.close("forward");
}

/// A PCI address's attributes as libvirt prints them; the function is
/// written as `0x` and its decimal digits, as libvirt does (it is at most 7).
pub(super) fn pci_address_attributes<'w>(tag: Tag<'w>, pci: &PciAddress) -> Tag<'w> {
    tag.attr("domain", format_args!("0x{:04x}", pci.domain))
        .attr("bus", format_args!("0x{:02x}", pci.bus))
        .attr("slot", format_args!("0x{:02x}", pci.slot))
        .attr("function", format_args!("0x{}", pci.function))
}

fn write_bridge(w: &mut XmlWriter, def: &NetworkDef) {
    let own_bridge = ForwardMode::has_own_bridge(def.forward_mode());
    let bridge = &def.bridge;
    if !(own_bridge || bridge.name.is_some() || bridge.mac_table_manager.is_some()) {
        return;
    }
    let mut tag = w
        .tag("bridge")
        .attr_opt("name", bridge.name.as_ref())
        .attr_opt("zone", bridge.zone.as_ref());
    if own_bridge {
        tag = tag
            .attr("stp", if bridge.stp { "on" } else { "off" })
            .attr("delay", bridge.delay);
    }
    tag.attr_opt(
        "macTableManager",
        bridge.mac_table_manager.map(MacTableManager::as_str),
    )
    .empty();
}

fn write_dns(w: &mut XmlWriter, dns: &Dns) {
    let has_records = !(dns.forwarders.is_empty()
        && dns.txts.is_empty()
        && dns.srvs.is_empty()
        && dns.hosts.is_empty());
    if dns.enable.is_none() && dns.forward_plain_names.is_none() && !has_records {
        return;
    }
    w.tag("dns")
        .attr_opt("enable", dns.enable.map(yes_no))
        .attr_opt("forwardPlainNames", dns.forward_plain_names.map(yes_no))
        .empty_or_open(has_records);
    if !has_records {
        return;
    }
    for forwarder in &dns.forwarders {
        w.tag("forwarder")
            .attr_opt("domain", forwarder.domain.as_ref())
            .attr_opt("addr", forwarder.addr.as_ref().map(address))
            .attr_opt("port", forwarder.port)
            .empty();
    }
    for txt in &dns.txts {
        w.tag("txt")
            .attr("name", &txt.name)
            .attr("value", &txt.value)
            .empty();
    }
    for srv in &dns.srvs {
        w.tag("srv")
            .attr("service", &srv.service)
            .attr("protocol", &srv.protocol)
            .attr_opt("domain", srv.domain.as_ref())
            .attr_opt("target", srv.target.as_ref())
            .attr_opt("port", (srv.port != 0).then_some(srv.port))
            .attr_opt("priority", (srv.priority != 0).then_some(srv.priority))
            .attr_opt("weight", (srv.weight != 0).then_some(srv.weight))
            .empty();
    }
    for host in &dns.hosts {
        w.tag("host").attr("ip", address(&host.ip)).open();
        for hostname in &host.hostnames {
            w.text_element("hostname", hostname.as_str());
        }
        w.close("host");
    }
    w.close("dns");
}

pub(super) fn write_vlan(w: &mut XmlWriter, vlan: &Vlan) {
    w.tag("vlan")
        .attr_opt("trunk", vlan.trunk.then_some("yes"))
        .open();
    for tag in &vlan.tags {
        w.tag("tag")
            .attr("id", tag.id)
            .attr_opt("nativeMode", tag.native_mode.map(NativeMode::as_str))
            .empty();
    }
    w.close("vlan");
}

/// A `<bandwidth>` element as libvirt writes it.
pub fn write_bandwidth(w: &mut XmlWriter, bandwidth: &Bandwidth) {
    write_bandwidth_with_class(w, bandwidth, None);
}

/// A `<bandwidth>` with a port's htb class id, when it has one.
pub(super) fn write_bandwidth_with_class(
    w: &mut XmlWriter,
    bandwidth: &Bandwidth,
    class_id: Option<u32>,
) {
    w.tag("bandwidth").attr_opt("classID", class_id).open();
    for (name, rate) in [
        ("inbound", &bandwidth.inbound),
        ("outbound", &bandwidth.outbound),
    ] {
        let Some(rate) = rate.filter(|rate| rate.average != 0 || rate.floor != 0) else {
            continue;
        };
        let nonzero = |value: u64| (value != 0).then_some(value);
        w.tag(name)
            .attr_opt("average", nonzero(rate.average))
            .attr_opt("peak", nonzero(rate.peak))
            .attr_opt("floor", nonzero(rate.floor))
            .attr_opt("burst", nonzero(rate.burst))
            .empty();
    }
    w.close("bandwidth");
}

pub(super) fn write_virtualport(w: &mut XmlWriter, port: &VirtualPort) {
    use VirtualPortType::*;
    let kind = port.kind;
    let any_kind = |allowed: &[VirtualPortType]| kind.is_none_or(|k| allowed.contains(&k));
    let manager_id = port.manager_id.filter(|_| any_kind(&[Qbg]));
    let type_id = port.type_id.filter(|_| any_kind(&[Qbg]));
    let type_id_version = port.type_id_version.filter(|_| any_kind(&[Qbg]));
    let instance_id = port.instance_id.filter(|_| any_kind(&[Qbg]));
    let interface_id = port
        .interface_id
        .filter(|_| any_kind(&[Midonet, OpenVswitch]));
    let profile_id = port
        .profile_id
        .as_ref()
        .filter(|_| any_kind(&[OpenVswitch, Qbh]));
    let has_parameters = port.manager_id.is_some()
        || port.type_id.is_some()
        || port.type_id_version.is_some()
        || port.instance_id.is_some()
        || port.profile_id.is_some()
        || port.interface_id.is_some();
    if kind.is_none() && !has_parameters {
        return;
    }
    w.tag("virtualport")
        .attr_opt("type", kind.map(VirtualPortType::as_str))
        .empty_or_open(has_parameters);
    if !has_parameters {
        return;
    }
    w.tag("parameters")
        .attr_opt("managerid", manager_id)
        .attr_opt("typeid", type_id)
        .attr_opt("typeidversion", type_id_version)
        .attr_opt("instanceid", instance_id)
        .attr_opt("interfaceid", interface_id)
        .attr_opt("profileid", profile_id)
        .empty();
    w.close("virtualport");
}

fn write_lease(w: &mut XmlWriter, lease: &Lease) {
    if lease.expiry == 0 {
        w.tag("lease").attr("expiry", 0).empty();
    } else {
        w.tag("lease")
            .attr("expiry", lease.expiry)
            .attr("unit", lease.unit.as_str())
            .empty();
    }
}

fn write_ip(w: &mut XmlWriter, ip: &IpDef) {
    w.tag("ip")
        .attr_opt("family", ip.family.map(IpFamily::as_str))
        .attr("address", address(&ip.address))
        .attr_opt("netmask", ip.netmask)
        .attr_opt("prefix", (ip.prefix > 0).then_some(ip.prefix))
        .attr_opt("localPtr", ip.local_ptr.map(yes_no))
        .open();
    if let Some(root) = &ip.tftp_root {
        w.tag("tftp").attr("root", root).empty();
    }
    if ip.has_dhcp() {
        w.tag("dhcp").open();
        for range in &ip.dhcp.ranges {
            w.tag("range")
                .attr("start", address(&range.start))
                .attr("end", address(&range.end))
                .empty_or_open(range.lease.is_some());
            if let Some(lease) = &range.lease {
                write_lease(w, lease);
                w.close("range");
            }
        }
        for host in &ip.dhcp.hosts {
            w.tag("host")
                .attr_opt("mac", host.mac.as_ref())
                .attr_opt("id", host.id.as_ref())
                .attr_opt("name", host.name.as_ref())
                .attr_opt("ip", host.ip.as_ref().map(address))
                .empty_or_open(host.lease.is_some());
            if let Some(lease) = &host.lease {
                write_lease(w, lease);
                w.close("host");
            }
        }
        if let Some(bootp) = &ip.dhcp.bootp {
            w.tag("bootp")
                .attr("file", &bootp.file)
                .attr_opt("server", bootp.server.as_ref().map(address))
                .empty();
        }
        w.close("dhcp");
    }
    w.close("ip");
}

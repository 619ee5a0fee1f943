use super::*;

const UUID: &str = "5d744f21-ba4a-4d6e-bdb2-30a35ff3207d";
const OWNER: &str =
    "<owner><name>guest</name><uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2c</uuid></owner>";
const MAC: &str = "<mac address='52:54:00:7b:35:93'/>";

/// A port document with uuid, owner and MAC, then `rest`.
fn port_with(rest: &str) -> String {
    format!("<networkport><uuid>{UUID}</uuid>{OWNER}{MAC}{rest}</networkport>")
}

/// The refusal's message for `xml`.
fn refusal(xml: &str) -> String {
    match NetworkPortDef::parse(xml) {
        Ok(port) => panic!("accepted: {}", port.to_xml()),
        Err(error) => error.to_string(),
    }
}

/// The formatted port, after checking that it reads back into the same
/// port and formats the same again.
fn round_trip(xml: &str) -> String {
    let port = NetworkPortDef::parse(xml).unwrap_or_else(|error| panic!("{error}: {xml}"));
    let formatted = port.to_xml();
    let reparsed = NetworkPortDef::parse(&formatted).unwrap();
    assert_eq!(reparsed, port, "the port reads back the same:\n{formatted}");
    assert_eq!(reparsed.to_xml(), formatted, "formatting is idempotent");
    formatted
}

#[test]
fn a_port_without_uuid_is_refused_not_given_one() {
    let xml = format!("<networkport>{OWNER}{MAC}</networkport>");
    assert_eq!(refusal(&xml), "internal error: network port has no uuid");
    let xml = format!("<networkport><uuid/>{OWNER}{MAC}</networkport>");
    assert_eq!(refusal(&xml), "internal error: network port has no uuid");
    let xml = format!("<networkport><uuid>5d744f21</uuid>{OWNER}{MAC}</networkport>");
    assert_eq!(
        refusal(&xml),
        "internal error: Unable to parse UUID '5d744f21'"
    );
}

#[test]
fn a_port_needs_its_owners_name_and_uuid() {
    let xml = format!("<networkport><uuid>{UUID}</uuid>{MAC}</networkport>");
    assert_eq!(
        refusal(&xml),
        "internal error: network port has no owner name"
    );
    let xml =
        format!("<networkport><uuid>{UUID}</uuid><owner><name>g</name></owner>{MAC}</networkport>");
    assert_eq!(
        refusal(&xml),
        "internal error: network port has no owner UUID"
    );
    let xml = format!(
        "<networkport><uuid>{UUID}</uuid><owner><name>g</name><uuid>x</uuid></owner>{MAC}</networkport>"
    );
    assert_eq!(refusal(&xml), "internal error: Unable to parse UUID 'x'");
}

#[test]
fn a_port_needs_a_unicast_mac() {
    let xml = format!("<networkport><uuid>{UUID}</uuid>{OWNER}</networkport>");
    assert_eq!(refusal(&xml), "internal error: network port has no mac");
    let xml = format!(
        "<networkport><uuid>{UUID}</uuid>{OWNER}<mac address='52:54:00:7b:35'/></networkport>"
    );
    assert_eq!(
        refusal(&xml),
        "internal error: Unable to parse MAC '52:54:00:7b:35'"
    );
    let xml = format!(
        "<networkport><uuid>{UUID}</uuid>{OWNER}<mac address='01:00:5e:00:00:01'/></networkport>"
    );
    assert_eq!(
        refusal(&xml),
        "XML error: expected unicast mac address, found multicast '01:00:5e:00:00:01'"
    );
}

#[test]
fn the_mac_is_written_in_lowercase() {
    let xml = format!(
        "<networkport><uuid>{UUID}</uuid>{OWNER}<mac address='52:54:0:AB:cd:1'/></networkport>"
    );
    assert!(round_trip(&xml).contains("<mac address='52:54:00:ab:cd:01'/>"));
}

#[test]
fn an_unknown_plug_type_is_refused_naming_the_plug() {
    assert_eq!(
        refusal(&port_with("<plug type='tap'/>")),
        "XML error: Invalid value for attribute 'type' in element 'plug': 'tap'."
    );
}

#[test]
fn a_plug_of_type_none_is_not_written() {
    let formatted = round_trip(&port_with("<plug type='none'/>"));
    assert!(!formatted.contains("plug"), "{formatted}");
    assert_eq!(
        refusal(&port_with("<plug type='none' bridge='virbr0'/>")),
        "XML error: unexpected attribute 'bridge' in element <plug>"
    );
}

#[test]
fn bridge_plugs_need_a_bridge_and_a_real_mac_table_manager() {
    for kind in ["network", "bridge"] {
        assert_eq!(
            refusal(&port_with(&format!("<plug type='{kind}'/>"))),
            "XML error: Missing network port bridge name"
        );
        // libvirt's "default" means none given, which a plug cannot say.
        assert_eq!(
            refusal(&port_with(&format!(
                "<plug type='{kind}' bridge='virbr0' macTableManager='default'/>"
            ))),
            "XML error: Invalid macTableManager setting 'default' in network port"
        );
    }
    assert!(
        refusal(&port_with("<plug type='bridge' bridge='a/b'/>"))
            .starts_with("XML error: invalid value 'a/b' for plug bridge")
    );
    let formatted = round_trip(&port_with(
        "<plug type='network' bridge='virbr0' macTableManager='kernel'/>",
    ));
    assert!(
        formatted.contains("<plug type='network' bridge='virbr0' macTableManager='kernel'/>"),
        "{formatted}"
    );
}

#[test]
fn a_direct_plug_needs_a_device_and_takes_vepa_by_default() {
    assert_eq!(
        refusal(&port_with("<plug type='direct' mode='bridge'/>")),
        "XML error: Missing network port link device name"
    );
    assert_eq!(
        refusal(&port_with(
            "<plug type='direct' dev='ens3' mode='macvtap'/>"
        )),
        "XML error: Invalid mode setting 'macvtap' in network port"
    );
    let formatted = round_trip(&port_with("<plug type='direct' dev='ens3'/>"));
    assert!(
        formatted.contains("<plug type='direct' dev='ens3' mode='vepa'/>"),
        "{formatted}"
    );
    for mode in DirectMode::ALL {
        let xml = port_with(&format!(
            "<plug type='direct' dev='ens3' mode='{}'/>",
            mode.as_str()
        ));
        let port = NetworkPortDef::parse(&xml).unwrap();
        assert_eq!(
            port.plug,
            Plug::Direct(DirectPlug {
                dev: LinkName::new("ens3").unwrap(),
                mode
            })
        );
    }
}

#[test]
fn a_hostdev_pci_plug_needs_an_address_and_a_named_driver() {
    assert_eq!(
        refusal(&port_with("<plug type='hostdev-pci' managed='yes'/>")),
        "XML error: Missing network port PCI address"
    );
    let address = "<address domain='0x0001' bus='0x02' slot='0x03' function='0x4'/>";
    assert_eq!(
        refusal(&port_with(&format!(
            "<plug type='hostdev-pci'><driver/>{address}</plug>"
        ))),
        "XML error: Missing network port driver name"
    );
    assert_eq!(
        refusal(&port_with(&format!(
            "<plug type='hostdev-pci'><driver name='default'/>{address}</plug>"
        ))),
        "XML error: Invalid value for attribute 'name' in element 'driver': 'default'."
    );
    assert_eq!(
        refusal(&port_with(
            "<plug type='hostdev-pci'><address bus='0x100' slot='0x03'/></plug>"
        )),
        "XML error: Invalid PCI address bus='0x100', must be <= 0xFF"
    );
    let formatted = round_trip(&port_with(&format!(
        "<plug type='hostdev-pci'><driver name='vfio'/>{address}</plug>"
    )));
    assert!(
        formatted.contains(&format!(
            "  <plug type='hostdev-pci'>\n    <driver name='vfio'/>\n    {address}\n  </plug>\n"
        )),
        "{formatted}"
    );
}

#[test]
fn a_port_takes_a_floor_and_a_class_id_but_not_an_outbound_floor() {
    let formatted = round_trip(&port_with(
        "<bandwidth classID='3'><inbound floor='200'/></bandwidth>",
    ));
    assert!(
        formatted.contains("<bandwidth classID='3'>\n    <inbound floor='200'/>\n  </bandwidth>"),
        "{formatted}"
    );
    assert_eq!(
        refusal(&port_with(
            "<bandwidth><outbound average='10' floor='200'/></bandwidth>"
        )),
        "unsupported configuration: floor attribute is not supported for this config"
    );
    // Peak and burst without an average would not read back.
    let formatted = round_trip(&port_with(
        "<bandwidth><inbound average='0' peak='9' burst='9' floor='200'/></bandwidth>",
    ));
    assert!(formatted.contains("<inbound floor='200'/>"), "{formatted}");
    // Class 0 is no class, and a bandwidth without rates is none.
    let formatted = round_trip(&port_with(
        "<bandwidth classID='0'><inbound average='10'/></bandwidth>",
    ));
    assert!(formatted.contains("<bandwidth>\n"), "{formatted}");
    let formatted = round_trip(&port_with(
        "<bandwidth classID='5'><inbound average='0'/></bandwidth>",
    ));
    assert!(!formatted.contains("bandwidth"), "{formatted}");
}

#[test]
fn a_network_bandwidth_still_refuses_a_floor_and_a_class_id() {
    let network = |bandwidth: &str| {
        crate::definition::NetworkDef::parse(&format!(
            "<network><name>n</name>{bandwidth}</network>"
        ))
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        network("<bandwidth><inbound average='1' floor='2'/></bandwidth>"),
        "unsupported configuration: floor attribute is not supported for this config"
    );
    assert_eq!(
        network("<bandwidth classID='3'><inbound average='1'/></bandwidth>"),
        "XML error: classID attribute not supported on <bandwidth> in this usage context"
    );
}

#[test]
fn unknown_repeated_and_misplaced_elements_are_refused() {
    assert_eq!(
        refusal(&port_with("<bridge name='virbr0'/>")),
        "XML error: unexpected element <bridge> in <networkport>"
    );
    assert_eq!(
        refusal(&port_with("<group>a</group><group>b</group>")),
        "XML error: element <group> may appear only once in <networkport>"
    );
    assert_eq!(
        refusal(&port_with(
            "<plug type='direct' dev='ens3'><address/></plug>"
        )),
        "XML error: unexpected element <address> in <plug>"
    );
    assert_eq!(
        refusal("<network><name>n</name></network>"),
        "XML error: unknown root element for network port"
    );
}

#[test]
fn every_element_is_written_in_libvirts_order() {
    let xml = format!(
        "<networkport><plug type='bridge' bridge='br0'/><rxfilters trustGuest='no'/>\
         <port isolated='no'/><vlan><tag id='7'/></vlan>\
         <bandwidth><outbound average='5'/></bandwidth>\
         <virtualport type='openvswitch'><parameters interfaceid='{UUID}'/></virtualport>\
         {MAC}<group>web</group>{OWNER}<uuid>{UUID}</uuid></networkport>"
    );
    let formatted = round_trip(&xml);
    let expected = format!(
        "<networkport>\n  <uuid>{UUID}</uuid>\n  <owner>\n    <name>guest</name>\n    \
         <uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2c</uuid>\n  </owner>\n  <group>web</group>\n  \
         <mac address='52:54:00:7b:35:93'/>\n  <virtualport type='openvswitch'>\n    \
         <parameters interfaceid='{UUID}'/>\n  </virtualport>\n  <bandwidth>\n    \
         <outbound average='5'/>\n  </bandwidth>\n  <vlan>\n    <tag id='7'/>\n  </vlan>\n  \
         <port isolated='no'/>\n  <rxfilters trustGuest='no'/>\n  \
         <plug type='bridge' bridge='br0'/>\n</networkport>\n"
    );
    assert_eq!(formatted, expected);
}

#[test]
fn an_empty_virtualport_and_group_say_nothing() {
    let formatted = round_trip(&port_with("<virtualport/><group></group><rxfilters/>"));
    assert!(!formatted.contains("virtualport"), "{formatted}");
    assert!(!formatted.contains("group"), "{formatted}");
    assert!(!formatted.contains("rxfilters"), "{formatted}");
}

#[test]
fn markup_in_the_owners_name_survives_a_round_trip() {
    let xml = format!(
        "<networkport><uuid>{UUID}</uuid><owner><name>a&lt;b&amp;'c</name>\
         <uuid>{UUID}</uuid></owner>{MAC}</networkport>"
    );
    // libvirt escapes quotes in text too.
    assert!(round_trip(&xml).contains("<name>a&lt;b&amp;&apos;c</name>"));
}

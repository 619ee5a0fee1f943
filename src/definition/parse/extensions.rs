//! What libvirt keeps from other namespaces: `<metadata>` and
//! `<dnsmasq:options>`.

use std::sync::Arc;

use crate::definition::values::ConfigText;
use crate::definition::{DNSMASQ_NAMESPACE, Metadata};
use crate::xml::tree::{Element, Node, XML_BLANK};

use super::scalars::config_text;
use super::shape::check_shape;
use super::{Result, invalid};

pub(super) fn dnsmasq_options(root: &Element) -> Result<Vec<ConfigText>> {
    let mut blocks = root
        .elements()
        .filter(|child| child.namespace.as_deref() == Some(DNSMASQ_NAMESPACE));
    let Some(block) = blocks.next() else {
        return Ok(Vec::new());
    };
    if blocks.next().is_some() {
        return Err(invalid(
            "element <dnsmasq:options> may appear only once in <network>",
        ));
    }
    if !block.attributes.is_empty() || block.has_own_text() {
        return Err(invalid("unexpected content in <dnsmasq:options>"));
    }
    block
        .elements()
        .map(|option| {
            if option.namespace.as_deref() != Some(DNSMASQ_NAMESPACE)
                || option.local_name() != "option"
            {
                return Err(invalid(format!(
                    "unexpected element <{}> in <dnsmasq:options>",
                    option.name
                )));
            }
            check_shape(option, &["value"], &[])?;
            let value = option
                .attribute("value")
                .filter(|value| !value.is_empty())
                .ok_or_else(|| invalid("No dnsmasq options value specified"))?;
            config_text("dnsmasq option value", value)
        })
        .collect()
}

/// Keeps `<metadata>` as libvirt does: children outside any namespace are
/// dropped and only the first child of each namespace is kept; nothing is
/// kept when no child is left.
pub(super) fn metadata(root: &Element, element: &Element) -> Option<Metadata> {
    let mut kept = element.clone();
    let mut seen: Vec<Arc<str>> = Vec::new();
    kept.children.retain(|node| match node {
        Node::Element(child) => match &child.namespace {
            Some(namespace) if !seen.contains(namespace) => {
                seen.push(namespace.clone());
                true
            }
            _ => false,
        },
        Node::Text(_) => false,
    });
    // libvirt would print `<metadata/>` here, which it then drops when the
    // output is read back; dropping it at once keeps formatting idempotent.
    kept.elements().next()?;
    drop_blanks_beside_elements(&mut kept);
    let mut used = Vec::new();
    collect_prefixes(&kept, &mut used);
    let inherited = used
        .iter()
        .filter_map(|prefix| {
            root.declarations
                .iter()
                .rev()
                .find(|binding| binding.prefix == *prefix)
                .cloned()
        })
        .collect();
    Some(Metadata {
        element: kept,
        inherited,
    })
}

/// Drops blank text beside child elements, all the way down, as libvirt
/// parses (without keeping blanks) and as the writer leaves it out: what
/// is kept is then what reads back.
fn drop_blanks_beside_elements(element: &mut Element) {
    if element.elements().next().is_some() {
        element.children.retain(
            |node| !matches!(node, Node::Text(text) if text.trim_matches(XML_BLANK).is_empty()),
        );
    }
    for node in &mut element.children {
        if let Node::Element(child) = node {
            drop_blanks_beside_elements(child);
        }
    }
}

/// Prefixes used in a subtree but not declared inside it.
fn collect_prefixes(element: &Element, used: &mut Vec<String>) {
    let declared = |prefix: &str| element.declarations.iter().any(|b| b.prefix == prefix);
    let mut names = vec![element.name.as_str()];
    names.extend(element.attributes.iter().map(|(name, _)| name.as_str()));
    for (index, name) in names.into_iter().enumerate() {
        let prefix = match name.split_once(':') {
            Some((prefix, _)) => prefix,
            // Unprefixed attributes are in no namespace; unprefixed elements use the default.
            None if index == 0 => "",
            None => continue,
        };
        if prefix != "xml" && !declared(prefix) && !used.iter().any(|p| p == prefix) {
            used.push(prefix.to_owned());
        }
    }
    let mut inner = Vec::new();
    for child in element.elements() {
        collect_prefixes(child, &mut inner);
    }
    for prefix in inner {
        if !declared(&prefix) && !used.contains(&prefix) {
            used.push(prefix);
        }
    }
}

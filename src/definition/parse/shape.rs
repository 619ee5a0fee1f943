//! The shape of an element: which attributes, children and text it may
//! hold, and which children may appear only once.

use crate::xml::tree::Element;

use super::{Result, invalid};

/// Refuses attributes, child elements and text that `element` cannot hold.
pub(in crate::definition) fn check_shape(
    element: &Element,
    attributes: &[&str],
    children: &[&str],
) -> Result<()> {
    check_shape_with(element, attributes, children, None, false)
}

/// As [`check_shape`], also allowing children in `foreign_namespace`, and
/// text when `allow_text`.
pub(super) fn check_shape_with(
    element: &Element,
    attributes: &[&str],
    children: &[&str],
    foreign_namespace: Option<&str>,
    allow_text: bool,
) -> Result<()> {
    if let Some((name, _)) = element
        .attributes
        .iter()
        .find(|(name, _)| !attributes.contains(&name.as_str()))
    {
        return Err(invalid(format!(
            "unexpected attribute '{name}' in element <{}>",
            element.name
        )));
    }
    if let Some(child) = element
        .elements()
        .find(|child| match child.namespace.as_deref() {
            None => !children.contains(&child.name.as_str()),
            Some(namespace) => Some(namespace) != foreign_namespace,
        })
    {
        return Err(invalid(format!(
            "unexpected element <{}> in <{}>",
            child.name, element.name
        )));
    }
    if element.has_own_text() && !allow_text {
        return Err(invalid(format!(
            "unexpected text in element <{}>",
            element.name
        )));
    }
    Ok(())
}

/// Refuses a second child of any of these names, in one pass.
pub(in crate::definition) fn check_singletons(parent: &Element, names: &[&str]) -> Result<()> {
    let mut seen = [false; 16];
    for child in parent.elements().filter(|child| child.namespace.is_none()) {
        if let Some(index) = names.iter().position(|name| *name == child.name)
            && std::mem::replace(&mut seen[index], true)
        {
            return Err(invalid(format!(
                "element <{}> may appear only once in <{}>",
                child.name, parent.name
            )));
        }
    }
    Ok(())
}

/// The one child named `name`; refuses a second one.
pub(in crate::definition) fn single<'a>(
    parent: &'a Element,
    name: &'a str,
) -> Result<Option<&'a Element>> {
    let mut found = parent.children_named(name);
    let first = found.next();
    if found.next().is_some() {
        return Err(invalid(format!(
            "element <{name}> may appear only once in <{}>",
            parent.name
        )));
    }
    Ok(first)
}

/// An element that holds text alone: no attributes, no children.
pub(in crate::definition) fn check_text_only(element: &Element) -> Result<()> {
    check_shape_with(element, &[], &[], None, true)
}

//! libvirt 9.7's network metadata (virNetworkGetMetadata,
//! virNetworkSetMetadata): the title, the description, and under
//! `<metadata>` one element per namespace, each read and set on its own.

use std::sync::Arc;

use super::values::ConfigText;
use super::{DefinitionError, Metadata, NetworkDef};
use crate::xml::tree::{Element, NsBinding, parse_document};
use crate::xml::write::XmlWriter;

/// virNetworkMetadataType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataType {
    Description = 0,
    Title = 1,
    Element = 2,
}

impl MetadataType {
    pub fn from_code(code: i32) -> Option<Self> {
        [Self::Description, Self::Title, Self::Element]
            .into_iter()
            .find(|kind| *kind as i32 == code)
    }

    /// The name virsh gives it in metadata-change events.
    pub fn name(self) -> &'static str {
        match self {
            Self::Description => "description",
            Self::Title => "title",
            Self::Element => "element",
        }
    }
}

fn not_present() -> DefinitionError {
    DefinitionError::NoMetadata("Requested metadata element is not present".into())
}

impl NetworkDef {
    /// The title, the description, or the element of namespace `uri`
    /// (printed as libxml2 prints it, its namespace declared on it).
    pub fn metadata_of(
        &self,
        kind: MetadataType,
        uri: Option<&str>,
    ) -> Result<String, DefinitionError> {
        match kind {
            MetadataType::Title => self
                .title
                .as_ref()
                .map(|title| title.as_str().to_owned())
                .ok_or_else(not_present),
            MetadataType::Description => self.description.clone().ok_or_else(not_present),
            MetadataType::Element => {
                let uri = uri.ok_or_else(|| {
                    DefinitionError::InvalidArgument("a namespace URI is required".into())
                })?;
                let metadata = self.metadata.as_ref().ok_or_else(not_present)?;
                let element = metadata
                    .element
                    .elements()
                    .find(|child| child.namespace.as_deref() == Some(uri))
                    .ok_or_else(not_present)?;
                let mut writer = XmlWriter::default();
                writer.foreign_element(element, &bindings_from_outside(metadata, element));
                Ok(writer.finish().trim_end().to_owned())
            }
        }
    }

    /// Sets (or, with `value` `None` or empty, removes) the title, the
    /// description, or the element of namespace `uri`, which `value` gives
    /// and which is written with the prefix `key`.
    pub fn set_metadata(
        &mut self,
        kind: MetadataType,
        value: Option<&str>,
        key: Option<&str>,
        uri: Option<&str>,
    ) -> Result<(), DefinitionError> {
        let value = value.filter(|value| !value.is_empty());
        match kind {
            MetadataType::Title => {
                self.title = value.map(ConfigText::new).transpose().map_err(|_| {
                    DefinitionError::InvalidArgument("network title can't contain newlines".into())
                })?;
            }
            MetadataType::Description => self.description = value.map(str::to_owned),
            MetadataType::Element => self.set_metadata_element(value, key, uri)?,
        }
        Ok(())
    }

    fn set_metadata_element(
        &mut self,
        value: Option<&str>,
        key: Option<&str>,
        uri: Option<&str>,
    ) -> Result<(), DefinitionError> {
        let uri = uri.filter(|uri| !uri.is_empty()).ok_or_else(|| {
            DefinitionError::InvalidArgument("a namespace URI is required".into())
        })?;
        let new = match value {
            Some(xml) => {
                let key = key.filter(|key| !key.is_empty()).ok_or_else(|| {
                    DefinitionError::InvalidArgument(
                        "a namespace key is required when modifying metadata".into(),
                    )
                })?;
                Some(in_namespace(parse_document(xml)?, key, uri))
            }
            None => None,
        };
        let mut metadata = self.metadata.take().unwrap_or_else(|| Metadata {
            element: Element {
                name: "metadata".into(),
                namespace: None,
                attributes: Vec::new(),
                declarations: Vec::new(),
                children: Vec::new(),
            },
            inherited: Vec::new(),
        });
        // One element per namespace: the new one replaces the old.
        metadata.element.children.retain(|node| {
            !matches!(node, crate::xml::tree::Node::Element(child)
                if child.namespace.as_deref() == Some(uri))
        });
        if let Some(new) = new {
            metadata
                .element
                .children
                .push(crate::xml::tree::Node::Element(new));
        }
        // libvirt drops a `<metadata>` left empty.
        if metadata.element.elements().next().is_some() {
            self.metadata = Some(metadata);
        }
        Ok(())
    }
}

/// `element` put into namespace `uri` under the prefix `key`, declared on
/// it (as libxml2's xmlNewNs and xmlSetNs do for libvirt).
fn in_namespace(mut element: Element, key: &str, uri: &str) -> Element {
    let local = element.local_name().to_owned();
    element.name = format!("{key}:{local}");
    element.namespace = Some(Arc::from(uri));
    element.declarations.retain(|binding| binding.prefix != key);
    element.declarations.insert(
        0,
        NsBinding {
            prefix: key.to_owned(),
            uri: uri.to_owned(),
        },
    );
    element
}

/// The bindings `element` uses but does not declare itself (declared on
/// `<metadata>` or above it), to be declared on it when printed alone.
fn bindings_from_outside(metadata: &Metadata, element: &Element) -> Vec<NsBinding> {
    let Some(prefix) = element.prefix() else {
        return Vec::new();
    };
    if element.declarations.iter().any(|b| b.prefix == prefix) {
        return Vec::new();
    }
    metadata
        .element
        .declarations
        .iter()
        .chain(&metadata.inherited)
        .find(|binding| binding.prefix == prefix)
        .cloned()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::FormatFlags;

    const NET: &str = "<network>
  <name>m</name>
  <uuid>0c7b2f4a-5f55-4a3c-9d3c-3d2f1b0e9a11</uuid>
</network>
";

    fn def() -> NetworkDef {
        NetworkDef::parse(NET).unwrap()
    }

    #[test]
    fn title_and_description_are_set_read_and_removed() {
        let mut def = def();
        assert_eq!(
            def.metadata_of(MetadataType::Title, None)
                .unwrap_err()
                .to_string(),
            "metadata not found: Requested metadata element is not present"
        );
        def.set_metadata(MetadataType::Title, Some("Lab"), None, None)
            .unwrap();
        def.set_metadata(MetadataType::Description, Some("two\nlines"), None, None)
            .unwrap();
        assert_eq!(def.metadata_of(MetadataType::Title, None).unwrap(), "Lab");
        let xml = def.to_xml(FormatFlags::default());
        assert!(
            xml.contains("  <title>Lab</title>\n  <description>two\nlines</description>\n"),
            "{xml}"
        );
        assert_eq!(NetworkDef::parse(&xml).unwrap(), def, "reads back");
        assert!(
            def.set_metadata(MetadataType::Title, Some("a\nb"), None, None)
                .unwrap_err()
                .to_string()
                .contains("title can't contain newlines")
        );
        def.set_metadata(MetadataType::Title, Some(""), None, None)
            .unwrap();
        assert!(def.title.is_none());
    }

    #[test]
    fn elements_are_kept_one_per_namespace() {
        let mut def = def();
        let uri = Some("http://example.org/app/");
        def.set_metadata(
            MetadataType::Element,
            Some("<owner id='7'><team>net</team></owner>"),
            Some("app"),
            uri,
        )
        .unwrap();
        assert_eq!(
            def.metadata_of(MetadataType::Element, uri).unwrap(),
            "<app:owner xmlns:app=\"http://example.org/app/\" id=\"7\">\n  <team>net</team>\n</app:owner>"
        );
        def.set_metadata(
            MetadataType::Element,
            Some("<owner id='8'/>"),
            Some("app"),
            uri,
        )
        .unwrap();
        let xml = def.to_xml(FormatFlags::default());
        assert!(
            xml.contains(
                "  <metadata>\n    <app:owner xmlns:app=\"http://example.org/app/\" id=\"8\"/>\n  </metadata>\n"
            ),
            "{xml}"
        );
        assert_eq!(NetworkDef::parse(&xml).unwrap(), def, "reads back");
        def.set_metadata(MetadataType::Element, None, None, uri)
            .unwrap();
        assert!(def.metadata.is_none());
        assert!(
            def.set_metadata(MetadataType::Element, Some("<x/>"), None, uri)
                .is_err(),
            "a key is needed"
        );
    }
}

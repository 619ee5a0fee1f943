//! A small, bounded element tree built with quick-xml's reader.
//!
//! libvirt reads network XML through XPath, so element order does not matter
//! and the first match wins; a tree gives the definition parser that freedom
//! while keeping untouched subtrees (`<metadata>`) for faithful re-output.
//! The reader refuses what could make parsing unbounded: documents over
//! [`MAX_DOCUMENT_BYTES`], nesting over [`MAX_DEPTH`], DTDs (and with them
//! entity-expansion bombs) and undefined entities.

use std::borrow::Cow;
use std::sync::Arc;

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

/// virsh refuses XML files larger than this; so do we.
pub const MAX_DOCUMENT_BYTES: usize = 10 * 1024 * 1024;
/// libxml2's default nesting limit.
pub const MAX_DEPTH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("XML error: document is not well-formed")]
    Syntax(#[source] quick_xml::Error),
    #[error("XML error: document is empty or has no root element")]
    NoRoot,
    #[error("XML error: document is {0} bytes, more than the {MAX_DOCUMENT_BYTES} allowed")]
    TooLarge(usize),
    #[error("XML error: elements nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("XML error: document type declarations (DTD) are not supported")]
    Doctype,
    #[error("XML error: undefined entity '&{0};'")]
    UndefinedEntity(String),
    #[error("XML error: undeclared namespace prefix '{0}'")]
    UndeclaredPrefix(String),
    #[error("XML error: mismatched closing tag </{found}>, expected </{expected}>")]
    MismatchedEnd { expected: String, found: String },
    #[error("XML error: more than one root element")]
    SecondRoot,
    #[error("XML error: text outside the root element")]
    TextOutsideRoot,
    #[error("XML error: document ends inside <{0}>")]
    Unclosed(String),
    #[error("XML error: '{0}' is not a valid XML name")]
    InvalidName(String),
    #[error("XML error: character U+{0:04X} is not allowed in XML")]
    InvalidChar(u32),
    #[error("XML error: document is not valid UTF-8")]
    Encoding(#[source] std::str::Utf8Error),
    /// Where a document stopped parsing, laid out as libvirt reports
    /// libxml2's errors: the line's number, what is wrong, the line, and a
    /// caret under the column (`kind`'s causes are part of this message,
    /// not sources of it).
    #[error(
        "(network_definition):{line}: {}\n{text}\n{}^",
        with_causes(kind),
        "-".repeat(column.saturating_sub(1))
    )]
    At {
        line: usize,
        /// Within the part of the line shown (`text`).
        column: usize,
        text: String,
        kind: Box<XmlError>,
    },
}

/// `error`'s message followed by its causes'.
fn with_causes(error: &XmlError) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        // Some causes repeat their own cause in their message.
        let text = cause.to_string();
        if !message.ends_with(&text) {
            message.push_str(&format!(": {text}"));
        }
        source = cause.source();
    }
    message
}

impl XmlError {
    /// This error, located at byte `offset` of `input`: the line shown
    /// is at most 80 characters of it around the place, as libxml2 shows
    /// it (a document on one long line stays readable).
    fn at(self, input: &str, offset: usize) -> Self {
        const WINDOW: usize = 80;
        let offset = offset.min(input.len());
        let offset = (0..=offset)
            .rev()
            .find(|at| input.is_char_boundary(*at))
            .unwrap_or_default();
        let start = input[..offset].rfind('\n').map_or(0, |at| at + 1);
        let end = input[offset..]
            .find('\n')
            .map_or(input.len(), |at| offset + at);
        let before: Vec<char> = input[start..offset].chars().collect();
        let shown_before = before.len().min(WINDOW);
        let text: String = before[before.len() - shown_before..]
            .iter()
            .copied()
            .chain(input[offset..end].chars())
            .take(WINDOW)
            .collect();
        Self::At {
            line: input[..offset].matches('\n').count() + 1,
            column: shown_before + 1,
            text: text.trim_end_matches('\r').to_owned(),
            kind: Box::new(self),
        }
    }

    /// What is wrong, wherever it is.
    pub fn into_kind(self) -> Self {
        match self {
            Self::At { kind, .. } => *kind,
            other => other,
        }
    }
}

/// One namespace binding in scope (`xmlns:prefix='uri'`; empty prefix for the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsBinding {
    pub prefix: String,
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The name as written, with its prefix (`dnsmasq:option`).
    pub name: String,
    /// The resolved namespace URI, `None` for the empty namespace.
    pub namespace: Option<Arc<str>>,
    /// Attributes other than namespace declarations, in document order.
    pub attributes: Vec<(String, String)>,
    /// Namespace declarations made on this element.
    pub declarations: Vec<NsBinding>,
    pub children: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    pub fn local_name(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(&self.name)
    }

    pub fn prefix(&self) -> Option<&str> {
        self.name.split_once(':').map(|(prefix, _)| prefix)
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(element) => Some(element),
            Node::Text(_) => None,
        })
    }

    /// Child elements in no namespace with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.elements()
            .filter(move |element| element.namespace.is_none() && element.name == name)
    }

    /// The string value of the element: all descendant text, concatenated.
    pub fn text(&self) -> String {
        let mut text = String::new();
        self.collect_text(&mut text);
        text
    }

    fn collect_text(&self, out: &mut String) {
        for node in &self.children {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Element(element) => element.collect_text(out),
            }
        }
    }

    /// Text directly inside this element that is not blank.
    pub fn has_own_text(&self) -> bool {
        self.children.iter().any(
            |node| matches!(node, Node::Text(text) if !text.trim_matches(XML_BLANK).is_empty()),
        )
    }
}

pub const XML_BLANK: &[char] = &[' ', '\t', '\n', '\r'];

/// Parses a whole document into its root element.
pub fn parse_document(input: &str) -> Result<Element, XmlError> {
    if input.len() > MAX_DOCUMENT_BYTES {
        return Err(XmlError::TooLarge(input.len()));
    }
    // XML 1.0 allows no control characters but tab, newline and carriage
    // return (libxml2 refuses them too); a NUL could otherwise end up in a
    // configuration line.
    check_chars(input)?;
    TreeBuilder::default().build(input)
}

/// XML 1.0 allows no control characters but tab, newline and carriage
/// return, written or as character references (libxml2 refuses them too);
/// a NUL could otherwise end up in a configuration line.
fn check_chars(text: &str) -> Result<(), XmlError> {
    // Every forbidden character is an ASCII control or starts with 0xEF.
    if !text
        .bytes()
        .any(|b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0xef)
    {
        return Ok(());
    }
    match text.chars().find(|&c| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{fffe}' || c == '\u{ffff}'
    }) {
        Some(c) => Err(XmlError::InvalidChar(c as u32)),
        None => Ok(()),
    }
}

/// XML's Name production: a letter, `_` or `:` first, then also digits,
/// `-` and `.` (any non-ASCII character is let through, as XML allows most).
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':' || !c.is_ascii())
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.') || !c.is_ascii())
}

/// Decodes bytes read from a file or stdin, enforcing the size limit first.
pub fn decode_document(bytes: &[u8]) -> Result<&str, XmlError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(XmlError::TooLarge(bytes.len()));
    }
    std::str::from_utf8(bytes).map_err(XmlError::Encoding)
}

#[derive(Default)]
struct TreeBuilder {
    open: Vec<Element>,
    /// In-scope bindings; each open element remembers how many it pushed.
    scope: Vec<NsBinding>,
    pushed: Vec<usize>,
    root: Option<Element>,
}

impl TreeBuilder {
    fn build(self, input: &str) -> Result<Element, XmlError> {
        let mut reader = Reader::from_str(input);
        reader.config_mut().check_end_names = false;
        let mut reader_error = false;
        self.read(&mut reader, &mut reader_error).map_err(|error| {
            // quick-xml knows where its own errors are; the tree's are put
            // where libxml2 puts them, just past the markup that caused
            // them.
            let offset = if reader_error {
                reader.error_position()
            } else {
                reader.buffer_position()
            };
            error.at(input, usize::try_from(offset).unwrap_or(usize::MAX))
        })
    }

    fn read(
        mut self,
        reader: &mut Reader<&[u8]>,
        reader_error: &mut bool,
    ) -> Result<Element, XmlError> {
        loop {
            let event = reader.read_event().map_err(|error| {
                *reader_error = true;
                XmlError::Syntax(error)
            })?;
            match event {
                Event::Start(start) => self.start(&start, false)?,
                Event::Empty(start) => self.start(&start, true)?,
                Event::End(end) => {
                    let found = end.name().as_ref().to_owned();
                    self.end(found)?;
                }
                Event::Text(text) => self.text(text.xml_content(XmlVersion::Implicit1_0))?,
                Event::CData(data) => {
                    let data = data.into_inner();
                    self.text(data)?
                }
                Event::GeneralRef(reference) => {
                    let resolved = resolve_reference(&reference.into_inner())?;
                    self.text(Cow::Owned(resolved))?
                }
                Event::DocType(_) => return Err(XmlError::Doctype),
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
                Event::Eof => break,
            }
        }
        if let Some(open) = self.open.last() {
            return Err(XmlError::Unclosed(open.name.clone()));
        }
        self.root.ok_or(XmlError::NoRoot)
    }

    fn start(&mut self, start: &BytesStart, empty: bool) -> Result<(), XmlError> {
        if self.root.is_some() {
            return Err(XmlError::SecondRoot);
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(XmlError::TooDeep);
        }
        let name = start.name().as_ref().to_owned();
        if !is_xml_name(&name) {
            return Err(XmlError::InvalidName(name));
        }
        let mut attributes = Vec::new();
        let mut declarations = Vec::new();
        for attribute in start.attributes() {
            let attribute = attribute
                .map_err(|error| XmlError::Syntax(quick_xml::Error::InvalidAttr(error)))?;
            let key = attribute.key.as_ref().to_owned();
            if !is_xml_name(&key) {
                return Err(XmlError::InvalidName(key));
            }
            let value = attribute
                .normalized_value_with(XmlVersion::Implicit1_0, 1, resolve_predefined_entity)
                .map_err(XmlError::Syntax)?
                .into_owned();
            check_chars(&value)?;
            if key == "xmlns" {
                declarations.push(NsBinding {
                    prefix: String::new(),
                    uri: value,
                });
            } else if let Some(prefix) = key.strip_prefix("xmlns:") {
                declarations.push(NsBinding {
                    prefix: prefix.to_owned(),
                    uri: value,
                });
            } else {
                attributes.push((key, value));
            }
        }
        self.pushed.push(declarations.len());
        self.scope.extend(declarations.iter().cloned());
        let prefix = name.split_once(':').map_or("", |(prefix, _)| prefix);
        let namespace = self.resolve(prefix)?;
        let element = Element {
            name,
            namespace,
            attributes,
            declarations,
            children: Vec::new(),
        };
        self.open.push(element);
        if empty {
            let name = self.open.last().map(|e| e.name.clone()).unwrap_or_default();
            self.end(name)?;
        }
        Ok(())
    }

    fn resolve(&self, prefix: &str) -> Result<Option<Arc<str>>, XmlError> {
        match self.scope.iter().rev().find(|b| b.prefix == prefix) {
            Some(binding) if binding.uri.is_empty() => Ok(None),
            Some(binding) => Ok(Some(Arc::from(binding.uri.as_str()))),
            None if prefix.is_empty() => Ok(None),
            None if prefix == "xml" => Ok(Some(Arc::from("http://www.w3.org/XML/1998/namespace"))),
            None => Err(XmlError::UndeclaredPrefix(prefix.to_owned())),
        }
    }

    fn end(&mut self, found: String) -> Result<(), XmlError> {
        let Some(element) = self.open.pop() else {
            return Err(XmlError::MismatchedEnd {
                expected: "nothing".into(),
                found,
            });
        };
        if element.name != found {
            return Err(XmlError::MismatchedEnd {
                expected: element.name,
                found,
            });
        }
        let pushed = self.pushed.pop().unwrap_or(0);
        self.scope.truncate(self.scope.len() - pushed);
        match self.open.last_mut() {
            Some(parent) => parent.children.push(Node::Element(element)),
            None => self.root = Some(element),
        }
        Ok(())
    }

    fn text(&mut self, text: Cow<str>) -> Result<(), XmlError> {
        match self.open.last_mut() {
            Some(parent) => {
                if let Some(Node::Text(previous)) = parent.children.last_mut() {
                    previous.push_str(&text);
                } else {
                    parent.children.push(Node::Text(text.into_owned()));
                }
                Ok(())
            }
            None if text.trim_matches(XML_BLANK).is_empty() => Ok(()),
            None => Err(XmlError::TextOutsideRoot),
        }
    }
}

fn resolve_reference(name: &str) -> Result<String, XmlError> {
    let predefined = match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    };
    if let Some(character) = predefined {
        return Ok(character.to_string());
    }
    let code = if let Some(hex) = name.strip_prefix("#x") {
        u32::from_str_radix(hex, 16).ok()
    } else if let Some(decimal) = name.strip_prefix('#') {
        decimal.parse().ok()
    } else {
        None
    };
    let character = code
        .and_then(char::from_u32)
        .ok_or_else(|| XmlError::UndefinedEntity(name.to_owned()))?;
    let text = String::from(character);
    check_chars(&text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_tree_with_text_and_attributes() {
        let root =
            parse_document("<network a=\"1\"><name>x &amp; y</name><ip b='2'/></network>").unwrap();
        assert_eq!(root.name, "network");
        assert_eq!(root.attribute("a"), Some("1"));
        assert_eq!(root.children_named("name").next().unwrap().text(), "x & y");
        assert_eq!(
            root.children_named("ip").next().unwrap().attribute("b"),
            Some("2")
        );
    }

    #[test]
    fn character_references_survive_in_attributes() {
        let root = parse_document("<a v='x&#10;y'/>").unwrap();
        assert_eq!(root.attribute("v"), Some("x\ny"));
        let root = parse_document("<a v='&lt;&gt;&amp;&apos;&quot;'/>").unwrap();
        assert_eq!(root.attribute("v"), Some("<>&'\""));
    }

    #[test]
    fn literal_newlines_in_attributes_are_normalized() {
        let root = parse_document("<a v='x\ny'/>").unwrap();
        assert_eq!(root.attribute("v"), Some("x y"));
    }

    #[test]
    fn resolves_namespaces() {
        let root = parse_document("<r xmlns:d='urn:d'><d:o/><p/></r>").unwrap();
        let children: Vec<_> = root.elements().collect();
        assert_eq!(children[0].namespace.as_deref(), Some("urn:d"));
        assert_eq!(children[0].local_name(), "o");
        assert_eq!(children[1].namespace, None);
    }

    #[test]
    fn syntax_errors_say_where_as_libvirt_does() {
        let error = parse_document("<network>\n  <name>x</nam>\n</network>\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "(network_definition):2: XML error: mismatched closing tag </nam>, expected </name>\n  \
             <name>x</nam>\n---------------^"
        );
        let error = parse_document("<a>\n <b c='1' d/>\n</a>").unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("(network_definition):2: XML error: document is not well-formed")
                && message.ends_with("\n <b c='1' d/>\n-------------^"),
            "{message}"
        );
    }

    #[test]
    fn rejects_what_would_be_unbounded_or_broken() {
        let bomb = "<!DOCTYPE r [<!ENTITY a 'aaaaaaaa'><!ENTITY b '&a;&a;&a;'>]><r>&b;</r>";
        assert!(matches!(
            parse_document(bomb).map_err(XmlError::into_kind),
            Err(XmlError::Doctype)
        ));
        assert!(matches!(
            parse_document("<r>&nope;</r>").map_err(XmlError::into_kind),
            Err(XmlError::UndefinedEntity(_))
        ));
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            parse_document(&deep).map_err(XmlError::into_kind),
            Err(XmlError::TooDeep)
        ));
        assert!(matches!(
            parse_document("").map_err(XmlError::into_kind),
            Err(XmlError::NoRoot)
        ));
        assert!(matches!(
            parse_document("<a><b></a>").map_err(XmlError::into_kind),
            Err(XmlError::MismatchedEnd { .. })
        ));
        assert!(matches!(
            parse_document("<a/><b/>").map_err(XmlError::into_kind),
            Err(XmlError::SecondRoot)
        ));
        assert!(matches!(
            parse_document("hello").map_err(XmlError::into_kind),
            Err(XmlError::TextOutsideRoot)
        ));
        assert!(matches!(
            parse_document("<a><x:b/></a>").map_err(XmlError::into_kind),
            Err(XmlError::UndeclaredPrefix(_))
        ));
        assert!(matches!(
            parse_document("<a>").map_err(XmlError::into_kind),
            Err(XmlError::Unclosed(_))
        ));
        assert!(matches!(
            parse_document("<a></></a>").map_err(XmlError::into_kind),
            Err(XmlError::InvalidName(_) | XmlError::MismatchedEnd { .. })
        ));
        assert!(matches!(
            parse_document("<a><b 1x='2'/></a>").map_err(XmlError::into_kind),
            Err(XmlError::InvalidName(_))
        ));
        assert!(matches!(
            parse_document("<a>\u{0}</a>").map_err(XmlError::into_kind),
            Err(XmlError::InvalidChar(0))
        ));
        assert!(matches!(
            parse_document("<a b='&#8;'/>").map_err(XmlError::into_kind),
            Err(XmlError::InvalidChar(8))
        ));
        assert!(matches!(
            parse_document("<a>&#x1f;</a>").map_err(XmlError::into_kind),
            Err(XmlError::InvalidChar(0x1f))
        ));
        assert!(parse_document("<a b='1' b='2'/>").is_err());
    }
}

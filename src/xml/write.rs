//! Writes XML the way libvirt's formatters do: two-space indentation,
//! single-quoted attributes, one element per line.

use std::fmt::{Display, Write};

use super::tree::{Element, Node, NsBinding, XML_BLANK};

#[derive(Default)]
pub struct XmlWriter {
    out: String,
    depth: usize,
}

impl XmlWriter {
    pub fn finish(self) -> String {
        self.out
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    /// Starts `<name`; finish it with [`Tag::empty`] or [`Tag::open`].
    pub fn tag(&mut self, name: &str) -> Tag<'_> {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        Tag { writer: self }
    }

    /// Writes `</name>` at the enclosing depth.
    pub fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.indent();
        let _ = writeln!(self.out, "</{name}>");
    }

    /// `<name>text</name>` on one line.
    pub fn text_element(&mut self, name: &str, text: &str) {
        self.indent();
        let _ = write!(self.out, "<{name}>");
        escape_into(&mut self.out, text);
        let _ = writeln!(self.out, "</{name}>");
    }

    /// Re-serializes a foreign subtree (metadata) as libxml2 prints it:
    /// double quotes, inherited namespace declarations made explicit.
    pub fn foreign_element(&mut self, element: &Element, inherited: &[NsBinding]) {
        self.indent();
        write_foreign(&mut self.out, element, inherited, self.depth, true);
        self.out.push('\n');
    }
}

pub struct Tag<'w> {
    writer: &'w mut XmlWriter,
}

impl Tag<'_> {
    pub fn attr(self, name: &str, value: impl Display) -> Self {
        self.writer.out.push(' ');
        self.writer.out.push_str(name);
        self.writer.out.push_str("='");
        // Escapes while formatting, without an intermediate string.
        let _ = write!(Escaping(&mut self.writer.out), "{value}");
        self.writer.out.push('\'');
        self
    }

    pub fn attr_opt(self, name: &str, value: Option<impl Display>) -> Self {
        match value {
            Some(value) => self.attr(name, value),
            None => self,
        }
    }

    /// Ends the tag with `/>`.
    pub fn empty(self) {
        self.writer.out.push_str("/>\n");
    }

    /// Ends the tag with `>`; children follow one level deeper.
    pub fn open(self) {
        self.writer.out.push_str(">\n");
        self.writer.depth += 1;
    }

    /// Ends the tag with `/>` when there are no children to write.
    pub fn empty_or_open(self, has_children: bool) {
        if has_children {
            self.open();
        } else {
            self.empty();
        }
    }
}

/// A `fmt::Write` that escapes what is written into it, for an attribute.
struct Escaping<'a>(&'a mut String);

impl Write for Escaping<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        escape_attribute_into(self.0, text);
        Ok(())
    }
}

/// Escapes text content like libvirt's virBufferEscapeString; control
/// characters other than tab, newline and carriage return cannot appear in
/// XML and are dropped. A carriage return is written as a reference, since
/// a reader would turn it into a newline.
pub fn escape_into(out: &mut String, text: &str) {
    escape(out, text, false);
}

/// As [`escape_into`], for attribute values: tab, newline and carriage
/// return are written as references too, since a reader turns them into
/// spaces (libvirt writes them as they are, so its output changes when
/// read back).
pub fn escape_attribute_into(out: &mut String, text: &str) {
    escape(out, text, true);
}

fn escape(out: &mut String, text: &str, attribute: bool) {
    if !text
        .bytes()
        .any(|b| matches!(b, b'<' | b'>' | b'&' | b'\'' | b'"') || b < 0x20)
    {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
}

/// libxml2's escaping for attribute values in double quotes.
fn escape_foreign_attribute(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if !c.is_ascii() => {
                let _ = write!(out, "&#x{:X};", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// libxml2's escaping for text content.
fn escape_foreign_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// Writes a foreign element as libxml2's formatting dump does: children go
/// on indented lines unless the element holds text, in which case its
/// content is written verbatim. Blank text between elements is dropped, as
/// libvirt parses without keeping blanks.
fn write_foreign(
    out: &mut String,
    element: &Element,
    extra_declarations: &[NsBinding],
    depth: usize,
    format: bool,
) {
    out.push('<');
    out.push_str(&element.name);
    for binding in extra_declarations.iter().chain(&element.declarations) {
        if binding.prefix.is_empty() {
            out.push_str(" xmlns=\"");
        } else {
            let _ = write!(out, " xmlns:{}=\"", binding.prefix);
        }
        escape_foreign_attribute(out, &binding.uri);
        out.push('"');
    }
    for (name, value) in &element.attributes {
        let _ = write!(out, " {name}=\"");
        escape_foreign_attribute(out, value);
        out.push('"');
    }
    let has_elements = element.elements().next().is_some();
    let is_blank =
        |node: &Node| matches!(node, Node::Text(text) if text.trim_matches(XML_BLANK).is_empty());
    let children: Vec<&Node> = element
        .children
        .iter()
        .filter(|node| !(has_elements && is_blank(node)))
        .collect();
    if children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    let indent_children = format && children.iter().all(|node| matches!(node, Node::Element(_)));
    for node in &children {
        match node {
            Node::Element(child) => {
                if indent_children {
                    out.push('\n');
                    for _ in 0..=depth {
                        out.push_str("  ");
                    }
                }
                write_foreign(out, child, &[], depth + 1, indent_children);
            }
            Node::Text(text) => escape_foreign_text(out, text),
        }
    }
    if indent_children {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    }
    let _ = write!(out, "</{}>", element.name);
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_libvirt_style() {
        let mut writer = XmlWriter::default();
        writer.tag("network").attr("ipv6", "yes").open();
        writer.text_element("name", "a<b>'c'");
        writer.tag("bridge").attr("name", "virbr0").empty();
        writer.close("network");
        assert_eq!(
            writer.finish(),
            "<network ipv6='yes'>\n  <name>a&lt;b&gt;&apos;c&apos;</name>\n  <bridge name='virbr0'/>\n</network>\n"
        );
    }
}

//! `net-dumpxml --xpath EXPR [--wrap]`: the parts of a network's XML that
//! an XPath location path selects, printed as virsh prints them (libxml2's
//! xmlNodeDump: double quotes, two-space indentation, one node a line).
//!
//! No XPath crate fits: libxml2's bindings need libclang at build time, and
//! the pure Rust ones are unmaintained (sxd-xpath) or a whole XPath 3.1
//! engine (xee) for a client flag. Network definitions need location paths,
//! which this evaluates: `/`, `//`, names, `*`, `@name`, `@*`, `text()`,
//! `node()`, `.`, `..`, unions with `|`, and predicates `[N]`, `[last()]`,
//! `[@name]`, `[@name='value']`, `[child='value']`. Anything else is refused
//! saying so.

use super::failure::Failure;
use crate::xml::tree::{Element, Node, parse_document};

/// A node an expression selected.
#[derive(Clone, Copy)]
enum Selected<'a> {
    Element(&'a Element),
    Attribute(&'a str, &'a str),
    Text(&'a str),
}

impl Selected<'_> {
    fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Element(a), Self::Element(b)) => std::ptr::eq(*a, *b),
            (Self::Attribute(a, _), Self::Attribute(b, _)) => std::ptr::eq(*a, *b),
            (Self::Text(a), Self::Text(b)) => std::ptr::eq(*a, *b),
            _ => false,
        }
    }
}

/// What `expression` selects in `xml`, printed as virsh prints it.
pub(super) fn select(xml: &str, expression: &str, wrap: bool) -> Result<String, Failure> {
    let root = parse_document(xml).map_err(|error| Failure::new(error.to_string()))?;
    let incorrect = |why: &str| {
        Failure::new(format!(
            "internal error: Incorrect xpath '{expression}': {why}"
        ))
    };
    let mut selected: Vec<Selected> = Vec::new();
    for path in expression.split('|') {
        for node in evaluate(&root, path.trim()).map_err(|why| incorrect(&why))? {
            if !selected.iter().any(|seen| seen.same(&node)) {
                selected.push(node);
            }
        }
    }
    // A node set is in document order, whatever order the paths of a
    // union came in.
    let order = document_order(&root);
    selected.sort_by_key(|node| order.iter().position(|known| known.same(node)));
    let mut out = String::new();
    if wrap {
        let mut attributes = String::new();
        let mut children = String::new();
        for node in &selected {
            match node {
                Selected::Attribute(name, value) => {
                    attributes.push_str(&format!(" {name}=\"{}\"", escape_attribute(value)));
                }
                Selected::Element(element) => write_element(element, 1, &mut children),
                Selected::Text(text) => children.push_str(&format!("  {}\n", escape_text(text))),
            }
        }
        if children.is_empty() {
            out.push_str(&format!("<nodes{attributes}/>\n"));
        } else {
            out.push_str(&format!("<nodes{attributes}>\n{children}</nodes>\n"));
        }
        return Ok(out);
    }
    for node in &selected {
        match node {
            Selected::Attribute(name, value) => {
                out.push_str(&format!(" {name}=\"{}\"\n", escape_attribute(value)));
            }
            Selected::Element(element) => write_element(element, 0, &mut out),
            Selected::Text(text) => {
                out.push_str(&escape_text(text));
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// One location path, from the document (absolute) or the root element.
fn evaluate<'a>(root: &'a Element, path: &str) -> Result<Vec<Selected<'a>>, String> {
    let (mut current, rest) = if let Some(rest) = path.strip_prefix("//") {
        (descendants_or_self(root), rest)
    } else if let Some(rest) = path.strip_prefix('/') {
        if rest.is_empty() {
            return Ok(vec![Selected::Element(root)]);
        }
        // The document node's only child is the root element.
        let (step, rest) = split_step(rest);
        let (test, predicates) = parse_step(step)?;
        let matched = matches_element(root, test).then_some(Selected::Element(root));
        let nodes = filter(matched.into_iter().collect(), &predicates)?;
        (nodes, rest.unwrap_or_default())
    } else {
        (vec![Selected::Element(root)], path)
    };
    let mut rest = Some(rest).filter(|rest| !rest.is_empty());
    while let Some(remaining) = rest {
        let (descend, remaining) = match remaining.strip_prefix('/') {
            Some(after) => (true, after),
            None => (false, remaining),
        };
        let (step, next) = split_step(remaining);
        if step.is_empty() {
            return Err("empty step".into());
        }
        let (test, predicates) = parse_step(step)?;
        let mut found = Vec::new();
        for node in &current {
            let Selected::Element(element) = node else {
                continue;
            };
            let contexts = if descend {
                descendants_or_self(element)
            } else {
                vec![*node]
            };
            for context in contexts {
                let Selected::Element(context) = context else {
                    continue;
                };
                let step_nodes = step_from(root, context, test)?;
                for node in filter(step_nodes, &predicates)? {
                    if !found.iter().any(|seen: &Selected| seen.same(&node)) {
                        found.push(node);
                    }
                }
            }
        }
        current = found;
        rest = next;
    }
    Ok(current)
}

/// The first step of `path` and what follows its `/`.
fn split_step(path: &str) -> (&str, Option<&str>) {
    let mut depth = 0usize;
    let mut quote = None;
    for (index, character) in path.char_indices() {
        match (character, quote) {
            ('\'' | '"', None) => quote = Some(character),
            (c, Some(q)) if c == q => quote = None,
            ('[', None) => depth += 1,
            (']', None) => depth = depth.saturating_sub(1),
            ('/', None) if depth == 0 => return (&path[..index], Some(&path[index + 1..])),
            _ => {}
        }
    }
    (path, None)
}

/// A step's node test and its predicates.
fn parse_step(step: &str) -> Result<(&str, Vec<&str>), String> {
    let (test, mut rest) = step.find('[').map_or((step, ""), |at| step.split_at(at));
    let mut predicates = Vec::new();
    while let Some(inner) = rest.strip_prefix('[') {
        let end = inner
            .find(']')
            .ok_or_else(|| format!("unclosed predicate in '{step}'"))?;
        predicates.push(inner[..end].trim());
        rest = &inner[end + 1..];
    }
    if !rest.is_empty() {
        return Err(format!("unexpected '{rest}' in '{step}'"));
    }
    Ok((test.trim(), predicates))
}

/// The nodes one step reaches from `context`.
fn step_from<'a>(
    root: &'a Element,
    context: &'a Element,
    test: &str,
) -> Result<Vec<Selected<'a>>, String> {
    Ok(match test {
        "." => vec![Selected::Element(context)],
        ".." => parent_of(root, context)
            .map(Selected::Element)
            .into_iter()
            .collect(),
        "text()" => context
            .children
            .iter()
            .filter_map(|node| match node {
                Node::Text(text) => Some(Selected::Text(text.as_str())),
                Node::Element(_) => None,
            })
            .collect(),
        "node()" => context
            .children
            .iter()
            .map(|node| match node {
                Node::Text(text) => Selected::Text(text.as_str()),
                Node::Element(element) => Selected::Element(element),
            })
            .collect(),
        attribute if attribute.starts_with('@') => {
            let name = &attribute[1..];
            context
                .attributes
                .iter()
                .filter(|(key, _)| name == "*" || key == name)
                .map(|(key, value)| Selected::Attribute(key.as_str(), value.as_str()))
                .collect()
        }
        name if is_name_test(name) => context
            .elements()
            .filter(|element| matches_element(element, name))
            .map(Selected::Element)
            .collect(),
        other => return Err(format!("'{other}' is not a step virtnet evaluates")),
    })
}

fn is_name_test(test: &str) -> bool {
    test == "*"
        || (!test.is_empty()
            && test
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
}

fn matches_element(element: &Element, test: &str) -> bool {
    test == "*" || element.name == test
}

/// Keeps the nodes every predicate holds for, in turn.
fn filter<'a>(
    mut nodes: Vec<Selected<'a>>,
    predicates: &[&str],
) -> Result<Vec<Selected<'a>>, String> {
    for predicate in predicates {
        let count = nodes.len();
        let position = if *predicate == "last()" {
            Some(count)
        } else {
            predicate.parse::<usize>().ok()
        };
        nodes = match position {
            Some(position) => nodes
                .get(position.wrapping_sub(1))
                .copied()
                .into_iter()
                .collect(),
            None => {
                let test = parse_predicate(predicate)?;
                nodes.into_iter().filter(|node| test.holds(node)).collect()
            }
        };
    }
    Ok(nodes)
}

/// `[@name]`, `[@name='value']` or `[child='value']`.
struct Predicate<'p> {
    attribute: bool,
    name: &'p str,
    value: Option<&'p str>,
}

fn parse_predicate(predicate: &str) -> Result<Predicate<'_>, String> {
    let refused = || format!("predicate '[{predicate}]' is not one virtnet evaluates");
    let (left, value) = match predicate.split_once('=') {
        Some((left, right)) => {
            let right = right.trim();
            let unquoted = right
                .strip_prefix('\'')
                .and_then(|rest| rest.strip_suffix('\''))
                .or_else(|| {
                    right
                        .strip_prefix('"')
                        .and_then(|rest| rest.strip_suffix('"'))
                })
                .ok_or_else(refused)?;
            (left.trim(), Some(unquoted))
        }
        None => (predicate, None),
    };
    let (attribute, name) = match left.strip_prefix('@') {
        Some(name) => (true, name),
        None => (false, left),
    };
    if !is_name_test(name) || (!attribute && value.is_none()) {
        return Err(refused());
    }
    Ok(Predicate {
        attribute,
        name,
        value,
    })
}

impl Predicate<'_> {
    fn holds(&self, node: &Selected) -> bool {
        let Selected::Element(element) = node else {
            return false;
        };
        if self.attribute {
            return element.attributes.iter().any(|(key, value)| {
                (self.name == "*" || key == self.name)
                    && self.value.is_none_or(|wanted| wanted == value)
            });
        }
        element
            .elements()
            .filter(|child| matches_element(child, self.name))
            .any(|child| Some(text_of(child).as_str()) == self.value)
    }
}

/// An element's string value: its text, all of it.
fn text_of(element: &Element) -> String {
    element
        .children
        .iter()
        .map(|node| match node {
            Node::Text(text) => text.clone(),
            Node::Element(child) => text_of(child),
        })
        .collect()
}

/// Every node of the tree, in document order (an element, its attributes,
/// then its children).
fn document_order(element: &Element) -> Vec<Selected<'_>> {
    let mut all = vec![Selected::Element(element)];
    for (name, value) in &element.attributes {
        all.push(Selected::Attribute(name, value));
    }
    for node in &element.children {
        match node {
            Node::Element(child) => all.extend(document_order(child)),
            Node::Text(text) => all.push(Selected::Text(text)),
        }
    }
    all
}

fn descendants_or_self(element: &Element) -> Vec<Selected<'_>> {
    let mut all = vec![Selected::Element(element)];
    for child in element.elements() {
        all.extend(descendants_or_self(child));
    }
    all
}

fn parent_of<'a>(root: &'a Element, child: &Element) -> Option<&'a Element> {
    root.elements().find_map(|element| {
        if std::ptr::eq(element, child) {
            Some(root)
        } else {
            parent_of(element, child)
        }
    })
}

/// libxml2's formatted dump of an element at `level` (two spaces each):
/// children on lines of their own unless the element holds text.
fn write_element(element: &Element, level: usize, out: &mut String) {
    let indent = "  ".repeat(level);
    out.push_str(&indent);
    out.push_str(&start_tag(element));
    let has_text = element
        .children
        .iter()
        .any(|node| matches!(node, Node::Text(text) if !text.trim().is_empty()));
    if element
        .children
        .iter()
        .all(|node| matches!(node, Node::Text(text) if text.is_empty()))
    {
        out.push_str("/>\n");
        return;
    }
    out.push('>');
    if has_text {
        write_inline(element, out);
    } else {
        out.push('\n');
        for child in element.elements() {
            write_element(child, level + 1, out);
        }
        out.push_str(&indent);
    }
    out.push_str(&format!("</{}>\n", element.name));
}

/// Mixed content, as written (libxml2 does not indent it).
fn write_inline(element: &Element, out: &mut String) {
    for node in &element.children {
        match node {
            Node::Text(text) => out.push_str(&escape_text(text)),
            Node::Element(child) => {
                out.push_str(&start_tag(child));
                if child.children.is_empty() {
                    out.push_str("/>");
                } else {
                    out.push('>');
                    write_inline(child, out);
                    out.push_str(&format!("</{}>", child.name));
                }
            }
        }
    }
}

fn start_tag(element: &Element) -> String {
    let mut tag = format!("<{}", element.name);
    for binding in &element.declarations {
        if binding.prefix.is_empty() {
            tag.push_str(&format!(" xmlns=\"{}\"", escape_attribute(&binding.uri)));
        } else {
            tag.push_str(&format!(
                " xmlns:{}=\"{}\"",
                binding.prefix,
                escape_attribute(&binding.uri)
            ));
        }
    }
    for (name, value) in &element.attributes {
        tag.push_str(&format!(" {name}=\"{}\"", escape_attribute(value)));
    }
    tag
}

/// libxml2's escaping of attribute values.
fn escape_attribute(value: &str) -> String {
    let mut escaped = String::new();
    for character in value.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\n' => escaped.push_str("&#10;"),
            '\r' => escaped.push_str("&#13;"),
            '\t' => escaped.push_str("&#9;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// libxml2's escaping of text.
fn escape_text(text: &str) -> String {
    let mut escaped = String::new();
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '\r' => escaped.push_str("&#13;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "<network>
  <name>default</name>
  <forward mode='nat'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
      <host mac='52:54:00:00:00:01' name='a&amp;b' ip='192.168.122.9'/>
    </dhcp>
  </ip>
</network>";

    fn select_ok(expression: &str, wrap: bool) -> String {
        select(DEFAULT, expression, wrap).ok().expect("selects")
    }

    #[test]
    fn selections_print_as_virsh_prints_them() {
        assert_eq!(
            select_ok("//ip/@address", false),
            " address=\"192.168.122.1\"\n"
        );
        assert_eq!(
            select_ok("//ip/@address", true),
            "<nodes address=\"192.168.122.1\"/>\n"
        );
        assert_eq!(
            select_ok("/network/ip/dhcp", false),
            "<dhcp>\n  <range start=\"192.168.122.2\" end=\"192.168.122.254\"/>\n  \
             <host mac=\"52:54:00:00:00:01\" name=\"a&amp;b\" ip=\"192.168.122.9\"/>\n</dhcp>\n"
        );
        assert_eq!(
            select_ok("//name", true),
            "<nodes>\n  <name>default</name>\n</nodes>\n"
        );
        assert_eq!(select_ok("name/text()", false), "default\n");
        assert_eq!(select_ok("//nosuch", false), "");
        assert_eq!(
            select_ok("//dhcp/*[@name='a&b']/@ip | //forward/@mode", false),
            " mode=\"nat\"\n ip=\"192.168.122.9\"\n"
        );
        assert_eq!(
            select_ok("//dhcp/*[last()]/..", false).lines().next(),
            Some("<dhcp>")
        );
    }

    #[test]
    fn what_is_not_evaluated_is_refused_saying_so() {
        let refused = select(DEFAULT, "count(//ip)", false).expect_err("refused");
        assert!(
            refused.report().contains("Incorrect xpath 'count(//ip)'"),
            "{}",
            refused.report()
        );
    }
}

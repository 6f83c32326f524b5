//! A mapped tree checked against the element table and handed on in XSD
//! order: the step that turns "whatever keys the mapping wrote" into "the
//! elements the registry expects, in its sequence", or an error naming the
//! path.
//!
//! One walk checks and writes: no node tree is built to be walked again. The
//! checks run in the order they always ran (a level's keys, then each element
//! in table order, depth first, then the level's presence rules), so a faulty
//! tree gets the same error; what was written before it is dropped.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};
use unicode_normalization::is_nfc;

use super::schema::{Attribute, Content, Element, Presence};
use crate::mapping::formats::EncodeError;

/// Where the walk is, for error messages. Each step borrows its parent, so a
/// walk allocates nothing for paths: the text is spelled out only for an error.
#[derive(Clone, Copy)]
pub struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    step: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    /// An attribute's name, written `@name`.
    Attribute(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    pub fn root(name: &'a str) -> Path<'a> {
        Path {
            parent: None,
            step: Step::Key(name),
        }
    }

    fn step(&'a self, step: Step<'a>) -> Path<'a> {
        Path {
            parent: Some(self),
            step,
        }
    }

    fn child(&'a self, key: &'a str) -> Path<'a> {
        self.step(Step::Key(key))
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            write!(f, "{parent}/")?;
        }
        match self.step {
            Step::Key(key) => f.write_str(key),
            Step::Attribute(name) => write!(f, "@{name}"),
            Step::Index(i) => write!(f, "{i}"),
        }
    }
}

/// What the walk hands on, in document order.
pub trait Sink {
    /// An element with child elements opens (the format gives such elements
    /// no attributes).
    fn start(&mut self, name: &'static str) -> Result<(), EncodeError>;
    fn end(&mut self, name: &'static str) -> Result<(), EncodeError>;
    /// An element with text, and its attributes in table order.
    fn text(
        &mut self,
        name: &'static str,
        attributes: &[(&'static str, Cow<'_, str>)],
        text: &str,
    ) -> Result<(), EncodeError>;
}

pub fn invalid(path: &impl fmt::Display, reason: impl Into<String>) -> EncodeError {
    EncodeError::Invalid {
        path: path.to_string(),
        reason: reason.into(),
    }
}

pub fn missing(path: &impl fmt::Display) -> EncodeError {
    EncodeError::Missing(path.to_string())
}

/// Nothing to write: the mapping wrote no value here or anywhere below, so the
/// element is absent rather than empty.
pub fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.iter().all(is_empty),
        Value::Object(map) => map.values().all(is_empty),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The children of the element at `path`, in `table` order, to `sink`.
pub fn children(
    value: &Value,
    table: &'static [Element],
    path: &Path<'_>,
    sink: &mut impl Sink,
) -> Result<(), EncodeError> {
    let Value::Object(map) = value else {
        return Err(invalid(path, "expected child elements (an object)"));
    };
    if let Some(key) = map.keys().find(|k| !table.iter().any(|e| e.name == *k)) {
        return Err(invalid(
            &path.child(key),
            "the format has no such element here",
        ));
    }
    // Which elements of the table are present, by position: a table has at
    // most 64 elements (`tests::tables_fit_the_presence_mask`).
    let mut present = 0u64;
    for (i, element) in table.iter().enumerate() {
        if let Some(v) = map.get(element.name).filter(|v| !is_empty(v)) {
            occurrences(v, element, &path.child(element.name), sink)?;
            present |= 1 << i;
        }
    }
    check_presence(table, present, path)
}

fn occurrences(
    value: &Value,
    element: &'static Element,
    path: &Path<'_>,
    sink: &mut impl Sink,
) -> Result<(), EncodeError> {
    if element.max == 1 {
        if value.is_array() {
            return Err(invalid(path, "a list where one element is expected"));
        }
        return node(value, element, path, sink);
    }
    let Value::Array(items) = value else {
        return Err(invalid(path, "a repeated element must be a list ('*')"));
    };
    if items.len() > element.max {
        return Err(invalid(
            path,
            format!("at most {} occurrences are allowed", element.max),
        ));
    }
    for (i, item) in items.iter().enumerate().filter(|(_, v)| !is_empty(v)) {
        node(item, element, &path.step(Step::Index(i)), sink)?;
    }
    Ok(())
}

fn node(
    value: &Value,
    element: &'static Element,
    path: &Path<'_>,
    sink: &mut impl Sink,
) -> Result<(), EncodeError> {
    match element.content {
        Content::Text => sink.text(element.name, &[], &text(value, path)?),
        Content::TextWithAttributes(allowed) => match value {
            Value::Object(map) => {
                let (attributes, content) = with_attributes(map, allowed, path)?;
                sink.text(element.name, &attributes, &content)
            }
            scalar => sink.text(element.name, &[], &text(scalar, path)?),
        },
        Content::Children(table) => {
            sink.start(element.name)?;
            children(value, table, path, sink)?;
            sink.end(element.name)
        }
    }
}

type Attributes<'t> = Vec<(&'static str, Cow<'t, str>)>;

/// `{"$text": ..., "@name": ...}`: the text and the attributes, in table order.
fn with_attributes<'t>(
    map: &'t Map<String, Value>,
    allowed: &'static [Attribute],
    path: &Path<'_>,
) -> Result<(Attributes<'t>, Cow<'t, str>), EncodeError> {
    fn attribute(key: &str) -> Option<&str> {
        key.strip_prefix('@')
    }
    if let Some(key) = map.keys().find(|k| {
        *k != "$text" && !attribute(k).is_some_and(|name| allowed.iter().any(|a| a.name == name))
    }) {
        return Err(invalid(
            &path.child(key),
            "the format has no such attribute here",
        ));
    }
    let content = match map.get("$text").filter(|v| !is_empty(v)) {
        Some(v) => text(v, &path.child("$text"))?,
        None => return Err(missing(&path.child("$text"))),
    };
    let mut attributes = Vec::with_capacity(allowed.len());
    for wanted in allowed {
        // Found among the few keys checked above, without making the key `@name`.
        let value = map
            .iter()
            .find(|(k, _)| attribute(k) == Some(wanted.name))
            .map(|(_, v)| v);
        let path = path.step(Step::Attribute(wanted.name));
        match value.filter(|v| !is_empty(v)) {
            Some(v) => attributes.push((wanted.name, text(v, &path)?)),
            None if wanted.required => return Err(missing(&path)),
            None => {}
        }
    }
    Ok((attributes, content))
}

/// The text of a leaf: a string, or an integer (no element of the format takes
/// a decimal or a boolean).
pub fn text<'t>(value: &'t Value, path: &impl fmt::Display) -> Result<Cow<'t, str>, EncodeError> {
    match value {
        Value::String(s) => {
            check_characters(s, path)?;
            Ok(Cow::Borrowed(s))
        }
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Cow::Owned(n.to_string())),
        Value::Number(_) => Err(invalid(path, "a number that is not an integer")),
        Value::Bool(_) => Err(invalid(path, "a boolean where text is expected")),
        Value::Array(_) => Err(invalid(path, "a list where text is expected")),
        Value::Object(_) => Err(invalid(path, "an object where text is expected")),
        Value::Null => Err(missing(path)),
    }
}

/// XML 1.0 cannot carry most control characters at all, not even escaped, and
/// the registry refuses text that is not NFC rather than normalising it.
fn check_characters(s: &str, path: &impl fmt::Display) -> Result<(), EncodeError> {
    let xml_char = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
    };
    if !s.chars().all(xml_char) {
        return Err(invalid(path, "a character that XML 1.0 cannot carry"));
    }
    if !is_nfc(s) {
        return Err(invalid(path, "text that is not in Unicode NFC"));
    }
    Ok(())
}

/// The presence rules of `table`, given which of its elements are `present`
/// (bit `i` for `table[i]`).
fn check_presence(
    table: &'static [Element],
    present: u64,
    path: &Path<'_>,
) -> Result<(), EncodeError> {
    let is_present = |i: usize| present & (1 << i) != 0;
    let named = |name: &str| {
        table
            .iter()
            .enumerate()
            .any(|(i, e)| e.name == name && is_present(i))
    };
    // The members of a choice or an any-of group, by position.
    let group = |wanted: &'static str| {
        table
            .iter()
            .enumerate()
            .filter(move |(_, e)| match e.presence {
                Presence::OneOf { group, .. } | Presence::AnyOf(group) => group == wanted,
                _ => false,
            })
    };
    // Spelled out for an error only.
    let names = |wanted: &'static str, separator: &str| {
        group(wanted)
            .map(|(_, e)| e.name)
            .collect::<Vec<_>>()
            .join(separator)
    };
    for (i, element) in table.iter().enumerate() {
        let here = is_present(i);
        match element.presence {
            Presence::Required if !here => {
                return Err(missing(&path.child(element.name)));
            }
            Presence::OneOf { group: g, required } => {
                let given = group(g).filter(|(j, _)| is_present(*j)).count();
                if given > 1 {
                    return Err(invalid(
                        path,
                        format!("at most one of {} may be given", names(g, ", ")),
                    ));
                }
                if given == 0 && required {
                    return Err(EncodeError::Missing(format!("{path}/({})", names(g, "|"))));
                }
            }
            Presence::AnyOf(g) if !group(g).any(|(j, _)| is_present(j)) => {
                return Err(EncodeError::Missing(format!("{path}/({})", names(g, "|"))));
            }
            Presence::With(sibling) if here && !named(sibling) => {
                return Err(invalid(
                    &path.child(element.name),
                    format!("allowed only together with {sibling}"),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

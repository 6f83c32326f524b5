//! A mapped tree checked against the element table and put in XSD order: the
//! step that turns "whatever keys the mapping wrote" into "the elements the
//! registry expects, in its sequence", or an error naming the path.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::{Map, Value};
use unicode_normalization::is_nfc;

use super::schema::{Attribute, Content, Element, Presence};
use crate::mapping::formats::EncodeError;

/// One element to write, with its attributes in table order.
#[derive(Debug, PartialEq, Eq)]
pub struct Node<'t> {
    pub name: &'static str,
    pub attributes: Vec<(&'static str, Cow<'t, str>)>,
    pub body: Body<'t>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Body<'t> {
    Text(Cow<'t, str>),
    Children(Vec<Node<'t>>),
}

fn invalid(path: &str, reason: impl Into<String>) -> EncodeError {
    EncodeError::Invalid {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Nothing to write: the mapping wrote no value here or anywhere below, so the
/// element is absent rather than empty.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.iter().all(is_empty),
        Value::Object(map) => map.values().all(is_empty),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The children of the element at `path`, in `table` order.
pub fn children<'t>(
    value: &'t Value,
    table: &'static [Element],
    path: &str,
) -> Result<Vec<Node<'t>>, EncodeError> {
    let Value::Object(map) = value else {
        return Err(invalid(path, "expected child elements (an object)"));
    };
    if let Some(key) = map.keys().find(|k| !table.iter().any(|e| e.name == *k)) {
        return Err(invalid(
            &format!("{path}/{key}"),
            "the format has no such element here",
        ));
    }
    let mut nodes = Vec::new();
    let mut present = BTreeSet::new();
    for element in table {
        if let Some(v) = map.get(element.name).filter(|v| !is_empty(v)) {
            occurrences(v, element, path, &mut nodes)?;
            present.insert(element.name);
        }
    }
    check_presence(table, &present, path)?;
    Ok(nodes)
}

fn occurrences<'t>(
    value: &'t Value,
    element: &'static Element,
    parent: &str,
    out: &mut Vec<Node<'t>>,
) -> Result<(), EncodeError> {
    let path = format!("{parent}/{}", element.name);
    if element.max == 1 {
        if value.is_array() {
            return Err(invalid(&path, "a list where one element is expected"));
        }
        out.push(node(value, element, &path)?);
        return Ok(());
    }
    let Value::Array(items) = value else {
        return Err(invalid(&path, "a repeated element must be a list ('*')"));
    };
    if items.len() > element.max {
        return Err(invalid(
            &path,
            format!("at most {} occurrences are allowed", element.max),
        ));
    }
    for (i, item) in items.iter().enumerate().filter(|(_, v)| !is_empty(v)) {
        out.push(node(item, element, &format!("{path}/{i}"))?);
    }
    Ok(())
}

fn node<'t>(
    value: &'t Value,
    element: &'static Element,
    path: &str,
) -> Result<Node<'t>, EncodeError> {
    let (attributes, body) = match element.content {
        Content::Text => (Vec::new(), Body::Text(text(value, path)?)),
        Content::TextWithAttributes(allowed) => match value {
            Value::Object(map) => {
                let (attributes, content) = with_attributes(map, allowed, path)?;
                (attributes, Body::Text(content))
            }
            scalar => (Vec::new(), Body::Text(text(scalar, path)?)),
        },
        Content::Children(table) => (Vec::new(), Body::Children(children(value, table, path)?)),
    };
    Ok(Node {
        name: element.name,
        attributes,
        body,
    })
}

type Attributes<'t> = Vec<(&'static str, Cow<'t, str>)>;

/// `{"$text": ..., "@name": ...}`: the text and the attributes, in table order.
fn with_attributes<'t>(
    map: &'t Map<String, Value>,
    allowed: &'static [Attribute],
    path: &str,
) -> Result<(Attributes<'t>, Cow<'t, str>), EncodeError> {
    let known = |k: &str| {
        k == "$text"
            || k.strip_prefix('@')
                .is_some_and(|name| allowed.iter().any(|a| a.name == name))
    };
    if let Some(key) = map.keys().find(|k| !known(k)) {
        return Err(invalid(
            &format!("{path}/{key}"),
            "the format has no such attribute here",
        ));
    }
    let content = match map.get("$text").filter(|v| !is_empty(v)) {
        Some(v) => text(v, &format!("{path}/$text"))?,
        None => return Err(EncodeError::Missing(format!("{path}/$text"))),
    };
    let mut attributes = Vec::new();
    for attribute in allowed {
        let key = format!("@{}", attribute.name);
        match map.get(&key).filter(|v| !is_empty(v)) {
            Some(v) => attributes.push((attribute.name, text(v, &format!("{path}/{key}"))?)),
            None if attribute.required => {
                return Err(EncodeError::Missing(format!("{path}/{key}")));
            }
            None => {}
        }
    }
    Ok((attributes, content))
}

/// The text of a leaf: a string, or an integer (no element of the format takes
/// a decimal or a boolean).
fn text<'t>(value: &'t Value, path: &str) -> Result<Cow<'t, str>, EncodeError> {
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
        Value::Null => Err(EncodeError::Missing(path.to_string())),
    }
}

/// XML 1.0 cannot carry most control characters at all, not even escaped, and
/// the registry refuses text that is not NFC rather than normalising it.
fn check_characters(s: &str, path: &str) -> Result<(), EncodeError> {
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

fn check_presence(
    table: &'static [Element],
    present: &BTreeSet<&'static str>,
    path: &str,
) -> Result<(), EncodeError> {
    let group_of = |wanted: &str| -> Vec<&'static str> {
        table
            .iter()
            .filter(|e| match e.presence {
                Presence::OneOf { group, .. } | Presence::AnyOf(group) => group == wanted,
                _ => false,
            })
            .map(|e| e.name)
            .collect()
    };
    let alternatives = |names: &[&str]| format!("{path}/({})", names.join("|"));
    for element in table {
        let here = present.contains(element.name);
        match element.presence {
            Presence::Required if !here => {
                return Err(EncodeError::Missing(format!("{path}/{}", element.name)));
            }
            Presence::OneOf { group, required } => {
                let names = group_of(group);
                let given = names.iter().filter(|n| present.contains(*n)).count();
                if given > 1 {
                    return Err(invalid(
                        path,
                        format!("at most one of {} may be given", names.join(", ")),
                    ));
                }
                if given == 0 && required {
                    return Err(EncodeError::Missing(alternatives(&names)));
                }
            }
            Presence::AnyOf(group) => {
                let names = group_of(group);
                if !names.iter().any(|n| present.contains(n)) {
                    return Err(EncodeError::Missing(alternatives(&names)));
                }
            }
            Presence::With(sibling) if here && !present.contains(sibling) => {
                return Err(invalid(
                    &format!("{path}/{}", element.name),
                    format!("allowed only together with {sibling}"),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

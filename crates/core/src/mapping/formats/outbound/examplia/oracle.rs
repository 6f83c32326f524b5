//! The former encoder, compiled for tests only: it checked the whole tree
//! into a tree of nodes (a path string formatted for every node), then walked
//! the nodes to write them. The one-walk writer is held to it by the property
//! test `tests::one_walk_agrees_with_the_node_tree`. It shares the leaf checks
//! (`text`, `is_empty`) and the XML primitives, which did not change.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::document::{invalid, is_empty, text};
use super::schema::{self, Attribute, Content, Element, Presence};
use super::xml::{NONE, Request, SERVICE, Xml};
use super::{Encoded, RouteContext, part, root, sized};
use crate::mapping::formats::EncodeError;

/// One element to write, with its attributes in table order.
struct Node<'t> {
    name: &'static str,
    attributes: Vec<(&'static str, Cow<'t, str>)>,
    body: Body<'t>,
}

enum Body<'t> {
    Text(Cow<'t, str>),
    Children(Vec<Node<'t>>),
}

pub fn encode(tree: &Value, ctx: &RouteContext) -> Result<Encoded, EncodeError> {
    let root = root(tree)?;
    let header = children(part(root, "Header")?, schema::HEADER, "Header")?;
    let notification = children(
        part(root, "BirthNotification")?,
        schema::BIRTH_NOTIFICATION,
        "BirthNotification",
    )?;
    let mut request = Request::start()?;
    let xml = request.xml();
    write_header(xml, &header, &ctx.request_id().to_string())?;
    xml.start("SOAP-ENV:", "Body", NONE)?;
    xml.start("bn:", "submitBirthNotification", NONE)?;
    xml.start("bn:", "BirthNotification", NONE)?;
    nodes(xml, &notification)?;
    xml.end("bn:", "BirthNotification")?;
    xml.end("bn:", "submitBirthNotification")?;
    xml.end("SOAP-ENV:", "Body")?;
    sized(request.finish()?)
}

/// The children of the element at `path`, in `table` order.
fn children<'t>(
    value: &'t Value,
    table: &'static [Element],
    path: &str,
) -> Result<Vec<Node<'t>>, EncodeError> {
    let Value::Object(map) = value else {
        return Err(invalid(&path, "expected child elements (an object)"));
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
        Content::Text => (Vec::new(), Body::Text(text(value, &path)?)),
        Content::TextWithAttributes(allowed) => match value {
            Value::Object(map) => {
                let (attributes, content) = with_attributes(map, allowed, path)?;
                (attributes, Body::Text(content))
            }
            scalar => (Vec::new(), Body::Text(text(scalar, &path)?)),
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
                        &path,
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

fn write_failed() -> EncodeError {
    EncodeError::Invalid {
        path: String::new(),
        reason: "the XML writer failed".into(),
    }
}

/// A tree of nodes, every element in namespace prefix `bn`.
fn nodes(xml: &mut Xml, nodes_: &[Node<'_>]) -> Result<(), EncodeError> {
    for node in nodes_ {
        match &node.body {
            Body::Text(text) => xml.text_element("bn:", node.name, &node.attributes, text)?,
            Body::Children(children) => {
                xml.start("bn:", node.name, NONE)?;
                nodes(xml, children)?;
                xml.end("bn:", node.name)?;
            }
        }
    }
    Ok(())
}

/// `xrd:client` or `xrd:service`: an X-Road identifier, its parts in `id`.
fn identifier(
    xml: &mut Xml,
    name: &str,
    object_type: &str,
    parts: &[Node<'_>],
    fixed: &[(&str, &str)],
) -> Result<(), EncodeError> {
    xml.start("xrd:", name, &[("id:objectType", object_type)])?;
    for part in parts {
        let Body::Text(text) = &part.body else {
            return Err(write_failed());
        };
        xml.text_element("id:", part.name, NONE, text)?;
    }
    for (part, text) in fixed {
        xml.text_element("id:", part, NONE, text)?;
    }
    xml.end("xrd:", name)
}

fn write_header(xml: &mut Xml, parts: &[Node<'_>], request_id: &str) -> Result<(), EncodeError> {
    xml.start("SOAP-ENV:", "Header", NONE)?;
    for part in parts {
        match (part.name, &part.body) {
            ("client", Body::Children(ids)) => {
                identifier(xml, "client", "SUBSYSTEM", ids, &[])?;
            }
            ("service", Body::Children(ids)) => {
                identifier(xml, "service", "SERVICE", ids, &SERVICE)?;
                xml.text_element("xrd:", "id", NONE, request_id)?;
            }
            (name, Body::Text(text)) => {
                xml.text_element("xrd:", name, NONE, text)?;
            }
            _ => return Err(write_failed()),
        }
    }
    xml.text_element("xrd:", "protocolVersion", NONE, "4.0")?;
    xml.end("SOAP-ENV:", "Header")
}

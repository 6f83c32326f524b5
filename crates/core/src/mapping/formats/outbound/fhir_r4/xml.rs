//! FHIR R4 JSON -> XML, by the rules of https://hl7.org/fhir/R4/xml.html
//! (../shared/specs/FORMATS.md §3.1): default namespace `http://hl7.org/fhir`,
//! primitives as `value` attributes, arrays as repeated elements, `_x` primitive
//! metadata merged into `x`, `url` (Extension) and element `id` as attributes,
//! a resource's own `id` as an element, nested resources wrapped in an element
//! named after their type, `Narrative.div` inline, and every element in
//! StructureDefinition order (from [`super::order`]).
//!
//! Strict: an element the type does not define, an empty element or a value of
//! the wrong shape is an error naming the path, never the value.

use std::fmt::Write;

use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::{Map, Value};

use super::order::{self, Element, Kind, TypeDef};
use super::walk::{Path, check_keys, each, key_name, resource};
use crate::mapping::formats::EncodeError;

const FHIR_NS: &str = "http://hl7.org/fhir";
const XHTML_NS: &str = "http://www.w3.org/1999/xhtml";
/// Deeper than any real resource; bounds recursion on nested extensions.
const MAX_DEPTH: usize = 64;

/// Convert one resource (a Bundle, a Patient...) to its XML form, with an XML declaration.
pub fn to_xml(resource: &Value) -> Result<String, EncodeError> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let root = Path::root();
    write_resource(&mut out, resource, true, &root, 0)?;
    Ok(out)
}

fn write_resource(
    out: &mut String,
    value: &Value,
    root: bool,
    path: &Path,
    depth: usize,
) -> Result<(), EncodeError> {
    let (obj, type_name, def) = resource(value, path)?;
    let path = path.child(type_name);
    out.push('<');
    out.push_str(type_name);
    if root {
        write!(out, " xmlns=\"{FHIR_NS}\"").expect("writing to a String");
    }
    out.push('>');
    write_children(out, obj, def, type_name, &path, depth)?;
    write!(out, "</{type_name}>").expect("writing to a String");
    Ok(())
}

/// Is `key` written as an attribute of this type's element rather than a child?
fn is_attribute(def: &TypeDef, type_name: &str, key: &str) -> bool {
    (!def.is_resource && key == "id") || (type_name == "Extension" && key == "url")
}

/// Write a datatype or backbone element: `<name attrs>children</name>`.
fn write_complex(
    out: &mut String,
    name: &str,
    value: &Value,
    type_name: &'static str,
    path: &Path,
    depth: usize,
) -> Result<(), EncodeError> {
    let obj = value
        .as_object()
        .ok_or_else(|| path.invalid("a complex element must be a JSON object"))?;
    if obj.is_empty() {
        return Err(path.invalid("FHIR elements must not be empty"));
    }
    let def = order::lookup(type_name).ok_or_else(|| path.invalid("unknown FHIR type"))?;
    out.push('<');
    out.push_str(name);
    for attr in ["id", "url"] {
        if is_attribute(def, type_name, attr)
            && let Some(v) = obj.get(attr)
        {
            let text = primitive_text(v, &path.child(attr))?;
            write_attribute(out, attr, &text);
        }
    }
    let mut children = String::new();
    write_children(&mut children, obj, def, type_name, path, depth)?;
    // ele-1: an element holds more than its id (and an Extension more than its url).
    if children.is_empty() {
        return Err(path.invalid("FHIR elements must have a value or children"));
    }
    out.push('>');
    out.push_str(&children);
    write!(out, "</{name}>").expect("writing to a String");
    Ok(())
}

fn write_children(
    out: &mut String,
    obj: &Map<String, Value>,
    def: &TypeDef,
    type_name: &str,
    path: &Path,
    depth: usize,
) -> Result<(), EncodeError> {
    if depth > MAX_DEPTH {
        return Err(path.invalid("nested too deeply"));
    }
    check_keys(obj, def, path)?;
    for element in &def.elements {
        let name = element.name;
        if is_attribute(def, type_name, name) {
            continue;
        }
        let value = obj.get(name);
        let meta = obj.get(&format!("_{name}"));
        if value.is_none() && meta.is_none() {
            continue;
        }
        let path = path.child(name);
        match element.kind {
            Kind::Primitive => write_primitives(out, element, value, meta, &path, depth)?,
            Kind::Xhtml => write_xhtml(out, value, &path)?,
            Kind::Resource => {
                for (i, item) in each(value, element.repeats, &path)? {
                    write!(out, "<{name}>").expect("writing to a String");
                    write_resource(out, item, false, &i, depth + 1)?;
                    write!(out, "</{name}>").expect("writing to a String");
                }
            }
            Kind::Complex(t) => {
                for (i, item) in each(value, element.repeats, &path)? {
                    write_complex(out, name, item, t, &i, depth + 1)?;
                }
            }
        }
    }
    Ok(())
}

/// Primitives: `"given": ["A", null]` with `"_given": [null, {"id": "x"}]`
/// become `<given value="A"/><given id="x"/>`.
fn write_primitives(
    out: &mut String,
    element: &Element,
    value: Option<&Value>,
    meta: Option<&Value>,
    path: &Path,
    depth: usize,
) -> Result<(), EncodeError> {
    let name = element.name;
    let values = each(value, element.repeats, path)?;
    let meta_name = format!("_{name}");
    let meta_path = path.child(&meta_name);
    let metas = each(meta, element.repeats, &meta_path)?;
    if !values.is_empty() && !metas.is_empty() && values.len() != metas.len() {
        return Err(path.invalid("a primitive array and its _ metadata differ in length"));
    }
    for i in 0..values.len().max(metas.len()) {
        let item_path = values.get(i).map_or_else(|| path.index(i), |(p, _)| *p);
        let v = values.get(i).map(|(_, v)| *v).filter(|v| !v.is_null());
        let m = metas.get(i).map(|(_, m)| *m).filter(|m| !m.is_null());
        if v.is_none() && m.is_none() {
            return Err(item_path.invalid("an element needs a value or metadata"));
        }
        out.push('<');
        out.push_str(name);
        let mut extensions = String::new();
        if let Some(m) = m {
            let meta_obj = m
                .as_object()
                .ok_or_else(|| item_path.invalid("primitive metadata must be an object"))?;
            for key in meta_obj.keys() {
                if key != "id" && key != "extension" {
                    return Err(item_path
                        .child(key_name(key))
                        .invalid("primitive metadata holds only id and extension"));
                }
            }
            if let Some(id) = meta_obj.get("id") {
                let text = primitive_text(id, &item_path.child("id"))?;
                write_attribute(out, "id", &text);
            }
            let ext_path = item_path.child("extension");
            for (p, ext) in each(meta_obj.get("extension"), true, &ext_path)? {
                write_complex(
                    &mut extensions,
                    "extension",
                    ext,
                    "Extension",
                    &p,
                    depth + 1,
                )?;
            }
        }
        if let Some(v) = v {
            let text = primitive_text(v, &item_path)?;
            write_attribute(out, "value", &text);
        } else if extensions.is_empty() {
            return Err(item_path.invalid("FHIR elements must have a value or children"));
        }
        if extensions.is_empty() {
            out.push_str("/>");
        } else {
            out.push('>');
            out.push_str(&extensions);
            write!(out, "</{name}>").expect("writing to a String");
        }
    }
    Ok(())
}

/// The lexical form of a JSON primitive. Numbers keep serde_json's rendering.
fn primitive_text(value: &Value, path: &Path) -> Result<String, EncodeError> {
    match value {
        Value::String(s) if s.is_empty() => Err(path.invalid("FHIR strings must not be empty")),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(path.invalid("a primitive must be a string, number or boolean")),
    }
}

/// `name="value"` with XML escaping; whitespace that attribute-value
/// normalisation would turn into spaces is written as character references.
fn write_attribute(out: &mut String, name: &str, value: &str) {
    write!(out, " {name}=\"").expect("writing to a String");
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `Narrative.div` is already XHTML: check that it is one well-formed `div`
/// in the XHTML namespace, with no DTD or processing instruction, then write it as is.
fn write_xhtml(out: &mut String, value: Option<&Value>, path: &Path) -> Result<(), EncodeError> {
    let text = value
        .and_then(Value::as_str)
        .ok_or_else(|| path.invalid("div must be an XHTML string"))?;
    check_xhtml(text).map_err(|reason| path.invalid(reason))?;
    out.push_str(text);
    Ok(())
}

fn check_xhtml(text: &str) -> Result<(), &'static str> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut seen_root = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|_| "div is not well-formed XML")?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) if depth == 0 => {
                if seen_root || start.name().as_ref() != b"div" {
                    return Err("div must be a single <div> element");
                }
                let has_ns = start
                    .attributes()
                    .flatten()
                    .any(|a| a.key.as_ref() == b"xmlns" && a.value.as_ref() == XHTML_NS.as_bytes());
                if !has_ns {
                    return Err("div must declare the XHTML namespace");
                }
                seen_root = true;
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                }
            }
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Empty(_) | Event::CData(_) | Event::Comment(_) => {}
            Event::Text(t) => {
                if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) {
                    return Err("div must be a single <div> element");
                }
            }
            // XHTML in FHIR may use only XML's own entities and character references.
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|_| "div is not well-formed XML")?;
                let known = ["lt", "gt", "amp", "quot", "apos"].contains(&name.as_ref())
                    || matches!(r.resolve_char_ref(), Ok(Some(_)));
                if !known {
                    return Err("div holds an undefined entity");
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {
                return Err("div must not hold declarations, DTDs or processing instructions");
            }
        }
    }
    if seen_root && depth == 0 {
        Ok(())
    } else {
        Err("div is not well-formed XML")
    }
}

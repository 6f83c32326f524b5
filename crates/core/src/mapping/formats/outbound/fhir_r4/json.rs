//! FHIR JSON with properties in StructureDefinition order (`resourceType`
//! first, then each element followed by its `_element` metadata), the order
//! the FHIR JSON page recommends and people expect when they read a document.
//! serde_json's map sorts keys, so the encoder writes the text itself.

use serde_json::{Map, Value};

use super::order::{self, Kind, TypeDef};
use super::walk::{Path, key_name, list, resource};
use crate::mapping::formats::EncodeError;

/// Serialise one resource in element order. Compact, UTF-8, deterministic.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(4096);
    write_resource(&mut out, value, &Path::root())?;
    Ok(out)
}

fn write_resource(out: &mut Vec<u8>, value: &Value, path: &Path) -> Result<(), EncodeError> {
    let (obj, type_name, def) = resource(value, path)?;
    out.extend_from_slice(b"{\"resourceType\":");
    write_str(out, type_name);
    write_members(out, obj, def, &path.child(type_name), true)?;
    out.push(b'}');
    Ok(())
}

fn write_object(
    out: &mut Vec<u8>,
    value: &Value,
    type_name: &str,
    path: &Path,
) -> Result<(), EncodeError> {
    let obj = value
        .as_object()
        .ok_or_else(|| path.invalid("a complex element must be a JSON object"))?;
    let def = order::lookup(type_name).ok_or_else(|| path.invalid("unknown FHIR type"))?;
    out.push(b'{');
    write_members(out, obj, def, path, false)?;
    out.push(b'}');
    Ok(())
}

fn write_members(
    out: &mut Vec<u8>,
    obj: &Map<String, Value>,
    def: &TypeDef,
    path: &Path,
    mut comma: bool,
) -> Result<(), EncodeError> {
    // An object holds a few of its type's dozens of elements: put its own
    // keys in element order (each element, then its `_element` metadata)
    // rather than look every element up. Every key must be an element of the
    // type, `_x` metadata of a primitive element, or a resource's
    // `resourceType` (written first, by the caller).
    let mut members: Vec<(usize, bool, &str, &Value)> = Vec::with_capacity(obj.len());
    for (key, value) in obj {
        let (name, metadata) = match key.strip_prefix('_') {
            Some(base) => (base, true),
            None => (key.as_str(), false),
        };
        match def.position(name) {
            Some(position) if !metadata || def.elements[position].kind == Kind::Primitive => {
                members.push((position, metadata, key, value));
            }
            None if !metadata && def.is_resource && key == "resourceType" => {}
            _ => {
                return Err(path
                    .child(key_name(key))
                    .invalid("not an element of this FHIR type"));
            }
        }
    }
    members.sort_unstable_by_key(|&(position, metadata, _, _)| (position, metadata));
    for (position, metadata, key, value) in members {
        let element = def.elements[position];
        // `_x` metadata is an Element (id, extension), or a list of them with nulls.
        let kind = if metadata {
            Kind::Complex("Element")
        } else {
            element.kind
        };
        write_member(out, &mut comma, key, value, kind, element.repeats, path)?;
    }
    Ok(())
}

fn write_member(
    out: &mut Vec<u8>,
    comma: &mut bool,
    key: &str,
    value: &Value,
    kind: Kind,
    repeats: bool,
    path: &Path,
) -> Result<(), EncodeError> {
    if *comma {
        out.push(b',');
    }
    *comma = true;
    write_str(out, key);
    out.push(b':');
    write_element(out, value, kind, repeats, &path.child(key))
}

fn write_element(
    out: &mut Vec<u8>,
    value: &Value,
    kind: Kind,
    repeats: bool,
    path: &Path,
) -> Result<(), EncodeError> {
    if !repeats {
        // What `each` checks of a single element, without a list of one.
        return match value {
            Value::Array(_) => Err(path.invalid("this element does not repeat")),
            item => write_one(out, item, kind, path),
        };
    }
    out.push(b'[');
    for (i, item) in list(value, path)?.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_one(out, item, kind, &path.index(i))?;
    }
    out.push(b']');
    Ok(())
}

fn write_one(out: &mut Vec<u8>, value: &Value, kind: Kind, path: &Path) -> Result<(), EncodeError> {
    match (kind, value) {
        (_, Value::Null) => {
            out.extend_from_slice(b"null");
            Ok(())
        }
        (Kind::Primitive | Kind::Xhtml, Value::Object(_) | Value::Array(_)) => {
            Err(path.invalid("a primitive must be a string, number or boolean"))
        }
        (Kind::Primitive | Kind::Xhtml, _) => {
            write_scalar(out, value);
            Ok(())
        }
        (Kind::Resource, _) => write_resource(out, value, path),
        (Kind::Complex(t), _) => write_object(out, value, t, path),
    }
}

/// serde_json escapes strings and renders numbers; writing into a Vec
/// cannot fail.
fn write_scalar(out: &mut Vec<u8>, value: &Value) {
    let _ = serde_json::to_writer(&mut *out, value);
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    let _ = serde_json::to_writer(&mut *out, text);
}

//! FHIR JSON with properties in StructureDefinition order (`resourceType`
//! first, then each element followed by its `_element` metadata), the order
//! the FHIR JSON page recommends and people expect when they read a document.
//! serde_json's map sorts keys, so the encoder writes the text itself.

use std::fmt::Write;

use serde_json::{Map, Value};

use super::order::{self, Kind, TypeDef};
use super::walk::{Path, check_keys, each, resource};
use crate::mapping::formats::EncodeError;

/// Serialise one resource in element order. Compact, UTF-8, deterministic.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut out = String::new();
    write_resource(&mut out, value, &Path::root())?;
    Ok(out.into_bytes())
}

fn write_resource(out: &mut String, value: &Value, path: &Path) -> Result<(), EncodeError> {
    let (obj, type_name, def) = resource(value, path)?;
    out.push_str("{\"resourceType\":");
    write_scalar(out, &Value::String(type_name.to_string()));
    write_members(out, obj, def, &path.child(type_name), true)?;
    out.push('}');
    Ok(())
}

fn write_object(
    out: &mut String,
    value: &Value,
    type_name: &str,
    path: &Path,
) -> Result<(), EncodeError> {
    let obj = value
        .as_object()
        .ok_or_else(|| path.invalid("a complex element must be a JSON object"))?;
    let def = order::lookup(type_name).ok_or_else(|| path.invalid("unknown FHIR type"))?;
    out.push('{');
    write_members(out, obj, def, path, false)?;
    out.push('}');
    Ok(())
}

fn write_members(
    out: &mut String,
    obj: &Map<String, Value>,
    def: &TypeDef,
    path: &Path,
    mut comma: bool,
) -> Result<(), EncodeError> {
    check_keys(obj, def, path)?;
    for element in &def.elements {
        let name = element.name;
        for key in [name.to_string(), format!("_{name}")] {
            let Some(value) = obj.get(&key) else {
                continue;
            };
            if comma {
                out.push(',');
            }
            comma = true;
            write_scalar(out, &Value::String(key.clone()));
            out.push(':');
            let path = path.child(&key);
            // `_x` metadata is an Element (id, extension), or a list of them with nulls.
            let kind = if key.starts_with('_') {
                Kind::Complex("Element")
            } else {
                element.kind
            };
            write_element(out, value, kind, element.repeats, &path)?;
        }
    }
    Ok(())
}

fn write_element(
    out: &mut String,
    value: &Value,
    kind: Kind,
    repeats: bool,
    path: &Path,
) -> Result<(), EncodeError> {
    let items = each(Some(value), repeats, path)?;
    if !repeats {
        return items
            .first()
            .map_or(Ok(()), |(p, item)| write_one(out, item, kind, p));
    }
    out.push('[');
    for (i, (p, item)) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_one(out, item, kind, &p)?;
    }
    out.push(']');
    Ok(())
}

fn write_one(out: &mut String, value: &Value, kind: Kind, path: &Path) -> Result<(), EncodeError> {
    match (kind, value) {
        (_, Value::Null) => {
            out.push_str("null");
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

fn write_scalar(out: &mut String, value: &Value) {
    // serde_json escapes strings and renders numbers; writing a scalar to a String cannot fail.
    let text = serde_json::to_string(value).unwrap_or_default();
    write!(out, "{text}").expect("writing to a String");
}

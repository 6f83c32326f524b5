//! Walking FHIR JSON by the element table: paths for errors, key checks, the
//! items of an element. Shared by the XML and the ordered-JSON writers.

use serde_json::{Map, Value};

use super::order::{self, Kind, TypeDef};
use crate::mapping::formats::EncodeError;

/// Where the converter is, for error messages: element names and indices only.
#[derive(Clone)]
pub struct Path(pub String);

impl Path {
    pub fn root() -> Path {
        Path(String::new())
    }

    pub fn child(&self, segment: &str) -> Path {
        // Every element written gets a path: pushed, not formatted.
        let mut path = String::with_capacity(self.0.len() + 1 + segment.len());
        if !self.0.is_empty() {
            path.push_str(&self.0);
            path.push('/');
        }
        path.push_str(segment);
        Path(path)
    }

    pub fn index(&self, i: usize) -> Path {
        self.child(&i.to_string())
    }

    pub fn invalid(&self, reason: &str) -> EncodeError {
        EncodeError::Invalid {
            path: if self.0.is_empty() {
                "(root)".into()
            } else {
                self.0.clone()
            },
            reason: reason.into(),
        }
    }
}

/// A key from the input named in an error: only if it looks like an element name.
pub fn key_name(key: &str) -> &str {
    let plain = key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain { key } else { "(unnamed)" }
}

/// A resource object, its type name and definition.
pub fn resource<'v>(
    value: &'v Value,
    path: &Path,
) -> Result<(&'v Map<String, Value>, &'v str, &'static TypeDef), EncodeError> {
    let obj = value
        .as_object()
        .ok_or_else(|| path.invalid("a resource must be a JSON object"))?;
    let type_name = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or_else(|| path.invalid("a resource needs a resourceType"))?;
    let def = order::lookup(type_name)
        .filter(|d| d.is_resource)
        .ok_or_else(|| path.invalid("resourceType is not an R4 resource"))?;
    Ok((obj, type_name, def))
}

/// Every key must be an element of the type, `_x` metadata of a primitive
/// element, or `resourceType` on a resource.
pub fn check_keys(obj: &Map<String, Value>, def: &TypeDef, path: &Path) -> Result<(), EncodeError> {
    for key in obj.keys() {
        let known = match key.strip_prefix('_') {
            Some(base) => def.element(base).is_some_and(|e| e.kind == Kind::Primitive),
            None => def.element(key).is_some() || (def.is_resource && key == "resourceType"),
        };
        if !known {
            return Err(path
                .child(key_name(key))
                .invalid("not an element of this FHIR type"));
        }
    }
    Ok(())
}

/// The items of an element, each with its path. A repeating element must be
/// a non-empty array, a single one must not be an array.
pub fn each<'v>(
    value: Option<&'v Value>,
    repeats: bool,
    path: &Path,
) -> Result<Vec<(Path, &'v Value)>, EncodeError> {
    match (value, repeats) {
        (None, _) => Ok(Vec::new()),
        (Some(Value::Array(items)), true) if items.is_empty() => {
            Err(path.invalid("FHIR arrays must not be empty"))
        }
        (Some(Value::Array(items)), true) => Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| (path.index(i), v))
            .collect()),
        (Some(Value::Array(_)), false) => Err(path.invalid("this element does not repeat")),
        (Some(_), true) => Err(path.invalid("this element repeats: it must be an array")),
        (Some(v), false) => Ok(vec![(path.clone(), v)]),
    }
}

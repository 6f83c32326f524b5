//! Walking FHIR JSON by the element table: paths for errors, key checks, the
//! items of an element. Shared by the XML and the ordered-JSON writers.

use serde_json::{Map, Value};

use super::order::{self, Kind, TypeDef};
use crate::mapping::formats::EncodeError;

/// Where the converter is, for error messages: element names and indices
/// only. Each step borrows its parent, so walking a document allocates
/// nothing; the text is spelled out only for an error.
#[derive(Clone, Copy)]
pub struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    step: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Root,
    Name(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    pub fn root() -> Path<'static> {
        Path {
            parent: None,
            step: Step::Root,
        }
    }

    pub fn child(&'a self, segment: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            step: Step::Name(segment),
        }
    }

    pub fn index(&'a self, i: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            step: Step::Index(i),
        }
    }

    pub fn invalid(&self, reason: &str) -> EncodeError {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            match path.step {
                Step::Root => {}
                Step::Name(name) => steps.push(name.to_string()),
                Step::Index(i) => steps.push(i.to_string()),
            }
            at = path.parent;
        }
        steps.reverse();
        EncodeError::Invalid {
            path: if steps.is_empty() {
                "(root)".into()
            } else {
                steps.join("/")
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
pub fn each<'v, 'p>(
    value: Option<&'v Value>,
    repeats: bool,
    path: &'p Path<'p>,
) -> Result<Vec<(Path<'p>, &'v Value)>, EncodeError> {
    match (value, repeats) {
        (None, _) => Ok(Vec::new()),
        (Some(v), true) => Ok(list(v, path)?
            .iter()
            .enumerate()
            .map(|(i, v)| (path.index(i), v))
            .collect()),
        (Some(Value::Array(_)), false) => Err(path.invalid("this element does not repeat")),
        (Some(v), false) => Ok(vec![(*path, v)]),
    }
}

/// The items of a repeating element: a non-empty array.
pub fn list<'v>(value: &'v Value, path: &Path) -> Result<&'v [Value], EncodeError> {
    match value {
        Value::Array(items) if items.is_empty() => {
            Err(path.invalid("FHIR arrays must not be empty"))
        }
        Value::Array(items) => Ok(items),
        _ => Err(path.invalid("this element repeats: it must be an array")),
    }
}

//! Typed reads from a FHIR resource that record a violation, by JSON pointer,
//! when an element has the wrong JSON type. Messages name the rule, never the
//! value: values are personal data.

use serde_json::{Map, Value};

use crate::schema::{Violation, escape_pointer_segment, push_capped};

/// Collects every problem found while reading one payload.
#[derive(Debug, Default)]
pub struct Reader {
    pub violations: Vec<Violation>,
}

/// A JSON pointer under construction: `/entry/3/resource`.
pub fn at(base: &str, key: &str) -> String {
    format!("{base}/{}", escape_pointer_segment(key))
}

pub fn at_index(base: &str, index: usize) -> String {
    format!("{base}/{index}")
}

impl Reader {
    pub fn push(&mut self, pointer: String, code: &'static str, message: &str) {
        push_capped(
            &mut self.violations,
            Violation {
                pointer,
                code,
                message: message.to_string(),
            },
        );
    }

    fn wrong_type(&mut self, pointer: String, expected: &str) {
        self.push(pointer, "type", &format!("must be {expected}"));
    }

    /// A string element; absent and null read as `None`.
    pub fn str<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        base: &str,
        key: &str,
    ) -> Option<&'v str> {
        match obj.get(key)? {
            Value::String(s) => Some(s),
            Value::Null => None,
            _ => {
                self.wrong_type(at(base, key), "a string");
                None
            }
        }
    }

    /// An object element (a complex datatype or a resource).
    pub fn obj<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        base: &str,
        key: &str,
    ) -> Option<&'v Map<String, Value>> {
        match obj.get(key)? {
            Value::Object(m) => Some(m),
            Value::Null => None,
            _ => {
                self.wrong_type(at(base, key), "an object");
                None
            }
        }
    }

    /// An array element; a missing one reads as empty.
    pub fn arr<'v>(&mut self, obj: &'v Map<String, Value>, base: &str, key: &str) -> &'v [Value] {
        match obj.get(key) {
            Some(Value::Array(items)) => items,
            None | Some(Value::Null) => &[],
            Some(_) => {
                self.wrong_type(at(base, key), "an array");
                &[]
            }
        }
    }

    /// The objects of an array element, each with its pointer. Items that are
    /// not objects are reported and skipped.
    pub fn objects<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        base: &str,
        key: &str,
    ) -> Vec<(String, &'v Map<String, Value>)> {
        let base = at(base, key);
        let items = match obj.get(key) {
            Some(Value::Array(items)) => items.as_slice(),
            None | Some(Value::Null) => &[],
            Some(_) => {
                self.wrong_type(base, "an array");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::Object(m) => out.push((at_index(&base, i), m)),
                _ => self.wrong_type(at_index(&base, i), "an object"),
            }
        }
        out
    }

    /// The strings of an array of strings (HumanName.given).
    pub fn strings<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        base: &str,
        key: &str,
    ) -> Vec<&'v str> {
        let base_key = at(base, key);
        let mut out = Vec::new();
        for (i, item) in self.arr(obj, base, key).iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.as_str()),
                _ => self.wrong_type(at_index(&base_key, i), "a string"),
            }
        }
        out
    }

    /// An integer element (`valueInteger`, `multipleBirthInteger`).
    pub fn int(&mut self, obj: &Map<String, Value>, base: &str, key: &str) -> Option<i64> {
        match obj.get(key)? {
            Value::Number(n) if n.is_i64() => n.as_i64(),
            Value::Null => None,
            _ => {
                self.wrong_type(at(base, key), "an integer");
                None
            }
        }
    }

    /// A boolean element (`multipleBirthBoolean`).
    pub fn bool(&mut self, obj: &Map<String, Value>, base: &str, key: &str) -> Option<bool> {
        match obj.get(key)? {
            Value::Bool(b) => Some(*b),
            Value::Null => None,
            _ => {
                self.wrong_type(at(base, key), "a boolean");
                None
            }
        }
    }
}

/// The first `code` of a CodeableConcept's codings in one of `systems`.
pub fn coded<'v>(
    reader: &mut Reader,
    concept: &'v Map<String, Value>,
    base: &str,
    systems: &[&str],
) -> Option<&'v str> {
    for (ptr, coding) in reader.objects(concept, base, "coding") {
        let system = reader.str(coding, &ptr, "system");
        let code = reader.str(coding, &ptr, "code");
        if let (Some(system), Some(code)) = (system, code)
            && systems.contains(&system)
        {
            return Some(code);
        }
    }
    None
}

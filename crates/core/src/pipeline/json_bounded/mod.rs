//! A payload parsed within its shape bounds: how deep it nests and how wide
//! its arrays and objects are, held while the tree is built.
//!
//! A birth document or a case nests a few levels and has arrays of a few
//! items and objects of at most a few hundred fields; a 1 MiB body can hold
//! 300,000 array items or 70,000 keys, and a validator that reports each of
//! them (the JSON Schema validator collects an array's item errors eagerly)
//! turns that into gigabytes. The parse stops at the first member past a
//! bound, before reading it, so no parser, validator or decoder ever builds
//! or walks a payload wider or deeper than a record can be.
//!
//! The bounds ride on serde_json's parser (a `DeserializeSeed` that knows its
//! depth and where it is); the tree it builds is the `Value` serde_json's own
//! `Deserialize` builds. (An object's members gathered and its map built from
//! them sorted, in one bulk build, took 5 % longer a translation than a
//! B-tree insert per member: the bulk build moves each member three times.)

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::schema::{Violation, escape_pointer_segment};

/// More items than any array of a record or source payload holds (a FHIR
/// document holds at most 1000 entries, see `fhir_r4::bundle::MAX_ENTRIES`).
pub const MAX_ARRAY_ITEMS: usize = 1000;

/// More keys than any object holds (a Primero case of a large instance has a
/// few hundred fields).
pub const MAX_OBJECT_KEYS: usize = 2000;

/// Why a payload's shape is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ShapeError {
    /// More than the configured number of nested arrays/objects.
    TooDeep,
    /// An array or object wider than its bound, as a violation at its pointer.
    TooWide(Violation),
}

/// Why a payload was not parsed.
#[derive(Debug)]
pub enum ParseError {
    Shape(ShapeError),
    Malformed(serde_json::Error),
}

/// Parse `text` as one JSON value nesting at most `max_depth` arrays and
/// objects, none wider than its bound. The first problem in document order
/// is the one reported. Members are counted as written: an object that
/// repeats a key counts each repeat (and keeps the last value, as serde_json
/// does).
pub fn parse_bounded(text: &str, max_depth: usize) -> Result<Value, ParseError> {
    parse_with(serde_json::Deserializer::from_str(text), max_depth)
}

/// [`parse_bounded`] of bytes that may not be UTF-8 (serde_json names where).
pub fn parse_bounded_bytes(bytes: &[u8], max_depth: usize) -> Result<Value, ParseError> {
    parse_with(serde_json::Deserializer::from_slice(bytes), max_depth)
}

fn parse_with<'de, R: serde_json::de::Read<'de>>(
    mut deserializer: serde_json::Deserializer<R>,
    max_depth: usize,
) -> Result<Value, ParseError> {
    let refused = Cell::new(None);
    let seed = Bounded {
        at: &Place::Root,
        depth: 0,
        max_depth,
        refused: &refused,
    };
    let parsed = seed
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, refused.take()) {
        (_, Some(shape)) => Err(ParseError::Shape(shape)),
        (Ok(value), None) => Ok(value),
        (Err(e), None) => Err(ParseError::Malformed(e)),
    }
}

/// Where a value sits: a chain up to the root, on the parser's stack. Only a
/// refused payload spells it out as a pointer.
enum Place<'a> {
    Root,
    Key(&'a str, &'a Place<'a>),
    Index(usize, &'a Place<'a>),
}

impl Place<'_> {
    fn pointer(&self) -> String {
        let mut segments = Vec::new();
        let mut place = self;
        loop {
            match place {
                Place::Root => break,
                Place::Key(key, up) => {
                    segments.push(escape_pointer_segment(key));
                    place = up;
                }
                Place::Index(i, up) => {
                    segments.push(i.to_string());
                    place = up;
                }
            }
        }
        segments.iter().rev().fold(String::new(), |mut pointer, s| {
            pointer.push('/');
            pointer.push_str(s);
            pointer
        })
    }
}

/// One value to parse at `at`, inside `depth` arrays and objects.
#[derive(Clone, Copy)]
struct Bounded<'a> {
    at: &'a Place<'a>,
    depth: usize,
    max_depth: usize,
    /// The shape problem that stopped the parse (serde's error only carries
    /// text).
    refused: &'a Cell<Option<ShapeError>>,
}

impl<'a> Bounded<'a> {
    fn refuse<E: de::Error>(&self, shape: ShapeError) -> E {
        self.refused.set(Some(shape));
        E::custom("the payload's shape is refused")
    }

    fn inside(&self, at: &'a Place<'a>) -> Bounded<'a> {
        Bounded {
            at,
            depth: self.depth + 1,
            ..*self
        }
    }

    fn open<E: de::Error>(&self) -> Result<(), E> {
        if self.depth >= self.max_depth {
            return Err(self.refuse(ShapeError::TooDeep));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// The seed for the member past a bound of the array or object `of`: refused
/// before a byte of it is read.
struct PastTheBound<'a> {
    of: Bounded<'a>,
    object: bool,
}

impl<'de> DeserializeSeed<'de> for PastTheBound<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        let (code, message) = if self.object {
            (
                "too_many_keys",
                format!("holds more than {MAX_OBJECT_KEYS} keys"),
            )
        } else {
            (
                "too_many_items",
                format!("holds more than {MAX_ARRAY_ITEMS} items"),
            )
        };
        Err(self.of.refuse(ShapeError::TooWide(Violation {
            pointer: self.of.at.pointer(),
            code,
            message,
        })))
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.open()?;
        let mut items = Vec::new();
        loop {
            if items.len() == MAX_ARRAY_ITEMS {
                seq.next_element_seed(PastTheBound {
                    of: self,
                    object: false,
                })?;
                return Ok(Value::Array(items));
            }
            let at = Place::Index(items.len(), self.at);
            match seq.next_element_seed(self.inside(&at))? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.open()?;
        let mut members = Map::new();
        // Members as written: a repeated key counts each time.
        let mut written = 0;
        loop {
            if written == MAX_OBJECT_KEYS {
                map.next_key_seed(PastTheBound {
                    of: self,
                    object: true,
                })?;
                return Ok(Value::Object(members));
            }
            let Some(key) = map.next_key::<String>()? else {
                return Ok(Value::Object(members));
            };
            let at = Place::Key(&key, self.at);
            let value = map.next_value_seed(self.inside(&at))?;
            written += 1;
            // The last of a repeated key wins, as with serde_json's own.
            members.insert(key, value);
        }
    }
}

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;

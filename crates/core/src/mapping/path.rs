//! Field paths in mapping files: `child/name/given_names`, `mother/identifiers/*/value`.
//!
//! Segments are separated by `/`; `*` stands for every element of an array.
//! A `from` path with N wildcards feeds a `to` path with N wildcards, index for
//! index, so repeated groups map without loops. Paths are split once, at load,
//! so evaluating a plain path is a direct lookup.

use std::fmt;

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    Key(String),
    Each,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath {
    segments: Vec<Segment>,
}

impl FieldPath {
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        if text.is_empty() {
            return Err("a path must not be empty".into());
        }
        let segments = text
            .split('/')
            .map(|s| match s {
                "" => Err("a path must not have empty segments (check for '//' or a leading or trailing '/')".to_string()),
                "*" => Ok(Segment::Each),
                key => Ok(Segment::Key(key.to_string())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FieldPath { segments })
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn wildcards(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| **s == Segment::Each)
            .count()
    }

    /// Is `other` this path or beneath it?
    pub fn covers(&self, other: &FieldPath) -> bool {
        other.segments.len() >= self.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| a == b)
    }

    /// Every value at this path, with the array indices its wildcards took.
    pub fn select<'v>(&self, root: &'v Value) -> Vec<(Vec<usize>, &'v Value)> {
        let mut out = Vec::new();
        select_into(&self.segments, root, &mut Vec::new(), &mut out);
        out
    }

    /// The single value at a path without wildcards.
    pub fn get<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        let mut current = root;
        for s in &self.segments {
            current = match s {
                Segment::Key(k) => current.get(k)?,
                Segment::Each => return None,
            };
        }
        Some(current)
    }

    /// Write `value` at this path, taking wildcard positions from `indices`.
    /// Creates objects and arrays on the way; an array gap is filled with null
    /// and removed by [`compact`] once the document is complete.
    pub fn set(&self, root: &mut Value, indices: &[usize], value: Value) -> Result<(), String> {
        let mut current = root;
        let mut next_index = indices.iter();
        for s in &self.segments {
            current = match s {
                Segment::Key(k) => {
                    if current.is_null() {
                        *current = Value::Object(Map::new());
                    }
                    let Value::Object(map) = current else {
                        return Err(format!("{self} crosses a value that is not an object"));
                    };
                    // The key is copied only when the object lacks it.
                    if !map.contains_key(k) {
                        map.insert(k.clone(), Value::Null);
                    }
                    map.get_mut(k).expect("inserted above")
                }
                Segment::Each => {
                    let i = *next_index
                        .next()
                        .ok_or_else(|| format!("{self} has more wildcards than its source"))?;
                    if current.is_null() {
                        *current = Value::Array(Vec::new());
                    }
                    let Value::Array(items) = current else {
                        return Err(format!("{self} crosses a value that is not an array"));
                    };
                    if items.len() <= i {
                        items.resize(i + 1, Value::Null);
                    }
                    &mut items[i]
                }
            };
        }
        *current = value;
        Ok(())
    }
}

fn select_into<'v>(
    segments: &[Segment],
    value: &'v Value,
    indices: &mut Vec<usize>,
    out: &mut Vec<(Vec<usize>, &'v Value)>,
) {
    let Some((first, rest)) = segments.split_first() else {
        if !value.is_null() {
            out.push((indices.clone(), value));
        }
        return;
    };
    match first {
        Segment::Key(k) => {
            if let Some(v) = value.get(k) {
                select_into(rest, v, indices, out);
            }
        }
        Segment::Each => {
            if let Some(items) = value.as_array() {
                for (i, item) in items.iter().enumerate() {
                    indices.push(i);
                    select_into(rest, item, indices, out);
                    indices.pop();
                }
            }
        }
    }
}

/// Drop the nulls that array gaps left behind, so that a skipped element
/// does not become an empty one.
pub fn compact(value: &mut Value) {
    match value {
        Value::Array(items) => {
            items.retain(|v| !v.is_null());
            items.iter_mut().for_each(compact);
        }
        Value::Object(map) => {
            map.values_mut().for_each(compact);
            map.retain(|_, v| !v.is_null());
        }
        _ => {}
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            match s {
                Segment::Key(k) => f.write_str(k)?,
                Segment::Each => f.write_str("*")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn p(s: &str) -> FieldPath {
        FieldPath::parse(s).unwrap()
    }

    #[test]
    fn parse_rejects_empty_segments() {
        assert!(FieldPath::parse("a//b").is_err());
        assert!(FieldPath::parse("/a").is_err());
        assert!(FieldPath::parse("").is_err());
        assert_eq!(p("a/*/b").wildcards(), 1);
        assert_eq!(p("a/*/b").to_string(), "a/*/b");
    }

    #[test]
    fn select_walks_arrays_and_reports_indices() {
        let doc = json!({"ids": [{"v": "a"}, {"x": 1}, {"v": "c"}]});
        let got: Vec<_> = p("ids/*/v")
            .select(&doc)
            .into_iter()
            .map(|(i, v)| (i, v.clone()))
            .collect();
        assert_eq!(got, [(vec![0], json!("a")), (vec![2], json!("c"))]);
        assert!(p("missing/*").select(&doc).is_empty());
    }

    #[test]
    fn set_builds_parallel_structure_and_compact_drops_gaps() {
        let mut out = Value::Null;
        p("Ids/Id/*/@scheme")
            .set(&mut out, &[0], json!("A"))
            .unwrap();
        p("Ids/Id/*/$text").set(&mut out, &[2], json!("C")).unwrap();
        compact(&mut out);
        assert_eq!(
            out,
            json!({"Ids": {"Id": [{"@scheme": "A"}, {"$text": "C"}]}})
        );
    }

    #[test]
    fn covers_means_prefix() {
        assert!(p("mother").covers(&p("mother/name/given_names")));
        assert!(!p("mother/name").covers(&p("mother")));
        assert!(!p("father").covers(&p("father_details_not_available/reason")));
    }
}

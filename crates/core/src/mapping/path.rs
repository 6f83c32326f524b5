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
        self.select_to(root, &mut out);
        out
    }

    /// [`FieldPath::select`], appending to `out` (a mapping run reuses one
    /// buffer for all its rules).
    pub fn select_to<'v>(&self, root: &'v Value, out: &mut Vec<(Vec<usize>, &'v Value)>) {
        select_into(&self.segments, root, &mut Vec::new(), out);
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
        let Some((last, parents)) = self.segments.split_last() else {
            *current = value;
            return Ok(());
        };
        for s in parents {
            current = match s {
                // One search of the object; the key's copy is cheaper than
                // a second search of a wide one (a declaration's 50 fields).
                Segment::Key(k) => self
                    .object_at(current)?
                    .entry(k.as_str())
                    .or_insert(Value::Null),
                Segment::Each => self.element_at(current, &mut next_index)?,
            };
        }
        match last {
            // A leaf key is nearly always new: one search of the object
            // instead of three (look, insert a placeholder, find it again).
            Segment::Key(k) => {
                self.object_at(current)?.insert(k.clone(), value);
            }
            Segment::Each => *self.element_at(current, &mut next_index)? = value,
        }
        Ok(())
    }

    /// `current` as an object, made one if it is null.
    fn object_at<'v>(&self, current: &'v mut Value) -> Result<&'v mut Map<String, Value>, String> {
        if current.is_null() {
            *current = Value::Object(Map::new());
        }
        match current {
            Value::Object(map) => Ok(map),
            _ => Err(format!("{self} crosses a value that is not an object")),
        }
    }

    /// The element of array `current` at the next wildcard position, made
    /// (with null gaps before it) if missing.
    fn element_at<'v>(
        &self,
        current: &'v mut Value,
        next_index: &mut std::slice::Iter<'_, usize>,
    ) -> Result<&'v mut Value, String> {
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
        Ok(&mut items[i])
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
    use proptest::prelude::*;
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

    /// The former `set`, which searched each object three times per key:
    /// the oracle of `set_writes_the_same_tree_as_the_former_set`.
    fn former_set(
        path: &FieldPath,
        root: &mut Value,
        indices: &[usize],
        value: Value,
    ) -> Result<(), String> {
        let mut current = root;
        let mut next_index = indices.iter();
        for s in &path.segments {
            current = match s {
                Segment::Key(k) => {
                    if current.is_null() {
                        *current = Value::Object(Map::new());
                    }
                    let Value::Object(map) = current else {
                        return Err(format!("{path} crosses a value that is not an object"));
                    };
                    if !map.contains_key(k) {
                        map.insert(k.clone(), Value::Null);
                    }
                    map.get_mut(k).expect("inserted above")
                }
                Segment::Each => {
                    let i = *next_index
                        .next()
                        .ok_or_else(|| format!("{path} has more wildcards than its source"))?;
                    if current.is_null() {
                        *current = Value::Array(Vec::new());
                    }
                    let Value::Array(items) = current else {
                        return Err(format!("{path} crosses a value that is not an array"));
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

    fn write() -> impl Strategy<Value = (FieldPath, Vec<usize>, Value)> {
        let path = prop::collection::vec(prop::sample::select(vec!["a", "b", "*", "c"]), 1..5)
            .prop_map(|s| p(&s.join("/")));
        let value = prop::sample::select(vec![
            json!(1),
            json!("x"),
            json!(null),
            json!({"a": 2}),
            json!([3, {"b": 4}]),
            json!({}),
        ]);
        (path, prop::collection::vec(0usize..3, 0..4), value)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Writes over one another (objects over scalars, wildcards with
        /// too few positions, values written beneath earlier ones) leave the
        /// same tree, or the same error, step by step.
        #[test]
        fn set_writes_the_same_tree_as_the_former_set(
            writes in prop::collection::vec(write(), 1..12),
            start in prop::sample::select(vec![json!(null), json!({}), json!([])]),
        ) {
            let (mut new, mut old) = (start.clone(), start);
            for (path, indices, value) in writes {
                let got = path.set(&mut new, &indices, value.clone());
                let want = former_set(&path, &mut old, &indices, value);
                proptest::prop_assert_eq!(&got, &want);
                proptest::prop_assert_eq!(&new, &old);
            }
        }
    }

    #[test]
    fn covers_means_prefix() {
        assert!(p("mother").covers(&p("mother/name/given_names")));
        assert!(!p("mother/name").covers(&p("mother")));
        assert!(!p("father").covers(&p("father_details_not_available/reason")));
    }
}

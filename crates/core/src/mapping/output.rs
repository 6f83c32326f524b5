//! Where a mapping's rules write, laid out once at load time.
//!
//! When every `to` is a fixed path (no `*`) and none lies inside another,
//! the output tree has the same shape for every record: only which leaves
//! are filled differs. A run then keeps each rule's value in its slot and
//! builds the tree once at the end, each object from its members already in
//! key order, instead of searching every value into place (a declaration's
//! fifty keys, with long common prefixes, are searched for each of its
//! fields). Other mappings write path by path ([`FieldPath::set`]); both give
//! the same tree.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::path::{FieldPath, Segment};

/// The output tree's layout: each object's members in key order, each leaf a
/// slot.
#[derive(Debug)]
pub struct OutputPlan {
    root: Vec<(String, Node)>,
    slots: usize,
}

#[derive(Debug)]
enum Node {
    Slot(usize),
    Object(Vec<(String, Node)>),
}

impl OutputPlan {
    /// The plan for `targets` (one per rule, in rule order) and each rule's
    /// slot (rules writing the same path share one: the last value written
    /// wins, as it does path by path). `None` when a target has a wildcard or
    /// lies inside another target.
    pub fn new<'a>(
        targets: impl IntoIterator<Item = &'a FieldPath>,
    ) -> Option<(OutputPlan, Vec<usize>)> {
        let paths = targets
            .into_iter()
            .map(|path| {
                path.segments()
                    .iter()
                    .map(|s| match s {
                        Segment::Key(k) => Some(k.as_str()),
                        Segment::Each => None,
                    })
                    .collect::<Option<Vec<&str>>>()
            })
            .collect::<Option<Vec<_>>>()?;
        // In segment order, a path's descendants come right after it.
        let mut slots: BTreeMap<&[&str], usize> = paths.iter().map(|p| (p.as_slice(), 0)).collect();
        let distinct: Vec<&[&str]> = slots.keys().copied().collect();
        if distinct.windows(2).any(|w| w[1].starts_with(w[0])) {
            return None;
        }
        let mut root = Vec::new();
        for (slot, (path, at)) in slots.iter_mut().enumerate() {
            place(&mut root, path, slot);
            *at = slot;
        }
        let rule_slots = paths.iter().map(|p| slots[p.as_slice()]).collect();
        Some((
            OutputPlan {
                root,
                slots: distinct.len(),
            },
            rule_slots,
        ))
    }

    /// Empty slots for one run.
    pub fn slots(&self) -> Vec<Option<Value>> {
        vec![None; self.slots]
    }

    /// The tree the filled slots make: an object holds the members that were
    /// filled beneath it, and is left out when none was; the root is always
    /// an object.
    pub fn build(&self, slots: &mut [Option<Value>]) -> Value {
        Value::Object(object(&self.root, slots).unwrap_or_default())
    }
}

/// Add `path` (sorted after every path placed before it) to `members`.
fn place(members: &mut Vec<(String, Node)>, path: &[&str], slot: usize) {
    let (first, rest) = path.split_first().expect("a path has a segment");
    if rest.is_empty() {
        members.push((first.to_string(), Node::Slot(slot)));
        return;
    }
    // Sorted input: the object this path goes into, if any yet, is the last.
    let last_is_it =
        matches!(members.last(), Some((key, Node::Object(_))) if key.as_str() == *first);
    if !last_is_it {
        members.push((first.to_string(), Node::Object(Vec::new())));
    }
    if let Some((_, Node::Object(children))) = members.last_mut() {
        place(children, rest, slot);
    }
}

fn object(members: &[(String, Node)], slots: &mut [Option<Value>]) -> Option<Map<String, Value>> {
    let mut filled = Vec::with_capacity(members.len());
    for (key, node) in members {
        let value = match node {
            Node::Slot(i) => slots[*i].take(),
            Node::Object(children) => object(children, slots).map(Value::Object),
        };
        if let Some(value) = value {
            filled.push((key.clone(), value));
        }
    }
    // Already in key order: the map is built without a search per member.
    (!filled.is_empty()).then(|| Map::from_iter(filled))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn paths(texts: &[&str]) -> Vec<FieldPath> {
        texts.iter().map(|t| FieldPath::parse(t).unwrap()).collect()
    }

    #[test]
    fn wildcards_and_paths_inside_others_are_written_path_by_path() {
        assert!(OutputPlan::new(&paths(&["a/b", "a/c", "d"])).is_some());
        assert!(OutputPlan::new(&paths(&["a/*/b", "c"])).is_none());
        assert!(OutputPlan::new(&paths(&["a/b", "a"])).is_none());
        assert!(OutputPlan::new(&paths(&["a/b/c", "x", "a/b"])).is_none());
        // A shared prefix of the text is not a path inside another.
        assert!(OutputPlan::new(&paths(&["a.b/c", "a/c", "a.b.c"])).is_some());
    }

    #[test]
    fn an_object_is_made_only_when_something_is_written_beneath_it() {
        let targets = paths(&["a/b/c", "a/d", "e"]);
        let (plan, rule_slots) = OutputPlan::new(&targets).unwrap();
        let mut slots = plan.slots();
        slots[rule_slots[1]] = Some(json!(1));
        assert_eq!(plan.build(&mut slots), json!({"a": {"d": 1}}));
        assert_eq!(plan.build(&mut plan.slots()), json!({}));
    }

    /// Fixed paths over a few segments whose texts share prefixes.
    fn target() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec!["a", "a.b", "b", "ab", "c~", "é"]),
            1..4,
        )
        .prop_map(|segments| segments.join("/"))
    }

    proptest! {
        /// Rules in any order, some writing the same path, some writing
        /// nothing: the plan builds what writing path by path builds.
        #[test]
        fn builds_what_writing_path_by_path_builds(
            targets in prop::collection::vec(target(), 1..12),
            writes in prop::collection::vec((0usize..12, prop::option::of(0i64..100)), 0..20),
        ) {
            let targets = paths(&targets.iter().map(String::as_str).collect::<Vec<_>>());
            let Some((plan, rule_slots)) = OutputPlan::new(&targets) else {
                // Only a path inside another is refused here (no wildcards drawn).
                prop_assert!(targets.iter().any(|a| targets.iter().any(|b| a != b && a.covers(b))));
                return Ok(());
            };
            let mut by_path = Value::Object(Map::new());
            let mut slots = plan.slots();
            for (rule, value) in writes {
                let rule = rule % targets.len();
                let Some(value) = value else { continue };
                targets[rule].set(&mut by_path, &[], json!(value)).unwrap();
                slots[rule_slots[rule]] = Some(json!(value));
            }
            prop_assert_eq!(plan.build(&mut slots), by_path);
        }
    }
}

//! The exchange's Bundle store: resources by logical id, each with its
//! version and its `Bundle.identifier`, searchable by that identifier (the
//! R4 Bundle search parameter `identifier`, a token: `system|value`, or a
//! bare `value` in any system). One lock is held for a whole interaction, so
//! a conditional create's search and create are one step.
//!
//! Bundles are indexed by logical id, identifier value and `system|value`,
//! as a real server's search parameters are: a scan of every stored Bundle
//! per interaction made the mock, not the gateway, the bottleneck of a load
//! test (tens of thousands of Bundles, docs/perf "Delivery under load").

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use super::rules::bundle_key;

/// One stored Bundle: its logical id, its current version and content.
pub(super) struct Stored {
    pub id: String,
    /// What `/_mock/records` lists it under: its `system|value`; a second
    /// Bundle with the same identifier (a plain create does not look) is
    /// `system|value#2`, and so on.
    pub key: String,
    pub version: u32,
    pub resource: Value,
}

impl Stored {
    pub fn reference(&self) -> String {
        format!("Bundle/{}", self.id)
    }
}

#[derive(Default)]
pub(super) struct Store(Mutex<Bundles>);

/// The stored Bundles in creation order, and their indexes.
#[derive(Default)]
pub(super) struct Bundles {
    stored: Vec<Stored>,
    /// Logical id to position (ids are unique: a create with a taken id is an update).
    by_id: HashMap<String, usize>,
    /// `Bundle.identifier.value` to the positions holding it, ascending.
    by_value: HashMap<String, Vec<usize>>,
    /// How many Bundles hold each `system|value` now.
    by_key: HashMap<String, usize>,
}

impl Bundles {
    fn index(&mut self, index: usize) {
        let resource = &self.stored[index].resource;
        if let Some(value) = resource["identifier"]["value"].as_str() {
            let held = self.by_value.entry(value.to_string()).or_default();
            let at = held.partition_point(|&i| i < index);
            held.insert(at, index);
        }
        if let Some(key) = bundle_key(resource) {
            *self.by_key.entry(key).or_default() += 1;
        }
    }

    fn unindex(&mut self, index: usize) {
        let resource = &self.stored[index].resource;
        if let Some(value) = resource["identifier"]["value"].as_str()
            && let Some(held) = self.by_value.get_mut(value)
        {
            held.retain(|&i| i != index);
        }
        if let Some(key) = bundle_key(resource)
            && let Some(n) = self.by_key.get_mut(&key)
        {
            *n = n.saturating_sub(1);
        }
    }
}

pub(super) struct Held<'a>(MutexGuard<'a, Bundles>);

impl Store {
    /// Hold the store for one interaction.
    pub fn hold(&self) -> Held<'_> {
        // A poisoned lock only means another handler panicked; the data is whole.
        Held(self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A token search on `Bundle.identifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IdentifierSearch {
    system: Option<String>,
    value: String,
}

impl IdentifierSearch {
    /// `system|value` or `value` (R4 search.html#token). `|value` means no system.
    pub fn parse(token: &str) -> Option<IdentifierSearch> {
        let (system, value) = match token.split_once('|') {
            Some((system, value)) => (Some(system.to_string()), value),
            None => (None, token),
        };
        (!value.is_empty()).then(|| IdentifierSearch {
            system,
            value: value.to_string(),
        })
    }

    fn matches(&self, bundle: &Value) -> bool {
        let identifier = &bundle["identifier"];
        if identifier["value"].as_str() != Some(self.value.as_str()) {
            return false;
        }
        match (&self.system, identifier["system"].as_str()) {
            (None, _) => true,
            (Some(s), None) => s.is_empty(),
            (Some(s), Some(found)) => s == found,
        }
    }
}

impl Held<'_> {
    /// Indexes of the Bundles the search matches, in creation order.
    pub fn search(&self, search: &IdentifierSearch) -> Vec<usize> {
        let bundles = &self.0;
        bundles
            .by_value
            .get(&search.value)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| search.matches(&bundles.stored[i].resource))
            .collect()
    }

    pub fn position(&self, id: &str) -> Option<usize> {
        self.0.by_id.get(id).copied()
    }

    pub fn get(&self, index: usize) -> &Stored {
        &self.0.stored[index]
    }

    /// Store a new Bundle as version 1; its index.
    pub fn create(&mut self, id: String, resource: Value) -> usize {
        let bundles = &mut self.0;
        let identifier = bundle_key(&resource);
        let same = identifier
            .as_ref()
            .and_then(|k| bundles.by_key.get(k))
            .copied()
            .unwrap_or(0);
        let identifier = identifier.unwrap_or_default();
        let key = match same {
            0 => identifier,
            n => format!("{identifier}#{}", n + 1),
        };
        let index = bundles.stored.len();
        bundles.by_id.insert(id.clone(), index);
        bundles.stored.push(Stored {
            id,
            key,
            version: 1,
            resource,
        });
        bundles.index(index);
        index
    }

    /// Replace a Bundle's content as its next version.
    pub fn update(&mut self, index: usize, resource: Value) {
        let bundles = &mut self.0;
        bundles.unindex(index);
        let stored = &mut bundles.stored[index];
        stored.version += 1;
        stored.resource = resource;
        bundles.index(index);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bundle(system: &str, value: &str) -> Value {
        json!({"resourceType": "Bundle", "identifier": {"system": system, "value": value}})
    }

    #[test]
    fn a_token_search_matches_system_and_value() {
        let store = Store::default();
        let mut held = store.hold();
        held.create("a".into(), bundle("urn:ietf:rfc:3986", "urn:uuid:1"));
        held.create("b".into(), bundle("urn:other", "urn:uuid:1"));
        let search = |t: &str| held.search(&IdentifierSearch::parse(t).unwrap());
        assert_eq!(search("urn:ietf:rfc:3986|urn:uuid:1"), [0]);
        assert_eq!(search("urn:uuid:1"), [0, 1]);
        assert_eq!(search("|urn:uuid:1"), Vec::<usize>::new());
        assert_eq!(search("urn:ietf:rfc:3986|urn:uuid:2"), Vec::<usize>::new());
        assert!(IdentifierSearch::parse("urn:x|").is_none());
        let again = held.create("c".into(), bundle("urn:ietf:rfc:3986", "urn:uuid:1"));
        assert_eq!(held.get(0).key, "urn:ietf:rfc:3986|urn:uuid:1");
        assert_eq!(held.get(again).key, "urn:ietf:rfc:3986|urn:uuid:1#2");
        assert_eq!(held.position("c"), Some(again));
        assert_eq!(held.position("d"), None);
    }

    /// Interactions read the indexes (by id, identifier value and
    /// system|value) rather than scanning every stored Bundle, which made the
    /// mock the bottleneck of `bench/load.sh`; that benchmark guards the
    /// speed (it exits 1 when delivery falls behind intake). Here: among many
    /// Bundles, each conditional create's search finds exactly its own.
    #[test]
    fn conditional_creates_find_their_own_bundle_among_many() {
        let store = Store::default();
        let mut held = store.hold();
        for n in 0..2_000 {
            let value = format!("urn:uuid:{n}");
            let search = IdentifierSearch::parse(&format!("urn:s|{value}")).unwrap();
            assert!(held.search(&search).is_empty());
            held.create(format!("id-{n}"), bundle("urn:s", &value));
            assert_eq!(held.search(&search), [n]);
        }
        assert_eq!(
            held.search(&IdentifierSearch::parse("urn:uuid:1999").unwrap()),
            [1999]
        );
    }

    #[test]
    fn an_update_moves_the_bundle_in_the_indexes() {
        let store = Store::default();
        let mut held = store.hold();
        held.create("a".into(), bundle("urn:s", "urn:uuid:1"));
        held.create("b".into(), bundle("urn:s", "urn:uuid:1"));
        held.update(0, bundle("urn:s", "urn:uuid:2"));
        let search = |held: &Held, t: &str| held.search(&IdentifierSearch::parse(t).unwrap());
        assert_eq!(search(&held, "urn:uuid:1"), [1]);
        assert_eq!(search(&held, "urn:s|urn:uuid:2"), [0]);
        // Only one Bundle holds urn:s|urn:uuid:1 now: the next is its second.
        let next = held.create("c".into(), bundle("urn:s", "urn:uuid:1"));
        assert_eq!(held.get(next).key, "urn:s|urn:uuid:1#2");
        assert_eq!(search(&held, "urn:uuid:1"), [1, 2]);
    }
}

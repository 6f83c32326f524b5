//! The exchange's Bundle store: resources by logical id, each with its
//! version and its `Bundle.identifier`, searchable by that identifier (the
//! R4 Bundle search parameter `identifier`, a token: `system|value`, or a
//! bare `value` in any system). One lock is held for a whole interaction, so
//! a conditional create's search and create are one step.

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
pub(super) struct Store(Mutex<Vec<Stored>>);

pub(super) struct Held<'a>(MutexGuard<'a, Vec<Stored>>);

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
    /// Indexes of the Bundles the search matches.
    pub fn search(&self, search: &IdentifierSearch) -> Vec<usize> {
        (0..self.0.len())
            .filter(|&i| search.matches(&self.0[i].resource))
            .collect()
    }

    pub fn position(&self, id: &str) -> Option<usize> {
        self.0.iter().position(|s| s.id == id)
    }

    pub fn get(&self, index: usize) -> &Stored {
        &self.0[index]
    }

    /// Store a new Bundle as version 1; its index.
    pub fn create(&mut self, id: String, resource: Value) -> usize {
        let identifier = bundle_key(&resource).unwrap_or_default();
        let same = self
            .0
            .iter()
            .filter(|s| bundle_key(&s.resource).as_deref() == Some(identifier.as_str()))
            .count();
        let key = match same {
            0 => identifier,
            n => format!("{identifier}#{}", n + 1),
        };
        self.0.push(Stored {
            id,
            key,
            version: 1,
            resource,
        });
        self.0.len() - 1
    }

    /// Replace a Bundle's content as its next version.
    pub fn update(&mut self, index: usize, resource: Value) {
        let stored = &mut self.0[index];
        stored.version += 1;
        stored.resource = resource;
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
    }
}

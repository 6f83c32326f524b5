//! What a mock registry holds: one record per idempotency key, with the
//! receipt it gave and the bytes it first received.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::lock;

/// One registration, as `GET /_mock/records` lists it (no body).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StoredRecord {
    pub key: String,
    /// The receipt: tracking id, registry reference, resource or case id.
    pub reference: String,
    pub received_at: DateTime<Utc>,
    /// SHA-256 (hex) of what was compared for duplicates.
    pub digest: String,
}

struct Entry {
    record: StoredRecord,
    body: Vec<u8>,
    /// What a replay answers with (registry specific).
    replay: Value,
}

#[derive(Default)]
pub(crate) struct Records {
    state: Mutex<(HashMap<String, Entry>, Vec<String>)>,
}

/// A registration already held under a key.
pub(crate) struct Existing {
    pub record: StoredRecord,
    pub replay: Value,
}

impl Records {
    pub fn get(&self, key: &str) -> Option<Existing> {
        lock(&self.state).0.get(key).map(|e| Existing {
            record: e.record.clone(),
            replay: e.replay.clone(),
        })
    }

    /// Store a registration unless the key is taken; Err gives what holds it.
    pub fn insert(&self, record: StoredRecord, body: &[u8], replay: Value) -> Result<(), Existing> {
        let mut state = lock(&self.state);
        if let Some(e) = state.0.get(&record.key) {
            return Err(Existing {
                record: e.record.clone(),
                replay: e.replay.clone(),
            });
        }
        let key = record.key.clone();
        state.0.insert(
            key.clone(),
            Entry {
                record,
                body: body.to_vec(),
                replay,
            },
        );
        state.1.push(key);
        Ok(())
    }

    /// Replace what is held under `record.key` (a registry that updates a
    /// registration in place keeps one record); stores it if none is held.
    pub fn replace(&self, record: StoredRecord, body: &[u8], replay: Value) {
        let mut state = lock(&self.state);
        let key = record.key.clone();
        let entry = Entry {
            record,
            body: body.to_vec(),
            replay,
        };
        if state.0.insert(key.clone(), entry).is_none() {
            state.1.push(key);
        }
    }

    pub fn list(&self) -> Vec<StoredRecord> {
        let state = lock(&self.state);
        state
            .1
            .iter()
            .filter_map(|k| state.0.get(k).map(|e| e.record.clone()))
            .collect()
    }

    pub fn body(&self, key: &str) -> Option<Vec<u8>> {
        lock(&self.state).0.get(key).map(|e| e.body.clone())
    }

    /// Registrations so far (the next receipt's sequence number is this + 1).
    pub fn len(&self) -> usize {
        lock(&self.state).1.len()
    }

    /// Find a registration by a predicate on its replay value.
    pub fn find(&self, pred: impl Fn(&Value) -> bool) -> Option<StoredRecord> {
        let state = lock(&self.state);
        state
            .1
            .iter()
            .filter_map(|k| state.0.get(k))
            .find(|e| pred(&e.replay))
            .map(|e| e.record.clone())
    }
}

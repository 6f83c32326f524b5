//! What both backends seal with a record's data key, and how a claimed
//! record's payload is opened again: one definition, so a record sealed by
//! either store means the same bytes.

use super::NewRecord;
use super::PayloadGone;
use super::keyring::{DataKey, KeyError, Keyring};

/// Sealed columns, each bound to its name (associated data).
pub(crate) const CANONICAL: &str = "records.canonical";
pub(crate) const REQUEST_SHA256: &str = "request_sha256";
pub(crate) const CONSENT: &str = "consents.consent";

/// A new record's sealed columns and its wrapped data key.
pub(crate) struct Sealed {
    pub canonical: Vec<u8>,
    pub request_sha256: Vec<u8>,
    pub consent: Option<Vec<u8>>,
    pub kek_id: String,
    pub wrapped: Vec<u8>,
}

impl Sealed {
    pub fn new(record: &NewRecord, keyring: &Keyring) -> Sealed {
        let key = DataKey::generate(&record.id.to_string());
        let (kek_id, wrapped) = keyring.wrap(&key);
        Sealed {
            canonical: key.seal(CANONICAL, &record.canonical),
            request_sha256: key.seal(REQUEST_SHA256, &record.request_sha256),
            consent: record
                .consent
                .as_ref()
                .map(|c| key.seal(CONSENT, &c.consent)),
            kek_id,
            wrapped,
        }
    }
}

/// A claimed record's canonical JSON from its sealed column and its
/// wrapped key (`records LEFT JOIN payload_keys`): `Err(Purged)` when the
/// key is gone.
pub(crate) fn open_canonical(
    keyring: &Keyring,
    record_id: &str,
    kek_id: Option<String>,
    wrapped: Option<Vec<u8>>,
    canonical: Vec<u8>,
) -> Result<Result<Vec<u8>, PayloadGone>, KeyError> {
    let (Some(kek_id), Some(wrapped)) = (kek_id, wrapped) else {
        return Ok(Err(PayloadGone::Purged));
    };
    let key = keyring.unwrap(record_id, &kek_id, &wrapped)?;
    Ok(Ok(key.open(CANONICAL, &canonical)?.to_vec()))
}

/// The request hash kept with an idempotency key; `None` when its record
/// was purged (no key left): a reuse of the key is then a conflict.
pub(crate) fn open_request_hash(
    keyring: &Keyring,
    record_id: &str,
    kek_id: Option<String>,
    wrapped: Option<Vec<u8>>,
    sealed: &[u8],
) -> Result<Option<[u8; 32]>, KeyError> {
    let (Some(kek_id), Some(wrapped)) = (kek_id, wrapped) else {
        return Ok(None);
    };
    let key = keyring.unwrap(record_id, &kek_id, &wrapped)?;
    let hash = key.open(REQUEST_SHA256, sealed)?;
    Ok(hash.as_slice().try_into().ok())
}

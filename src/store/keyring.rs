//! Payload encryption at rest: one random data key per record, sealed with
//! XChaCha20-Poly1305 and the record id as associated data; each data key is
//! stored wrapped by a key-encryption key (KEK) named by its `kek_id`, so KEKs
//! can rotate (earlier ones, `previous_keks`, still unwrap). Destroying a
//! record's wrapped data key makes its payload unreadable: crypto-shredding.
//!
//! Key material lives in [`Zeroizing`] buffers, wiped when dropped.

use std::collections::BTreeMap;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::config::{KekSource, RetentionConfig};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Marks a sealed value (and its format version) so that a plaintext value
/// written by an older build is never mistaken for one.
const SEALED_MAGIC: &[u8; 4] = b"RGS1";
/// Where `kek = "generate"` keeps the key it made, in the data directory.
pub const GENERATED_KEK_FILE: &str = "generated-kek";

/// Why key material could not be loaded or used. Names key ids, never keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A row was wrapped by a KEK this gateway is not configured with.
    #[error(
        "data keys in the store are wrapped by KEK {kek_id:?}, which is neither retention.kek_id \
         nor in retention.previous_keks"
    )]
    UnknownKek { kek_id: String },
    /// The KEK with this id does not unwrap the store's data keys: a wrong key.
    #[error("KEK {kek_id:?} does not unwrap the data keys wrapped under its id (wrong key?)")]
    WrongKek { kek_id: String },
    /// A sealed value does not open with its record's data key.
    #[error("a sealed payload of record {record_id} does not open (altered or misplaced)")]
    Sealed { record_id: String },
    /// The key is not 32 bytes written as 64 hex digits.
    #[error("{path}: must be 32 bytes written as 64 hex digits")]
    Malformed { path: String },
    /// Two KEKs share one id.
    #[error("{path}: KEK id {kek_id:?} is used twice")]
    DuplicateId { path: String, kek_id: String },
    /// Serving needs a KEK.
    #[error(
        "retention.kek is required to serve: \"env:NAME\", \"file:PATH\" (32 bytes as hex), or \"generate\" (demo)"
    )]
    Missing,
    /// The generated KEK file could not be read or written.
    #[error("{file}: cannot keep the generated KEK ({kind})")]
    Generated {
        file: String,
        kind: std::io::ErrorKind,
    },
}

/// A 32-byte key, wiped on drop.
#[derive(Clone)]
struct Key(Zeroizing<[u8; KEY_LEN]>);

impl Key {
    fn random() -> Key {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(key.as_mut());
        Key(key)
    }

    fn from_hex(text: &str, path: &str) -> Result<Key, KeyError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(text.trim(), key.as_mut()).map_err(|_| KeyError::Malformed {
            path: path.to_string(),
        })?;
        Ok(Key(key))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }

    /// `magic || nonce || ciphertext+tag`, bound to `aad`.
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        // Encryption with a valid key and nonce fails only past ~256 GiB.
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        [&SEALED_MAGIC[..], &nonce, &sealed].concat()
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let rest = sealed.strip_prefix(&SEALED_MAGIC[..])?;
        if rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// One record's data key. Every sealed column of the record is bound to the
/// record id and the column's name, so a value moved to another row or
/// column does not open.
pub struct DataKey {
    record_id: String,
    key: Key,
}

impl DataKey {
    pub fn generate(record_id: &str) -> DataKey {
        DataKey {
            record_id: record_id.to_string(),
            key: Key::random(),
        }
    }

    fn aad(&self, column: &str) -> Vec<u8> {
        [self.record_id.as_bytes(), b"\0", column.as_bytes()].concat()
    }

    pub fn seal(&self, column: &str, plaintext: &[u8]) -> Vec<u8> {
        self.key.seal(&self.aad(column), plaintext)
    }

    pub fn open(&self, column: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.key
            .open(&self.aad(column), sealed)
            .ok_or_else(|| KeyError::Sealed {
                record_id: self.record_id.clone(),
            })
    }
}

/// Whether a stored value is sealed (rather than plaintext from an older build).
pub fn is_sealed(value: &[u8]) -> bool {
    value.starts_with(SEALED_MAGIC)
}

/// The KEKs: the current one wraps new data keys; every one unwraps.
pub struct Keyring {
    current_id: String,
    keks: BTreeMap<String, Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current_id", &self.current_id)
            .field("kek_ids", &self.keks.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// A keyring from hex keys: `(id, hex)` of the current KEK, then earlier ones.
    pub fn from_hex(current: (&str, &str), previous: &[(&str, &str)]) -> Result<Keyring, KeyError> {
        let mut keks = BTreeMap::new();
        keks.insert(
            current.0.to_string(),
            Key::from_hex(current.1, "retention.kek")?,
        );
        for (i, (id, hex)) in previous.iter().enumerate() {
            let path = format!("retention.previous_keks[{i}]");
            let key = Key::from_hex(hex, &format!("{path}.kek"))?;
            if keks.insert(id.to_string(), key).is_some() {
                return Err(KeyError::DuplicateId {
                    path: format!("{path}.id"),
                    kek_id: id.to_string(),
                });
            }
        }
        Ok(Keyring {
            current_id: current.0.to_string(),
            keks,
        })
    }

    /// The keyring a config names. `generate` makes a KEK once and keeps it
    /// in the data directory (0600), so a restart still reads the store.
    pub fn load(retention: Option<&RetentionConfig>, data_dir: &Path) -> Result<Keyring, KeyError> {
        let retention = retention.ok_or(KeyError::Missing)?;
        let current = match &retention.kek {
            KekSource::Secret(secret) => Zeroizing::new(secret.expose().to_string()),
            KekSource::Generate => generated_kek(data_dir)?,
        };
        let previous: Vec<(&str, &str)> = retention
            .previous_keks
            .iter()
            .map(|(id, secret)| (id.as_str(), secret.expose()))
            .collect();
        Keyring::from_hex((&retention.kek_id, &current), &previous)
    }

    pub fn current_id(&self) -> &str {
        &self.current_id
    }

    /// The data key wrapped by the current KEK, bound to the record id.
    pub fn wrap(&self, data: &DataKey) -> (String, Vec<u8>) {
        let kek = &self.keks[&self.current_id];
        (
            self.current_id.clone(),
            kek.seal(data.record_id.as_bytes(), data.key.0.as_ref()),
        )
    }

    /// The record's data key, unwrapped by the KEK named `kek_id`.
    pub fn unwrap(
        &self,
        record_id: &str,
        kek_id: &str,
        wrapped: &[u8],
    ) -> Result<DataKey, KeyError> {
        let kek = self.keks.get(kek_id).ok_or_else(|| KeyError::UnknownKek {
            kek_id: kek_id.to_string(),
        })?;
        let bytes = kek
            .open(record_id.as_bytes(), wrapped)
            .ok_or_else(|| KeyError::WrongKek {
                kek_id: kek_id.to_string(),
            })?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(KeyError::WrongKek {
                kek_id: kek_id.to_string(),
            });
        }
        key.copy_from_slice(&bytes);
        Ok(DataKey {
            record_id: record_id.to_string(),
            key: Key(key),
        })
    }

    /// Whether this keyring holds a KEK named `kek_id`.
    pub fn knows(&self, kek_id: &str) -> bool {
        self.keks.contains_key(kek_id)
    }
}

/// The generated KEK of a data directory, made on first use.
fn generated_kek(data_dir: &Path) -> Result<Zeroizing<String>, KeyError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let file = data_dir.join(GENERATED_KEK_FILE);
    let fail = |e: std::io::Error| KeyError::Generated {
        file: file.display().to_string(),
        kind: e.kind(),
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => return Ok(Zeroizing::new(text)),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e)),
        Err(_) => {}
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(fail)?;
    let key = Key::random();
    let text = Zeroizing::new(hex::encode(key.0.as_ref()));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .map_err(fail)?;
    out.write_all(text.as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(fail)?;
    tracing::warn!(
        file = %file.display(),
        "retention.kek = \"generate\": a KEK was generated and kept beside the store (demo only)"
    );
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const B: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

    #[test]
    fn a_payload_opens_only_with_its_record_and_column() {
        let key = DataKey::generate("r1");
        let sealed = key.seal("canonical", b"{\"name\":\"canary\"}");
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(6).any(|w| w == b"canary"));
        assert_eq!(
            &key.open("canonical", &sealed).unwrap()[..],
            b"{\"name\":\"canary\"}"
        );
        assert!(key.open("consent", &sealed).is_err());
        let ring = Keyring::from_hex(("k1", A), &[]).unwrap();
        let (id, wrapped) = ring.wrap(&key);
        let other = ring.unwrap("r2", &id, &wrapped);
        assert!(matches!(other, Err(KeyError::WrongKek { .. })));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(key.open("canonical", &flipped).is_err());
    }

    #[test]
    fn rotated_keks_still_unwrap_and_unknown_ones_are_named() {
        let old = Keyring::from_hex(("k1", A), &[]).unwrap();
        let key = DataKey::generate("r1");
        let sealed = key.seal("canonical", b"x");
        let (id, wrapped) = old.wrap(&key);
        let rotated = Keyring::from_hex(("k2", B), &[("k1", A)]).unwrap();
        let back = rotated.unwrap("r1", &id, &wrapped).unwrap();
        assert_eq!(&back.open("canonical", &sealed).unwrap()[..], b"x");
        assert_eq!(rotated.wrap(&back).0, "k2");
        let forgot = Keyring::from_hex(("k2", B), &[]).unwrap();
        let err = forgot.unwrap("r1", &id, &wrapped).err().unwrap();
        assert!(matches!(err, KeyError::UnknownKek { ref kek_id } if kek_id == "k1"));
        let wrong = Keyring::from_hex(("k1", B), &[]).unwrap();
        assert!(matches!(
            wrong.unwrap("r1", &id, &wrapped),
            Err(KeyError::WrongKek { .. })
        ));
    }

    #[test]
    fn malformed_and_duplicate_keks_are_refused_by_path() {
        assert!(matches!(
            Keyring::from_hex(("k1", "abc"), &[]),
            Err(KeyError::Malformed { ref path }) if path == "retention.kek"
        ));
        assert!(matches!(
            Keyring::from_hex(("k1", A), &[("k1", B)]),
            Err(KeyError::DuplicateId { ref path, .. }) if path == "retention.previous_keks[0].id"
        ));
    }

    #[test]
    fn a_generated_kek_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = generated_kek(dir.path()).unwrap();
        let again = generated_kek(dir.path()).unwrap();
        assert_eq!(*first, *again);
        assert_eq!(first.len(), 64);
    }
}

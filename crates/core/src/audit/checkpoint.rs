//! Signed checkpoints in the C2SP formats: `signed-note` (text, a blank
//! line, `— <key name> <base64(key hash || signature)>` lines) carrying a
//! `tlog-checkpoint` body (`<origin>\n<size>\n<base64 root>\n`), signed with
//! Ed25519. Keys are written as the Go `sumdb/note` tools write them, so that
//! an auditor can use any implementation of the format.
//!
//! Architecture invariant: pure. Parsing never panics and refuses anything
//! the format does not allow rather than guessing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::merkle::Hash;

/// The signature algorithm byte of Ed25519 in signed-note keys.
const ALG_ED25519: u8 = 0x01;
/// The em dash that opens every signature line.
const SIG_PREFIX: &str = "\u{2014} ";
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";
/// A note with more signature lines than this is refused (as Go's does).
const MAX_SIGNATURES: usize = 100;

/// A key or key line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("malformed key: {0}")]
    Malformed(&'static str),
    #[error("the key hash does not match the key name and public key")]
    WrongKeyHash,
    #[error("the key is not an Ed25519 signed-note key")]
    UnknownAlgorithm,
}

/// A note or checkpoint that does not open.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// No signature line by the verifier's key name and key hash.
    #[error("the note carries no signature by this key")]
    NotSignedByKey,
    /// A signature line by this key whose signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
}

/// The first 4 bytes of SHA-256(name || "\n" || 0x01 || public key).
pub fn key_hash(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Key names are non-empty and hold no space, newline or '+'.
fn check_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c == '+' || c.is_whitespace() || c.is_control())
    {
        return Err(KeyError::Malformed(
            "a key name is non-empty, without spaces or '+'",
        ));
    }
    Ok(())
}

fn parse_hash(hex8: &str) -> Result<[u8; 4], KeyError> {
    if hex8.len() != 8 || !hex8.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(KeyError::Malformed(
            "the key hash is 8 lowercase hex digits",
        ));
    }
    let bytes = hex::decode(hex8).map_err(|_| KeyError::Malformed("key hash"))?;
    bytes
        .try_into()
        .map_err(|_| KeyError::Malformed("key hash"))
}

/// `0x01 || 32 bytes`, base64: the key material of both key lines.
fn parse_material(b64: &str) -> Result<[u8; 32], KeyError> {
    let bytes = B64
        .decode(b64)
        .map_err(|_| KeyError::Malformed("the key material is not base64"))?;
    match bytes.split_first() {
        Some((&ALG_ED25519, rest)) => rest
            .try_into()
            .map_err(|_| KeyError::Malformed("an Ed25519 key is 32 bytes")),
        Some(_) => Err(KeyError::UnknownAlgorithm),
        None => Err(KeyError::Malformed("empty key material")),
    }
}

fn material(key: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(ALG_ED25519);
    bytes.extend_from_slice(key);
    B64.encode(bytes)
}

/// A key that verifies notes: `<name>+<8 hex key hash>+<base64(0x01 || key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    hash: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    pub fn new(name: &str, key: VerifyingKey) -> Result<NoteVerifier, KeyError> {
        check_name(name)?;
        Ok(NoteVerifier {
            name: name.to_string(),
            hash: key_hash(name, &key),
            key,
        })
    }

    /// Parses a verifier key line (surrounding whitespace ignored).
    pub fn parse(line: &str) -> Result<NoteVerifier, KeyError> {
        let mut parts = line.trim().splitn(3, '+');
        let (Some(name), Some(hash), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyError::Malformed("expected <name>+<hash>+<key>"));
        };
        check_name(name)?;
        let hash = parse_hash(hash)?;
        let key = VerifyingKey::from_bytes(&parse_material(b64)?)
            .map_err(|_| KeyError::Malformed("not an Ed25519 public key"))?;
        if key_hash(name, &key) != hash {
            return Err(KeyError::WrongKeyHash);
        }
        Ok(NoteVerifier {
            name: name.to_string(),
            hash,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key line, without a newline.
    pub fn to_line(&self) -> String {
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.hash),
            material(self.key.as_bytes())
        )
    }

    /// Opens a signed note: returns its text (with its final newline) when
    /// one of its signature lines is this key's and verifies. Lines of other
    /// keys are ignored; a line of this key that does not verify fails.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (text, sigs) = split_note(note)?;
        let mut verified = false;
        for line in sigs.split_terminator('\n') {
            let (name, blob) = parse_sig_line(line)?;
            if name != self.name || blob.len() < 4 || blob[..4] != self.hash {
                continue;
            }
            let sig = Signature::from_slice(&blob[4..]).map_err(|_| NoteError::BadSignature)?;
            self.key
                .verify(text.as_bytes(), &sig)
                .map_err(|_| NoteError::BadSignature)?;
            verified = true;
        }
        if verified {
            Ok(text)
        } else {
            Err(NoteError::NotSignedByKey)
        }
    }
}

/// Text and signature block of a note: the text ends at the last blank line.
fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    if note
        .chars()
        .any(|c| c != '\n' && (c.is_control() || c == '\u{FEFF}'))
    {
        return Err(NoteError::Malformed("control characters"));
    }
    let at = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, sigs) = (&note[..at + 1], &note[at + 2..]);
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(NoteError::Malformed("signature lines end with a newline"));
    }
    if sigs.split_terminator('\n').count() > MAX_SIGNATURES {
        return Err(NoteError::Malformed("too many signatures"));
    }
    Ok((text, sigs))
}

/// `— <name> <base64>`: the name and the decoded blob.
fn parse_sig_line(line: &str) -> Result<(&str, Vec<u8>), NoteError> {
    let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
        "a signature line starts with an em dash",
    ))?;
    let (name, b64) = rest.split_once(' ').ok_or(NoteError::Malformed(
        "a signature line is '— name signature'",
    ))?;
    if check_name(name).is_err() {
        return Err(NoteError::Malformed("signature key name"));
    }
    let blob = B64
        .decode(b64)
        .map_err(|_| NoteError::Malformed("a signature is base64"))?;
    if blob.len() < 5 {
        return Err(NoteError::Malformed(
            "a signature is a key hash and a signature",
        ));
    }
    Ok((name, blob))
}

/// The key that signs checkpoints. Its Debug output hides the key.
#[derive(Clone)]
pub struct NoteSigner {
    verifier: NoteVerifier,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({})", self.verifier.to_line())
    }
}

impl NoteSigner {
    /// A signer named `name` from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NoteSigner, KeyError> {
        let key = SigningKey::from_bytes(seed);
        Ok(NoteSigner {
            verifier: NoteVerifier::new(name, key.verifying_key())?,
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>`.
    pub fn parse(text: &str) -> Result<NoteSigner, KeyError> {
        let rest = text
            .trim()
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or(KeyError::Malformed(
                "a signing key starts with PRIVATE+KEY+",
            ))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hash), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyError::Malformed(
                "expected PRIVATE+KEY+<name>+<hash>+<key>",
            ));
        };
        let hash = parse_hash(hash)?;
        let signer = NoteSigner::from_seed(name, &parse_material(b64)?)?;
        if signer.verifier.hash != hash {
            return Err(KeyError::WrongKeyHash);
        }
        Ok(signer)
    }

    /// The signing key line, as `parse` reads it. A secret.
    pub fn to_private_line(&self) -> String {
        format!(
            "{PRIVATE_PREFIX}{}+{}+{}",
            self.verifier.name,
            hex::encode(self.verifier.hash),
            material(self.key.as_bytes())
        )
    }

    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// Signs `text` (which must end with a newline and hold no blank line's
    /// worth of ambiguity): the text, a blank line, one signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if !text.ends_with('\n') || text.contains("\n\n") || text.starts_with('\n') {
            return Err(NoteError::Malformed(
                "the text is lines, each ending with a newline",
            ));
        }
        if text.chars().any(|c| c != '\n' && c.is_control()) {
            return Err(NoteError::Malformed("control characters"));
        }
        let sig = self.key.sign(text.as_bytes());
        let mut blob = self.verifier.hash.to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.verifier.name,
            B64.encode(blob)
        ))
    }
}

/// A checkpoint's body: which log, how many entries, and their root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// `<origin>\n<size>\n<base64 root>\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a checkpoint body; extension lines after the root are allowed
    /// (the format has them) and ignored.
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = text.split_terminator('\n');
        let origin = lines.next().unwrap_or("");
        if origin.is_empty() {
            return Err(NoteError::Checkpoint("no origin line"));
        }
        let size = lines.next().unwrap_or("");
        let canonical = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size: u64 = match size.parse() {
            Ok(n) if canonical => n,
            _ => return Err(NoteError::Checkpoint("the size is a decimal number")),
        };
        let root = B64
            .decode(lines.next().unwrap_or(""))
            .ok()
            .and_then(|r| <Hash>::try_from(r).ok())
            .ok_or(NoteError::Checkpoint("the root is 32 bytes in base64"))?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }

    /// The signed note of this checkpoint.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, NoteError> {
        signer.sign(&self.body())
    }

    /// Opens a signed checkpoint note with `verifier`.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, NoteError> {
        Checkpoint::parse(verifier.open(note)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of golang.org/x/mod's sumdb/note package documentation
    // (sumdb/note/note.go, commit a410e2da): a signer key, its verifier key,
    // a text and the signed note Go produces. Ed25519 is deterministic, so
    // signing the same text must give the same bytes.
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn go_note() -> String {
        format!("{GO_TEXT}\n{GO_SIG}")
    }

    #[test]
    fn go_sumdb_note_vector_signs_and_opens() {
        let signer = NoteSigner::parse(GO_SKEY).unwrap();
        assert_eq!(signer.verifier().to_line(), GO_VKEY);
        assert_eq!(signer.to_private_line(), GO_SKEY);
        assert_eq!(signer.sign(GO_TEXT).unwrap(), go_note());
        let v = NoteVerifier::parse(GO_VKEY).unwrap();
        assert_eq!(v.open(&go_note()).unwrap(), GO_TEXT);
        assert!(!format!("{signer:?}").contains("AYEKFALV"));
    }

    #[test]
    fn tampered_notes_and_keys_are_refused() {
        let v = NoteVerifier::parse(GO_VKEY).unwrap();
        let note = go_note();
        assert_eq!(
            v.open(&note.replace("cryptography", "cryptographY")),
            Err(NoteError::BadSignature)
        );
        // Another key hash under the same name: not this key's line.
        assert_eq!(
            v.open(&note.replace("x08go", "x08gp")),
            Err(NoteError::NotSignedByKey)
        );
        assert!(v.open(&note.replace("\n\n", "\n")).is_err());
        assert!(v.open(&note.replace('—', "-")).is_err());
        assert!(v.open(GO_TEXT).is_err());
        // Every single-character change of the key line is refused.
        for i in 0..GO_VKEY.len() {
            let mut bytes = GO_VKEY.as_bytes().to_vec();
            bytes[i] ^= 0x01;
            if let Ok(s) = String::from_utf8(bytes) {
                assert!(NoteVerifier::parse(&s).is_err(), "{s}");
            }
        }
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(KeyError::WrongKeyHash)
        );
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+c74f20a3+AhpczQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(KeyError::UnknownAlgorithm)
        );
    }

    #[test]
    fn checkpoints_round_trip_and_refuse_another_key() {
        let signer = NoteSigner::from_seed("gateway.example/log", &[7; 32]).unwrap();
        let cp = Checkpoint {
            origin: "gateway.example/log".into(),
            size: 5,
            root: [9; 32],
        };
        let note = cp.sign(&signer).unwrap();
        assert!(note.starts_with(
            "gateway.example/log\n5\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n\n— gateway.example/log "
        ));
        assert_eq!(Checkpoint::open(&note, signer.verifier()).unwrap(), cp);
        let other = NoteSigner::from_seed("gateway.example/log", &[8; 32]).unwrap();
        assert_eq!(
            Checkpoint::open(&note, other.verifier()),
            Err(NoteError::NotSignedByKey)
        );
        for bad in ["o\n05\nAA==\n", "o\n-1\nAA==\n", "o\n1\nAA==\n", "\n1\n"] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad}");
        }
    }
}

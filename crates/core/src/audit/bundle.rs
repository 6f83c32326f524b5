//! The self-contained export an auditor takes away: a signed checkpoint, a
//! range of entries (the exact bytes, base64, and the event they decode to)
//! and each entry's audit path to the checkpoint's root. `verify` needs
//! nothing else but the log's public key, and names the first entry that
//! does not hold.
//!
//! Architecture invariant: pure; verification never panics on any input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::checkpoint::{Checkpoint, NoteError, NoteVerifier};
use super::merkle::{self, Hash, ProofError, Tree};

/// The value of `format`: a reader refuses what it does not know.
pub const FORMAT: &str = "registry-gateway-audit-bundle/1";

/// One entry of the log, as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEntry {
    pub index: u64,
    /// The exact entry bytes the leaf hash is computed over, base64.
    pub leaf: String,
    /// The same bytes decoded, for reading; must equal the leaf.
    pub event: serde_json::Value,
    /// The RFC 9162 audit path to the checkpoint's root, base64 hashes.
    pub inclusion: Vec<String>,
}

/// The export: `entries` are `start..end` of the log whose checkpoint is
/// `checkpoint` (a signed note).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    pub checkpoint: String,
    pub start: u64,
    pub end: u64,
    pub entries: Vec<BundleEntry>,
}

/// Why a bundle does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BundleError {
    /// Not a bundle at all (JSON, fields, format).
    #[error("not a bundle: {0}")]
    Malformed(String),
    #[error("the checkpoint does not verify: {0}")]
    Checkpoint(#[from] NoteError),
    /// The range does not fit the checkpoint's tree.
    #[error("entries {start}..{end} are not in a tree of {size}")]
    Range { start: u64, end: u64, size: u64 },
    /// The first entry that does not hold, by its place in the log.
    #[error("entry {index}: {problem}")]
    Entry { index: u64, problem: EntryProblem },
}

/// What is wrong with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EntryProblem {
    #[error("missing (the bundle ends before it)")]
    Missing,
    #[error("out of place: another index stands where it should be")]
    OutOfPlace,
    #[error("its leaf is not base64")]
    LeafEncoding,
    #[error("its decoded event is not its leaf bytes")]
    EventMismatch,
    #[error("its audit path is not base64 hashes")]
    ProofEncoding,
    #[error("its leaf hash is not in the checkpoint's tree at this index")]
    NotIncluded,
}

/// What a bundle proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub checkpoint: Checkpoint,
    pub start: u64,
    pub end: u64,
}

/// Builds the bundle of entries `start..start + leaves.len()` against the
/// signed `note` of the checkpoint of `size` entries, over `tree` (the log
/// at least to that size).
pub fn build(
    note: &str,
    size: u64,
    tree: &Tree,
    start: u64,
    leaves: &[Vec<u8>],
) -> Result<Bundle, ProofError> {
    let mut entries = Vec::with_capacity(leaves.len());
    for (index, leaf) in (start..).zip(leaves) {
        let path = tree.inclusion_proof(index, size)?;
        entries.push(BundleEntry {
            index,
            leaf: B64.encode(leaf),
            event: serde_json::from_slice(leaf).unwrap_or(serde_json::Value::Null),
            inclusion: path.iter().map(|h| B64.encode(h)).collect(),
        });
    }
    Ok(Bundle {
        format: FORMAT.to_string(),
        checkpoint: note.to_string(),
        start,
        end: start + leaves.len() as u64,
        entries,
    })
}

/// Verifies a bundle file's bytes with the log's verifier key.
pub fn verify(bytes: &[u8], verifier: &NoteVerifier) -> Result<Verified, BundleError> {
    let bundle: Bundle = serde_json::from_slice(bytes).map_err(|e| {
        BundleError::Malformed(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    if bundle.format != FORMAT {
        return Err(BundleError::Malformed(format!("format is not {FORMAT}")));
    }
    let checkpoint = Checkpoint::open(&bundle.checkpoint, verifier)?;
    let (start, end, size) = (bundle.start, bundle.end, checkpoint.size);
    if start > end || end > size {
        return Err(BundleError::Range { start, end, size });
    }
    let fail = |index, problem| BundleError::Entry { index, problem };
    for (index, entry) in (start..end).zip(
        bundle
            .entries
            .iter()
            .map(Some)
            .chain(std::iter::repeat(None)),
    ) {
        let entry = entry.ok_or(fail(index, EntryProblem::Missing))?;
        verify_entry(index, entry, &checkpoint).map_err(|p| fail(index, p))?;
    }
    if bundle.entries.len() as u64 > end - start {
        return Err(fail(end, EntryProblem::OutOfPlace));
    }
    Ok(Verified {
        checkpoint,
        start,
        end,
    })
}

fn verify_entry(
    index: u64,
    entry: &BundleEntry,
    checkpoint: &Checkpoint,
) -> Result<(), EntryProblem> {
    if entry.index != index {
        return Err(EntryProblem::OutOfPlace);
    }
    let leaf = B64
        .decode(&entry.leaf)
        .map_err(|_| EntryProblem::LeafEncoding)?;
    let decoded: serde_json::Value =
        serde_json::from_slice(&leaf).map_err(|_| EntryProblem::EventMismatch)?;
    if decoded != entry.event {
        return Err(EntryProblem::EventMismatch);
    }
    let path = entry
        .inclusion
        .iter()
        .map(|h| {
            B64.decode(h)
                .ok()
                .and_then(|b| Hash::try_from(b).ok())
                .ok_or(EntryProblem::ProofEncoding)
        })
        .collect::<Result<Vec<Hash>, _>>()?;
    merkle::verify_inclusion(
        index,
        checkpoint.size,
        &merkle::leaf_hash(&leaf),
        &path,
        &checkpoint.root,
    )
    .map_err(|_| EntryProblem::NotIncluded)
}

#[cfg(test)]
mod tests {
    use super::super::checkpoint::NoteSigner;
    use super::*;

    fn events(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!(r#"{{"version":1,"kind":"record.accepted","n":{i}}}"#).into_bytes())
            .collect()
    }

    fn fixture() -> (NoteSigner, Vec<u8>) {
        let signer = NoteSigner::from_seed("test.example/log", &[3; 32]).unwrap();
        let leaves = events(7);
        let tree = Tree::new(leaves.iter().map(|l| merkle::leaf_hash(l)).collect());
        let cp = Checkpoint {
            origin: "test.example/log".into(),
            size: 7,
            root: tree.root(7).unwrap(),
        };
        let note = cp.sign(&signer).unwrap();
        let bundle = build(&note, 7, &tree, 2, &leaves[2..6]).unwrap();
        (signer, serde_json::to_vec(&bundle).unwrap())
    }

    fn entry_of(bytes: &[u8], at: usize) -> Option<u64> {
        // The entry whose object spans byte `at`: the last `{"index":` that
        // starts at or before it.
        let p = bytes
            .windows(9)
            .enumerate()
            .filter(|(p, w)| *p <= at && *w == b"{\"index\":")
            .map(|(p, _)| p)
            .next_back()?;
        let digits: String = bytes[p + 9..]
            .iter()
            .map(|&b| b as char)
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    }

    #[test]
    fn a_bundle_verifies() {
        let (signer, bytes) = fixture();
        let v = verify(&bytes, signer.verifier()).unwrap();
        assert_eq!((v.start, v.end, v.checkpoint.size), (2, 6, 7));
    }

    #[test]
    fn every_flipped_byte_fails_and_names_its_entry() {
        let (signer, bytes) = fixture();
        let first_entry = bytes.windows(9).position(|w| w == b"{\"index\":").unwrap();
        for at in 0..bytes.len() {
            for bit in [0x01u8, 0x20, 0x80] {
                let mut bad = bytes.clone();
                bad[at] ^= bit;
                let Err(err) = verify(&bad, signer.verifier()) else {
                    panic!("byte {at} ^ {bit:#x} verified");
                };
                if at > first_entry + 9 {
                    if let BundleError::Entry { index, .. } = err {
                        assert_eq!(Some(index), entry_of(&bytes, at), "byte {at}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_dropped_or_reordered_entry_is_named() {
        let (signer, bytes) = fixture();
        let mut bundle: Bundle = serde_json::from_slice(&bytes).unwrap();
        let mut dropped = bundle.clone();
        dropped.entries.remove(1);
        let err = verify(&serde_json::to_vec(&dropped).unwrap(), signer.verifier()).unwrap_err();
        assert_eq!(
            err,
            BundleError::Entry {
                index: 3,
                problem: EntryProblem::OutOfPlace
            }
        );
        let mut last = bundle.clone();
        last.entries.pop();
        let err = verify(&serde_json::to_vec(&last).unwrap(), signer.verifier()).unwrap_err();
        assert_eq!(
            err,
            BundleError::Entry {
                index: 5,
                problem: EntryProblem::Missing
            }
        );
        bundle.entries.swap(0, 1);
        let err = verify(&serde_json::to_vec(&bundle).unwrap(), signer.verifier()).unwrap_err();
        assert_eq!(
            err,
            BundleError::Entry {
                index: 2,
                problem: EntryProblem::OutOfPlace
            }
        );
        // Swapped and renumbered: the paths give them away.
        bundle.entries[0].index = 2;
        bundle.entries[1].index = 3;
        let err = verify(&serde_json::to_vec(&bundle).unwrap(), signer.verifier()).unwrap_err();
        assert_eq!(
            err,
            BundleError::Entry {
                index: 2,
                problem: EntryProblem::NotIncluded
            }
        );
    }
}

//! The exchange log's Merkle tree, as RFC 9162 section 2.1 defines it (the
//! hashing is RFC 6962's): tree head, inclusion and consistency proofs, and
//! their verification.
//!
//! Architecture invariant: pure, and total: every function answers an error
//! for an impossible index or size instead of panicking, because proofs come
//! from outside (an auditor's bundle, a query string).

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A SHA-256 hash: of a leaf, a node or a whole tree.
pub type Hash = [u8; 32];

/// Why a proof cannot be made or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofError {
    /// The index or sizes name no proof (index past the tree, first > second).
    #[error("no proof for index or size {index} in a tree of {size}")]
    OutOfRange { index: u64, size: u64 },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has the wrong length")]
    WrongLength,
    /// The hashes recomputed from the proof are not the expected root(s).
    #[error("the proof does not lead to the expected root")]
    Mismatch,
}

/// RFC 6962 leaf hash: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// RFC 6962 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: the hash of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (n >= 2): where MTH splits.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[n]) over the leaf hashes of the tree, in log order.
pub fn root(leaves: &[Hash]) -> Hash {
    Tree::new(leaves.to_vec())
        .root(leaves.len() as u64)
        .unwrap_or_else(|_| empty_root())
}

/// PATH(m, D[n]): the audit path proving leaf `index` is in the tree of
/// `leaves`.
pub fn inclusion_proof(index: u64, leaves: &[Hash]) -> Result<Vec<Hash>, ProofError> {
    Tree::new(leaves.to_vec()).inclusion_proof(index, leaves.len() as u64)
}

/// PROOF(m, D[n]): the consistency proof from the tree of the first `first`
/// leaves to the tree of all `leaves`.
pub fn consistency_proof(first: u64, leaves: &[Hash]) -> Result<Vec<Hash>, ProofError> {
    Tree::new(leaves.to_vec()).consistency_proof(first, leaves.len() as u64)
}

/// The leaves of a log and every complete subtree's root above them, so that
/// the root, a path or a proof at any size up to the log's costs O(log² n)
/// hashes instead of O(n).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// `levels[l][i]`: the root of leaves `i * 2^l .. (i + 1) * 2^l`.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    pub fn new(leaves: Vec<Hash>) -> Tree {
        let mut levels = vec![leaves];
        while let Some(last) = levels.last().filter(|l| l.len() > 1) {
            let next: Vec<Hash> = last
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(next);
        }
        Tree { levels }
    }

    /// How many leaves the tree holds.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn leaf(&self, index: u64) -> Option<&Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?)
    }

    fn check(&self, index: u64, size: u64) -> Result<(usize, usize), ProofError> {
        if size > self.size() || index > size {
            return Err(ProofError::OutOfRange { index, size });
        }
        Ok((index as usize, size as usize))
    }

    /// MTH of the tree's first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        let (_, n) = self.check(0, size)?;
        Ok(self.range_root(0, n))
    }

    /// MTH(D[lo..hi]). The RFC's recursion only ever asks for ranges whose
    /// left parts are complete subtrees aligned on their size, which the
    /// levels hold.
    fn range_root(&self, lo: usize, hi: usize) -> Hash {
        let n = hi - lo;
        if n == 0 {
            return empty_root();
        }
        if n.is_power_of_two() && lo % n == 0 {
            let level = n.trailing_zeros() as usize;
            return self.levels[level][lo >> level];
        }
        let k = split(n);
        node_hash(&self.range_root(lo, lo + k), &self.range_root(lo + k, hi))
    }

    /// PATH(index, D[size]).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        let (m, n) = self.check(index, size)?;
        if m >= n {
            return Err(ProofError::OutOfRange { index, size });
        }
        let mut path = Vec::new();
        self.path_into(m, 0, n, &mut path);
        Ok(path)
    }

    fn path_into(&self, m: usize, lo: usize, hi: usize, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path_into(m, lo, lo + k, out);
            out.push(self.range_root(lo + k, hi));
        } else {
            self.path_into(m - k, lo + k, hi, out);
            out.push(self.range_root(lo, lo + k));
        }
    }

    /// PROOF(first, D[second]); empty when `first` is 0 or `second`.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, ProofError> {
        let (m, n) = self.check(first, second)?;
        let mut proof = Vec::new();
        if m > 0 && m < n {
            self.subproof_into(m, 0, n, true, &mut proof);
        }
        Ok(proof)
    }

    fn subproof_into(&self, m: usize, lo: usize, hi: usize, whole: bool, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push(self.range_root(lo, hi));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof_into(m, lo, lo + k, whole, out);
            out.push(self.range_root(lo + k, hi));
        } else {
            self.subproof_into(m - k, lo + k, hi, false, out);
            out.push(self.range_root(lo, lo + k));
        }
    }
}

/// The root that an audit path leads to (RFC 9162 section 2.1.3.2, steps 1
/// to 4): the caller compares it with a root it trusts.
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    path: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

/// RFC 9162 section 2.1.3.2: leaf `index` with hash `leaf` is in the tree of
/// `size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    path: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if root_from_inclusion(index, size, leaf, path)? == *root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// RFC 9162 section 2.1.4.2: the tree of `first` leaves with root
/// `first_root` is a prefix of the tree of `second` leaves with root
/// `second_root`. The empty tree is a prefix of every tree; a tree is
/// consistent with itself only with the same root and an empty proof.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::OutOfRange {
            index: first,
            size: second,
        });
    }
    if first == 0 || first == second {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if first == 0 || first_root == second_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    let Some((head, rest)) = proof.split_first() else {
        return Err(ProofError::WrongLength);
    };
    // Step 2: when the first tree is a complete subtree, its root is the
    // proof's implicit first element.
    let (start, path): (Hash, &[Hash]) = if first.is_power_of_two() {
        (*first_root, proof)
    } else {
        (*head, rest)
    };
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (start, start);
    for c in path {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr == *first_root && sr == *second_root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Certificate Transparency reference vectors: eight leaves and the
    // roots of their first 1..8, as published in google/trillian's
    // merkle/log_verifier_test.go (commit 166e69e6), the same set the Go CT
    // implementation tests against.
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn ct_leaves() -> Vec<Hash> {
        LEAVES
            .iter()
            .map(|l| leaf_hash(&hex::decode(l).unwrap()))
            .collect()
    }

    /// The reference: pair neighbours level by level, carrying an odd last
    /// node up unchanged. A different computation from `root`'s recursion
    /// that yields the same MTH.
    fn naive_root(leaves: &[Hash]) -> Hash {
        if leaves.is_empty() {
            return empty_root();
        }
        let mut level = leaves.to_vec();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|c| {
                    if c.len() == 2 {
                        node_hash(&c[0], &c[1])
                    } else {
                        c[0]
                    }
                })
                .collect();
        }
        level[0]
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn roots_match_the_certificate_transparency_vectors() {
        let l = ct_leaves();
        for n in 1..=8 {
            assert_eq!(hex::encode(root(&l[..n])), ROOTS[n - 1], "size {n}");
            assert_eq!(naive_root(&l[..n]), root(&l[..n]));
        }
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn proofs_match_the_published_vectors() {
        let l = ct_leaves();
        // Inclusion: (leaf index, tree size, path) from the same file.
        let inclusion: [(u64, usize, Vec<&str>); 4] = [
            (
                0,
                8,
                vec![
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                vec![
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (2, 3, vec![ROOTS[1]]),
            (
                1,
                5,
                vec![
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (index, size, path) in inclusion {
            let path: Vec<Hash> = path.into_iter().map(h).collect();
            assert_eq!(inclusion_proof(index, &l[..size]).unwrap(), path);
            let i = index as usize;
            verify_inclusion(index, size as u64, &l[i], &path, &h(ROOTS[size - 1])).unwrap();
        }
        let consistency: [(u64, usize, Vec<&str>); 3] = [
            (
                1,
                8,
                vec![
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                vec![
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                vec![
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (first, size, proof) in consistency {
            let proof: Vec<Hash> = proof.into_iter().map(h).collect();
            assert_eq!(consistency_proof(first, &l[..size]).unwrap(), proof);
            let r1 = h(ROOTS[first as usize - 1]);
            let r2 = h(ROOTS[size - 1]);
            verify_consistency(first, size as u64, &r1, &r2, &proof).unwrap();
            assert!(verify_consistency(first, size as u64, &r2, &r1, &proof).is_err());
        }
    }

    /// Every proof at every size is made, verifies, and fails when anything
    /// about it changes.
    fn check_size(all: &[Hash], big: &Tree, n: usize, roots: &[Hash]) {
        let tree = &all[..n];
        let r = roots[n];
        assert_eq!(root(tree), r, "root of {n}");
        assert_eq!(
            big.root(n as u64).unwrap(),
            r,
            "root of {n} in a larger tree"
        );
        for (m, leaf) in tree.iter().enumerate() {
            let path = big.inclusion_proof(m as u64, n as u64).unwrap();
            let (mi, ni) = (m as u64, n as u64);
            verify_inclusion(mi, ni, leaf, &path, &r).unwrap();
            assert!(verify_inclusion(mi, ni, &all[n], &path, &r).is_err());
            assert!(verify_inclusion(mi ^ 1, ni, leaf, &path, &r).is_err() || n == 1);
            assert!(verify_inclusion(mi, ni * 2, leaf, &path, &r).is_err());
            let mut longer = path.clone();
            longer.push(r);
            assert!(verify_inclusion(mi, ni, leaf, &longer, &r).is_err());
        }
        for m in 1..=n {
            let proof = big.consistency_proof(m as u64, n as u64).unwrap();
            let (mi, ni) = (m as u64, n as u64);
            verify_consistency(mi, ni, &roots[m], &r, &proof).unwrap();
            if m < n {
                assert!(verify_consistency(mi, ni, &roots[m - 1], &r, &proof).is_err());
                assert!(verify_consistency(mi, ni, &roots[m], &roots[n - 1], &proof).is_err());
                assert!(verify_consistency(mi, ni, &roots[m], &r, &proof[1..]).is_err());
                let mut bad = proof.clone();
                bad[0][0] ^= 1;
                assert!(verify_consistency(mi, ni, &roots[m], &r, &bad).is_err());
            }
        }
    }

    #[test]
    fn proofs_at_every_size_up_to_300_and_some_larger() {
        let all = leaves(5000);
        let roots: Vec<Hash> = (0..=1030).map(|n| naive_root(&all[..n])).collect();
        let big = Tree::new(all.clone());
        for n in 1..=300 {
            check_size(&all, &big, n, &roots);
            // The slice functions agree with the shared tree.
            assert_eq!(
                inclusion_proof(n as u64 / 2, &all[..n]).unwrap(),
                big.inclusion_proof(n as u64 / 2, n as u64).unwrap()
            );
            assert_eq!(
                consistency_proof(n as u64 / 2, &all[..n]).unwrap(),
                big.consistency_proof(n as u64 / 2, n as u64).unwrap()
            );
        }
        for n in [513, 777, 1025] {
            check_size(&all, &big, n, &roots);
        }
    }

    #[test]
    fn impossible_requests_are_errors_not_panics() {
        let l = leaves(5);
        let r = root(&l);
        assert!(inclusion_proof(5, &l).is_err());
        assert!(inclusion_proof(0, &[]).is_err());
        assert!(consistency_proof(6, &l).is_err());
        assert!(verify_inclusion(0, 0, &l[0], &[], &r).is_err());
        assert!(verify_inclusion(u64::MAX, 3, &l[0], &[], &r).is_err());
        assert!(verify_consistency(3, 2, &r, &r, &[]).is_err());
        assert!(verify_consistency(2, 5, &r, &r, &[]).is_err());
        verify_consistency(0, 5, &empty_root(), &r, &[]).unwrap();
        verify_consistency(5, 5, &r, &r, &[]).unwrap();
        assert!(verify_consistency(5, 5, &r, &empty_root(), &[]).is_err());
        assert!(verify_consistency(5, 5, &r, &r, &[r]).is_err());
        assert!(verify_consistency(1, u64::MAX, &l[0], &r, &[r; 3]).is_err());
    }

    /// The worked example of docs/audit.md, computed: the doc must hold
    /// this block verbatim, so it cannot drift from the code.
    fn worked_example() -> String {
        use base64::Engine as _;
        let b64 = |h: &Hash| base64::engine::general_purpose::STANDARD.encode(h);
        let entries = ["a", "b", "c", "d", "e"];
        let l: Vec<Hash> = entries.iter().map(|e| leaf_hash(e.as_bytes())).collect();
        let mut out = String::new();
        for (i, e) in entries.iter().enumerate() {
            out += &format!(
                "leaf[{i}] = SHA-256(00 {}) = {}\n",
                hex::encode(e),
                hex::encode(l[i])
            );
        }
        let n01 = node_hash(&l[0], &l[1]);
        let n23 = node_hash(&l[2], &l[3]);
        let n03 = node_hash(&n01, &n23);
        out += &format!(
            "node[0..2] = SHA-256(01 leaf[0] leaf[1]) = {}\n",
            hex::encode(n01)
        );
        out += &format!(
            "node[2..4] = SHA-256(01 leaf[2] leaf[3]) = {}\n",
            hex::encode(n23)
        );
        out += &format!(
            "node[0..4] = SHA-256(01 node[0..2] node[2..4]) = {}\n",
            hex::encode(n03)
        );
        let r3 = node_hash(&n01, &l[2]);
        let r5 = node_hash(&n03, &l[4]);
        out += &format!(
            "root(3) = SHA-256(01 node[0..2] leaf[2]) = {}\n",
            hex::encode(r3)
        );
        out += &format!(
            "root(5) = SHA-256(01 node[0..4] leaf[4]) = {}\n",
            hex::encode(r5)
        );
        out += &format!("root(5), base64, as in the checkpoint: {}\n", b64(&r5));
        assert_eq!(root(&l[..3]), r3);
        assert_eq!(root(&l), r5);
        let path = inclusion_proof(2, &l).unwrap();
        assert_eq!(path, vec![l[3], n01, l[4]]);
        out += "inclusion(index 2, tree_size 5) = [leaf[3], node[0..2], leaf[4]]:\n";
        out += &format!("  {}\n", path.iter().map(b64).collect::<Vec<_>>().join(" "));
        let proof = consistency_proof(3, &l).unwrap();
        assert_eq!(proof, vec![l[2], l[3], n01, l[4]]);
        out += "consistency(first 3, second 5) = [leaf[2], leaf[3], node[0..2], leaf[4]]:\n";
        out += &format!(
            "  {}\n",
            proof.iter().map(b64).collect::<Vec<_>>().join(" ")
        );
        verify_inclusion(2, 5, &l[2], &path, &r5).unwrap();
        verify_consistency(3, 5, &r3, &r5, &proof).unwrap();
        out
    }

    #[test]
    fn the_worked_example_of_docs_audit_md_is_what_the_code_computes() {
        let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/audit.md");
        let doc = std::fs::read_to_string(doc_path).unwrap();
        let block = worked_example();
        assert!(
            doc.contains(&block),
            "docs/audit.md must contain this block verbatim:\n{block}"
        );
    }
}

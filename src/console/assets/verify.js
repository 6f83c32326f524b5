// Checks done in the browser, on bytes it hashed itself: C2SP signed notes
// (Ed25519, Web Crypto) and RFC 9162 inclusion proofs (SHA-256, Web Crypto).
// A served hash is never trusted: a leaf is hashed from the entry's bytes.

const enc = new TextEncoder();

export function fromBase64(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function toBase64(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** RFC 9162 leaf hash: SHA-256(0x00 || entry). */
export function leafHash(entry) {
  return sha256(concat(Uint8Array.of(0), entry));
}

function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

/**
 * RFC 9162 section 2.1.3.2: does `path` prove leaf `index` of a tree of
 * `size` leaves whose root is `root`, for this leaf hash?
 */
export async function verifyInclusion(index, size, leaf, path, root) {
  if (!(index >= 0 && index < size)) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}

/** A verifier key line: `<name>+<8 hex key hash>+<base64(0x01 || key)>`. */
export async function parseKey(line) {
  // The base64 key material may itself hold '+': split at the first two only.
  const m = line.trim().match(/^([^+]+)\+([0-9a-f]{8})\+(.+)$/);
  if (!m) throw new Error("key-malformed");
  const [, name, hash, material] = m;
  const bytes = fromBase64(material);
  if (bytes.length !== 33 || bytes[0] !== 1) throw new Error("key-malformed");
  const raw = bytes.slice(1);
  // The key hash binds the name to the key: SHA-256(name || "\n" || 0x01 || key)[..4].
  const digest = await sha256(concat(enc.encode(name + "\n"), Uint8Array.of(1), raw));
  if (toHex(digest.slice(0, 4)) !== hash) throw new Error("key-hash");
  const key = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
  return { name, hash, key, line: line.trim() };
}

/**
 * Opens a C2SP signed note with `verifier` (from parseKey) and reads its
 * tlog-checkpoint body. Throws unless a signature line of this key verifies.
 */
export async function openCheckpoint(note, verifier) {
  const at = note.lastIndexOf("\n\n");
  if (at < 0) throw new Error("note-malformed");
  const text = note.slice(0, at + 1);
  const sigs = note.slice(at + 2).split("\n").filter((l) => l !== "");
  let verified = false;
  for (const line of sigs) {
    if (!line.startsWith("\u2014 ")) throw new Error("note-malformed");
    const [name, blob64] = line.slice(2).split(" ");
    const blob = fromBase64(blob64 || "");
    if (name !== verifier.name || blob.length !== 68 || toHex(blob.slice(0, 4)) !== verifier.hash) continue;
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, verifier.key, blob.slice(4), enc.encode(text));
    if (!ok) throw new Error("signature");
    verified = true;
  }
  if (!verified) throw new Error("not-signed");
  const lines = text.split("\n");
  if (lines.length < 4 || !/^[0-9]+$/.test(lines[1])) throw new Error("checkpoint-malformed");
  const root = fromBase64(lines[2]);
  if (root.length !== 32) throw new Error("checkpoint-malformed");
  return { origin: lines[0], size: Number(lines[1]), root, rootB64: lines[2] };
}

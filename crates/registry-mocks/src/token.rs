//! Small pieces the mocks share: signed JWTs that expire (HS256 with a key
//! only the mock knows: the gateway reads `exp` and never checks the
//! signature), base64, form and cookie parsing, and deterministic ids.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::lock;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn encode_with(alphabet: &[u8; 64], bytes: &[u8], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        let symbols = chunk.len() + 1;
        for i in 0..4 {
            if i < symbols {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    encode_with(B64, bytes, true)
}

pub(crate) fn base64url(bytes: &[u8]) -> String {
    encode_with(B64URL, bytes, false)
}

/// Decodes standard or URL-safe base64, padded or not.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenError {
    Missing,
    Malformed,
    BadSignature,
    Expired,
    Revoked,
}

impl TokenError {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenError::Missing => "token_missing",
            TokenError::Malformed => "token_malformed",
            TokenError::BadSignature => "token_signature",
            TokenError::Expired => "token_expired",
            TokenError::Revoked => "token_revoked",
        }
    }
}

/// Issues and checks the JWTs of one mock.
pub(crate) struct Issuer {
    key: [u8; 32],
    lifetime: Duration,
    issued: AtomicU64,
    revoked: Mutex<HashSet<String>>,
}

impl Issuer {
    pub fn new(lifetime: Duration) -> Issuer {
        // A fresh key per mock: its tokens mean nothing to another mock.
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(Uuid::new_v4().as_bytes());
        Issuer {
            key,
            lifetime,
            issued: AtomicU64::new(0),
            revoked: Mutex::new(HashSet::new()),
        }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A JWT with `iat`, `exp`, `jti` and the given claims.
    pub fn issue(&self, now: DateTime<Utc>, claims: Value) -> String {
        let n = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        let mut body = match claims {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let iat = now.timestamp();
        let life = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        body.insert("iat".into(), json!(iat));
        body.insert("exp".into(), json!(iat.saturating_add(life)));
        body.insert("jti".into(), json!(format!("mock-{n}")));
        let header = base64url(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = base64url(Value::Object(body).to_string().as_bytes());
        let signing_input = format!("{header}.{payload}");
        let signature = base64url(&hmac_sha256(&self.key, signing_input.as_bytes()));
        format!("{signing_input}.{signature}")
    }

    /// The claims of a token this mock issued that is still valid at `now`.
    pub fn verify(&self, token: Option<&str>, now: DateTime<Utc>) -> Result<Value, TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let expected = hmac_sha256(&self.key, format!("{header}.{payload}").as_bytes());
        if base64_decode(signature).as_deref() != Some(&expected[..]) {
            return Err(TokenError::BadSignature);
        }
        let claims: Value = base64_decode(payload)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        let exp = claims["exp"].as_i64().ok_or(TokenError::Malformed)?;
        if now.timestamp() >= exp {
            return Err(TokenError::Expired);
        }
        let jti = claims["jti"].as_str().unwrap_or_default();
        if lock(&self.revoked).contains(jti) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    pub fn revoke(&self, claims: &Value) {
        if let Some(jti) = claims["jti"].as_str() {
            lock(&self.revoked).insert(jti.to_string());
        }
    }
}

/// `a=1&b=x+y` -> pairs, percent-decoded; undecodable pairs are dropped.
pub(crate) fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The first value of `name`.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `Basic dXNlcjpwYXNz` -> ("user", "pass").
pub(crate) fn basic_credentials(authorization: Option<&str>) -> Option<(String, String)> {
    let encoded = authorization?.strip_prefix("Basic ")?.trim();
    let decoded = String::from_utf8(base64_decode(encoded)?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// A cookie's value from a `Cookie` header.
pub(crate) fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Deterministic ids and codes from a seed and a counter.
pub(crate) struct Ids {
    seed: u64,
    next: AtomicU64,
}

impl Ids {
    pub fn new(seed: u64) -> Ids {
        Ids {
            seed,
            next: AtomicU64::new(0),
        }
    }

    /// 1, 2, ...
    pub fn next_seq(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn bytes(&self, purpose: &str, n: u64) -> [u8; 32] {
        Sha256::new()
            .chain_update(self.seed.to_be_bytes())
            .chain_update(purpose.as_bytes())
            .chain_update(n.to_be_bytes())
            .finalize()
            .into()
    }

    /// A version-4-shaped UUID derived from (seed, purpose, n).
    pub fn uuid(&self, purpose: &str, n: u64) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&self.bytes(purpose, n)[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// `len` characters of A-Z and 0-9, like OpenCRVS tracking ids ("TFY9FK").
    pub fn code(&self, purpose: &str, n: u64, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        self.bytes(purpose, n)
            .iter()
            .take(len)
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-10-19T08:00:00Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tokens_expire_and_cannot_be_forged() {
        let issuer = Issuer::new(Duration::from_secs(600));
        let token = issuer.issue(now(), json!({"sub": "client"}));
        let claims = issuer.verify(Some(&token), now()).unwrap();
        assert_eq!(claims["exp"], json!(now().timestamp() + 600));
        let later = now() + chrono::TimeDelta::seconds(600);
        assert_eq!(issuer.verify(Some(&token), later), Err(TokenError::Expired));
        let other = Issuer::new(Duration::from_secs(600));
        assert_eq!(
            other.verify(Some(&token), now()),
            Err(TokenError::BadSignature)
        );
        issuer.revoke(&claims);
        assert_eq!(issuer.verify(Some(&token), now()), Err(TokenError::Revoked));
        assert_eq!(issuer.verify(None, now()), Err(TokenError::Missing));
    }

    #[test]
    fn forms_cookies_and_basic_auth_parse() {
        let pairs = parse_form("grant_type=client_credentials&client_id=a%2Fb&x=1+2");
        assert_eq!(param(&pairs, "client_id"), Some("a/b"));
        assert_eq!(param(&pairs, "x"), Some("1 2"));
        assert_eq!(
            cookie(Some("a=1; CSRF-TOKEN=xyz"), "CSRF-TOKEN"),
            Some("xyz")
        );
        assert_eq!(
            basic_credentials(Some("Basic dXNlcjpwYXNz")),
            Some(("user".into(), "pass".into()))
        );
    }

    #[test]
    fn ids_are_deterministic_per_seed() {
        let a = Ids::new(7);
        let b = Ids::new(7);
        assert_eq!(a.code("tracking", 1, 6), b.code("tracking", 1, 6));
        assert_ne!(a.code("tracking", 1, 6), a.code("tracking", 2, 6));
        assert_eq!(a.uuid("event", 1).get_version_num(), 4);
    }
}

//! A cached credential (an OAuth access token, a Primero JWT or session)
//! shared by every send of one transport. Renewed at 80 % of its lifetime,
//! and on demand when the registry refuses it; single-flight: concurrent
//! sends wait for one fetch instead of each asking for a token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Client;
use tokio::sync::Mutex;

use super::{Clock, SendError};

/// Where credentials come from (a token endpoint, a login).
#[async_trait]
pub(super) trait TokenSource: Send + Sync {
    async fn fetch(&self, client: &Client, now: DateTime<Utc>) -> Result<Fetched, SendError>;
}

/// What a fetch returned.
pub(super) struct Fetched {
    pub value: String,
    /// The lifetime the answer stated (`expires_in`); otherwise read from the JWT.
    pub expires_in: Option<Duration>,
}

/// A credential handed to one send. The generation tells a refused
/// credential from one another send has already renewed.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub value: String,
    generation: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(generation {})", self.generation)
    }
}

struct Held {
    token: Token,
    renew_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

pub(super) struct TokenCache {
    source: Box<dyn TokenSource>,
    clock: Clock,
    held: Mutex<Option<Held>>,
    generations: AtomicU64,
}

impl TokenCache {
    pub fn new(source: impl TokenSource + 'static, clock: Clock) -> TokenCache {
        TokenCache {
            source: Box::new(source),
            clock,
            held: Mutex::new(None),
            generations: AtomicU64::new(0),
        }
    }

    /// The cached credential, fetched first when there is none or it is due for renewal.
    pub async fn current(&self, client: &Client) -> Result<Token, SendError> {
        let mut held = self.held.lock().await;
        let now = self.clock.now();
        if let Some(h) = held.as_ref()
            && h.renew_at.is_none_or(|at| now < at)
        {
            return Ok(h.token.clone());
        }
        match self.fetch(client, now).await {
            Ok(fresh) => Ok(Self::keep(&mut held, fresh)),
            // A renewal that fails early leaves a token that still works.
            Err(e) => match held.as_ref() {
                Some(h) if h.expires_at.is_some_and(|at| now < at) => Ok(h.token.clone()),
                _ => Err(e),
            },
        }
    }

    /// A new credential after the registry refused `refused`; if another send
    /// already replaced it, that one.
    pub async fn renew(&self, client: &Client, refused: &Token) -> Result<Token, SendError> {
        let mut held = self.held.lock().await;
        if let Some(h) = held.as_ref()
            && h.token.generation != refused.generation
        {
            return Ok(h.token.clone());
        }
        *held = None;
        let fresh = self.fetch(client, self.clock.now()).await?;
        Ok(Self::keep(&mut held, fresh))
    }

    async fn fetch(&self, client: &Client, now: DateTime<Utc>) -> Result<Held, SendError> {
        let fetched = self.source.fetch(client, now).await?;
        let lifetime = fetched
            .expires_in
            .or_else(|| jwt_lifetime(&fetched.value, now));
        // JWT times are whole seconds: a token issued at 10.9 s with a 2 s life
        // expires at 12 s, not 12.9 s. Count from `iat` when the issuer's clock
        // agrees with ours (within a minute), so renewal comes before expiry.
        let start = match fetched.expires_in {
            Some(_) => now,
            None => jwt_issued_at(&fetched.value)
                .filter(|iat| (now - *iat).num_seconds().abs() < 60)
                .map_or(now, |iat| iat.min(now)),
        };
        // A registry's number meets a Duration here: checked all the way (an
        // `expires_in` of u64::MAX seconds is a token that never needs renewing,
        // not an overflow that kills the delivery task).
        let after = |fraction: u32| {
            lifetime
                .and_then(|l| l.checked_mul(fraction))
                .and_then(|l| TimeDelta::from_std(l / 100).ok())
                .and_then(|d| start.checked_add_signed(d))
        };
        Ok(Held {
            token: Token {
                value: fetched.value,
                generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
            },
            renew_at: after(80),
            expires_at: after(100),
        })
    }

    fn keep(held: &mut Option<Held>, fresh: Held) -> Token {
        let token = fresh.token.clone();
        *held = Some(fresh);
        token
    }
}

fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let engine = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&engine.decode(payload).ok()?).ok()
}

/// A JWT's `iat`, if it has one.
fn jwt_issued_at(token: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(jwt_claims(token)?.get("iat")?.as_i64()?, 0)
}

/// The lifetime of a JWT from its claims: `exp - iat` (both the issuer's
/// clock, so skew does not matter), else `exp - now`. None when the value is
/// not a JWT or has no `exp`. The signature is not checked: the registry does.
pub(super) fn jwt_lifetime(token: &str, now: DateTime<Utc>) -> Option<Duration> {
    let claims = jwt_claims(token)?;
    let exp = claims.get("exp")?.as_i64()?;
    let start = claims
        .get("iat")
        .and_then(serde_json::Value::as_i64)
        .filter(|iat| *iat <= exp)
        .unwrap_or(now.timestamp());
    u64::try_from(exp.checked_sub(start)?)
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-10-19T08:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn jwt(claims: serde_json::Value) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.c2ln",
            engine.encode(br#"{"alg":"HS256"}"#),
            engine.encode(claims.to_string())
        )
    }

    #[test]
    fn a_jwt_lifetime_is_exp_minus_iat_or_exp_minus_now() {
        let t = now().timestamp();
        let both = jwt(serde_json::json!({"iat": t - 100, "exp": t + 500}));
        assert_eq!(jwt_lifetime(&both, now()), Some(Duration::from_secs(600)));
        let exp_only = jwt(serde_json::json!({"exp": t + 300}));
        assert_eq!(
            jwt_lifetime(&exp_only, now()),
            Some(Duration::from_secs(300))
        );
        let expired = jwt(serde_json::json!({"exp": t - 1}));
        assert_eq!(jwt_lifetime(&expired, now()), None);
        assert_eq!(jwt_lifetime("not-a-jwt", now()), None);
        assert_eq!(jwt_lifetime("a.%%%.c", now()), None);
        assert_eq!(jwt_lifetime(&jwt(serde_json::json!({})), now()), None);
    }

    /// Counts fetches; each token says which fetch made it.
    struct Counting {
        fetches: Arc<AtomicU32>,
        expires_in: Option<Duration>,
    }

    #[async_trait]
    impl TokenSource for Counting {
        async fn fetch(&self, _client: &Client, _now: DateTime<Utc>) -> Result<Fetched, SendError> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Fetched {
                value: format!("token-{n}"),
                expires_in: self.expires_in,
            })
        }
    }

    fn cache(
        expires_in: Option<Duration>,
    ) -> (
        Arc<TokenCache>,
        Arc<AtomicU32>,
        Arc<std::sync::Mutex<DateTime<Utc>>>,
    ) {
        let fetches = Arc::new(AtomicU32::new(0));
        let time = Arc::new(std::sync::Mutex::new(now()));
        let clock_time = time.clone();
        let clock = Clock::from_fn(move || *clock_time.lock().unwrap());
        let source = Counting {
            fetches: fetches.clone(),
            expires_in,
        };
        (Arc::new(TokenCache::new(source, clock)), fetches, time)
    }

    #[tokio::test]
    async fn renewed_at_80_percent_of_its_lifetime() {
        let (cache, fetches, time) = cache(Some(Duration::from_secs(600)));
        let client = Client::new();
        assert_eq!(cache.current(&client).await.unwrap().value, "token-1");
        *time.lock().unwrap() = now() + TimeDelta::seconds(479);
        assert_eq!(cache.current(&client).await.unwrap().value, "token-1");
        *time.lock().unwrap() = now() + TimeDelta::seconds(480);
        assert_eq!(cache.current(&client).await.unwrap().value, "token-2");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_absurd_lifetime_is_no_overflow() {
        for seconds in [u64::MAX, u64::MAX / 80, i64::MAX as u64] {
            let (cache, fetches, time) = cache(Some(Duration::from_secs(seconds)));
            let client = Client::new();
            assert_eq!(cache.current(&client).await.unwrap().value, "token-1");
            *time.lock().unwrap() = now() + TimeDelta::days(365 * 100);
            // Kept (or fetched again), but never a panic.
            assert!(cache.current(&client).await.is_ok());
            assert!(fetches.load(Ordering::SeqCst) >= 1);
        }
    }

    #[tokio::test]
    async fn concurrent_sends_share_one_fetch_and_one_renewal() {
        let (cache, fetches, _) = cache(None);
        let client = Client::new();
        let tokens = futures::future::join_all(
            (0..16).map(|_| async { cache.current(&client).await.unwrap() }),
        )
        .await;
        assert!(tokens.iter().all(|t| t.value == "token-1"));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Every send that saw token-1 refused asks for a renewal: one fetch.
        let renewed = futures::future::join_all(
            tokens
                .iter()
                .map(|t| async { cache.renew(&client, t).await.unwrap() }),
        )
        .await;
        assert!(renewed.iter().all(|t| t.value == "token-2"));
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }
}

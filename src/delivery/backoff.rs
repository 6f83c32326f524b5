//! When to try again: exponential backoff with full jitter, capped, unless the
//! registry said when (Retry-After), which wins.

use std::time::Duration;

use rand::Rng;

use crate::config::RetryConfig;

/// The ceiling of the backoff before `attempt` + 1: `initial x 2^(attempt-1)`, capped.
pub fn ceiling(retry: &RetryConfig, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(32);
    retry
        .initial_backoff
        .saturating_mul(1u32 << doublings.min(31))
        .min(retry.max_backoff)
}

/// Full jitter (a uniform draw in `[0, ceiling]`), so that many deliveries
/// failing together do not come back together.
pub fn delay(retry: &RetryConfig, attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(after) = retry_after {
        return after;
    }
    let cap = ceiling(retry, attempt).as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(0..=cap))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn retry() -> RetryConfig {
        RetryConfig {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            ..RetryConfig::default()
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let r = retry();
        assert_eq!(ceiling(&r, 1), Duration::from_millis(500));
        assert_eq!(ceiling(&r, 2), Duration::from_secs(1));
        assert_eq!(ceiling(&r, 4), Duration::from_secs(4));
        assert_eq!(ceiling(&r, 8), Duration::from_secs(60));
        assert_eq!(ceiling(&r, u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn retry_after_wins() {
        assert_eq!(
            delay(&retry(), 3, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }

    proptest! {
        #[test]
        fn jitter_stays_within_the_ceiling(attempt in 1u32..100) {
            let r = retry();
            prop_assert!(delay(&r, attempt, None) <= ceiling(&r, attempt));
        }
    }

    #[test]
    fn jitter_spreads() {
        let r = retry();
        let draws: std::collections::BTreeSet<_> = (0..50).map(|_| delay(&r, 6, None)).collect();
        assert!(draws.len() > 10, "full jitter should spread retries");
    }
}

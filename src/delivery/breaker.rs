//! Circuit breaker per destination: after `threshold` consecutive failures
//! the destination is left alone for `cooldown`; then one probe goes, and its
//! outcome closes the breaker or opens it again.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakerState {
    Closed,
    Open {
        until: DateTime<Utc>,
    },
    /// The cooldown is over and one probe is in flight; if it has not
    /// answered by `deadline` (its worker stopped), another may go.
    HalfOpen {
        deadline: DateTime<Utc>,
    },
}

pub struct Breaker {
    threshold: u32,
    cooldown: TimeDelta,
    inner: Mutex<Inner>,
}

struct Inner {
    state: BreakerState,
    failures: u32,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown: TimeDelta::from_std(cooldown).unwrap_or(TimeDelta::MAX),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
            }),
        }
    }

    #[cfg(test)]
    fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// Until when nothing may be sent; None lets one request through (and,
    /// after the cooldown, makes it the probe).
    pub fn blocked_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut inner = self.lock();
        let blocked = peek(inner.state, now);
        if blocked.is_none() && inner.state != BreakerState::Closed {
            inner.state = BreakerState::HalfOpen {
                deadline: now + self.cooldown,
            };
        }
        blocked
    }

    /// Like [`Breaker::blocked_until`], without taking the probe.
    pub fn peek(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        peek(self.lock().state, now)
    }

    pub fn success(&self) {
        let mut inner = self.lock();
        inner.failures = 0;
        inner.state = BreakerState::Closed;
    }

    /// A failure of the destination (not of one record). True if it opened the breaker.
    pub fn failure(&self, now: DateTime<Utc>) -> bool {
        let mut inner = self.lock();
        inner.failures = inner.failures.saturating_add(1);
        let probing = matches!(inner.state, BreakerState::HalfOpen { .. });
        let open = probing || inner.failures >= self.threshold;
        if open {
            inner.state = BreakerState::Open {
                until: now + self.cooldown,
            };
        }
        open
    }

    /// What the breaker holds at `now`, read only (takes no probe): for the
    /// operators' console.
    pub fn snapshot(&self, now: DateTime<Utc>) -> BreakerSnapshot {
        let inner = self.lock();
        let (state, until) = match inner.state {
            BreakerState::Closed => ("closed", None),
            BreakerState::Open { until } if now < until => ("open", Some(until)),
            // Cooldown over, no probe taken yet: the next request is the probe.
            BreakerState::Open { .. } => ("half_open", None),
            BreakerState::HalfOpen { deadline } => ("half_open", Some(deadline)),
        };
        BreakerSnapshot {
            state,
            until,
            failures: inner.failures,
            threshold: self.threshold,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A breaker's state as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BreakerSnapshot {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// Open: when the cooldown ends; half open: when the probe is given up.
    pub until: Option<DateTime<Utc>>,
    /// Consecutive failures of the destination.
    pub failures: u32,
    pub threshold: u32,
}

fn peek(state: BreakerState, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match state {
        BreakerState::Closed => None,
        BreakerState::Open { until } if now < until => Some(until),
        BreakerState::Open { .. } => None,
        // The probe's answer decides; others look again shortly.
        BreakerState::HalfOpen { deadline } if now < deadline => {
            Some((now + TimeDelta::milliseconds(200)).min(deadline))
        }
        BreakerState::HalfOpen { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn opens_after_threshold_probes_after_cooldown_and_closes_on_success() {
        let b = Breaker::new(3, Duration::from_secs(10));
        let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        assert!(!b.failure(t0));
        assert!(!b.failure(t0));
        assert_eq!(b.blocked_until(t0), None);
        assert!(b.failure(t0));
        let until = t0 + TimeDelta::seconds(10);
        assert_eq!(b.blocked_until(t0 + TimeDelta::seconds(9)), Some(until));
        // Cooldown over: peeking takes nothing; exactly one probe goes, the rest wait.
        assert_eq!(b.peek(until), None);
        assert_eq!(b.blocked_until(until), None);
        assert!(matches!(b.state(), BreakerState::HalfOpen { .. }));
        assert!(b.blocked_until(until).is_some());
        assert!(b.peek(until).is_some());
        // A probe that never answers does not hold the breaker forever.
        assert_eq!(b.blocked_until(until + TimeDelta::seconds(10)), None);
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.blocked_until(until), None);
    }

    #[test]
    fn a_snapshot_reads_the_state_without_taking_the_probe() {
        let b = Breaker::new(2, Duration::from_secs(10));
        let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        assert_eq!(b.snapshot(t0).state, "closed");
        b.failure(t0);
        assert_eq!(b.snapshot(t0).failures, 1);
        b.failure(t0);
        let open = b.snapshot(t0);
        assert_eq!(
            (open.state, open.until),
            ("open", Some(t0 + TimeDelta::seconds(10)))
        );
        let later = t0 + TimeDelta::seconds(10);
        assert_eq!(b.snapshot(later).state, "half_open");
        // The snapshot took nothing: the probe is still there to take.
        assert_eq!(b.blocked_until(later), None);
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let b = Breaker::new(1, Duration::from_secs(5));
        let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        assert!(b.failure(t0));
        let t1 = t0 + TimeDelta::seconds(5);
        assert_eq!(b.blocked_until(t1), None);
        assert!(b.failure(t1));
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t1 + TimeDelta::seconds(5)
            }
        );
    }
}

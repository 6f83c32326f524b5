//! The pace of one destination: when the next request may leave.
//!
//! A request leaves only when every one of these allows it: the registry is
//! not in a closed window, no Retry-After pause is running, the circuit breaker
//! lets it through, the day's quota is not spent, and the GCRA limiter
//! (governor) has a cell, so at most `rate x W + burst` requests leave in any
//! window W. The cap on requests in flight is the worker's semaphore.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::breaker::{Breaker, BreakerSnapshot};
use crate::config::{ClosedWindow, LimitsConfig, RetryConfig};

/// Why sending must wait, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Closed(DateTime<Utc>),
    RetryAfter(DateTime<Utc>),
    BreakerOpen(DateTime<Utc>),
    QuotaSpent(DateTime<Utc>),
}

impl Wait {
    pub fn until(self) -> DateTime<Utc> {
        match self {
            Wait::Closed(t) | Wait::RetryAfter(t) | Wait::BreakerOpen(t) | Wait::QuotaSpent(t) => t,
        }
    }
}

pub struct Pace {
    limits: LimitsConfig,
    limiter: Option<DefaultDirectRateLimiter>,
    state: Mutex<State>,
    pub breaker: Breaker,
}

#[derive(Default)]
struct State {
    paused_until: Option<DateTime<Utc>>,
    quota_day: Option<NaiveDate>,
    sent_today: u32,
}

impl Pace {
    pub fn new(limits: &LimitsConfig, retry: &RetryConfig) -> Pace {
        let limiter = limits.rate_per_second.map(|rate| {
            let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1));
            let burst = NonZeroU32::new(limits.burst).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::with_period(period)
                .expect("a positive period")
                .allow_burst(burst);
            RateLimiter::direct(quota)
        });
        Pace {
            limits: limits.clone(),
            limiter,
            state: Mutex::new(State::default()),
            breaker: Breaker::new(retry.breaker_failures, retry.breaker_cooldown),
        }
    }

    /// Nothing may be sent before `until` (a registry's Retry-After).
    pub fn pause_until(&self, until: DateTime<Utc>) {
        let mut state = lock(&self.state);
        if state.paused_until.is_none_or(|t| t < until) {
            state.paused_until = Some(until);
        }
    }

    /// What stops a request from leaving at `now`, if anything. Takes the
    /// breaker's probe when its cooldown is over: call it only for a request
    /// about to leave.
    pub fn blocked(&self, now: DateTime<Utc>) -> Option<Wait> {
        self.check(now, true)
    }

    /// [`Pace::blocked`] without taking the breaker's probe: whether it is
    /// worth claiming deliveries now.
    pub fn hint(&self, now: DateTime<Utc>) -> Option<Wait> {
        self.check(now, false)
    }

    fn check(&self, now: DateTime<Utc>, take_probe: bool) -> Option<Wait> {
        if let Some(end) = self.closed_until(now) {
            return Some(Wait::Closed(end));
        }
        {
            let state = lock(&self.state);
            if let Some(t) = state.paused_until
                && t > now
            {
                return Some(Wait::RetryAfter(t));
            }
        }
        if let Some(quota) = self.limits.daily_quota {
            let day = self.day(now);
            let state = lock(&self.state);
            if state.quota_day == Some(day) && state.sent_today >= quota {
                return Some(Wait::QuotaSpent(self.next_day_start(day)));
            }
        }
        let breaker = if take_probe {
            self.breaker.blocked_until(now)
        } else {
            self.breaker.peek(now)
        };
        breaker.map(Wait::BreakerOpen)
    }

    /// Wait for a GCRA cell: returns once one request may leave by the rate.
    pub async fn take_cell(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
    }

    /// Count a request against the day's quota.
    pub fn count_sent(&self, now: DateTime<Utc>) {
        let day = self.day(now);
        let mut state = lock(&self.state);
        if state.quota_day != Some(day) {
            state.quota_day = Some(day);
            state.sent_today = 0;
        }
        state.sent_today = state.sent_today.saturating_add(1);
    }

    /// What holds the destination at `now`, read only (no probe, no cell,
    /// no count): for the operators' console.
    pub fn snapshot(&self, now: DateTime<Utc>) -> PaceSnapshot {
        let day = self.day(now);
        let (paused_until, sent_today) = {
            let state = lock(&self.state);
            let sent = if state.quota_day == Some(day) {
                state.sent_today
            } else {
                0
            };
            (state.paused_until.filter(|t| *t > now), sent)
        };
        PaceSnapshot {
            rate_per_second: self.limits.rate_per_second,
            burst: self.limits.burst,
            max_in_flight: self.limits.max_in_flight,
            daily_quota: self.limits.daily_quota,
            sent_today,
            quota_resets_at: self.next_day_start(day),
            retry_after_until: paused_until,
            closed_until: self.closed_until(now),
            next_closed: self.next_closed(now),
            breaker: self.breaker.snapshot(now),
        }
    }

    /// The next closed window that starts after `now`, within a week.
    fn next_closed(&self, now: DateTime<Utc>) -> Option<ClosedSpan> {
        self.limits
            .closed
            .iter()
            .filter_map(|w| next_window(w, now))
            .min_by_key(|span| span.from)
    }

    fn day(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.limits.day_offset).date_naive()
    }

    fn next_day_start(&self, day: NaiveDate) -> DateTime<Utc> {
        let next = day.succ_opt().unwrap_or(day);
        next.and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(self.limits.day_offset).single())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The end of the closed window `now` falls in, if any.
    fn closed_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.limits
            .closed
            .iter()
            .filter_map(|w| window_end(w, now))
            .max()
    }
}

/// What holds a destination now, as the console shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PaceSnapshot {
    pub rate_per_second: Option<f64>,
    pub burst: u32,
    pub max_in_flight: u32,
    pub daily_quota: Option<u32>,
    /// Requests sent in the registry's current day.
    pub sent_today: u32,
    pub quota_resets_at: DateTime<Utc>,
    /// A registry's Retry-After pause still running.
    pub retry_after_until: Option<DateTime<Utc>>,
    /// The end of the closed window `now` falls in.
    pub closed_until: Option<DateTime<Utc>>,
    pub next_closed: Option<ClosedSpan>,
    pub breaker: BreakerSnapshot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ClosedSpan {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The first occurrence of `w` that starts after `now` (days 0..=7 ahead).
fn next_window(w: &ClosedWindow, now: DateTime<Utc>) -> Option<ClosedSpan> {
    let today = now.with_timezone(&w.offset).date_naive();
    (0..=7).find_map(|ahead| {
        let day = today.checked_add_days(chrono::Days::new(ahead))?;
        if !w.days.is_empty() && !w.days.contains(&day.weekday()) {
            return None;
        }
        let at = |t| {
            day.and_time(t)
                .and_local_timezone(w.offset)
                .single()
                .map(|t| t.with_timezone(&Utc))
        };
        let (from, to) = (at(w.from)?, at(w.to)?);
        (from > now).then_some(ClosedSpan { from, to })
    })
}

fn window_end(w: &ClosedWindow, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&w.offset);
    let time = local.time();
    let day_matches = w.days.is_empty() || w.days.contains(&local.weekday());
    if !day_matches || time < w.from || time >= w.to {
        return None;
    }
    Some(now + (w.to - time).max(TimeDelta::milliseconds(1)))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use chrono::{FixedOffset, NaiveTime, TimeZone, Weekday};

    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig {
            rate_per_second: Some(5.0),
            burst: 10,
            max_in_flight: 4,
            daily_quota: Some(3),
            day_offset: FixedOffset::east_opt(2 * 3600).unwrap(),
            closed: vec![ClosedWindow {
                days: vec![Weekday::Sun],
                from: NaiveTime::from_hms_opt(1, 0, 0).unwrap(),
                to: NaiveTime::from_hms_opt(3, 0, 0).unwrap(),
                offset: FixedOffset::east_opt(2 * 3600).unwrap(),
            }],
        }
    }

    #[test]
    fn closed_window_holds_until_its_end_in_its_own_offset() {
        let pace = Pace::new(&limits(), &RetryConfig::default());
        // Sunday 2026-11-29 01:30 EXT is Saturday 23:30 UTC.
        let inside = Utc.with_ymd_and_hms(2026, 11, 28, 23, 30, 0).unwrap();
        assert_eq!(
            pace.blocked(inside),
            Some(Wait::Closed(
                Utc.with_ymd_and_hms(2026, 11, 29, 1, 0, 0).unwrap()
            ))
        );
        let after = Utc.with_ymd_and_hms(2026, 11, 29, 1, 0, 0).unwrap();
        assert_eq!(pace.blocked(after), None);
        let other_day = Utc.with_ymd_and_hms(2026, 11, 27, 23, 30, 0).unwrap();
        assert_eq!(pace.blocked(other_day), None);
    }

    #[test]
    fn retry_after_pauses_and_only_extends() {
        let pace = Pace::new(&limits(), &RetryConfig::default());
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        pace.pause_until(now + TimeDelta::seconds(30));
        pace.pause_until(now + TimeDelta::seconds(5));
        assert_eq!(
            pace.blocked(now),
            Some(Wait::RetryAfter(now + TimeDelta::seconds(30)))
        );
        assert_eq!(pace.blocked(now + TimeDelta::seconds(30)), None);
    }

    #[test]
    fn a_snapshot_names_the_next_window_the_pause_and_the_quota() {
        let pace = Pace::new(&limits(), &RetryConfig::default());
        // Wednesday 2026-11-25 10:00 UTC: the next Sunday 01:00-03:00 EXT
        // is Saturday 2026-11-28 23:00 to 01:00 UTC.
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        pace.count_sent(now);
        pace.pause_until(now + TimeDelta::seconds(30));
        let s = pace.snapshot(now);
        assert_eq!(
            s.next_closed,
            Some(ClosedSpan {
                from: Utc.with_ymd_and_hms(2026, 11, 28, 23, 0, 0).unwrap(),
                to: Utc.with_ymd_and_hms(2026, 11, 29, 1, 0, 0).unwrap(),
            })
        );
        assert_eq!(s.closed_until, None);
        assert_eq!(s.retry_after_until, Some(now + TimeDelta::seconds(30)));
        assert_eq!((s.sent_today, s.daily_quota), (1, Some(3)));
        assert_eq!(s.breaker.state, "closed");
        // Read only: the quota counts what was sent, not what was looked at.
        assert_eq!(pace.snapshot(now).sent_today, 1);
        let inside = Utc.with_ymd_and_hms(2026, 11, 28, 23, 30, 0).unwrap();
        let s = pace.snapshot(inside);
        assert_eq!(
            s.closed_until,
            Some(Utc.with_ymd_and_hms(2026, 11, 29, 1, 0, 0).unwrap())
        );
        assert_eq!((s.sent_today, s.retry_after_until), (0, None));
    }

    #[test]
    fn quota_is_per_registry_day() {
        let pace = Pace::new(&limits(), &RetryConfig::default());
        // 21:30 UTC is 23:30 EXT: the EXT day ends at 22:00 UTC.
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 21, 30, 0).unwrap();
        for _ in 0..3 {
            assert_eq!(pace.blocked(now), None);
            pace.count_sent(now);
        }
        assert_eq!(
            pace.blocked(now),
            Some(Wait::QuotaSpent(
                Utc.with_ymd_and_hms(2026, 11, 25, 22, 0, 0).unwrap()
            ))
        );
        assert_eq!(pace.blocked(now + TimeDelta::minutes(31)), None);
    }
}

//! A registry's published limits: a token bucket for the rate, a cap on
//! requests in flight, a daily quota, and a weekly maintenance window. All
//! read the mock's clock, so tests can step time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, TimeDelta, Utc, Weekday};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::lock;

/// Limits of one mock; 0 means none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Refill rate of the token bucket, requests per second (0: no rate limit).
    pub rate_per_sec: f64,
    /// Bucket capacity (0 with a rate: the rate rounded up, at least 1).
    pub burst: u32,
    /// Requests in flight.
    pub concurrency: u32,
    /// Requests per calendar day, counted in `day_offset` local time.
    pub daily_quota: u32,
    pub day_offset: FixedOffset,
}

/// Examplia Time (EXT): UTC+02:00, no daylight saving.
pub(crate) fn ext() -> FixedOffset {
    FixedOffset::east_opt(2 * 3600).expect("a valid offset")
}

impl Limits {
    pub fn none() -> Limits {
        Limits {
            rate_per_sec: 0.0,
            burst: 0,
            concurrency: 0,
            daily_quota: 0,
            day_offset: FixedOffset::east_opt(0).expect("a valid offset"),
        }
    }

    /// Examplia README §7: 5 requests/s with bursts of 10, 20,000 a day
    /// (EXT calendar day), 4 in flight.
    pub fn examplia() -> Limits {
        Limits {
            rate_per_sec: 5.0,
            burst: 10,
            concurrency: 4,
            daily_quota: 20_000,
            day_offset: ext(),
        }
    }
}

/// A weekly window during which the registry answers 503 (Examplia: every
/// Sunday 01:00-03:00 EXT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub weekday: Weekday,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub offset: FixedOffset,
}

impl MaintenanceWindow {
    pub fn examplia() -> MaintenanceWindow {
        MaintenanceWindow {
            weekday: Weekday::Sun,
            start: NaiveTime::from_hms_opt(1, 0, 0).expect("a valid time"),
            end: NaiveTime::from_hms_opt(3, 0, 0).expect("a valid time"),
            offset: ext(),
        }
    }

    /// Inside the window: the seconds until it ends (at least 1).
    pub fn remaining(&self, now: DateTime<Utc>) -> Option<u64> {
        let local = now.with_timezone(&self.offset);
        let time = local.time();
        if local.weekday() != self.weekday || time < self.start || time >= self.end {
            return None;
        }
        let left = self.end - time;
        Some(ceil_secs(left))
    }
}

fn ceil_secs(delta: TimeDelta) -> u64 {
    let millis = delta.num_milliseconds().max(0) as u64;
    millis.div_ceil(1000).max(1)
}

/// A token bucket: `capacity` tokens, refilled at `rate` per second.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    capacity: f64,
    rate: f64,
    state: Mutex<(f64, Option<DateTime<Utc>>)>,
}

impl TokenBucket {
    pub fn from_limits(limits: &Limits) -> Option<TokenBucket> {
        if limits.rate_per_sec <= 0.0 || !limits.rate_per_sec.is_finite() {
            return None;
        }
        let capacity = if limits.burst == 0 {
            limits.rate_per_sec.ceil().max(1.0)
        } else {
            f64::from(limits.burst)
        };
        Some(TokenBucket {
            capacity,
            rate: limits.rate_per_sec,
            state: Mutex::new((capacity, None)),
        })
    }

    /// Take a token, or say how long until one is there.
    pub fn try_take(&self, now: DateTime<Utc>) -> Result<(), Duration> {
        let mut state = lock(&self.state);
        let (tokens, last) = &mut *state;
        if let Some(last) = *last {
            // A clock set backwards refills nothing.
            let elapsed = (now - last).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
            *tokens = (*tokens + elapsed * self.rate).min(self.capacity);
        }
        *last = Some(now);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - *tokens) / self.rate;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
        }
    }
}

/// Requests per local calendar day.
#[derive(Debug)]
pub(crate) struct DailyQuota {
    limit: u32,
    offset: FixedOffset,
    state: Mutex<(Option<NaiveDate>, u32)>,
}

impl DailyQuota {
    pub fn from_limits(limits: &Limits) -> Option<DailyQuota> {
        (limits.daily_quota > 0).then(|| DailyQuota {
            limit: limits.daily_quota,
            offset: limits.day_offset,
            state: Mutex::new((None, 0)),
        })
    }

    /// Count a request, or say how long until the next local midnight.
    pub fn try_take(&self, now: DateTime<Utc>) -> Result<(), Duration> {
        let local = now.with_timezone(&self.offset);
        let today = local.date_naive();
        let mut state = lock(&self.state);
        if state.0 != Some(today) {
            *state = (Some(today), 0);
        }
        if state.1 >= self.limit {
            let midnight = today
                .succ_opt()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t - local.naive_local())
                .unwrap_or(TimeDelta::hours(24));
            return Err(Duration::from_secs(ceil_secs(midnight)));
        }
        state.1 += 1;
        Ok(())
    }
}

/// A cap on requests in flight.
#[derive(Debug)]
pub(crate) struct Concurrency(Option<Arc<Semaphore>>);

impl Concurrency {
    pub fn from_limits(limits: &Limits) -> Concurrency {
        Concurrency(
            (limits.concurrency > 0).then(|| Arc::new(Semaphore::new(limits.concurrency as usize))),
        )
    }

    /// Ok(None) when there is no cap; Err when the cap is reached.
    pub fn try_enter(&self) -> Result<Option<OwnedSemaphorePermit>, ()> {
        match &self.0 {
            None => Ok(None),
            Some(semaphore) => semaphore
                .clone()
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| ()),
        }
    }
}

/// Seconds for a `Retry-After`, rounded up, at least 1.
pub(crate) fn retry_secs(d: Duration) -> u64 {
    (d.as_millis().div_ceil(1000) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn the_bucket_allows_a_burst_then_refills_at_the_rate() {
        let bucket = TokenBucket::from_limits(&Limits::examplia()).unwrap();
        let t0 = at("2026-10-19T08:00:00Z");
        for _ in 0..10 {
            assert!(bucket.try_take(t0).is_ok());
        }
        let wait = bucket.try_take(t0).unwrap_err();
        assert_eq!(retry_secs(wait), 1);
        assert!(wait <= Duration::from_millis(200));
        // 5 per second: after 1 s, exactly five more.
        let t1 = t0 + TimeDelta::seconds(1);
        for _ in 0..5 {
            assert!(bucket.try_take(t1).is_ok());
        }
        assert!(bucket.try_take(t1).is_err());
    }

    #[test]
    fn no_rate_means_no_bucket() {
        assert!(TokenBucket::from_limits(&Limits::none()).is_none());
    }

    #[test]
    fn the_quota_resets_at_local_midnight() {
        let mut limits = Limits::examplia();
        limits.daily_quota = 2;
        let quota = DailyQuota::from_limits(&limits).unwrap();
        // 21:30 UTC is 23:30 EXT: half an hour before the EXT day ends.
        let t = at("2026-10-19T21:30:00Z");
        assert!(quota.try_take(t).is_ok());
        assert!(quota.try_take(t).is_ok());
        let wait = quota.try_take(t).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1800));
        assert!(quota.try_take(at("2026-10-19T22:00:00Z")).is_ok());
    }

    #[test]
    fn the_examplia_window_is_sunday_night_ext() {
        let window = MaintenanceWindow::examplia();
        // Saturday 23:30 UTC = Sunday 01:30 EXT: 90 minutes left.
        assert_eq!(window.remaining(at("2026-10-24T23:30:00Z")), Some(5400));
        // Saturday 22:59 UTC = Sunday 00:59 EXT: open.
        assert_eq!(window.remaining(at("2026-10-24T22:59:00Z")), None);
        // Sunday 01:00 UTC = 03:00 EXT: over.
        assert_eq!(window.remaining(at("2026-10-25T01:00:00Z")), None);
    }

    #[test]
    fn concurrency_caps_permits() {
        let mut limits = Limits::none();
        limits.concurrency = 1;
        let cap = Concurrency::from_limits(&limits);
        let first = cap.try_enter().unwrap();
        assert!(first.is_some());
        assert!(cap.try_enter().is_err());
        drop(first);
        assert!(cap.try_enter().is_ok());
    }
}

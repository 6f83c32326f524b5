//! The mocks' "now": the system clock, or a manual one that tests move by
//! hand, so token expiry, rate refill, daily quotas and maintenance windows
//! are tested without waiting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::lock;

#[derive(Debug, Clone)]
pub struct Clock {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    /// Some: a manual clock stopped at this instant.
    frozen: Option<DateTime<Utc>>,
    /// Added to the system time (a system clock moved forward by `advance`).
    offset: TimeDelta,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::with(None)
    }

    /// A clock that stands still at `start` until moved.
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock::with(Some(start))
    }

    fn with(frozen: Option<DateTime<Utc>>) -> Clock {
        Clock {
            state: Arc::new(Mutex::new(State {
                frozen,
                offset: TimeDelta::zero(),
            })),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let state = lock(&self.state);
        let base = state.frozen.unwrap_or_else(Utc::now);
        base.checked_add_signed(state.offset)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Move the clock forward (a system clock keeps running from there).
    pub fn advance(&self, by: Duration) {
        let by = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        let mut state = lock(&self.state);
        state.offset = state.offset.checked_add(&by).unwrap_or(TimeDelta::MAX);
    }

    /// Stop the clock at `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        let mut state = lock(&self.state);
        state.frozen = Some(at);
        state.offset = TimeDelta::zero();
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-10-19T08:00:00Z")
            .unwrap()
            .to_utc();
        let clock = Clock::manual(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(601));
        assert_eq!(clock.now(), start + TimeDelta::seconds(601));
        let shared = clock.clone();
        shared.set(start);
        assert_eq!(clock.now(), start, "clones share one clock");
    }
}

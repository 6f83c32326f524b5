//! What each destination's worker has been doing lately, for the operators'
//! console: requests sent and outcomes recorded per minute over the last
//! hour, in memory, beside a read-only view of the destination's pace.
//!
//! In memory on purpose: the counts are a live view of this process, not a
//! record (the exchange log is the record), so the `Store` trait, which
//! every backend implements, does not grow for them; a restart starts them
//! at zero.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;

use super::pace::{Pace, PaceSnapshot};
use crate::model::DeliveryState;

/// Minutes of history kept per destination.
pub const WINDOW_MINUTES: usize = 60;

/// Every destination's activity, by destination name.
#[derive(Default)]
pub struct Activity {
    destinations: BTreeMap<String, Arc<DestinationActivity>>,
}

impl Activity {
    pub(super) fn add(&mut self, name: &str, pace: Arc<Pace>) -> Arc<DestinationActivity> {
        let activity = Arc::new(DestinationActivity {
            pace,
            minutes: Mutex::new(VecDeque::new()),
        });
        self.destinations.insert(name.to_string(), activity.clone());
        activity
    }

    /// Each destination's pace and last hour at `now`, by name.
    pub fn snapshot(&self, now: DateTime<Utc>) -> BTreeMap<String, DestinationSnapshot> {
        self.destinations
            .iter()
            .map(|(name, a)| (name.clone(), a.snapshot(now)))
            .collect()
    }
}

pub struct DestinationActivity {
    pace: Arc<Pace>,
    minutes: Mutex<VecDeque<Minute>>,
}

/// One minute of one destination: requests sent and outcomes recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Minute {
    /// The minute's start.
    pub at: DateTime<Utc>,
    pub sent: u32,
    /// Outcomes recorded, by the status they left the delivery in
    /// (`pending` after a failed attempt that will be retried).
    pub outcomes: BTreeMap<&'static str, u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DestinationSnapshot {
    pub pace: PaceSnapshot,
    /// The last [`WINDOW_MINUTES`] minutes, oldest first, the current one last.
    pub minutes: Vec<Minute>,
}

impl DestinationActivity {
    /// A request left for the registry.
    pub fn sent(&self, now: DateTime<Utc>) {
        self.with_minute(now, |m| m.sent = m.sent.saturating_add(1));
    }

    /// An outcome was recorded, leaving the delivery in `status`.
    pub fn recorded(&self, now: DateTime<Utc>, status: DeliveryState) {
        self.with_minute(now, |m| {
            let n = m.outcomes.entry(status.as_str()).or_default();
            *n = n.saturating_add(1);
        });
    }

    fn with_minute(&self, now: DateTime<Utc>, change: impl FnOnce(&mut Minute)) {
        let at = minute_of(now);
        let mut minutes = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        if minutes.back().is_none_or(|m| m.at < at) {
            minutes.push_back(Minute {
                at,
                ..Minute::default()
            });
        }
        // A clock that stepped back counts in the latest minute.
        if let Some(m) = minutes.back_mut() {
            change(m);
        }
        let oldest = at - TimeDelta::minutes(WINDOW_MINUTES as i64 - 1);
        while minutes.front().is_some_and(|m| m.at < oldest) {
            minutes.pop_front();
        }
    }

    pub fn snapshot(&self, now: DateTime<Utc>) -> DestinationSnapshot {
        let current = minute_of(now);
        let kept = self
            .minutes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // Dense: a minute without activity is a zero, not a gap.
        let minutes = (0..WINDOW_MINUTES as i64)
            .rev()
            .map(|back| {
                let at = current - TimeDelta::minutes(back);
                kept.iter().find(|m| m.at == at).cloned().unwrap_or(Minute {
                    at,
                    ..Minute::default()
                })
            })
            .collect();
        DestinationSnapshot {
            pace: self.pace.snapshot(now),
            minutes,
        }
    }
}

fn minute_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::minutes(1)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::config::{LimitsConfig, RetryConfig};

    #[test]
    fn counts_per_minute_over_the_last_hour_densely() {
        let mut all = Activity::default();
        let pace = Arc::new(Pace::new(&LimitsConfig::default(), &RetryConfig::default()));
        let a = all.add("registry", pace);
        let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 30).unwrap();
        a.sent(t0);
        a.sent(t0);
        a.recorded(t0, DeliveryState::Delivered);
        a.recorded(t0, DeliveryState::Pending);
        let t1 = t0 + TimeDelta::minutes(2);
        a.sent(t1);
        a.recorded(t1, DeliveryState::Dead);

        let s = &all.snapshot(t1)["registry"];
        assert_eq!(s.minutes.len(), WINDOW_MINUTES);
        let last = &s.minutes[WINDOW_MINUTES - 1];
        assert_eq!(
            last.at,
            Utc.with_ymd_and_hms(2026, 11, 25, 10, 2, 0).unwrap()
        );
        assert_eq!((last.sent, last.outcomes["dead"]), (1, 1));
        assert_eq!(
            s.minutes[WINDOW_MINUTES - 2].sent,
            0,
            "a quiet minute is a zero"
        );
        let first = &s.minutes[WINDOW_MINUTES - 3];
        assert_eq!((first.sent, first.outcomes["delivered"]), (2, 1));
        assert_eq!(first.outcomes["pending"], 1);

        // An hour later the old minutes are gone, from the view and the memory.
        let later = t1 + TimeDelta::minutes(WINDOW_MINUTES as i64);
        a.sent(later);
        let s = a.snapshot(later);
        assert_eq!(s.minutes.iter().map(|m| m.sent).sum::<u32>(), 1);
        assert_eq!(a.minutes.lock().unwrap().len(), 1);
    }
}

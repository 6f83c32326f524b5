//! Faults injected on demand: for the next request, the next N, or until
//! cleared. Each registry answers a fault in its own dialect (a SOAP fault
//! for Examplia, an OperationOutcome for FHIR, Primero's `errors`, ...).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::lock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Service unavailable, with `Retry-After` when given.
    Status503 { retry_after: Option<Duration> },
    /// An internal error: the outcome is unknown to the client, nothing is stored.
    Status500,
    /// Too many requests, with `Retry-After` (Examplia: `Server.RateLimited`).
    Status429 { retry_after: Duration },
    /// Answer normally, this much later (the request holds its concurrency slot meanwhile).
    Latency(Duration),
    /// Close the connection with a TCP reset instead of answering.
    ConnectionReset,
    /// Never answer (until the client gives up or the mock stops).
    Timeout,
    /// Force the maintenance window on (`true`) or off (`false`, overriding
    /// the schedule) until cleared; not counted per request.
    Maintenance(bool),
}

impl Fault {
    pub fn times(self, requests: u32) -> FaultRule {
        FaultRule {
            fault: self,
            remaining: Some(requests),
        }
    }

    pub fn until_cleared(self) -> FaultRule {
        FaultRule {
            fault: self,
            remaining: None,
        }
    }
}

/// A fault and how many more requests it applies to (None: until cleared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub fault: Fault,
    pub remaining: Option<u32>,
}

/// A bare fault applies to the next request only.
impl From<Fault> for FaultRule {
    fn from(fault: Fault) -> FaultRule {
        fault.times(1)
    }
}

/// The faults of one mock. Rules apply in the order pushed: a request takes
/// the first rule, which ends when its count is used up.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<VecDeque<FaultRule>>,
    maintenance: Mutex<Option<bool>>,
}

impl Faults {
    pub fn push(&self, rule: impl Into<FaultRule>) {
        let rule = rule.into();
        if let Fault::Maintenance(on) = rule.fault {
            *lock(&self.maintenance) = Some(on);
            return;
        }
        if rule.remaining != Some(0) {
            lock(&self.rules).push_back(rule);
        }
    }

    /// Remove every rule and the maintenance override.
    pub fn clear(&self) {
        lock(&self.rules).clear();
        *lock(&self.maintenance) = None;
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        lock(&self.rules).iter().cloned().collect()
    }

    /// None: the maintenance schedule decides.
    pub fn maintenance_override(&self) -> Option<bool> {
        *lock(&self.maintenance)
    }

    /// The fault for this request, if any, counting it against its rule.
    pub(crate) fn take(&self) -> Option<Fault> {
        let mut rules = lock(&self.rules);
        let first = rules.front_mut()?;
        let fault = first.fault.clone();
        if let Some(remaining) = first.remaining.as_mut() {
            *remaining -= 1;
            if *remaining == 0 {
                rules.pop_front();
            }
        }
        Some(fault)
    }
}

/// A fault as the admin endpoint takes it (`POST /_mock/faults`):
/// `{"fault": "status_503", "retry_after_secs": 30, "count": 3}`,
/// `{"fault": "latency", "millis": 800, "until_cleared": true}`,
/// `{"fault": "maintenance", "on": true}`. Without `count` or
/// `until_cleared`, the fault applies to the next request only.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    pub fault: FaultName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub millis: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub until_cleared: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultName {
    #[serde(rename = "status_503")]
    Status503,
    #[serde(rename = "status_500")]
    Status500,
    #[serde(rename = "status_429")]
    Status429,
    Latency,
    ConnectionReset,
    Timeout,
    Maintenance,
}

impl FaultSpec {
    /// The rule, or which field is missing.
    pub fn into_rule(self) -> Result<FaultRule, &'static str> {
        let fault = match self.fault {
            FaultName::Status503 => Fault::Status503 {
                retry_after: self.retry_after_secs.map(Duration::from_secs),
            },
            FaultName::Status500 => Fault::Status500,
            FaultName::Status429 => Fault::Status429 {
                retry_after: Duration::from_secs(self.retry_after_secs.unwrap_or(1)),
            },
            FaultName::Latency => {
                Fault::Latency(Duration::from_millis(self.millis.ok_or("millis")?))
            }
            FaultName::ConnectionReset => Fault::ConnectionReset,
            FaultName::Timeout => Fault::Timeout,
            FaultName::Maintenance => Fault::Maintenance(self.on.ok_or("on")?),
        };
        Ok(if self.until_cleared {
            fault.until_cleared()
        } else {
            fault.times(self.count.unwrap_or(1))
        })
    }

    pub fn from_rule(rule: &FaultRule) -> FaultSpec {
        let mut spec = FaultSpec {
            fault: FaultName::Status500,
            retry_after_secs: None,
            millis: None,
            on: None,
            count: rule.remaining,
            until_cleared: rule.remaining.is_none(),
        };
        match &rule.fault {
            Fault::Status503 { retry_after } => {
                spec.fault = FaultName::Status503;
                spec.retry_after_secs = retry_after.map(|d| d.as_secs());
            }
            Fault::Status500 => {}
            Fault::Status429 { retry_after } => {
                spec.fault = FaultName::Status429;
                spec.retry_after_secs = Some(retry_after.as_secs());
            }
            Fault::Latency(d) => {
                spec.fault = FaultName::Latency;
                spec.millis = Some(d.as_millis().try_into().unwrap_or(u64::MAX));
            }
            Fault::ConnectionReset => spec.fault = FaultName::ConnectionReset,
            Fault::Timeout => spec.fault = FaultName::Timeout,
            Fault::Maintenance(on) => {
                spec.fault = FaultName::Maintenance;
                spec.on = Some(*on);
            }
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_in_order_and_run_out() {
        let faults = Faults::default();
        faults.push(Fault::Status500.times(2));
        faults.push(Fault::ConnectionReset);
        assert_eq!(faults.take(), Some(Fault::Status500));
        assert_eq!(faults.take(), Some(Fault::Status500));
        assert_eq!(faults.take(), Some(Fault::ConnectionReset));
        assert_eq!(faults.take(), None);
    }

    #[test]
    fn until_cleared_lasts_until_cleared() {
        let faults = Faults::default();
        faults.push(Fault::Timeout.until_cleared());
        for _ in 0..5 {
            assert_eq!(faults.take(), Some(Fault::Timeout));
        }
        faults.clear();
        assert_eq!(faults.take(), None);
    }

    #[test]
    fn maintenance_is_a_switch_not_a_queued_rule() {
        let faults = Faults::default();
        faults.push(Fault::Maintenance(false));
        assert_eq!(faults.maintenance_override(), Some(false));
        assert_eq!(faults.take(), None);
        faults.clear();
        assert_eq!(faults.maintenance_override(), None);
    }

    #[test]
    fn the_admin_spec_round_trips() {
        let spec: FaultSpec =
            serde_json::from_str(r#"{"fault":"status_503","retry_after_secs":30,"count":3}"#)
                .unwrap();
        let rule = spec.clone().into_rule().unwrap();
        assert_eq!(
            rule,
            Fault::Status503 {
                retry_after: Some(Duration::from_secs(30))
            }
            .times(3)
        );
        assert_eq!(FaultSpec::from_rule(&rule), spec);
        let missing: FaultSpec = serde_json::from_str(r#"{"fault":"latency"}"#).unwrap();
        assert_eq!(missing.into_rule(), Err("millis"));
        assert!(serde_json::from_str::<FaultSpec>(r#"{"fault":"explode"}"#).is_err());
    }
}

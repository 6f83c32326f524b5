//! Consent from outside the record: the latest consent decision about a
//! record's subject (a canonical consent record, or the consent API), which
//! overrides the consent fields of the record itself.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    Granted,
    Withdrawn,
}

/// Who took the decision (the consent schema's `given_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentGiver {
    Caregiver,
    Child,
    Other,
}

/// One consent decision about a record's subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    pub status: ConsentStatus,
    pub given_by: ConsentGiver,
    /// The child's age when the decision was taken, if recorded.
    pub child_age_years: Option<u32>,
    /// Purposes covered (`case_management`...). Empty on a withdrawal: every purpose.
    pub purposes: Vec<String>,
    /// Destination names (or a policy's recipient words such as `authorities`).
    /// Empty on a withdrawal: every recipient.
    pub recipients: Vec<String>,
    /// The agency's reference for the consent record.
    pub reference: Option<String>,
    pub decided_at: DateTime<FixedOffset>,
}

impl ConsentState {
    /// Read a canonical consent record (schema `consent`). `None` when it is
    /// not one, or lacks what a decision needs; never panics on any JSON.
    pub fn from_record(record: &Value) -> Option<ConsentState> {
        if record.get("record_type")?.as_str()? != "consent" {
            return None;
        }
        let status = match record.get("status")?.as_str()? {
            "granted" => ConsentStatus::Granted,
            "withdrawn" => ConsentStatus::Withdrawn,
            _ => return None,
        };
        let given_by = match record.get("given_by")?.as_str()? {
            "caregiver" => ConsentGiver::Caregiver,
            "child" => ConsentGiver::Child,
            "other" => ConsentGiver::Other,
            _ => return None,
        };
        let purposes = strings(record.get("purposes"))?;
        let recipients = strings(record.get("recipients"))?;
        // A grant must say what it grants (the schema requires both lists).
        if status == ConsentStatus::Granted && (purposes.is_empty() || recipients.is_empty()) {
            return None;
        }
        let child_age_years = match record.get("child_age_years") {
            None => None,
            Some(v) => Some(u32::try_from(v.as_u64()?).ok()?),
        };
        let reference = match record.get("reference") {
            None => None,
            Some(v) => Some(v.as_str()?.to_string()),
        };
        let decided_at = DateTime::parse_from_rfc3339(record.get("decided_at")?.as_str()?).ok()?;
        Some(ConsentState {
            status,
            given_by,
            child_age_years,
            purposes,
            recipients,
            reference,
            decided_at,
        })
    }

    /// Whether this decision is about `purpose`. Only a withdrawal reads an
    /// empty list as "every purpose": a grant grants what it lists.
    pub fn covers_purpose(&self, purpose: &str) -> bool {
        self.everything(&self.purposes) || self.purposes.iter().any(|p| p == purpose)
    }

    /// Whether this decision names one of `names` (empty, on a withdrawal: everyone).
    pub fn covers_recipient<'a>(&self, mut names: impl Iterator<Item = &'a str>) -> bool {
        self.everything(&self.recipients) || names.any(|n| self.recipients.iter().any(|r| r == n))
    }

    fn everything(&self, list: &[String]) -> bool {
        self.status == ConsentStatus::Withdrawn && list.is_empty()
    }
}

/// An absent list is empty; anything but a list of strings is `None`.
fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    match v {
        None => Some(Vec::new()),
        Some(v) => v
            .as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect(),
    }
}

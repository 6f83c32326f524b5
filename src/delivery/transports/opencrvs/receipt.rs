//! Reading OpenCRVS answers: tracking ids and event or composition ids from
//! a success, codes and paths from an error (never its messages).

use serde_json::{Map, Value, json};

use crate::delivery::transports::classify::{code_at, is_code, listed};
use crate::delivery::transports::{Receipt, ReceiptStatus, SendError};

/// A 2xx without the ids we need: the outcome is unknown, and a resend with
/// the same key is answered with the registration if there was one.
fn unreadable(http_status: u16, missing: &str) -> SendError {
    SendError::Retryable {
        reason: format!("status {http_status} without {missing}"),
        retry_after: None,
    }
}

/// 2.x: the EventDocument; `trackingId` is the public reference.
pub(super) fn event_document(body: Option<&Value>, http_status: u16) -> Result<Receipt, SendError> {
    let body = body.ok_or_else(|| unreadable(http_status, "an EventDocument"))?;
    let tracking = body["trackingId"]
        .as_str()
        .ok_or_else(|| unreadable(http_status, "trackingId"))?;
    let mut details = Map::new();
    if let Some(id) = body["id"].as_str() {
        details.insert("event_id".into(), json!(id));
    }
    Ok(Receipt {
        status: ReceiptStatus::Accepted,
        reference: Some(tracking.to_string()),
        http_status,
        details,
    })
}

/// 1.x: the saved record Bundle (tracking id in the Task's identifiers,
/// composition id on the first entry), or the short answer workflow gives
/// when it flags potential duplicates (the record is saved either way).
pub(super) fn notification(body: Option<&Value>, http_status: u16) -> Result<Receipt, SendError> {
    let body = body.ok_or_else(|| unreadable(http_status, "a record"))?;
    let (tracking, composition) = if body["resourceType"] == "Bundle" {
        (
            bundle_tracking_id(body),
            body["entry"][0]["resource"]["id"].as_str(),
        )
    } else {
        (body["trackingId"].as_str(), body["compositionId"].as_str())
    };
    let tracking = tracking.ok_or_else(|| unreadable(http_status, "a tracking id"))?;
    let mut details = Map::new();
    if let Some(id) = composition {
        details.insert("composition_id".into(), json!(id));
    }
    if body["isPotentiallyDuplicate"] == true {
        details.insert("potentially_duplicate".into(), json!(true));
    }
    Ok(Receipt {
        status: ReceiptStatus::Accepted,
        reference: Some(tracking.to_string()),
        http_status,
        details,
    })
}

/// `Task.identifier[system = .../<event>-tracking-id].value`.
fn bundle_tracking_id(bundle: &Value) -> Option<&str> {
    let entries = bundle["entry"].as_array()?;
    entries
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "Task")
        .flat_map(|task| task["identifier"].as_array().into_iter().flatten())
        .find(|i| {
            i["system"].as_str().is_some_and(|s| {
                s.starts_with("http://opencrvs.org/specs/id/") && s.ends_with("-tracking-id")
            })
        })
        .and_then(|i| i["value"].as_str())
}

/// A tRPC error's `code` and its zod issues as "code at path"; a Boom error
/// (1.x, limits) gives nothing beyond its status.
pub(super) fn error_detail(body: &Value) -> Option<String> {
    let code = body["code"].as_str().filter(|c| is_code(c));
    let issues = body["issues"].as_array().map(|issues| {
        listed(issues.iter().filter_map(|i| {
            let path = i["path"].as_array().map(|p| {
                p.iter()
                    .map(|s| match s {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("/")
            });
            code_at(i["code"].as_str(), path.as_deref())
        }))
    });
    match (code, issues.flatten()) {
        (Some(c), Some(i)) => Some(format!("{c}: {i}")),
        (Some(c), None) => Some(c.to_string()),
        (None, i) => i,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2x_event_gives_the_tracking_id_and_event_id() {
        let body = json!({"id": "e1", "type": "birth", "trackingId": "TFY9FK", "actions": []});
        let r = event_document(Some(&body), 200).unwrap();
        assert_eq!(r.reference.as_deref(), Some("TFY9FK"));
        assert_eq!(r.details["event_id"], "e1");
        assert!(matches!(
            event_document(Some(&json!({"id": "e1"})), 200),
            Err(SendError::Retryable { .. })
        ));
    }

    #[test]
    fn a_1x_answer_gives_the_tracking_id_in_either_shape() {
        let bundle = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Composition", "id": "c1"}},
            {"resource": {"resourceType": "Task", "identifier": [
                {"system": "http://opencrvs.org/specs/id/draft-id", "value": "x"},
                {"system": "http://opencrvs.org/specs/id/birth-tracking-id", "value": "BTFY9FK"}]}}]});
        let r = notification(Some(&bundle), 200).unwrap();
        assert_eq!(r.reference.as_deref(), Some("BTFY9FK"));
        assert_eq!(r.details["composition_id"], "c1");
        let short =
            json!({"compositionId": "c1", "trackingId": "BTFY9FK", "isPotentiallyDuplicate": true});
        let r = notification(Some(&short), 200).unwrap();
        assert_eq!(r.reference.as_deref(), Some("BTFY9FK"));
        assert_eq!(r.details["potentially_duplicate"], true);
    }

    #[test]
    fn errors_give_codes_and_paths_never_messages() {
        let trpc = json!({"message": "Input validation failed", "code": "BAD_REQUEST", "issues": [
            {"code": "invalid_type", "path": ["transactionId"], "message": "Required"},
            {"code": "unknown_field", "path": ["declaration", "child.nickname"], "message": "Amina"}]});
        assert_eq!(
            error_detail(&trpc).as_deref(),
            Some(
                "BAD_REQUEST: invalid_type at transactionId; unknown_field at declaration/child.nickname"
            )
        );
        let boom =
            json!({"statusCode": 400, "error": "Bad Request", "message": "\"x\" must be [y]"});
        assert_eq!(error_detail(&boom), None);
    }
}

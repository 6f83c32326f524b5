//! Plain HTTPS (the FHIR R4 exchange): POST the document with an
//! `Idempotency-Key` header. FHIR create semantics decide the receipt: 201
//! Created is a new resource; 200 OK returns the one already stored for this
//! document (a conditional create), so the earlier registration stands. The
//! reference is `Type/id` from `Location`, else from the body.

use async_trait::async_trait;
use reqwest::header::{ACCEPT, HeaderMap, LOCATION};
use reqwest::{Client, StatusCode, Url};
use serde_json::{Map, Value, json};

use super::auth::{Auth, unauthorized};
use super::classify::{code_at, listed, status_error};
use super::http_client::{Answer, build_client, post_payload};
use super::{BuildError, Clock, Outbound, Receipt, ReceiptStatus, SendError, Transport, url_of};
use crate::config::DestinationConfig;

pub(crate) struct PlainHttps {
    url: Url,
    client: Client,
    auth: Auth,
    clock: Clock,
}

impl PlainHttps {
    pub fn new(dest: &DestinationConfig, clock: Clock) -> Result<PlainHttps, BuildError> {
        Ok(PlainHttps {
            url: url_of(dest)?,
            client: build_client(dest, false)?,
            auth: Auth::standard(dest, clock.clone())?,
            clock,
        })
    }
}

#[async_trait]
impl Transport for PlainHttps {
    async fn send(&self, outbound: &Outbound<'_>) -> Result<Receipt, SendError> {
        let request = || {
            post_payload(&self.client, &self.url, outbound)
                .header(ACCEPT, "application/fhir+json, application/json")
                .header("Idempotency-Key", outbound.idempotency_key)
        };
        let answer = self.auth.send(&self.client, request, unauthorized).await?;
        receipt(&answer, &self.clock)
    }
}

fn receipt(answer: &Answer, clock: &Clock) -> Result<Receipt, SendError> {
    let body = answer.json();
    if !answer.status.is_success() {
        let detail = body.as_ref().and_then(outcome_issues);
        return Err(status_error(
            answer.status,
            &answer.headers,
            clock.now(),
            detail,
        ));
    }
    let status = match answer.status {
        StatusCode::OK => ReceiptStatus::Duplicate,
        _ => ReceiptStatus::Accepted,
    };
    let (reference, version) = match location(&answer.headers) {
        Some(found) => found,
        None => from_body(body.as_ref()),
    };
    let mut details = Map::new();
    if let Some(v) = version {
        details.insert("version_id".into(), json!(v));
    }
    Ok(Receipt {
        status,
        reference,
        http_status: answer.status.as_u16(),
        details,
    })
}

/// `Type/id` and the version from `Location`, absolute or relative:
/// `https://host/fhir/Bundle/123/_history/1` gives (`Bundle/123`, `1`).
fn location(headers: &HeaderMap) -> Option<(Option<String>, Option<String>)> {
    let text = headers.get(LOCATION)?.to_str().ok()?;
    let path = text.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (resource, version) = match segments.iter().position(|s| *s == "_history") {
        Some(i) => (&segments[..i], segments.get(i + 1).map(|v| v.to_string())),
        None => (&segments[..], None),
    };
    let [.., kind, id] = resource else {
        return None;
    };
    is_resource_type(kind).then(|| (Some(format!("{kind}/{id}")), version))
}

fn is_resource_type(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && text.chars().all(|c| c.is_ascii_alphanumeric())
}

fn from_body(body: Option<&Value>) -> (Option<String>, Option<String>) {
    let Some(body) = body else {
        return (None, None);
    };
    let kind = body["resourceType"]
        .as_str()
        .filter(|k| is_resource_type(k));
    let id = body["id"].as_str();
    let reference = kind.zip(id).map(|(k, i)| format!("{k}/{i}"));
    let version = body["meta"]["versionId"].as_str().map(str::to_string);
    (reference, version)
}

/// An OperationOutcome's issues as "code at expression" (never diagnostics).
fn outcome_issues(body: &Value) -> Option<String> {
    if body["resourceType"] != "OperationOutcome" {
        return None;
    }
    let issues = body["issue"].as_array()?;
    listed(issues.iter().filter_map(|i| {
        code_at(
            i["code"].as_str(),
            i["expression"].get(0).and_then(Value::as_str),
        )
    }))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn answer(status: u16, location: Option<&str>, body: &str) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(l) = location {
            headers.insert(LOCATION, HeaderValue::from_str(l).unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_reference_comes_from_location_or_the_body() {
        let clock = Clock::system();
        for location in [
            "Bundle/123/_history/1",
            "https://moh.example/fhir/Bundle/123/_history/1",
        ] {
            let r = receipt(&answer(201, Some(location), ""), &clock).unwrap();
            assert_eq!(r.status, ReceiptStatus::Accepted);
            assert_eq!(r.reference.as_deref(), Some("Bundle/123"), "{location}");
            assert_eq!(r.details["version_id"], "1");
        }
        let r = receipt(
            &answer(
                200,
                None,
                r#"{"resourceType":"Bundle","id":"9","meta":{"versionId":"2"}}"#,
            ),
            &clock,
        )
        .unwrap();
        assert_eq!(r.status, ReceiptStatus::Duplicate);
        assert_eq!(r.reference.as_deref(), Some("Bundle/9"));
        let r = receipt(&answer(201, Some("/"), ""), &clock).unwrap();
        assert_eq!(r.reference, None);
    }

    #[test]
    fn an_operation_outcome_gives_codes_and_expressions_only() {
        let body = r#"{"resourceType":"OperationOutcome","issue":[
            {"severity":"error","code":"invariant","diagnostics":"Amina is not allowed","expression":["Bundle.identifier"]},
            {"severity":"error","code":"required","diagnostics":"x","expression":["Bundle.entry[0].resource.subject"]}]}"#;
        let e = receipt(&answer(422, None, body), &Clock::system()).unwrap_err();
        assert_eq!(
            e,
            SendError::Permanent {
                reason: "status 422: invariant at Bundle.identifier; required at Bundle.entry[0].resource.subject".into()
            }
        );
    }
}

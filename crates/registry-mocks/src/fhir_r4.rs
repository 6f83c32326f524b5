//! A strict FHIR R4 exchange (FORMATS §3): `POST /oauth/token` (client
//! credentials, form body or HTTP Basic, `expires_in`) and
//! `POST /fhir/Bundle` with a document Bundle. The document rules no JSON
//! Schema checks (bdl-7/9/10/11, references that resolve, cmp-1, required
//! primitives, no empty values) give 422 with an OperationOutcome; a body
//! that is not a JSON Bundle gives 400. A success is `201 Created` with
//! `Location`; a Bundle whose `identifier` is already stored answers
//! `200 OK` with the stored resource, as a conditional create does.

use std::collections::HashSet;

use axum::http::{Method, header};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::arrivals::{Endpoint, Outcome};
use super::records::{Records, StoredRecord};
use super::server::{MockRequest, Refusal, Registry, Reply};
use super::token::{Ids, Issuer, basic_credentials, param, parse_form, sha256_hex};
use super::{Credentials, MockConfig};

pub(crate) const BUNDLE_PATH: &str = "/fhir/Bundle";
const TOKEN_PATH: &str = "/oauth/token";
const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
/// Most issues listed in one OperationOutcome.
const MAX_ISSUES: usize = 100;

pub(crate) struct FhirR4 {
    credentials: Credentials,
    issuer: Issuer,
    ids: Ids,
    records: Records,
}

/// One failed rule: FHIRPath location, issue type, rule text.
struct Issue {
    expression: String,
    code: &'static str,
    diagnostics: String,
}

fn issue(
    expression: impl Into<String>,
    code: &'static str,
    diagnostics: impl Into<String>,
) -> Issue {
    Issue {
        expression: expression.into(),
        code,
        diagnostics: diagnostics.into(),
    }
}

impl FhirR4 {
    pub fn new(config: &MockConfig) -> FhirR4 {
        FhirR4 {
            credentials: config.credentials.clone(),
            issuer: Issuer::new(config.credentials.token_lifetime),
            ids: Ids::new(config.seed),
            records: Records::default(),
        }
    }

    fn token(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        let form = parse_form(std::str::from_utf8(&req.body).unwrap_or_default());
        if param(&form, "grant_type") != Some("client_credentials") {
            return oauth_error(400, "unsupported_grant_type", Outcome::Rejected);
        }
        let (id, secret) = basic_credentials(req.header("authorization")).unwrap_or_else(|| {
            (
                param(&form, "client_id").unwrap_or_default().to_string(),
                param(&form, "client_secret")
                    .unwrap_or_default()
                    .to_string(),
            )
        });
        if id != self.credentials.client_id || secret != self.credentials.client_secret {
            return oauth_error(401, "invalid_client", Outcome::Unauthorized);
        }
        let scope = "system/Bundle.write";
        let token = self.issuer.issue(
            now,
            json!({"sub": id, "scope": scope, "iss": "mock-fhir-exchange"}),
        );
        Reply::json(
            200,
            &json!({
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.issuer.lifetime().as_secs(),
                "scope": scope,
            }),
            Outcome::Accepted,
        )
        .header(header::CACHE_CONTROL, "no-store")
    }

    fn create(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        if let Err(e) = self.issuer.verify(req.bearer(), now) {
            return outcome_reply(
                401,
                &[issue("", "login", "A valid bearer token is required")],
                Outcome::Unauthorized,
            )
            .header(header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)
            .detail(e.as_str());
        }
        let content_type = req.header("content-type").unwrap_or_default();
        if !content_type.starts_with("application/fhir+json")
            && !content_type.starts_with("application/json")
        {
            return outcome_reply(
                415,
                &[issue("", "not-supported", "Send application/fhir+json")],
                Outcome::Rejected,
            )
            .detail("content_type");
        }
        let Some(bundle) = req.json() else {
            return outcome_reply(
                400,
                &[issue("", "structure", "The body is not valid JSON")],
                Outcome::Rejected,
            )
            .detail("json");
        };
        if bundle["resourceType"] != "Bundle" {
            return outcome_reply(
                400,
                &[issue("", "structure", "The resource is not a Bundle")],
                Outcome::Rejected,
            )
            .detail("resourceType");
        }
        let issues = document_issues(&bundle);
        if !issues.is_empty() {
            let first = issues[0].expression.clone();
            return outcome_reply(422, &issues, Outcome::Rejected).detail(first);
        }
        let key = bundle_key(&bundle).unwrap_or_default();
        if let Some(existing) = self.records.get(&key) {
            return stored_reply(
                200,
                &existing.replay,
                Outcome::Duplicate,
                existing.record.reference,
            );
        }
        let n = self.ids.next_seq();
        let id = self.ids.uuid("bundle", n).to_string();
        let mut stored = bundle;
        stored["id"] = json!(id);
        // Assigning into a non-object would panic; the server owns `meta` anyway.
        if !stored["meta"].is_object() {
            stored["meta"] = json!({});
        }
        stored["meta"]["versionId"] = json!("1");
        stored["meta"]["lastUpdated"] = json!(now.to_rfc3339_opts(SecondsFormat::Millis, true));
        let record = StoredRecord {
            key,
            reference: format!("Bundle/{id}"),
            received_at: now,
            digest: sha256_hex(&req.body),
        };
        match self.records.insert(record, &req.body, stored.clone()) {
            Ok(()) => stored_reply(201, &stored, Outcome::Accepted, format!("Bundle/{id}")),
            Err(existing) => stored_reply(
                200,
                &existing.replay,
                Outcome::Duplicate,
                existing.record.reference,
            ),
        }
    }
}

/// `system|value` of `Bundle.identifier`.
fn bundle_key(bundle: &Value) -> Option<String> {
    let system = bundle["identifier"]["system"].as_str()?;
    let value = bundle["identifier"]["value"].as_str()?;
    Some(format!("{system}|{value}"))
}

fn stored_reply(status: u16, stored: &Value, outcome: Outcome, reference: String) -> Reply {
    Reply::new(status, FHIR_JSON, stored.to_string().into_bytes(), outcome)
        .header(header::LOCATION, format!("{reference}/_history/1"))
        .header(header::ETAG, r#"W/"1""#)
        .reference(reference)
}

fn outcome_reply(status: u16, issues: &[Issue], outcome: Outcome) -> Reply {
    let severity = if status >= 500 { "fatal" } else { "error" };
    let issues: Vec<Value> = issues
        .iter()
        .take(MAX_ISSUES)
        .map(|i| {
            let mut v = json!({"severity": severity, "code": i.code, "diagnostics": i.diagnostics});
            if !i.expression.is_empty() {
                v["expression"] = json!([i.expression]);
            }
            v
        })
        .collect();
    let body = json!({"resourceType": "OperationOutcome", "issue": issues});
    Reply::new(status, FHIR_JSON, body.to_string().into_bytes(), outcome)
}

/// Every document rule the Bundle breaks.
fn document_issues(bundle: &Value) -> Vec<Issue> {
    let mut issues = Vec::new();
    empty_values(bundle, "Bundle", &mut issues);
    if bundle["type"] != "document" {
        issues.push(issue(
            "Bundle.type",
            "value",
            "Bundle.type must be 'document'",
        ));
    }
    if bundle_key(bundle).is_none() {
        issues.push(issue(
            "Bundle.identifier",
            "invariant",
            "bdl-9: a document must have an identifier with a system and a value",
        ));
    }
    if !bundle["timestamp"].as_str().is_some_and(is_instant) {
        issues.push(issue(
            "Bundle.timestamp",
            "invariant",
            "bdl-10: a document must have a timestamp (an instant)",
        ));
    }
    let entries = bundle["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if entries.first().map(|e| &e["resource"]["resourceType"]) != Some(&json!("Composition")) {
        issues.push(issue(
            "Bundle.entry[0]",
            "invariant",
            "bdl-11: the first resource of a document must be a Composition",
        ));
    }
    let mut urls = HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("Bundle.entry[{i}]");
        match entry["fullUrl"].as_str() {
            None => issues.push(issue(
                format!("{at}.fullUrl"),
                "required",
                "every entry of a document needs a fullUrl",
            )),
            Some(url) if !urls.insert(url) => {
                issues.push(issue(
                    format!("{at}.fullUrl"),
                    "invariant",
                    "bdl-7: fullUrl must be unique",
                ));
            }
            Some(_) => {}
        }
        for element in ["request", "response", "search"] {
            if !entry[element].is_null() {
                issues.push(issue(
                    format!("{at}.{element}"),
                    "invariant",
                    format!("a document entry has no {element}"),
                ));
            }
        }
        resource_issues(&entry["resource"], &format!("{at}.resource"), &mut issues);
    }
    if let Some(composition) = entries.first().map(|e| &e["resource"]) {
        composition_issues(composition, &mut issues);
    }
    reference_issues(bundle, &urls, &mut issues);
    issues
}

fn resource_issues(resource: &Value, at: &str, issues: &mut Vec<Issue>) {
    let Some(kind) = resource["resourceType"].as_str() else {
        issues.push(issue(
            at,
            "required",
            "every entry of a document needs a resource",
        ));
        return;
    };
    let required: &[&str] = match kind {
        "Encounter" => &["status", "class"],
        "Observation" => &["status", "code"],
        "RelatedPerson" => &["patient"],
        _ => &[],
    };
    for field in required {
        if resource[field].is_null() {
            issues.push(issue(
                format!("{at}.{field}"),
                "required",
                format!("{kind}.{field} is required (1..1)"),
            ));
        }
    }
    if kind == "Patient" {
        if let Some(gender) = resource.get("gender") {
            if !["male", "female", "other", "unknown"]
                .contains(&gender.as_str().unwrap_or_default())
            {
                issues.push(issue(
                    format!("{at}.gender"),
                    "code-invalid",
                    "Patient.gender is not in the required value set",
                ));
            }
        }
        if let Some(date) = resource.get("birthDate") {
            if !date.as_str().is_some_and(is_date) {
                issues.push(issue(
                    format!("{at}.birthDate"),
                    "value",
                    "Patient.birthDate is not a FHIR date",
                ));
            }
        }
    }
}

fn composition_issues(composition: &Value, issues: &mut Vec<Issue>) {
    let at = "Bundle.entry[0].resource";
    if composition["resourceType"] != "Composition" {
        return;
    }
    let status = composition["status"].as_str().unwrap_or_default();
    if !["preliminary", "final", "amended", "entered-in-error"].contains(&status) {
        issues.push(issue(
            format!("{at}.status"),
            "required",
            "Composition.status is required and must be a valid code",
        ));
    }
    for field in ["type", "date", "title", "subject"] {
        if composition[field].is_null() {
            issues.push(issue(
                format!("{at}.{field}"),
                "required",
                format!("Composition.{field} is required"),
            ));
        }
    }
    if composition["author"]
        .as_array()
        .is_none_or(|a| a.is_empty())
    {
        issues.push(issue(
            format!("{at}.author"),
            "required",
            "Composition.author is required (1..*)",
        ));
    }
    for (i, section) in composition["section"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let has = |f: &str| !section[f].is_null();
        if !has("text") && !has("entry") && !has("section") {
            issues.push(issue(
                format!("{at}.section[{i}]"),
                "invariant",
                "cmp-1: a section must have text, entries or sections",
            ));
        }
    }
}

/// Every `urn:uuid:` reference in the document resolves to an entry.
fn reference_issues(bundle: &Value, urls: &HashSet<&str>, issues: &mut Vec<Issue>) {
    let mut unresolved = Vec::new();
    walk(bundle, "Bundle", &mut |path, value| {
        if let Some(reference) = value.get("reference").and_then(Value::as_str) {
            if reference.starts_with("urn:uuid:") && !urls.contains(reference) {
                unresolved.push(format!("{path}.reference"));
            }
        }
    });
    for path in unresolved {
        issues.push(issue(
            path,
            "invariant",
            "a urn:uuid reference does not resolve to an entry of the document",
        ));
    }
}

/// FHIR JSON has no empty strings, arrays or objects and no nulls.
fn empty_values(value: &Value, path: &str, issues: &mut Vec<Issue>) {
    let empty = match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if empty {
        issues.push(issue(
            path,
            "structure",
            "empty values and nulls are not allowed in FHIR JSON",
        ));
        return;
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                empty_values(item, &format!("{path}[{i}]"), issues);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                // `_x` arrays align with `x` and may hold nulls.
                if k.starts_with('_') && v.is_array() {
                    continue;
                }
                empty_values(v, &format!("{path}.{k}"), issues);
            }
        }
        _ => {}
    }
}

/// Visit every object with its FHIRPath-like path. Depth is bounded by the
/// gateway's JSON parser defaults (serde_json refuses beyond 128).
fn walk(value: &Value, path: &str, visit: &mut dyn FnMut(&str, &Value)) {
    match value {
        Value::Object(map) => {
            visit(path, value);
            for (k, v) in map {
                walk(v, &format!("{path}.{k}"), visit);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), visit);
            }
        }
        _ => {}
    }
}

fn is_instant(s: &str) -> bool {
    s.len() > 19 && s.contains('T') && DateTime::parse_from_rfc3339(s).is_ok()
}

fn is_date(s: &str) -> bool {
    match s.len() {
        4 => s.bytes().all(|b| b.is_ascii_digit()),
        7 => chrono::NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").is_ok(),
        10 => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        _ => false,
    }
}

fn oauth_error(status: u16, error: &str, outcome: Outcome) -> Reply {
    Reply::json(status, &json!({"error": error}), outcome).detail(error)
}

impl Registry for FhirR4 {
    fn endpoint(&self, method: &Method, path: &str) -> Endpoint {
        match (method, path) {
            (&Method::POST, TOKEN_PATH) => Endpoint::Token,
            (&Method::POST, BUNDLE_PATH) => Endpoint::Submit,
            _ => Endpoint::Unknown,
        }
    }

    fn token_path(&self) -> Option<&'static str> {
        Some(TOKEN_PATH)
    }

    fn idempotency_key(&self, req: &MockRequest) -> Option<String> {
        bundle_key(&req.json()?)
    }

    fn handle(&self, endpoint: Endpoint, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        match endpoint {
            Endpoint::Token => self.token(req, now),
            Endpoint::Submit => self.create(req, now),
            Endpoint::Unknown => outcome_reply(
                404,
                &[issue("", "not-found", "Unknown resource or operation")],
                Outcome::NotFound,
            ),
        }
    }

    fn refuse(&self, refusal: Refusal, _req: &MockRequest, _now: DateTime<Utc>) -> Reply {
        let (status, code, text) = match refusal {
            Refusal::Maintenance { .. } | Refusal::Unavailable { .. } => {
                (503, "transient", "The service is temporarily unavailable")
            }
            Refusal::Internal => (500, "exception", "An internal error occurred"),
            Refusal::Limited { .. } => (429, "throttled", "Too many requests"),
            Refusal::TooLarge => (413, "too-costly", "The request is too large"),
        };
        outcome_reply(status, &[issue("", code, text)], refusal.outcome())
            .retry_after(refusal.retry_after())
    }

    fn records(&self) -> &Records {
        &self.records
    }

    fn describe(&self) -> String {
        format!(
            "token: POST {TOKEN_PATH} (form grant_type=client_credentials, client_id={} client_secret={}, or Basic; {} s)",
            self.credentials.client_id,
            self.credentials.client_secret,
            self.issuer.lifetime().as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        json!({
            "resourceType": "Bundle", "type": "document",
            "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:5f0c0000-0000-4000-8000-000000000001"},
            "timestamp": "2025-03-04T09:30:00Z",
            "entry": [
                {"fullUrl": "urn:uuid:01", "resource": {"resourceType": "Composition", "status": "final",
                  "type": {"text": "birth"}, "subject": {"reference": "urn:uuid:02"}, "date": "2025-03-04T09:30:00Z",
                  "author": [{"reference": "urn:uuid:02"}], "title": "Birth notification",
                  "section": [{"title": "Child", "entry": [{"reference": "urn:uuid:02"}]}]}},
                {"fullUrl": "urn:uuid:02", "resource": {"resourceType": "Patient", "gender": "female", "birthDate": "2025-03-01"}}
            ]
        })
    }

    fn rules(bundle: &Value) -> Vec<String> {
        document_issues(bundle)
            .into_iter()
            .map(|i| format!("{} {}", i.code, i.expression))
            .collect()
    }

    #[test]
    fn a_valid_document_has_no_issue() {
        assert_eq!(rules(&document()), Vec::<String>::new());
    }

    #[test]
    fn each_document_rule_is_checked() {
        let mut b = document();
        b["identifier"] = json!({"value": "x"});
        b["entry"][1]["fullUrl"] = json!("urn:uuid:01");
        b["entry"][0]["resource"]["section"][0] = json!({"title": "Empty"});
        b["entry"][0]["resource"]["author"] = json!([]);
        b["entry"][1]["resource"]["gender"] = json!("F");
        let found = rules(&b);
        for expected in [
            "invariant Bundle.identifier",
            "invariant Bundle.entry[1].fullUrl",
            "invariant Bundle.entry[0].resource.section[0]",
            "required Bundle.entry[0].resource.author",
            "structure Bundle.entry[0].resource.author",
            "code-invalid Bundle.entry[1].resource.gender",
            // urn:uuid:02 no longer exists once entry 1 took 01's fullUrl.
            "invariant Bundle.entry[0].resource.subject.reference",
        ] {
            assert!(
                found.contains(&expected.to_string()),
                "{expected} not in {found:?}"
            );
        }
    }

    #[test]
    fn the_composition_must_come_first() {
        let mut b = document();
        b["entry"].as_array_mut().unwrap().reverse();
        assert!(rules(&b).contains(&"invariant Bundle.entry[0]".to_string()));
    }
}

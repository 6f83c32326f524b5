//! A strict FHIR R4 (4.0.1) exchange, the Ministry of Health's: `POST
//! /oauth/token` (client credentials, form body or HTTP Basic, `expires_in`)
//! and the Bundle interactions of R4's RESTful API (http.html), each on a
//! document Bundle that passes the exchange's rules (`rules`: 422 with an
//! OperationOutcome; a body that is not a JSON Bundle is 400):
//!
//! | interaction (R4 http.html) | request | answer |
//! |---|---|---|
//! | create (#create) | `POST /fhir/Bundle` | `201 Created`, a new server id (a client `id` is ignored), `Location: Bundle/<id>/_history/1`. A plain create never looks for an earlier copy: a resend makes a second Bundle. An `Idempotency-Key` header is not FHIR and is ignored, as a FHIR server does |
//! | conditional create (#ccreate) | `POST /fhir/Bundle` + `If-None-Exist: identifier=<system>\|<value>` | no match: created, 201; one match: `200 OK` with the stored Bundle, nothing created; several: `412` |
//! | update (#update), update as create (#upsert) | `PUT /fhir/Bundle/<id>`; the body's `id` must equal `<id>` (else 400) | stored: a new version, `200 OK`; unknown: created with that id, `201` |
//! | conditional update (#cond-update) | `PUT /fhir/Bundle?identifier=<system>\|<value>` | no match: created (with the body's `id` when it has one), 201; one match: updated, 200 (a body `id` that is not the match's is 400); several: 412 |
//!
//! Only the `identifier` search parameter is supported in conditions (a
//! token: `system|value`, or `value` in any system); any other is 400, as a
//! server that does not support a parameter it is asked to condition on.
//! Search and write happen under one lock: two concurrent conditional
//! creates of one document store it once.

mod rules;
mod store;

use axum::http::{Method, header};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use self::rules::{Issue, bundle_key, document_issues, issue};
use self::store::{Held, IdentifierSearch, Store};
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
    store: Store,
    records: Records,
}

/// What a Bundle request asks the exchange to do.
#[derive(Debug, PartialEq, Eq)]
enum Interaction {
    /// POST, conditional when it carries `If-None-Exist`.
    Create(Option<IdentifierSearch>),
    /// PUT to a logical id.
    Update(String),
    /// PUT with search parameters.
    ConditionalUpdate(IdentifierSearch),
}

/// The logical id of `/fhir/Bundle/<id>`, when it is a valid R4 id.
fn logical_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix(BUNDLE_PATH)?.strip_prefix('/')?;
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then_some(id)
}

/// Search parameters of a condition: exactly one `identifier` token.
fn identifier_condition(query: &str) -> Result<IdentifierSearch, Reply> {
    let pairs = parse_form(query);
    let refuse = |text: &str| {
        outcome_reply(400, &[issue("", "not-supported", text)], Outcome::Rejected)
            .detail("condition")
    };
    match pairs.as_slice() {
        [(name, token)] if name == "identifier" => IdentifierSearch::parse(token)
            .ok_or_else(|| refuse("The identifier condition needs a value")),
        [] => Err(refuse("A condition needs search parameters")),
        _ => Err(refuse(
            "Only the identifier search parameter is supported in a condition",
        )),
    }
}

fn interaction(req: &MockRequest) -> Result<Interaction, Reply> {
    if req.method == Method::POST {
        return match req.header("if-none-exist") {
            None => Ok(Interaction::Create(None)),
            Some(criteria) => identifier_condition(criteria).map(|s| Interaction::Create(Some(s))),
        };
    }
    match logical_id(&req.path) {
        Some(id) => Ok(Interaction::Update(id.to_string())),
        None => identifier_condition(&req.query).map(Interaction::ConditionalUpdate),
    }
}

impl FhirR4 {
    pub fn new(config: &MockConfig) -> FhirR4 {
        FhirR4 {
            credentials: config.credentials.clone(),
            issuer: Issuer::new(config.credentials.token_lifetime),
            ids: Ids::new(config.seed),
            store: Store::default(),
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

    /// Authentication, media type and body checks shared by every write.
    fn bundle(&self, req: &MockRequest, now: DateTime<Utc>) -> Result<Value, Reply> {
        if let Err(e) = self.issuer.verify(req.bearer(), now) {
            return Err(outcome_reply(
                401,
                &[issue("", "login", "A valid bearer token is required")],
                Outcome::Unauthorized,
            )
            .header(header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)
            .detail(e.as_str()));
        }
        let content_type = req.header("content-type").unwrap_or_default();
        if !content_type.starts_with("application/fhir+json")
            && !content_type.starts_with("application/json")
        {
            return Err(outcome_reply(
                415,
                &[issue("", "not-supported", "Send application/fhir+json")],
                Outcome::Rejected,
            )
            .detail("content_type"));
        }
        let Some(bundle) = req.json() else {
            return Err(outcome_reply(
                400,
                &[issue("", "structure", "The body is not valid JSON")],
                Outcome::Rejected,
            )
            .detail("json"));
        };
        if bundle["resourceType"] != "Bundle" {
            return Err(outcome_reply(
                400,
                &[issue("", "structure", "The resource is not a Bundle")],
                Outcome::Rejected,
            )
            .detail("resourceType"));
        }
        Ok(bundle)
    }

    fn submit(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        let (bundle, interaction) = match self
            .bundle(req, now)
            .and_then(|b| Ok((b, interaction(req)?)))
        {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let issues = document_issues(&bundle);
        if !issues.is_empty() {
            let first = issues[0].expression.clone();
            return outcome_reply(422, &issues, Outcome::Rejected).detail(first);
        }
        let body_id = bundle["id"].as_str().map(str::to_string);
        let write = Write { req, now, bundle };
        let mut held = self.store.hold();
        match interaction {
            Interaction::Create(None) => self.create(&mut held, write, None),
            Interaction::Create(Some(search)) => match held.search(&search).as_slice() {
                [] => self.create(&mut held, write, None),
                [one] => {
                    let found = held.get(*one);
                    stored_reply(
                        200,
                        &found.resource,
                        found.version,
                        Outcome::Duplicate,
                        found.reference(),
                    )
                }
                _ => multiple_matches(),
            },
            Interaction::Update(id) => {
                if body_id.as_deref() != Some(id.as_str()) {
                    return id_mismatch("Bundle.id must equal the id in the URL");
                }
                match held.position(&id) {
                    Some(i) => self.update(&mut held, write, i),
                    None => self.create(&mut held, write, Some(id)),
                }
            }
            Interaction::ConditionalUpdate(search) => match held.search(&search).as_slice() {
                [] => match body_id.as_deref().and_then(|id| held.position(id)) {
                    Some(i) => self.update(&mut held, write, i),
                    None => self.create(&mut held, write, body_id),
                },
                [one] => {
                    if body_id.is_some_and(|id| id != held.get(*one).id) {
                        return id_mismatch(
                            "Bundle.id is not the id of the Bundle the condition matches",
                        );
                    }
                    self.update(&mut held, write, *one)
                }
                _ => multiple_matches(),
            },
        }
    }

    /// Store a new Bundle, with the client's id (update as create) or a new one.
    fn create(&self, held: &mut Held, write: Write, id: Option<String>) -> Reply {
        let id = id.unwrap_or_else(|| self.ids.uuid("bundle", self.ids.next_seq()).to_string());
        let stored = write.stored(&id, 1);
        let index = held.create(id, stored.clone());
        let found = held.get(index);
        self.records.replace(
            write.record(&found.key, found.reference()),
            &write.req.body,
            stored.clone(),
        );
        stored_reply(201, &stored, 1, Outcome::Accepted, found.reference())
    }

    /// Replace a stored Bundle with the request's, as its next version.
    fn update(&self, held: &mut Held, write: Write, index: usize) -> Reply {
        let found = held.get(index);
        let (id, version) = (found.id.clone(), found.version + 1);
        let stored = write.stored(&id, version);
        held.update(index, stored.clone());
        let found = held.get(index);
        self.records.replace(
            write.record(&found.key, found.reference()),
            &write.req.body,
            stored.clone(),
        );
        stored_reply(200, &stored, version, Outcome::Updated, found.reference())
    }
}

/// One accepted write: the request and the Bundle it carries.
struct Write<'a> {
    req: &'a MockRequest,
    now: DateTime<Utc>,
    bundle: Value,
}

impl Write<'_> {
    /// The Bundle as stored: the server owns `id` and `meta`.
    fn stored(&self, id: &str, version: u32) -> Value {
        let mut stored = self.bundle.clone();
        stored["id"] = json!(id);
        // Assigning into a non-object would panic.
        if !stored["meta"].is_object() {
            stored["meta"] = json!({});
        }
        stored["meta"]["versionId"] = json!(version.to_string());
        stored["meta"]["lastUpdated"] =
            json!(self.now.to_rfc3339_opts(SecondsFormat::Millis, true));
        stored
    }

    fn record(&self, key: &str, reference: String) -> StoredRecord {
        StoredRecord {
            key: key.to_string(),
            reference,
            received_at: self.now,
            digest: sha256_hex(&self.req.body),
        }
    }
}

fn multiple_matches() -> Reply {
    outcome_reply(
        412,
        &[issue(
            "",
            "multiple-matches",
            "The condition matches more than one Bundle; it is not selective enough",
        )],
        Outcome::Rejected,
    )
    .detail("multiple_matches")
}

fn id_mismatch(text: &str) -> Reply {
    outcome_reply(400, &[issue("Bundle.id", "value", text)], Outcome::Rejected).detail("Bundle.id")
}

fn stored_reply(
    status: u16,
    stored: &Value,
    version: u32,
    outcome: Outcome,
    reference: String,
) -> Reply {
    Reply::new(status, FHIR_JSON, stored.to_string().into_bytes(), outcome)
        .header(header::LOCATION, format!("{reference}/_history/{version}"))
        .header(header::ETAG, format!(r#"W/"{version}""#))
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

fn oauth_error(status: u16, error: &str, outcome: Outcome) -> Reply {
    Reply::json(status, &json!({"error": error}), outcome).detail(error)
}

impl Registry for FhirR4 {
    fn endpoint(&self, method: &Method, path: &str) -> Endpoint {
        match (method, path) {
            (&Method::POST, TOKEN_PATH) => Endpoint::Token,
            (&Method::POST, BUNDLE_PATH) => Endpoint::Submit,
            (&Method::PUT, BUNDLE_PATH) => Endpoint::Submit,
            (&Method::PUT, p) if logical_id(p).is_some() => Endpoint::Submit,
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
            Endpoint::Submit => self.submit(req, now),
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
            "token: POST {TOKEN_PATH} (form grant_type=client_credentials, client_id={} client_secret={}, or Basic; {} s); \
             POST {BUNDLE_PATH} (If-None-Exist: identifier=system|value), PUT {BUNDLE_PATH}/<id>, PUT {BUNDLE_PATH}?identifier=system|value",
            self.credentials.client_id,
            self.credentials.client_secret,
            self.issuer.lifetime().as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    fn request(
        method: Method,
        path: &str,
        query: &str,
        if_none_exist: Option<&str>,
    ) -> MockRequest {
        let mut headers = HeaderMap::new();
        if let Some(c) = if_none_exist {
            headers.insert("if-none-exist", c.parse().unwrap());
        }
        MockRequest {
            method,
            path: path.into(),
            query: query.into(),
            headers,
            body: Default::default(),
        }
    }

    #[test]
    fn requests_are_read_as_r4_interactions() {
        let token = "identifier=urn%3Aietf%3Arfc%3A3986%7Curn%3Auuid%3A1";
        let search = IdentifierSearch::parse("urn:ietf:rfc:3986|urn:uuid:1").unwrap();
        let read = |m, p, q, h| interaction(&request(m, p, q, h)).ok();
        assert_eq!(
            read(Method::POST, BUNDLE_PATH, "", None),
            Some(Interaction::Create(None))
        );
        assert_eq!(
            read(Method::POST, BUNDLE_PATH, "", Some(token)),
            Some(Interaction::Create(Some(search.clone())))
        );
        assert_eq!(
            read(Method::PUT, "/fhir/Bundle/abc-1", "", None),
            Some(Interaction::Update("abc-1".into()))
        );
        assert_eq!(
            read(Method::PUT, BUNDLE_PATH, token, None),
            Some(Interaction::ConditionalUpdate(search))
        );
        // Only identifier conditions; a PUT needs an id or a condition.
        assert_eq!(
            read(Method::POST, BUNDLE_PATH, "", Some("timestamp=2025")),
            None
        );
        assert_eq!(read(Method::PUT, BUNDLE_PATH, "", None), None);
        assert_eq!(logical_id("/fhir/Bundle/a/b"), None);
        assert_eq!(logical_id("/fhir/Bundle/a_b"), None);
    }
}

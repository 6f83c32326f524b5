//! A government-run Primero v2 (FORMATS §4): `POST /api/v2/cases` with
//! `{"data": {...}}`. A client-supplied UUID `id` gives 204 No Content, no
//! id gives 200 with the created case, a known id gives 409; invalid fields
//! give 422 with one error per field in `detail`.
//!
//! Authentication is one of the four modes of [`PrimeroAuth`]:
//! `POST /api/v2/tokens` with `{"user": {"user_name", "password"}}` answers
//! a JWT in the `Authorization` header (jwt-header) or a session cookie plus
//! a `CSRF-TOKEN` cookie to echo as `X-CSRF-Token` (session);
//! `DELETE /api/v2/tokens` ends either. Basic checks every request; in
//! idp-bearer mode the mock also plays the IdP at `POST /idp/token`.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{Method, header};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::arrivals::{Endpoint, Outcome};
use super::records::{Records, StoredRecord};
use super::server::{MockRequest, Refusal, Registry, Reply};
use super::token::{
    Ids, Issuer, TokenError, basic_credentials, cookie, param, parse_form, sha256_hex,
};
use super::{Credentials, MockConfig, PrimeroAuth, lock};

pub(crate) const CASES_PATH: &str = "/api/v2/cases";
const TOKENS_PATH: &str = "/api/v2/tokens";
const IDP_TOKEN_PATH: &str = "/idp/token";
const SESSION_COOKIE: &str = "_primero_session";
const CSRF_COOKIE: &str = "CSRF-TOKEN";
const MODULES: [&str; 3] = ["primeromodule-cp", "primeromodule-gbv", "primeromodule-mrm"];

struct Session {
    csrf: String,
    last_seen: DateTime<Utc>,
}

pub(crate) struct Primero {
    credentials: Credentials,
    auth: PrimeroAuth,
    issuer: Issuer,
    sessions: Mutex<HashMap<String, Session>>,
    ids: Ids,
    records: Records,
}

/// Why a write is not authenticated.
enum Denied {
    Unauthorized(&'static str),
    Csrf,
}

impl Primero {
    pub fn new(config: &MockConfig) -> Primero {
        Primero {
            credentials: config.credentials.clone(),
            auth: config.primero_auth,
            issuer: Issuer::new(config.credentials.token_lifetime),
            sessions: Mutex::new(HashMap::new()),
            ids: Ids::new(config.seed),
            records: Records::default(),
        }
    }

    fn login(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        if !matches!(self.auth, PrimeroAuth::JwtHeader | PrimeroAuth::Session) {
            return error(404, TOKENS_PATH, "Not Found", None, Outcome::NotFound);
        }
        let body = req.json().unwrap_or_default();
        let user = body["user"]["user_name"].as_str();
        let password = body["user"]["password"].as_str();
        if user != Some(self.credentials.user.as_str())
            || password != Some(self.credentials.password.as_str())
        {
            return Reply::json(
                401,
                &json!({"error": "Invalid User name or password."}),
                Outcome::Unauthorized,
            )
            .detail("login");
        }
        let user = self.credentials.user.as_str();
        if self.auth == PrimeroAuth::JwtHeader {
            let token = self.issuer.issue(now, json!({"sub": user, "scp": "user"}));
            return Reply::json(200, &json!({"user_name": user}), Outcome::Accepted)
                .header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let n = self.ids.next_seq();
        let session = self.ids.code("session", n, 32);
        let csrf = self.ids.code("csrf", n, 32);
        lock(&self.sessions).insert(
            session.clone(),
            Session {
                csrf: csrf.clone(),
                last_seen: now,
            },
        );
        Reply::json(
            200,
            &json!({"id": 1, "user_name": user, "group_permission": "self"}),
            Outcome::Accepted,
        )
        .header(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}={session}; path=/; HttpOnly; SameSite=Lax"),
        )
        .header(
            header::SET_COOKIE,
            format!("{CSRF_COOKIE}={csrf}; path=/; SameSite=Lax"),
        )
    }

    fn logout(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        match self.auth {
            PrimeroAuth::JwtHeader => match self.issuer.verify(req.bearer(), now) {
                Ok(claims) => {
                    self.issuer.revoke(&claims);
                    Reply::json(200, &json!({}), Outcome::Accepted)
                }
                Err(e) => unauthorized(TOKENS_PATH).detail(e.as_str()),
            },
            PrimeroAuth::Session => {
                let sid = cookie(req.header("cookie"), SESSION_COOKIE).unwrap_or_default();
                match lock(&self.sessions).remove(sid) {
                    Some(_) => Reply::json(200, &json!({}), Outcome::Accepted),
                    None => unauthorized(TOKENS_PATH),
                }
            }
            PrimeroAuth::Basic | PrimeroAuth::IdpBearer => {
                error(404, TOKENS_PATH, "Not Found", None, Outcome::NotFound)
            }
        }
    }

    /// The mock IdP: client credentials in a form body (or the query).
    fn idp_token(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        if self.auth != PrimeroAuth::IdpBearer {
            return error(404, IDP_TOKEN_PATH, "Not Found", None, Outcome::NotFound);
        }
        let form = parse_form(std::str::from_utf8(&req.body).unwrap_or_default());
        let query = parse_form(&req.query);
        let get = |n: &str| param(&form, n).or_else(|| param(&query, n));
        if get("client_id") != Some(self.credentials.client_id.as_str())
            || get("client_secret") != Some(self.credentials.client_secret.as_str())
        {
            return Reply::json(
                401,
                &json!({"error": "invalid_client"}),
                Outcome::Unauthorized,
            )
            .detail("invalid_client");
        }
        let token = self.issuer.issue(
            now,
            json!({"sub": self.credentials.client_id, "iss": "mock-idp"}),
        );
        Reply::json(
            200,
            &json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.issuer.lifetime().as_secs(),
            }),
            Outcome::Accepted,
        )
    }

    fn authenticate(&self, req: &MockRequest, now: DateTime<Utc>) -> Result<(), Denied> {
        let token_error = |e: TokenError| Denied::Unauthorized(e.as_str());
        match self.auth {
            PrimeroAuth::JwtHeader | PrimeroAuth::IdpBearer => self
                .issuer
                .verify(req.bearer(), now)
                .map(drop)
                .map_err(token_error),
            PrimeroAuth::Basic => {
                let given = basic_credentials(req.header("authorization"));
                let expected = (
                    self.credentials.user.clone(),
                    self.credentials.password.clone(),
                );
                if given.as_ref() == Some(&expected) {
                    Ok(())
                } else {
                    Err(Denied::Unauthorized("basic"))
                }
            }
            PrimeroAuth::Session => self.check_session(req, now),
        }
    }

    /// A live session (idle less than the lifetime) and its CSRF token echoed.
    fn check_session(&self, req: &MockRequest, now: DateTime<Utc>) -> Result<(), Denied> {
        let sid = cookie(req.header("cookie"), SESSION_COOKIE)
            .ok_or(Denied::Unauthorized("session_missing"))?;
        let mut sessions = lock(&self.sessions);
        let idle = TimeDelta::from_std(self.issuer.lifetime()).unwrap_or(TimeDelta::MAX);
        let session = sessions
            .get_mut(sid)
            .ok_or(Denied::Unauthorized("session_unknown"))?;
        if now - session.last_seen >= idle {
            sessions.remove(sid);
            return Err(Denied::Unauthorized("session_expired"));
        }
        if req.header("x-csrf-token") != Some(session.csrf.as_str()) {
            return Err(Denied::Csrf);
        }
        session.last_seen = now;
        Ok(())
    }

    fn create_case(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        match self.authenticate(req, now) {
            Ok(()) => {}
            Err(Denied::Unauthorized(why)) => return unauthorized(CASES_PATH).detail(why),
            Err(Denied::Csrf) => {
                return error(
                    422,
                    CASES_PATH,
                    "InvalidAuthenticityToken",
                    None,
                    Outcome::Unauthorized,
                )
                .detail("csrf");
            }
        }
        let Some(body) = req.json() else {
            return error(400, CASES_PATH, "Bad Request", None, Outcome::Rejected).detail("json");
        };
        let Some(data) = body.get("data").and_then(Value::as_object) else {
            return error(
                422,
                CASES_PATH,
                "Unprocessable Entity",
                Some("data"),
                Outcome::Rejected,
            )
            .detail("data");
        };
        let invalid = invalid_fields(data, now);
        if !invalid.is_empty() {
            let errors: Vec<Value> = invalid
                .iter()
                .map(|field| {
                    json!({"code": 422, "resource": CASES_PATH,
                           "message": "Unprocessable Entity", "detail": field})
                })
                .collect();
            return Reply::json(422, &json!({"errors": errors}), Outcome::Rejected)
                .detail(invalid[0].clone());
        }
        self.store(req, data, now)
    }

    fn store(&self, req: &MockRequest, data: &Map<String, Value>, now: DateTime<Utc>) -> Reply {
        let client_id = data.get("id").and_then(Value::as_str).map(str::to_string);
        let n = self.ids.next_seq();
        let id = client_id
            .clone()
            .unwrap_or_else(|| self.ids.uuid("case", n).to_string());
        let mut case = data.clone();
        case.insert("id".into(), json!(id));
        case.insert(
            "case_id_display".into(),
            json!(self.ids.code("case", n, 7).to_lowercase()),
        );
        case.insert("status".into(), json!("open"));
        let record = StoredRecord {
            key: id.clone(),
            reference: id.clone(),
            received_at: now,
            digest: sha256_hex(&req.body),
        };
        match self
            .records
            .insert(record, &req.body, Value::Object(case.clone()))
        {
            Err(_) => error(
                409,
                CASES_PATH,
                "Conflict: A record with this id already exists",
                None,
                Outcome::Duplicate,
            )
            .reference(id),
            Ok(()) if client_id.is_some() => Reply::empty(204, Outcome::Accepted).reference(id),
            Ok(()) => Reply::json(200, &json!({"data": case}), Outcome::Accepted).reference(id),
        }
    }
}

/// Fields Primero's model validation refuses: names only, never values.
fn invalid_fields(data: &Map<String, Value>, now: DateTime<Utc>) -> Vec<String> {
    let mut invalid = Vec::new();
    if let Some(id) = data.get("id") {
        if id.as_str().is_none_or(|s| Uuid::try_parse(s).is_err()) {
            invalid.push("id".to_string());
        }
    }
    if !data
        .get("module_id")
        .and_then(Value::as_str)
        .is_some_and(|m| MODULES.contains(&m))
    {
        invalid.push("module_id".into());
    }
    let today = now.date_naive();
    for (key, value) in data {
        let is_date_field = key.starts_with("date_") || key.ends_with("_date");
        if is_date_field && !value.is_null() {
            match value
                .as_str()
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            {
                None => invalid.push(key.clone()),
                Some(date) if key == "date_of_birth" && date > today => invalid.push(key.clone()),
                Some(_) => {}
            }
        }
    }
    if let Some(age) = data.get("age") {
        if age.as_u64().is_none_or(|a| a > 130) {
            invalid.push("age".into());
        }
    }
    for (key, value) in data {
        if key.ends_with("_section") && !subform_ok(value) {
            invalid.push(key.clone());
        }
    }
    invalid
}

/// A subform is a list of objects; a row's `unique_id`, when given, is a UUID.
fn subform_ok(value: &Value) -> bool {
    value.as_array().is_some_and(|rows| {
        rows.iter().all(|row| {
            row.as_object().is_some_and(|r| {
                r.get("unique_id")
                    .is_none_or(|u| u.as_str().is_some_and(|s| Uuid::try_parse(s).is_ok()))
            })
        })
    })
}

/// Primero's error envelope (`error_service.rb`).
fn error(
    status: u16,
    resource: &str,
    message: &str,
    detail: Option<&str>,
    outcome: Outcome,
) -> Reply {
    let mut e = json!({"code": status, "resource": resource, "message": message});
    if let Some(d) = detail {
        e["detail"] = json!(d);
    }
    Reply::json(status, &json!({"errors": [e]}), outcome)
}

fn unauthorized(resource: &str) -> Reply {
    error(401, resource, "Unauthorized", None, Outcome::Unauthorized)
}

impl Registry for Primero {
    fn endpoint(&self, method: &Method, path: &str) -> Endpoint {
        match (method, path) {
            (&Method::POST | &Method::DELETE, TOKENS_PATH) | (&Method::POST, IDP_TOKEN_PATH) => {
                Endpoint::Token
            }
            (&Method::POST, CASES_PATH) => Endpoint::Submit,
            _ => Endpoint::Unknown,
        }
    }

    fn token_path(&self) -> Option<&'static str> {
        match self.auth {
            PrimeroAuth::JwtHeader | PrimeroAuth::Session => Some(TOKENS_PATH),
            PrimeroAuth::IdpBearer => Some(IDP_TOKEN_PATH),
            PrimeroAuth::Basic => None,
        }
    }

    fn idempotency_key(&self, req: &MockRequest) -> Option<String> {
        req.json()?["data"]["id"].as_str().map(str::to_string)
    }

    fn handle(&self, endpoint: Endpoint, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        match (endpoint, &req.method, req.path.as_str()) {
            (Endpoint::Token, &Method::DELETE, _) => self.logout(req, now),
            (Endpoint::Token, _, IDP_TOKEN_PATH) => self.idp_token(req, now),
            (Endpoint::Token, _, _) => self.login(req, now),
            (Endpoint::Submit, _, _) => self.create_case(req, now),
            (Endpoint::Unknown, _, path) => error(404, path, "Not Found", None, Outcome::NotFound),
        }
    }

    fn refuse(&self, refusal: Refusal, _req: &MockRequest, _now: DateTime<Utc>) -> Reply {
        let (status, message) = match refusal {
            Refusal::Maintenance { .. } | Refusal::Unavailable { .. } => {
                (503, "Service Unavailable")
            }
            Refusal::Internal => (500, "Internal Server Error"),
            Refusal::Limited { .. } => (429, "Too Many Requests"),
            Refusal::TooLarge => (413, "Payload Too Large"),
        };
        error(status, CASES_PATH, message, None, refusal.outcome())
            .retry_after(refusal.retry_after())
    }

    fn records(&self) -> &Records {
        &self.records
    }

    fn describe(&self) -> String {
        let c = &self.credentials;
        match self.auth {
            PrimeroAuth::JwtHeader => format!(
                "auth jwt-header: POST {TOKENS_PATH} {{\"user\":{{\"user_name\":\"{}\",\"password\":\"{}\"}}}}",
                c.user, c.password
            ),
            PrimeroAuth::Session => format!(
                "auth session: POST {TOKENS_PATH} as {} / {}, then cookie + X-CSRF-Token",
                c.user, c.password
            ),
            PrimeroAuth::Basic => format!("auth basic: {} / {}", c.user, c.password),
            PrimeroAuth::IdpBearer => format!(
                "auth idp-bearer: POST {IDP_TOKEN_PATH} client_id={} client_secret={}",
                c.client_id, c.client_secret
            ),
        }
    }
}

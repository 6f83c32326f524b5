//! A government-run Primero v2, as release v2.15.2 behaves (primeroIMS/primero
//! tag v2.15.2; docs/registries.md lists every path read under Primero).
//!
//! Cases: `POST /api/v2/cases` with `{"data": {...}}` (app/controllers/api/v2/
//! concerns/record.rb `create`): a client-supplied UUID `id` gives 204 No
//! Content, no id gives 200 with the case; a known id is 409 "Conflict: A
//! record with this id already exists" (ActiveRecord::RecordNotUnique in
//! app/services/error_service.rb). `PATCH /api/v2/cases/{id}` merges `data`
//! into the case, subform rows by `unique_id` (app/services/
//! record_merge_data_hash_service.rb) and answers 200. `GET /api/v2/cases/{id}`
//! shows the case. `data` is checked against the instance's forms and lookups
//! ([`Instance`]): unknown fields are dropped without a word, as strong
//! parameters do (the arrival's detail lists their pointers), bad values are
//! 422 "Invalid Record JSON" with their pointers in `detail`. Errors are
//! `{"errors": [{"status", "resource", "detail"?, "message"}]}`
//! (app/views/api/v2/errors/_error.json.jbuilder).
//!
//! Login ([`PrimeroAuth::Native`], Devise without devise-jwt since v2.11.0):
//! HTTP Basic on any request (no session, no CSRF: app/controllers/concerns/
//! csrf_protection.rb `request_from_basic_auth?`), or a session:
//! `GET /health/server?session=true` sets the `_app_session` and `CSRF-TOKEN`
//! cookies (app/controllers/health_controller.rb); `POST /api/v2/tokens` is
//! itself CSRF-protected, answers `{id, user_name, group_permission}` (no
//! token anywhere: app/controllers/api/v2/tokens_controller.rb), ends the
//! account's other sessions (v2.12.0+ `expire_other_user_sessions`) and
//! renews the session and its CSRF token (Devise
//! `clean_up_csrf_token_on_authentication`, config/initializers/devise.rb);
//! the session's writes echo the token in `X-CSRF-Token`, a mismatch is 403
//! (ActionController::InvalidAuthenticityToken). Sessions expire after an
//! hour idle. [`PrimeroAuth::IdpBearer`]: a bearer token from an identity
//! provider, which the mock also plays at `POST /idp/token`.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{Method, header};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use super::arrivals::{Endpoint, Outcome};
use super::primero_instance::Instance;
use super::records::{Records, StoredRecord};
use super::server::{MockRequest, Refusal, Registry, Reply};
use super::token::{Ids, Issuer, basic_credentials, cookie, param, parse_form, sha256_hex};
use super::{Credentials, MockConfig, PrimeroAuth, lock};

pub(crate) const CASES_PATH: &str = "/api/v2/cases";
const TOKENS_PATH: &str = "/api/v2/tokens";
const HEALTH_PATH: &str = "/health/server";
const IDP_TOKEN_PATH: &str = "/idp/token";
const SESSION_COOKIE: &str = "_app_session";
const CSRF_COOKIE: &str = "CSRF-TOKEN";
const CSRF_MESSAGE: &str = "Can't verify CSRF token authenticity.";
const SIGN_IN_MESSAGE: &str = "You need to sign in or sign up before continuing.";

struct Session {
    csrf: String,
    /// Signed in as the gateway's account (None: only a CSRF token so far).
    signed_in: bool,
    last_seen: DateTime<Utc>,
}

pub(crate) struct Primero {
    credentials: Credentials,
    auth: PrimeroAuth,
    issuer: Issuer,
    sessions: Mutex<HashMap<String, Session>>,
    ids: Ids,
    records: Records,
    instance: Instance,
    /// Case id -> the case's data as stored (after merges).
    cases: Mutex<HashMap<String, Map<String, Value>>>,
}

/// Who sends a request.
enum Caller {
    /// Basic or bearer: no session, no CSRF.
    Stateless,
    /// A signed-in session.
    Session,
}

/// Why a request is not authenticated.
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
            instance: Instance::examplia(),
            cases: Mutex::new(HashMap::new()),
        }
    }

    fn new_session(&self, signed_in: bool, now: DateTime<Utc>) -> (String, String) {
        let n = self.ids.next_seq();
        let sid = self.ids.code("session", n, 32);
        let csrf = self.ids.code("csrf", n, 32);
        lock(&self.sessions).insert(
            sid.clone(),
            Session {
                csrf: csrf.clone(),
                signed_in,
                last_seen: now,
            },
        );
        (sid, csrf)
    }

    /// The live session a request's cookie names, if any.
    fn session_of(&self, req: &MockRequest, now: DateTime<Utc>) -> Option<(String, String, bool)> {
        let sid = cookie(req.header("cookie"), SESSION_COOKIE)?;
        let mut sessions = lock(&self.sessions);
        let idle = TimeDelta::from_std(self.issuer.lifetime()).unwrap_or(TimeDelta::MAX);
        let session = sessions.get_mut(sid)?;
        if now - session.last_seen >= idle {
            sessions.remove(sid);
            return None;
        }
        session.last_seen = now;
        Some((sid.to_string(), session.csrf.clone(), session.signed_in))
    }

    /// `GET /health/server?session=true`: 204, and the session's CSRF cookie
    /// (a new session when the request has none).
    fn health(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        let reply = Reply::empty(204, Outcome::Accepted);
        let wants_session = parse_form(&req.query)
            .iter()
            .any(|(k, v)| k == "session" && v == "true");
        if self.auth != PrimeroAuth::Native || !wants_session {
            return reply;
        }
        let (sid, csrf) = match self.session_of(req, now) {
            Some((sid, csrf, _)) => (sid, csrf),
            None => self.new_session(false, now),
        };
        with_session_cookies(reply, &sid, &csrf).detail("csrf_cookie")
    }

    fn login(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        if self.auth != PrimeroAuth::Native {
            return error(404, TOKENS_PATH, "Not Found", None, Outcome::NotFound);
        }
        // The login is CSRF-protected like any other write.
        let Some((old_sid, old_csrf, _)) = self.session_of(req, now) else {
            return csrf_refused(TOKENS_PATH);
        };
        if req.header("x-csrf-token") != Some(old_csrf.as_str()) {
            return csrf_refused(TOKENS_PATH);
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
        // One account, so every other session is this account's: all end.
        lock(&self.sessions).clear();
        let (sid, _fresh_csrf) = self.new_session(true, now);
        let _ = old_sid;
        let reply = Reply::json(
            200,
            &json!({"id": 1, "user_name": self.credentials.user, "group_permission": "self"}),
            Outcome::Accepted,
        );
        // The CSRF cookie was set before the login renewed the token: it is
        // the old one, and the next write needs the new one.
        with_session_cookies(reply, &sid, &old_csrf)
    }

    fn logout(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        match self.auth {
            PrimeroAuth::Native => match self.session_of(req, now) {
                Some((sid, _, true)) => {
                    lock(&self.sessions).remove(&sid);
                    Reply::json(200, &json!({}), Outcome::Accepted)
                }
                _ => unauthorized(),
            },
            PrimeroAuth::IdpBearer => match self.issuer.verify(req.bearer(), now) {
                Ok(claims) => {
                    self.issuer.revoke(&claims);
                    Reply::json(200, &json!({}), Outcome::Accepted)
                }
                Err(e) => unauthorized().detail(e.as_str()),
            },
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

    fn authenticate(&self, req: &MockRequest, now: DateTime<Utc>) -> Result<Caller, Denied> {
        if self.auth == PrimeroAuth::IdpBearer {
            return self
                .issuer
                .verify(req.bearer(), now)
                .map(|_| Caller::Stateless)
                .map_err(|e| Denied::Unauthorized(e.as_str()));
        }
        if req.header("authorization").is_some() {
            let given = basic_credentials(req.header("authorization"));
            let expected = (
                self.credentials.user.clone(),
                self.credentials.password.clone(),
            );
            return if given.as_ref() == Some(&expected) {
                Ok(Caller::Stateless)
            } else {
                Err(Denied::Unauthorized("basic"))
            };
        }
        match self.session_of(req, now) {
            Some((_, csrf, true)) => {
                let safe = req.method == Method::GET;
                if !safe && req.header("x-csrf-token") != Some(csrf.as_str()) {
                    return Err(Denied::Csrf);
                }
                Ok(Caller::Session)
            }
            Some((_, _, false)) => Err(Denied::Unauthorized("session_not_signed_in")),
            None => Err(Denied::Unauthorized("no_credentials")),
        }
    }

    /// Authentication as every case endpoint does it.
    fn caller(&self, req: &MockRequest, now: DateTime<Utc>) -> Result<Caller, Reply> {
        self.authenticate(req, now).map_err(|denied| match denied {
            Denied::Unauthorized(why) => unauthorized().detail(why),
            Denied::Csrf => csrf_refused(&req.path),
        })
    }

    fn data<'a>(
        &self,
        req: &MockRequest,
        body: &'a Option<Value>,
    ) -> Result<&'a Map<String, Value>, Reply> {
        let Some(body) = body else {
            return Err(
                error(400, &req.path, "Bad Request", None, Outcome::Rejected).detail("json"),
            );
        };
        // `params.require(:data)`: ActionController::ParameterMissing is a 422.
        body.get("data").and_then(Value::as_object).ok_or_else(|| {
            error(
                422,
                &req.path,
                "param is missing or the value is empty or invalid: data",
                None,
                Outcome::Rejected,
            )
            .detail("data")
        })
    }

    fn create_case(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        if let Err(reply) = self.caller(req, now) {
            return reply;
        }
        let body = req.json();
        let data = match self.data(req, &body) {
            Ok(data) => data,
            Err(reply) => return reply,
        };
        let checked = self.instance.check(data, false);
        if !checked.invalid.is_empty() {
            return invalid_json(CASES_PATH, &checked.invalid);
        }
        let dropped = dropped_detail(&checked.dropped);
        let reply = self.store(req, checked.kept, now);
        match dropped {
            Some(d) => reply.detail(d),
            None => reply,
        }
    }

    fn store(&self, req: &MockRequest, mut case: Map<String, Value>, now: DateTime<Utc>) -> Reply {
        let client_id = case.get("id").and_then(Value::as_str).map(str::to_string);
        let n = self.ids.next_seq();
        let id = client_id
            .clone()
            .unwrap_or_else(|| self.ids.uuid("case", n).to_string());
        case.insert("id".into(), json!(id));
        case.insert(
            "case_id_display".into(),
            json!(self.ids.code("case", n, 7).to_lowercase()),
        );
        case.insert("status".into(), json!("open"));
        // `Ownable#owner_fields_for`: the creator, unless the request names one.
        case.entry("owned_by")
            .or_insert_with(|| json!(self.credentials.user));
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
            Ok(()) => {
                lock(&self.cases).insert(id.clone(), case.clone());
                if client_id.is_some() {
                    Reply::empty(204, Outcome::Accepted).reference(id)
                } else {
                    Reply::json(200, &json!({"data": case}), Outcome::Accepted).reference(id)
                }
            }
        }
    }

    /// `PATCH /api/v2/cases/{id}`: the schema without `id`, then a merge.
    fn update_case(&self, req: &MockRequest, id: &str, now: DateTime<Utc>) -> Reply {
        if let Err(reply) = self.caller(req, now) {
            return reply;
        }
        if !lock(&self.cases).contains_key(id) {
            return not_found(&req.path);
        }
        let body = req.json();
        let data = match self.data(req, &body) {
            Ok(data) => data,
            Err(reply) => return reply,
        };
        let checked = self.instance.check(data, true);
        if !checked.invalid.is_empty() {
            return invalid_json(&req.path, &checked.invalid);
        }
        let mut cases = lock(&self.cases);
        let Some(case) = cases.get_mut(id) else {
            return not_found(&req.path);
        };
        let mut changed = Map::new();
        for (key, value) in checked.kept {
            let old = case.remove(&key).unwrap_or(Value::Null);
            let merged = merge(old, value);
            changed.insert(key.clone(), merged.clone());
            case.insert(key, merged);
        }
        changed.insert("id".into(), json!(id));
        let reply = Reply::json(200, &json!({"data": changed}), Outcome::Accepted)
            .reference(id.to_string());
        match dropped_detail(&checked.dropped) {
            Some(d) => reply.detail(d),
            None => reply.detail("updated"),
        }
    }

    fn show_case(&self, req: &MockRequest, id: &str, now: DateTime<Utc>) -> Reply {
        if let Err(reply) = self.caller(req, now) {
            return reply;
        }
        match lock(&self.cases).get(id) {
            Some(case) => Reply::json(200, &json!({"data": case}), Outcome::Accepted)
                .reference(id.to_string()),
            None => not_found(&req.path),
        }
    }
}

/// `RecordMergeDataHashService#merge_data`: hashes merge key by key, lists of
/// rows merge by `unique_id` (rows without one are kept, new ones appended,
/// `_destroy` removes), anything else is replaced.
fn merge(old: Value, new: Value) -> Value {
    match (old, new) {
        (Value::Object(mut old), Value::Object(new)) => {
            for (k, v) in new {
                let o = old.remove(&k).unwrap_or(Value::Null);
                old.insert(k, merge(o, v));
            }
            Value::Object(old)
        }
        (Value::Array(old), Value::Array(new)) if rows(&old) && rows(&new) => {
            let id = |r: &Value| r.get("unique_id").cloned();
            let mut out: Vec<Value> = old
                .into_iter()
                .map(
                    |o| match id(&o).and_then(|u| new.iter().find(|n| id(n) == Some(u.clone()))) {
                        Some(n) => merge(o, n.clone()),
                        None => o,
                    },
                )
                .collect();
            for n in new {
                if !out.iter().any(|o| id(o).is_some() && id(o) == id(&n)) {
                    out.push(n);
                }
            }
            out.retain(|r| r.get("_destroy") != Some(&Value::Bool(true)));
            Value::Array(out)
        }
        (_, new) => new,
    }
}

/// A list Primero merges row by row: empty, or starting with an object.
fn rows(list: &[Value]) -> bool {
    list.first().is_none_or(Value::is_object)
}

fn with_session_cookies(reply: Reply, sid: &str, csrf: &str) -> Reply {
    reply
        .header(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}={sid}; path=/; HttpOnly; SameSite=Lax"),
        )
        .header(
            header::SET_COOKIE,
            format!("{CSRF_COOKIE}={csrf}; path=/; SameSite=Strict"),
        )
}

fn dropped_detail(dropped: &[String]) -> Option<String> {
    (!dropped.is_empty()).then(|| format!("dropped {}", dropped.join(",")))
}

/// `Errors::InvalidRecordJson`: the pointers the schema refused.
fn invalid_json(resource: &str, pointers: &[String]) -> Reply {
    Reply::json(
        422,
        &json!({"errors": [{"status": 422, "resource": resource,
                            "detail": pointers, "message": "Invalid Record JSON"}]}),
        Outcome::Rejected,
    )
    .detail(pointers.join(","))
}

fn csrf_refused(resource: &str) -> Reply {
    error(403, resource, CSRF_MESSAGE, None, Outcome::Unauthorized).detail("csrf")
}

fn not_found(resource: &str) -> Reply {
    error(404, resource, "Not Found", None, Outcome::NotFound)
}

/// Primero's error envelope (app/views/api/v2/errors/_error.json.jbuilder).
fn error(
    status: u16,
    resource: &str,
    message: &str,
    detail: Option<&str>,
    outcome: Outcome,
) -> Reply {
    let mut e = json!({"status": status, "resource": resource, "message": message});
    if let Some(d) = detail {
        e["detail"] = json!(d);
    }
    Reply::json(status, &json!({"errors": [e]}), outcome)
}

/// Devise's failure app: 401 with a plain `error`.
fn unauthorized() -> Reply {
    Reply::json(
        401,
        &json!({"error": SIGN_IN_MESSAGE}),
        Outcome::Unauthorized,
    )
}

/// The case id of `/api/v2/cases/{id}`.
fn case_id(path: &str) -> Option<&str> {
    path.strip_prefix(CASES_PATH)?
        .strip_prefix('/')
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

impl Registry for Primero {
    fn endpoint(&self, method: &Method, path: &str) -> Endpoint {
        match (method, path) {
            (&Method::POST | &Method::DELETE, TOKENS_PATH)
            | (&Method::POST, IDP_TOKEN_PATH)
            | (&Method::GET, HEALTH_PATH) => Endpoint::Token,
            (&Method::POST, CASES_PATH) => Endpoint::Submit,
            (&Method::PATCH, p) if case_id(p).is_some() => Endpoint::Submit,
            _ => Endpoint::Unknown,
        }
    }

    fn token_path(&self) -> Option<&'static str> {
        match self.auth {
            PrimeroAuth::Native => Some(TOKENS_PATH),
            PrimeroAuth::IdpBearer => Some(IDP_TOKEN_PATH),
        }
    }

    fn idempotency_key(&self, req: &MockRequest) -> Option<String> {
        if req.method == Method::PATCH {
            return case_id(&req.path).map(str::to_string);
        }
        req.json()?["data"]["id"].as_str().map(str::to_string)
    }

    fn handle(&self, endpoint: Endpoint, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        match (endpoint, &req.method, req.path.as_str()) {
            (Endpoint::Token, &Method::DELETE, _) => self.logout(req, now),
            (Endpoint::Token, &Method::GET, _) => self.health(req, now),
            (Endpoint::Token, _, IDP_TOKEN_PATH) => self.idp_token(req, now),
            (Endpoint::Token, _, _) => self.login(req, now),
            (Endpoint::Submit, &Method::PATCH, path) => match case_id(path) {
                Some(id) => self.update_case(req, id, now),
                None => not_found(path),
            },
            (Endpoint::Submit, _, _) => self.create_case(req, now),
            // Reading a case back is not a registry write: no limits apply.
            (Endpoint::Unknown, &Method::GET, path) if case_id(path).is_some() => {
                self.show_case(req, case_id(path).unwrap_or_default(), now)
            }
            (Endpoint::Unknown, _, path) => not_found(path),
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
            PrimeroAuth::Native => format!(
                "auth native (v2.15): HTTP Basic {0} / {1}, or GET {HEALTH_PATH}?session=true then POST {TOKENS_PATH} with X-CSRF-Token",
                c.user, c.password
            ),
            PrimeroAuth::IdpBearer => format!(
                "auth idp-bearer: POST {IDP_TOKEN_PATH} client_id={} client_secret={}",
                c.client_id, c.client_secret
            ),
        }
    }
}

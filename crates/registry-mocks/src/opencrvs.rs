//! OpenCRVS 2.x (FORMATS §1): `POST /auth/token` (client credentials, a JWT
//! without `expires_in`, 600 s by default) and the one-shot
//! `POST /api/events/events/notify`, idempotent on `transactionId`: a replay
//! returns the same event before any validation, as `createAndNotify.ts` does.

use axum::http::{Method, header};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::arrivals::{Endpoint, Outcome};
use super::records::{Records, StoredRecord};
use super::server::{MockRequest, Refusal, Registry, Reply};
use super::token::{Ids, Issuer, param, parse_form, sha256_hex};
use super::{Credentials, MockConfig, OpencrvsSettings};

pub(crate) const NOTIFY_PATH: &str = "/api/events/events/notify";
const TOKEN_PATH: &str = "/auth/token";
/// The gateway also forwards `/events/...` to the events service.
const NOTIFY_PATH_GATEWAY: &str = "/events/events/notify";

pub(crate) struct Opencrvs {
    credentials: Credentials,
    settings: OpencrvsSettings,
    issuer: Issuer,
    ids: Ids,
    records: Records,
}

impl Opencrvs {
    pub fn new(config: &MockConfig) -> Opencrvs {
        Opencrvs {
            credentials: config.credentials.clone(),
            settings: config.opencrvs.clone(),
            issuer: Issuer::new(config.credentials.token_lifetime),
            ids: Ids::new(config.seed),
            records: Records::default(),
        }
    }

    /// `POST /auth/token`: each parameter from a form body first, then the query.
    fn token(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        let form = parse_form(std::str::from_utf8(&req.body).unwrap_or_default());
        let query = parse_form(&req.query);
        let get = |name: &str| param(&form, name).or_else(|| param(&query, name));
        let (Some(grant), Some(id), Some(secret)) =
            (get("grant_type"), get("client_id"), get("client_secret"))
        else {
            return oauth_error(
                400,
                "invalid_request",
                "Missing parameter",
                Outcome::Rejected,
            );
        };
        if grant != "client_credentials" {
            return oauth_error(
                400,
                "unsupported_grant_type",
                "Unsupported grant type",
                Outcome::Rejected,
            );
        }
        if id != self.credentials.client_id || secret != self.credentials.client_secret {
            return oauth_error(
                401,
                "invalid_client",
                "Invalid client id or secret",
                Outcome::Unauthorized,
            );
        }
        let token = self.issuer.issue(
            now,
            json!({
                "iss": "opencrvs:auth-service",
                "sub": id,
                "aud": ["opencrvs:auth-user", "opencrvs:user-mgnt-user", "opencrvs:gateway-user",
                        "opencrvs:events-user", "opencrvs:countryconfig-user",
                        "opencrvs:documents-user"],
                "scope": ["record.create[event=birth|death]", "record.notify[event=birth|death]"],
                "userType": "system",
            }),
        );
        // No expires_in and no refresh token: clients read `exp` from the JWT.
        Reply::json(
            200,
            &json!({"access_token": token, "token_type": "Bearer"}),
            Outcome::Accepted,
        )
        .header(header::CACHE_CONTROL, "no-store")
    }

    fn notify(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        if let Err(e) = self.issuer.verify(req.bearer(), now) {
            return trpc_error(401, "UNAUTHORIZED", "Unauthorized", Outcome::Unauthorized)
                .detail(e.as_str());
        }
        let Some(body) = req.json() else {
            return trpc_error(
                400,
                "PARSE_ERROR",
                "Failed to parse request body",
                Outcome::Rejected,
            )
            .detail("json");
        };
        let input = match parse_input(&body) {
            Ok(input) => input,
            Err(issues) => return input_error(issues),
        };
        // The replay short-circuits before validation: a changed body is ignored.
        if let Some(existing) = self.records.get(input.transaction_id) {
            return Reply::json(200, &existing.replay, Outcome::Duplicate)
                .reference(existing.record.reference);
        }
        if let Err(reply) = self.validate(&input) {
            return reply;
        }
        self.create(req, &input, now)
    }

    fn validate(&self, input: &Input<'_>) -> Result<(), Reply> {
        if !self.settings.event_types.contains(input.event_type) {
            return Err(trpc_error(
                400,
                "BAD_REQUEST",
                "No configuration found for event type",
                Outcome::Rejected,
            )
            .detail("eventType"));
        }
        let known = self
            .settings
            .locations
            .as_ref()
            .is_none_or(|l| l.contains(input.created_at_location));
        if !known {
            return Err(trpc_error(
                400,
                "BAD_REQUEST",
                "createdAtLocation must be a valid location id",
                Outcome::Rejected,
            )
            .detail("createdAtLocation"));
        }
        let issues = self.declaration_issues(input.declaration);
        if !issues.is_empty() {
            let body = json!({
                "message": "Declaration validation failed",
                "code": "BAD_REQUEST",
                "issues": issues,
            });
            return Err(Reply::json(400, &body, Outcome::Rejected).detail("declaration"));
        }
        Ok(())
    }

    /// Keys must be fields of the country form, values of the field's shape.
    fn declaration_issues(&self, declaration: &Map<String, Value>) -> Vec<Value> {
        let Some(form) = &self.settings.form else {
            return Vec::new();
        };
        let mut issues = Vec::new();
        for (key, value) in declaration {
            let problem = match form.get(key) {
                None => Some("unknown_field"),
                Some(field_type) => value_problem(field_type, value),
            };
            if let Some(code) = problem {
                issues.push(json!({
                    "code": code,
                    "path": ["declaration", key],
                    "message": format!("declaration field {key}: {}", describe_problem(code)),
                }));
            }
        }
        issues
    }

    fn create(&self, req: &MockRequest, input: &Input<'_>, now: DateTime<Utc>) -> Reply {
        let n = self.ids.next_seq();
        let event_id = self.ids.uuid("event", n);
        let tracking_id = self.ids.code("tracking", n, 6);
        let at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let action = |kind: &str, purpose: &str, declaration: Value| {
            json!({
                "id": self.ids.uuid(purpose, n),
                "transactionId": input.transaction_id,
                "type": kind,
                "status": "Accepted",
                "createdAt": at,
                "createdBy": self.credentials.client_id,
                "createdByRole": "HEALTH",
                "createdAtLocation": input.created_at_location,
                "declaration": declaration,
            })
        };
        let event = json!({
            "id": event_id,
            "type": input.event_type,
            "createdAt": at,
            "updatedAt": at,
            "trackingId": tracking_id,
            "actions": [
                action("CREATE", "create-action", json!({})),
                action("NOTIFY", "notify-action", Value::Object(input.declaration.clone())),
            ],
        });
        let record = StoredRecord {
            key: input.transaction_id.to_string(),
            reference: tracking_id.clone(),
            received_at: now,
            digest: sha256_hex(&req.body),
        };
        match self.records.insert(record, &req.body, event.clone()) {
            Ok(()) => Reply::json(200, &event, Outcome::Accepted).reference(tracking_id),
            // A concurrent request with the same key won the race.
            Err(existing) => Reply::json(200, &existing.replay, Outcome::Duplicate)
                .reference(existing.record.reference),
        }
    }
}

struct Input<'a> {
    event_type: &'a str,
    transaction_id: &'a str,
    created_at_location: &'a str,
    declaration: &'a Map<String, Value>,
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// The zod schema of the notify input: a list of issues, or the input.
fn parse_input(body: &Value) -> Result<Input<'_>, Vec<Value>> {
    let mut issues = Vec::new();
    let Some(object) = body.as_object() else {
        return Err(vec![issue("invalid_type", &[], "Expected object")]);
    };
    let mut string = |name: &str| match object.get(name) {
        Some(Value::String(s)) => Some(s.as_str()),
        None | Some(Value::Null) => {
            issues.push(issue("invalid_type", &[name], "Required"));
            None
        }
        Some(_) => {
            issues.push(issue("invalid_type", &[name], "Expected string"));
            None
        }
    };
    let event_type = string("eventType");
    let transaction_id = string("transactionId");
    let location = string("createdAtLocation");
    if let Some(l) = location {
        if Uuid::try_parse(l).is_err() {
            issues.push(issue(
                "invalid_string",
                &["createdAtLocation"],
                "Invalid uuid",
            ));
        }
    }
    let declaration = match object.get("declaration") {
        None => Some(&*EMPTY),
        Some(Value::Object(map)) => Some(map),
        Some(_) => {
            issues.push(issue("invalid_type", &["declaration"], "Expected object"));
            None
        }
    };
    if object
        .get("annotation")
        .is_some_and(|a| !a.is_object() && !a.is_null())
    {
        issues.push(issue("invalid_type", &["annotation"], "Expected object"));
    }
    if object
        .get("keepAssignment")
        .is_some_and(|k| !k.is_boolean())
    {
        issues.push(issue(
            "invalid_type",
            &["keepAssignment"],
            "Expected boolean",
        ));
    }
    match (event_type, transaction_id, location, declaration) {
        (Some(e), Some(t), Some(l), Some(d)) if issues.is_empty() => Ok(Input {
            event_type: e,
            transaction_id: t,
            created_at_location: l,
            declaration: d,
        }),
        _ => Err(issues),
    }
}

fn issue(code: &str, path: &[&str], message: &str) -> Value {
    json!({"code": code, "path": path, "message": message})
}

fn input_error(issues: Vec<Value>) -> Reply {
    let first = issues
        .first()
        .and_then(|i| i["path"].get(0))
        .and_then(Value::as_str)
        .unwrap_or("input")
        .to_string();
    let body =
        json!({"message": "Input validation failed", "code": "BAD_REQUEST", "issues": issues});
    Reply::json(400, &body, Outcome::Rejected).detail(first)
}

/// A value that does not fit an OpenCRVS field type (CompositeFieldValue.ts).
fn value_problem(field_type: &str, value: &Value) -> Option<&'static str> {
    let ok = match field_type {
        "NAME" => value.as_object().is_some_and(|m| {
            m.iter().all(|(k, v)| {
                ["firstname", "surname", "middlename"].contains(&k.as_str()) && v.is_string()
            }) && m.get("firstname").or(m.get("surname")).is_some()
        }),
        "DATE" => value.as_str().is_some_and(|s| {
            s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
        }),
        "ADDRESS" => value.as_object().is_some_and(|m| {
            let kind = m.get("addressType").and_then(Value::as_str);
            let area_ok = kind != Some("DOMESTIC")
                || m.get("administrativeArea")
                    .and_then(Value::as_str)
                    .is_some_and(|a| Uuid::try_parse(a).is_ok());
            matches!(kind, Some("DOMESTIC" | "INTERNATIONAL"))
                && m.get("country").is_some_and(Value::is_string)
                && area_ok
        }),
        "NUMBER" => value.is_number(),
        "CHECKBOX" => value.is_boolean(),
        "LOCATION" | "FACILITY" | "OFFICE" => {
            value.as_str().is_some_and(|s| Uuid::try_parse(s).is_ok())
        }
        // TEXT, SELECT, RADIO_GROUP, ID, PHONE, EMAIL, ...
        _ => value.is_string() || value.is_boolean(),
    };
    (!ok).then_some("invalid_value")
}

fn describe_problem(code: &str) -> &'static str {
    match code {
        "unknown_field" => "not a field of the form",
        _ => "value does not fit the field type",
    }
}

/// An OAuth error of the auth service (`responses.ts`).
fn oauth_error(status: u16, error: &str, description: &str, outcome: Outcome) -> Reply {
    Reply::json(
        status,
        &json!({"error": error, "error_description": description, "error_uri": ""}),
        outcome,
    )
    .detail(error)
}

/// A tRPC error as trpc-to-openapi renders it.
fn trpc_error(status: u16, code: &str, message: &str, outcome: Outcome) -> Reply {
    Reply::json(status, &json!({"message": message, "code": code}), outcome)
}

/// The gateway's Boom-shaped errors (limits, outages).
pub(crate) fn boom(status: u16, message: &str, outcome: Outcome) -> Reply {
    let error = match status {
        404 => "Not Found",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    Reply::json(
        status,
        &json!({"statusCode": status, "error": error, "message": message}),
        outcome,
    )
}

/// How both OpenCRVS mocks answer a refusal.
pub(crate) fn refusal_reply(refusal: Refusal) -> Reply {
    let reply = match refusal {
        Refusal::Maintenance { .. } | Refusal::Unavailable { .. } => {
            boom(503, "Service Unavailable", Outcome::Fault)
        }
        Refusal::Internal => boom(500, "An internal server error occurred", Outcome::Fault),
        Refusal::Limited { .. } => boom(429, "Rate limit exceeded", Outcome::Limited),
        Refusal::TooLarge => boom(
            413,
            "Payload content length greater than maximum allowed",
            Outcome::Rejected,
        ),
    };
    reply.retry_after(refusal.retry_after())
}

impl Registry for Opencrvs {
    fn endpoint(&self, method: &Method, path: &str) -> Endpoint {
        match (method, path) {
            (&Method::POST, TOKEN_PATH) => Endpoint::Token,
            (&Method::POST, NOTIFY_PATH | NOTIFY_PATH_GATEWAY) => Endpoint::Submit,
            _ => Endpoint::Unknown,
        }
    }

    fn token_path(&self) -> Option<&'static str> {
        Some(TOKEN_PATH)
    }

    fn idempotency_key(&self, req: &MockRequest) -> Option<String> {
        req.json()?
            .get("transactionId")?
            .as_str()
            .map(str::to_string)
    }

    fn handle(&self, endpoint: Endpoint, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        match endpoint {
            Endpoint::Token => self.token(req, now),
            Endpoint::Submit => self.notify(req, now),
            Endpoint::Unknown => boom(404, "Not Found", Outcome::NotFound),
        }
    }

    fn refuse(&self, refusal: Refusal, _req: &MockRequest, _now: DateTime<Utc>) -> Reply {
        refusal_reply(refusal)
    }

    fn records(&self) -> &Records {
        &self.records
    }

    fn describe(&self) -> String {
        format!(
            "token: POST {TOKEN_PATH}?grant_type=client_credentials&client_id={}&client_secret={} (JWT, {} s)",
            self.credentials.client_id,
            self.credentials.client_secret,
            self.issuer.lifetime().as_secs()
        )
    }
}

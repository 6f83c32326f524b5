//! OpenCRVS 2.x (target opencrvs-core v2.0.0, country config
//! opencrvs-farajaland v2.0.0-beta):
//!
//! - `POST /auth/token` (`packages/auth/src/features/oauthToken/handler.ts`,
//!   `client-credentials.ts`, `utils.ts` getParam): each parameter from a
//!   form body first, then the query; `{access_token, token_type}` without
//!   `expires_in` (the lifetime is the JWT's `exp`).
//! - `POST /api/events/events/notify` (`packages/events/src/router/event/
//!   actions/createAndNotify.ts`): zod input (400 "Input validation failed"
//!   with `issues`), event type, `createdAtLocation` in the location table,
//!   then a replay of the same `transactionId` returns the current event
//!   before the declaration is validated; declaration values are checked by
//!   the field types of farajaland's birth form (`validateNotifyAction`; a
//!   400 whose `message` is the JSON-encoded list `[{message, id, value}]`).
//! - The outcome is in `actions[]` (`actions/index.ts` defaultRequestHandler):
//!   NOTIFY `Requested`, then the country config decides: 200 adds NOTIFY
//!   `Accepted` with `originalActionId`, 202 leaves it requested, 400 adds
//!   NOTIFY `Rejected`.
//! - `GET /api/events/events/{eventId}` (record.read) returns the event;
//!   `POST /api/events/events/{eventId}/correction/request` is refused
//!   (CONFLICT) unless the event is REGISTERED.
//! - `GET /api/events/locations`: the location table.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::http::{Method, header};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{Confirmation, Locations, lock};

use super::arrivals::{Endpoint, Outcome};
use super::records::{Records, StoredRecord};
use super::server::{MockRequest, Refusal, Registry, Reply};
use super::token::{Ids, Issuer, param, parse_form, sha256_hex};
use super::{Credentials, MockConfig, OpencrvsSettings};

pub(crate) const NOTIFY_PATH: &str = "/api/events/events/notify";
const TOKEN_PATH: &str = "/auth/token";
/// The gateway also forwards `/events/...` to the events service.
const NOTIFY_PATH_GATEWAY: &str = "/events/events/notify";
const EVENTS_PREFIX: &str = "/api/events/events/";
const LOCATIONS_PATH: &str = "/api/events/locations";

pub(crate) struct Opencrvs {
    credentials: Credentials,
    settings: OpencrvsSettings,
    issuer: Issuer,
    ids: Ids,
    records: Records,
    /// Event id -> the EventDocument as it stands (actions are appended).
    events: Mutex<BTreeMap<String, Value>>,
}

impl Opencrvs {
    pub fn new(config: &MockConfig) -> Opencrvs {
        Opencrvs {
            credentials: config.credentials.clone(),
            settings: config.opencrvs.clone(),
            issuer: Issuer::new(config.credentials.token_lifetime),
            ids: Ids::new(config.seed),
            records: Records::default(),
            events: Mutex::new(BTreeMap::new()),
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
                "scope": ["record.create[event=birth|death]", "record.notify[event=birth|death]",
                          "record.read[event=birth|death]"],
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
        if let Err(reply) = self.validate_envelope(&input) {
            return reply;
        }
        // The replay short-circuits before the declaration is validated: a
        // changed body is ignored; the event is answered as it stands now.
        if let Some(existing) = self.records.get(input.transaction_id) {
            let event_id = existing.replay["id"].as_str().unwrap_or_default();
            let event = self.current(event_id, now).unwrap_or(existing.replay);
            return Reply::json(200, &event, Outcome::Duplicate)
                .reference(existing.record.reference);
        }
        if let Err(reply) = self.validate_declaration(&input) {
            return reply;
        }
        self.create(req, &input, now)
    }

    /// The event as it stands at `now`: a deferred NOTIFY whose delay has
    /// passed is accepted first (the country config's async accept).
    fn current(&self, event_id: &str, now: DateTime<Utc>) -> Option<Value> {
        let mut events = lock(&self.events);
        let event = events.get_mut(event_id)?;
        if let Confirmation::Defer { after: Some(after) } = self.settings.confirmation {
            let pending = pending_notify(event);
            let due = pending.as_ref().is_some_and(|(_, at)| {
                DateTime::parse_from_rfc3339(at).is_ok_and(|t| {
                    now >= t.to_utc() + chrono::TimeDelta::from_std(after).unwrap_or_default()
                })
            });
            if let (true, Some((id, _))) = (due, pending) {
                let n = self.ids.next_seq();
                let confirm = self.confirmation_action(event, &id, "Accepted", n, now);
                push_action(event, confirm);
            }
        }
        Some(event.clone())
    }

    fn confirmation_action(
        &self,
        event: &Value,
        original: &str,
        status: &str,
        n: u64,
        now: DateTime<Utc>,
    ) -> Value {
        let requested = event["actions"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == original))
            .cloned()
            .unwrap_or_default();
        json!({
            "id": self.ids.uuid("confirm-action", n),
            "transactionId": requested["transactionId"],
            "type": "NOTIFY",
            "status": status,
            "originalActionId": original,
            "createdAt": now.to_rfc3339_opts(SecondsFormat::Millis, true),
            "createdBy": requested["createdBy"],
            "createdByRole": requested["createdByRole"],
            "createdAtLocation": requested["createdAtLocation"],
            "declaration": {},
        })
    }

    /// `GET /api/events/events/{eventId}`.
    fn get_event(&self, req: &MockRequest, event_id: &str, now: DateTime<Utc>) -> Reply {
        if let Err(e) = self.issuer.verify(req.bearer(), now) {
            return trpc_error(401, "UNAUTHORIZED", "Unauthorized", Outcome::Unauthorized)
                .detail(e.as_str());
        }
        match self.current(event_id, now) {
            Some(event) => Reply::json(200, &event, Outcome::Accepted),
            None => trpc_error(404, "NOT_FOUND", "Event not found", Outcome::NotFound),
        }
    }

    /// `POST /api/events/events/{eventId}/correction/request`: only a
    /// REGISTERED event takes a correction (`throwConflictIfActionNotAllowed`).
    fn request_correction(&self, req: &MockRequest, event_id: &str, now: DateTime<Utc>) -> Reply {
        if let Err(e) = self.issuer.verify(req.bearer(), now) {
            return trpc_error(401, "UNAUTHORIZED", "Unauthorized", Outcome::Unauthorized)
                .detail(e.as_str());
        }
        let Some(event) = self.current(event_id, now) else {
            return trpc_error(404, "NOT_FOUND", "Event not found", Outcome::NotFound);
        };
        if !is_registered(&event) {
            return trpc_error(
                409,
                "CONFLICT",
                "Action not allowed for the event's status",
                Outcome::Rejected,
            )
            .detail("status");
        }
        let n = self.ids.next_seq();
        let transaction = req
            .json()
            .and_then(|b| b["transactionId"].as_str().map(str::to_string));
        let mut events = lock(&self.events);
        let Some(stored) = events.get_mut(event_id) else {
            return trpc_error(404, "NOT_FOUND", "Event not found", Outcome::NotFound);
        };
        push_action(
            stored,
            json!({"id": self.ids.uuid("correction-action", n), "type": "REQUEST_CORRECTION",
                   "status": "Requested", "transactionId": transaction,
                   "createdAt": now.to_rfc3339_opts(SecondsFormat::Millis, true)}),
        );
        Reply::json(200, stored, Outcome::Accepted)
    }

    /// `GET /api/events/locations` (v2.0.0 `events/src/router/locations`):
    /// `[{id, name, externalId, administrativeAreaId, validUntil, locationType}]`.
    fn locations_list(&self) -> Reply {
        let list: Vec<Value> = self
            .settings
            .locations
            .as_ref()
            .map(v2_locations)
            .unwrap_or_default();
        Reply::json(200, &Value::Array(list), Outcome::Accepted)
    }

    fn validate_envelope(&self, input: &Input<'_>) -> Result<(), Reply> {
        if !self.settings.event_types.contains(input.event_type) {
            return Err(trpc_error(
                400,
                "BAD_REQUEST",
                "No configuration found for event type",
                Outcome::Rejected,
            )
            .detail("eventType"));
        }
        // locationExists: in the location table; a closed one (validUntil
        // passed) takes no new event in Examplia.
        let known = self.settings.locations.as_ref().is_none_or(|l| {
            l.offices.contains(input.created_at_location) && l.is_active(input.created_at_location)
        });
        if !known {
            return Err(trpc_error(
                400,
                "BAD_REQUEST",
                "createdAtLocation must be a valid location id",
                Outcome::Rejected,
            )
            .detail("createdAtLocation"));
        }
        Ok(())
    }

    /// `validateNotifyAction`: a 400 whose message is the JSON-encoded list
    /// of `{message, id, value}` (`throwWhenNotEmpty`): the value echoed.
    fn validate_declaration(&self, input: &Input<'_>) -> Result<(), Reply> {
        let errors = self.declaration_errors(input.declaration);
        if errors.is_empty() {
            return Ok(());
        }
        let message = Value::Array(errors).to_string();
        Err(trpc_error(400, "BAD_REQUEST", &message, Outcome::Rejected).detail("declaration"))
    }

    /// Keys must be fields of the country form, values of the field's type.
    fn declaration_errors(&self, declaration: &Map<String, Value>) -> Vec<Value> {
        let Some(form) = &self.settings.form else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        for (key, value) in declaration {
            let message = match form.get(key) {
                None => Some("Unexpected field"),
                Some(field_type) => {
                    value_problem(field_type, value, self.settings.locations.as_ref())
                        .map(|_| "Invalid input")
                }
            };
            if let Some(message) = message {
                errors.push(json!({"message": message, "id": key, "value": value}));
            }
        }
        errors
    }

    fn create(&self, req: &MockRequest, input: &Input<'_>, now: DateTime<Utc>) -> Reply {
        let n = self.ids.next_seq();
        let event_id = self.ids.uuid("event", n);
        let tracking_id = self.ids.code("tracking", n, 6);
        let at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let action = |kind: &str, purpose: &str, status: &str, declaration: Value| {
            json!({
                "id": self.ids.uuid(purpose, n),
                "transactionId": if kind == "CREATE" { format!("{}:create", input.transaction_id) } else { input.transaction_id.to_string() },
                "type": kind,
                "status": status,
                "createdAt": at,
                "createdBy": self.credentials.client_id,
                "createdByRole": "HEALTH",
                "createdAtLocation": input.created_at_location,
                "declaration": declaration,
            })
        };
        let mut event = json!({
            "id": event_id,
            "type": input.event_type,
            "createdAt": at,
            "updatedAt": at,
            "trackingId": tracking_id,
            "actions": [
                action("CREATE", "create-action", "Accepted", json!({})),
                action("NOTIFY", "notify-action", "Requested", Value::Object(input.declaration.clone())),
            ],
        });
        let requested = self.ids.uuid("notify-action", n).to_string();
        let decided = match self.settings.confirmation {
            Confirmation::Accept => Some("Accepted"),
            Confirmation::Reject => Some("Rejected"),
            Confirmation::Defer { .. } => None,
        };
        if let Some(status) = decided {
            let confirm = self.confirmation_action(&event, &requested, status, n, now);
            push_action(&mut event, confirm);
            if status == "Accepted" && self.settings.registrar_registers {
                push_action(
                    &mut event,
                    action("REGISTER", "register-action", "Accepted", json!({})),
                );
            }
        }
        let record = StoredRecord {
            key: input.transaction_id.to_string(),
            reference: tracking_id.clone(),
            received_at: now,
            digest: sha256_hex(&req.body),
        };
        match self.records.insert(record, &req.body, event.clone()) {
            Ok(()) => {
                lock(&self.events).insert(event_id.to_string(), event.clone());
                Reply::json(200, &event, Outcome::Accepted).reference(tracking_id)
            }
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

/// A value that does not fit an OpenCRVS field type (v2.0.0 commons
/// `FieldTypeMapping.ts` mapFieldTypeToZod, `FieldValue.ts`,
/// `CompositeFieldValue.ts`); a LOCATION must be an active health facility
/// of the location table when the mock has one.
fn value_problem(
    field_type: &str,
    value: &Value,
    locations: Option<&Locations>,
) -> Option<&'static str> {
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
        "AGE" => value.as_object().is_some_and(|m| {
            m.get("age").is_some_and(Value::is_number)
                && m.get("asOfDateRef").is_some_and(Value::is_string)
                && m.keys().all(|k| k == "age" || k == "asOfDateRef")
        }),
        "NUMBER" => value.is_number(),
        "CHECKBOX" => value.is_boolean(),
        "LOCATION" | "FACILITY" => value.as_str().is_some_and(|s| {
            locations.map_or(Uuid::try_parse(s).is_ok(), |l| {
                l.facilities.contains(s) && l.is_active(s)
            })
        }),
        "EMAIL" => value.as_str().is_some_and(|s| s.contains('@')),
        // TEXT, SELECT, RADIO_GROUP, COUNTRY, ID, PHONE, OFFICE, ...: strings.
        _ => value.is_string(),
    };
    (!ok).then_some("invalid_value")
}

/// The pending NOTIFY (Requested, no confirmation yet): its id and time.
fn pending_notify(event: &Value) -> Option<(String, String)> {
    let actions = event["actions"].as_array()?;
    actions
        .iter()
        .filter(|a| a["type"] == "NOTIFY" && a["status"] == "Requested")
        .find(|a| !actions.iter().any(|c| c["originalActionId"] == a["id"]))
        .map(|a| {
            (
                a["id"].as_str().unwrap_or_default().to_string(),
                a["createdAt"].as_str().unwrap_or_default().to_string(),
            )
        })
}

fn push_action(event: &mut Value, action: Value) {
    if let Some(actions) = event["actions"].as_array_mut() {
        actions.push(action);
    }
}

/// REGISTERED: a REGISTER action accepted (commons `getStatusFromActions`).
fn is_registered(event: &Value) -> bool {
    event["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| a["type"] == "REGISTER" && a["status"] == "Accepted")
}

/// The 2.x location table from the list (`events/src/storage/postgres/
/// events/locations`): the admin area of an office or facility is its
/// `partOf`; `externalId` the country's own code; `validUntil` set on a
/// closed location.
fn v2_locations(list: &Locations) -> Vec<Value> {
    list.resources
        .iter()
        .map(|r| {
            let kind = r["type"][0]["coding"][0]["code"].as_str().unwrap_or_default();
            let external = r["identifier"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| {
                    i["system"].as_str().is_some_and(|s| {
                        s.ends_with("internal-id") || s.ends_with("statistical-code")
                    })
                })
                .map(|i| i["value"].clone())
                .unwrap_or(Value::Null);
            let parent = r["partOf"]["reference"]
                .as_str()
                .and_then(|p| p.strip_prefix("Location/"));
            json!({
                "id": r["id"],
                "name": r["name"],
                "externalId": external,
                "administrativeAreaId": parent,
                "validUntil": if r["status"] == "inactive" { json!("2026-11-30T00:00:00.000Z") } else { Value::Null },
                "locationType": kind,
            })
        })
        .collect()
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

fn correction_event_id(path: &str) -> Option<&str> {
    path.strip_prefix(EVENTS_PREFIX)?
        .strip_suffix("/correction/request")
        .filter(|id| !id.contains('/'))
}

impl Registry for Opencrvs {
    fn endpoint(&self, method: &Method, path: &str) -> Endpoint {
        match (method, path) {
            (&Method::POST, TOKEN_PATH) => Endpoint::Token,
            (&Method::POST, NOTIFY_PATH | NOTIFY_PATH_GATEWAY) => Endpoint::Submit,
            (&Method::POST, p)
                if p.starts_with(EVENTS_PREFIX) && p.ends_with("/correction/request") =>
            {
                Endpoint::Submit
            }
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
            Endpoint::Submit => match correction_event_id(&req.path) {
                Some(id) => self.request_correction(req, id, now),
                None => self.notify(req, now),
            },
            Endpoint::Unknown if req.method == Method::GET && req.path == LOCATIONS_PATH => {
                self.locations_list()
            }
            Endpoint::Unknown if req.method == Method::GET => {
                match req
                    .path
                    .strip_prefix(EVENTS_PREFIX)
                    .filter(|id| !id.contains('/'))
                {
                    Some(id) => self.get_event(req, id, now),
                    None => boom(404, "Not Found", Outcome::NotFound),
                }
            }
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

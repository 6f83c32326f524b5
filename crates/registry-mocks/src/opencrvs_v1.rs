//! OpenCRVS 1.x (FORMATS §2): `POST /token` on the auth host (client
//! credentials in the query, a JWT valid 10 minutes) and `POST /notification`
//! with the STU3-shaped document Bundle, checked in the gateway's order: Joi
//! (400), Task (400, or 500 for the office), Patients, addresses, Encounter
//! (500 with a message). A success answers the saved Bundle with the tracking
//! id on the Task; a resend answers `isPotentiallyDuplicate` with the
//! original ids and registers nothing.
//!
//! OpenCRVS 1.x has no client idempotency key. The mock deduplicates on the
//! Composition's `identifier.value` when present, otherwise on the SHA-256
//! of the body.

use axum::http::Method;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::arrivals::{Endpoint, Outcome};
use super::opencrvs::{boom, refusal_reply};
use super::records::{Records, StoredRecord};
use super::server::{MockRequest, Refusal, Registry, Reply};
use super::token::{Ids, Issuer, param, parse_form, sha256_hex};
use super::{Credentials, Locations, MockConfig, OpencrvsSettings};

pub(crate) const NOTIFICATION_PATH: &str = "/notification";
const TOKEN_PATH: &str = "/token";
const OTHER_TYPES: [&str; 5] = [
    "Patient",
    "RelatedPerson",
    "Encounter",
    "Observation",
    "QuestionnaireResponse",
];
const REG_LAST_OFFICE: &str = "http://opencrvs.org/specs/extension/regLastOffice";
const TRACKING_SYSTEM: &str = "http://opencrvs.org/specs/id/birth-tracking-id";

pub(crate) struct OpencrvsV1 {
    credentials: Credentials,
    settings: OpencrvsSettings,
    issuer: Issuer,
    ids: Ids,
    records: Records,
}

/// A refusal: status and message, like the gateway's handler.
struct Refused(u16, String, &'static str);

fn bad_request(message: impl Into<String>, rule: &'static str) -> Refused {
    Refused(400, message.into(), rule)
}

fn not_processed(message: impl Into<String>, rule: &'static str) -> Refused {
    Refused(500, message.into(), rule)
}

impl OpencrvsV1 {
    pub fn new(config: &MockConfig) -> OpencrvsV1 {
        OpencrvsV1 {
            credentials: config.credentials.clone(),
            settings: config.opencrvs.clone(),
            issuer: Issuer::new(config.credentials.token_lifetime),
            ids: Ids::new(config.seed),
            records: Records::default(),
        }
    }

    fn token(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        let query = parse_form(&req.query);
        let form = parse_form(std::str::from_utf8(&req.body).unwrap_or_default());
        let get = |name: &str| param(&query, name).or_else(|| param(&form, name));
        if get("grant_type") != Some("client_credentials") {
            return boom_400("grant_type must be client_credentials");
        }
        if get("client_id") != Some(self.credentials.client_id.as_str())
            || get("client_secret") != Some(self.credentials.client_secret.as_str())
        {
            return boom_401("Invalid client credentials");
        }
        let token = self.issuer.issue(
            now,
            json!({
                "iss": "opencrvs:auth-service",
                "sub": self.credentials.client_id,
                "aud": ["opencrvs:auth-user", "opencrvs:gateway-user", "opencrvs:workflow-user"],
                "scope": ["notification-api"],
            }),
        );
        Reply::json(
            200,
            &json!({"access_token": token, "token_type": "Bearer"}),
            Outcome::Accepted,
        )
    }

    fn notification(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        if let Err(e) = self.issuer.verify(req.bearer(), now) {
            return boom_401("Invalid token").detail(e.as_str());
        }
        let Some(bundle) = req.json() else {
            return boom_400("Invalid request payload JSON format").detail("json");
        };
        if let Err(Refused(status, message, rule)) = self.check(&bundle) {
            let reply = if status == 400 {
                boom_400(&message)
            } else {
                boom(status, &message, Outcome::Rejected)
            };
            return reply.detail(rule);
        }
        let key = idempotency_key(&bundle, &req.body);
        if let Some(existing) = self.records.get(&key) {
            return duplicate_reply(&existing.replay, existing.record.reference);
        }
        self.save(req, bundle, key, now)
    }

    fn check(&self, bundle: &Value) -> Result<(), Refused> {
        joi(bundle)?;
        let entries = bundle["entry"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        self.check_task(entries)?;
        let patients: Vec<&Value> = resources(entries, "Patient").collect();
        if patients.is_empty() {
            return Err(not_processed(
                "Could not process the Event Notification, as there were no Person found!",
                "patient_missing",
            ));
        }
        for patient in patients {
            for address in patient["address"].as_array().into_iter().flatten() {
                self.check_address(address)?;
            }
        }
        self.check_encounter(entries)
    }

    fn check_task(&self, entries: &[Value]) -> Result<(), Refused> {
        let composition_url = entries[0]["fullUrl"].as_str().unwrap_or_default();
        let task = &entries[1]["resource"];
        if task["status"] != "draft" {
            return Err(bad_request("Task status should be draft", "task_status"));
        }
        if task["focus"]["reference"].as_str() != Some(composition_url) {
            return Err(bad_request(
                "Task must reference the composition entry",
                "task_focus",
            ));
        }
        let Some(extensions) = task["extension"].as_array() else {
            return Err(bad_request("Task extensions not found", "task_extension"));
        };
        let office = extensions
            .iter()
            .find(|e| e["url"] == REG_LAST_OFFICE)
            .and_then(|e| e["valueReference"]["reference"].as_str());
        let Some(office) = office else {
            return Err(not_processed(
                "Could not process the Event Notification, as office id was not provided",
                "reg_last_office",
            ));
        };
        let id = office.strip_prefix("Location/").unwrap_or_default();
        if !self.is_office(id) {
            return Err(not_processed(
                "Could not process the Event Notification, as the provided office was not found",
                "reg_last_office",
            ));
        }
        Ok(())
    }

    fn locations(&self) -> Option<&Locations> {
        self.settings.locations.as_ref()
    }

    fn is_office(&self, id: &str) -> bool {
        match self.locations() {
            Some(l) => l.offices.contains(id),
            None => uuid::Uuid::try_parse(id).is_ok(),
        }
    }

    /// The country code, and for the home country the `partOf` chain of
    /// line[12], line[11], line[10], district, state.
    fn check_address(&self, address: &Value) -> Result<(), Refused> {
        let country = address["country"].as_str().unwrap_or_default();
        let valid = country == self.settings.home_country
            || (country.len() == 3 || country.len() == 2)
                && country.bytes().all(|b| b.is_ascii_uppercase());
        if !valid {
            return Err(not_processed(
                "Could not process the Event Notification, as the supplied country code was incorrect",
                "address_country",
            ));
        }
        if country != self.settings.home_country {
            return Ok(());
        }
        let Some(locations) = self.locations() else {
            return Ok(());
        };
        let line = |i: usize| address["line"].get(i).and_then(Value::as_str);
        let levels = [
            line(12),
            line(11),
            line(10),
            address["district"].as_str(),
            address["state"].as_str(),
        ];
        for pair in levels.windows(2) {
            let Some(id) = pair[0].filter(|s| !s.is_empty()) else {
                continue;
            };
            let Some(parent) = locations.admin_areas.get(id) else {
                return Err(not_processed(
                    "Could not process the Event Notification, as a location was not found!",
                    "address_location",
                ));
            };
            if parent.as_deref() != pair[1] {
                return Err(not_processed(
                    "Could not process the Event Notification, as the supplied location hierarchy was incorrect",
                    "address_hierarchy",
                ));
            }
        }
        Ok(())
    }

    fn check_encounter(&self, entries: &[Value]) -> Result<(), Refused> {
        let Some(encounter) = resources(entries, "Encounter").next() else {
            return Err(not_processed(
                "Encounter entry not found!!",
                "encounter_missing",
            ));
        };
        let Some(location) = encounter["location"][0]["location"]["reference"].as_str() else {
            return Err(not_processed(
                "Encounter location not found! in bundle!",
                "encounter_location",
            ));
        };
        let id = location.strip_prefix("Location/").unwrap_or(location);
        let known = match self.locations() {
            Some(l) => l.facilities.contains(id) || l.admin_areas.contains_key(id),
            None => uuid::Uuid::try_parse(id).is_ok(),
        };
        if !known {
            return Err(not_processed(
                "Encounter location was not found!",
                "encounter_location",
            ));
        }
        Ok(())
    }

    /// Workflow: add the tracking id and status to the Task, ids to every
    /// resource, and answer the saved Bundle.
    fn save(&self, req: &MockRequest, mut bundle: Value, key: String, now: DateTime<Utc>) -> Reply {
        let n = self.ids.next_seq();
        let tracking_id = format!("B{}", self.ids.code("tracking", n, 6));
        let composition_id = self.ids.uuid("composition", n).to_string();
        let at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        if let Some(entries) = bundle["entry"].as_array_mut() {
            for (i, entry) in entries.iter_mut().enumerate() {
                let id = if i == 0 {
                    composition_id.clone()
                } else {
                    self.ids
                        .uuid("resource", n.wrapping_mul(1000).wrapping_add(i as u64))
                        .to_string()
                };
                entry["resource"]["id"] = json!(id);
                entry["resource"]["meta"] = json!({"lastUpdated": at});
            }
            let task = &mut entries[1]["resource"];
            let mut identifiers = task["identifier"].as_array().cloned().unwrap_or_default();
            identifiers.push(json!({"system": TRACKING_SYSTEM, "value": tracking_id}));
            task["identifier"] = Value::Array(identifiers);
            task["businessStatus"] = json!({"coding": [{
                "system": "http://opencrvs.org/specs/reg-status", "code": "IN_PROGRESS"}]});
        }
        let record = StoredRecord {
            key,
            reference: tracking_id.clone(),
            received_at: now,
            digest: sha256_hex(&req.body),
        };
        let replay = json!({"compositionId": composition_id, "trackingId": tracking_id});
        match self.records.insert(record, &req.body, replay) {
            Ok(()) => Reply::json(200, &bundle, Outcome::Accepted).reference(tracking_id),
            Err(existing) => duplicate_reply(&existing.replay, existing.record.reference),
        }
    }
}

fn duplicate_reply(replay: &Value, reference: String) -> Reply {
    let mut body = replay.clone();
    body["isPotentiallyDuplicate"] = json!(true);
    Reply::json(200, &body, Outcome::Duplicate).reference(reference)
}

fn idempotency_key(bundle: &Value, body: &[u8]) -> String {
    bundle["entry"][0]["resource"]["identifier"]["value"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("sha256:{}", sha256_hex(body)))
}

fn resources<'a>(entries: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    entries
        .iter()
        .map(|e| &e["resource"])
        .filter(move |r| r["resourceType"] == kind)
}

/// The Joi schema of `eventNotificationHandler.ts`, with Joi-like messages.
fn joi(bundle: &Value) -> Result<(), Refused> {
    let fail = |m: String| Err(bad_request(m, "joi"));
    if bundle["resourceType"] != "Bundle" {
        return fail(r#""resourceType" must be [Bundle]"#.into());
    }
    if bundle["type"] != "document" {
        return fail(r#""type" must be [document]"#.into());
    }
    let updated = bundle["meta"]["lastUpdated"].as_str().unwrap_or_default();
    if DateTime::parse_from_rfc3339(updated).is_err()
        && chrono::NaiveDate::parse_from_str(updated, "%Y-%m-%d").is_err()
    {
        return fail(r#""meta.lastUpdated" must be in ISO 8601 date format"#.into());
    }
    let Some(entries) = bundle["entry"].as_array() else {
        return fail(r#""entry" is required"#.into());
    };
    for (i, entry) in entries.iter().enumerate() {
        if !entry["fullUrl"].is_string() {
            return fail(format!(r#""entry[{i}].fullUrl" is required"#));
        }
        let kind = entry["resource"]["resourceType"]
            .as_str()
            .unwrap_or_default();
        let expected: &[&str] = match i {
            0 => &["Composition"],
            1 => &["Task"],
            _ => &OTHER_TYPES,
        };
        if !expected.contains(&kind) {
            return fail(format!(
                r#""entry[{i}].resource.resourceType" must be one of [{}]"#,
                expected.join(", ")
            ));
        }
    }
    if entries.len() < 2 {
        return fail(r#""entry" does not contain 2 required value(s)"#.into());
    }
    Ok(())
}

fn boom_400(message: &str) -> Reply {
    Reply::json(
        400,
        &json!({"statusCode": 400, "error": "Bad Request", "message": message}),
        Outcome::Rejected,
    )
}

fn boom_401(message: &str) -> Reply {
    Reply::json(
        401,
        &json!({"statusCode": 401, "error": "Unauthorized", "message": message}),
        Outcome::Unauthorized,
    )
}

impl Registry for OpencrvsV1 {
    fn endpoint(&self, method: &Method, path: &str) -> Endpoint {
        match (method, path) {
            (&Method::POST, TOKEN_PATH) => Endpoint::Token,
            (&Method::POST, NOTIFICATION_PATH) => Endpoint::Submit,
            _ => Endpoint::Unknown,
        }
    }

    fn token_path(&self) -> Option<&'static str> {
        Some(TOKEN_PATH)
    }

    fn idempotency_key(&self, req: &MockRequest) -> Option<String> {
        req.json().map(|b| idempotency_key(&b, &req.body))
    }

    fn handle(&self, endpoint: Endpoint, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        match endpoint {
            Endpoint::Token => self.token(req, now),
            Endpoint::Submit => self.notification(req, now),
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
            "token: POST {TOKEN_PATH}?client_id={}&client_secret={}&grant_type=client_credentials (JWT, {} s)",
            self.credentials.client_id,
            self.credentials.client_secret,
            self.issuer.lifetime().as_secs()
        )
    }
}

//! OpenCRVS 1.x (target v1.9.15, country config farajaland v1.9.12):
//!
//! - `POST /token` on the auth host (`packages/auth/src/features/oauthToken/
//!   handler.ts`, `client-credentials.ts`): grant_type, client_id and
//!   client_secret from the query string only (a form body leaves grant_type
//!   unset: 400 `unsupported_grant_type`); the answer is
//!   `{access_token, token_type: "Bearer"}` without `expires_in`: the lifetime
//!   is the JWT's `exp` (`responses.ts`).
//! - `POST /notification` (`packages/gateway/src/features/eventNotification/
//!   eventNotificationHandler.ts`): the Joi schema (400), then the Task (400,
//!   or 500 for the office), the Patients' addresses, the Encounter's
//!   location, which must exist: a `HEALTH_FACILITY`, or another location
//!   whose stored address is validated (the list's admin areas have none, so
//!   the gateway's handler fails on it: 400). Then workflow
//!   (`packages/workflow/src/records/handler/eventNotificationHandler.ts`)
//!   spreads `Task.identifier` to add the tracking id: a Task without that
//!   array fails there (500).
//! - Success is 200 with the saved Bundle; when search's duplicate check
//!   finds an earlier record of the same child, the record is saved all the
//!   same and the answer is `{compositionId, trackingId,
//!   isPotentiallyDuplicate: true}`.
//! - No idempotency key: every accepted notification is a new declaration,
//!   a resend included.
//! - `GET /location?type=...&_count=0` (`packages/gateway/src/config/
//!   proxies.ts`, `packages/config/src/handlers/locations/handler.ts`): the
//!   location list as a FHIR searchset Bundle.

use std::collections::HashSet;
use std::sync::Mutex;

use axum::http::{Method, header};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::arrivals::{Endpoint, Outcome};
use super::opencrvs::{boom, refusal_reply};
use super::records::{Records, StoredRecord};
use super::server::{MockRequest, Refusal, Registry, Reply};
use super::token::{Ids, Issuer, param, parse_form, sha256_hex};
use super::{Credentials, Locations, MockConfig, OpencrvsSettings, lock};

pub(crate) const NOTIFICATION_PATH: &str = "/notification";
const TOKEN_PATH: &str = "/token";
const LOCATION_PATH: &str = "/location";
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
    /// The duplicate fingerprint of every saved notification: the
    /// deduplication check of workflow asks its search index, not a scan.
    fingerprints: Mutex<HashSet<String>>,
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
            fingerprints: Mutex::default(),
        }
    }

    /// `POST /token`: every parameter from the query string; the body is
    /// never read (v1.9.15 `handler.ts` reads `request.query.grant_type`).
    fn token(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        let query = parse_form(&req.query);
        let get = |name: &str| param(&query, name).filter(|v| !v.is_empty());
        if get("grant_type") != Some("client_credentials") {
            return oauth_error(400, "unsupported_grant_type", Outcome::Rejected);
        }
        let (Some(id), Some(secret)) = (get("client_id"), get("client_secret")) else {
            return oauth_error(400, "invalid_request", Outcome::Rejected);
        };
        if id != self.credentials.client_id || secret != self.credentials.client_secret {
            return oauth_error(401, "invalid_client", Outcome::Unauthorized);
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
        .header(header::CACHE_CONTROL, "no-store")
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
        if !bundle["entry"][1]["resource"]["identifier"].is_array() {
            // workflow spreads `Task.identifier`: a TypeError, answered 500.
            return boom(500, "An internal server error occurred", Outcome::Rejected)
                .detail("task_identifier");
        }
        self.save(req, bundle, now)
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
        let Some(locations) = self.locations() else {
            return match uuid::Uuid::try_parse(id) {
                Ok(_) => Ok(()),
                Err(_) => Err(not_processed(
                    "Encounter location was not found!",
                    "encounter_location",
                )),
            };
        };
        if !locations.contains(id) {
            return Err(not_processed(
                "Encounter location was not found!",
                "encounter_location",
            ));
        }
        // Not a check of v1.9.15's handler: Examplia's registry takes no new
        // event at a closed facility (examplia-locations/README.md).
        if locations.inactive.contains(id) {
            return Err(not_processed(
                "Encounter location is inactive",
                "encounter_location_inactive",
            ));
        }
        if !locations.facilities.contains(id) {
            // Any other location has its stored `address` validated; the
            // list's offices and admin areas have none, and reading its
            // country throws: the handler answers that with Boom 400.
            return Err(bad_request(
                "Cannot read properties of undefined (reading 'country')",
                "encounter_location_type",
            ));
        }
        Ok(())
    }

    /// Workflow: add the tracking id and status to the Task, ids to every
    /// resource, and answer the saved Bundle.
    fn save(&self, req: &MockRequest, mut bundle: Value, now: DateTime<Utc>) -> Reply {
        let fingerprint = duplicate_fingerprint(&bundle);
        let earlier = lock(&self.fingerprints).contains(&fingerprint);
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
        // Every notification is a declaration of its own: the key is the
        // tracking id, never anything the client chose.
        let record = StoredRecord {
            key: tracking_id.clone(),
            reference: tracking_id.clone(),
            received_at: now,
            digest: sha256_hex(&req.body),
        };
        let replay = json!({"compositionId": composition_id, "trackingId": tracking_id,
                            "fingerprint": fingerprint});
        if let Err(existing) = self.records.insert(record, &req.body, replay) {
            // Tracking ids are unique by construction; a clash is a mock bug.
            return boom(500, "tracking id clash", Outcome::Fault)
                .reference(existing.record.reference);
        }
        lock(&self.fingerprints).insert(fingerprint);
        if earlier {
            // Saved, flagged, and answered with the short form (workflow).
            let body = json!({"compositionId": composition_id, "trackingId": tracking_id,
                              "isPotentiallyDuplicate": true});
            return Reply::json(200, &body, Outcome::Duplicate).reference(tracking_id);
        }
        Reply::json(200, &bundle, Outcome::Accepted).reference(tracking_id)
    }

    /// `GET /location?type=HEALTH_FACILITY&_count=0`: a searchset Bundle of
    /// the list's Locations of that type (all types without `type`), with
    /// `fullUrl`s on the gateway's `/location/<id>` as config rewrites them.
    fn location_list(&self, req: &MockRequest) -> Reply {
        let query = parse_form(&req.query);
        let kind = param(&query, "type");
        let status = param(&query, "status");
        if kind.is_some_and(|k| !LOCATION_TYPES.contains(&k))
            || status.is_some_and(|s| s != "active" && s != "inactive")
        {
            return boom_400("child \"type\" fails because [invalid value]");
        }
        let base = req
            .header("host")
            .map(|h| format!("http://{h}"))
            .unwrap_or_default();
        let resources = self
            .locations()
            .map(|l| l.resources.as_slice())
            .unwrap_or_default();
        let entries: Vec<Value> = resources
            .iter()
            .filter(|r| kind.is_none_or(|k| r["type"][0]["coding"][0]["code"] == k))
            .filter(|r| status.is_none_or(|s| r["status"] == s))
            .map(|r| {
                let fhir = to_stu3_location(r);
                json!({"fullUrl": format!("{base}/location/{}", r["id"].as_str().unwrap_or_default()),
                       "resource": fhir})
            })
            .collect();
        let body = json!({"resourceType": "Bundle", "type": "searchset",
                          "total": entries.len(), "link": [], "entry": entries});
        Reply::json(200, &body, Outcome::Accepted)
    }
}

const LOCATION_TYPES: [&str; 3] = ["ADMIN_STRUCTURE", "CRVS_OFFICE", "HEALTH_FACILITY"];
const SPEC_ID: &str = "http://opencrvs.org/specs/id/";

/// A Location as 1.x stores it (`config/src/handlers/locations/utils.ts`
/// `composeFhirLocation`, STU3): `type` a CodeableConcept (not a list),
/// admin areas identified by `statistical-code` = `ADMIN_STRUCTURE_<code>`
/// plus `jurisdiction-type`, offices and facilities by `internal-id` =
/// `<type>_<code>`, the top level `partOf: Location/0`.
fn to_stu3_location(r: &Value) -> Value {
    let kind = r["type"][0]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default();
    let own = |system: &str| {
        r["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["system"].as_str().is_some_and(|s| s.ends_with(system)))
            .and_then(|i| i["value"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let identifier = if kind == "ADMIN_STRUCTURE" {
        let level = if r["partOf"].is_object() {
            "DISTRICT"
        } else {
            "STATE"
        };
        json!([{"system": format!("{SPEC_ID}statistical-code"),
                "value": format!("ADMIN_STRUCTURE_{}", own("statistical-code"))},
               {"system": format!("{SPEC_ID}jurisdiction-type"), "value": level}])
    } else {
        json!([{"system": format!("{SPEC_ID}internal-id"),
                "value": format!("{kind}_{}", own("internal-id"))}])
    };
    let part_of = r["partOf"]["reference"].as_str().unwrap_or("Location/0");
    json!({
        "resourceType": "Location",
        "id": r["id"],
        "identifier": identifier,
        "name": r["name"],
        "alias": [],
        "status": r["status"],
        "mode": "instance",
        "partOf": {"reference": part_of},
        "type": {"coding": [{"system": "http://opencrvs.org/specs/location-type", "code": kind}]},
        "physicalType": r["physicalType"],
    })
}

/// What search's duplicate check compares, approximated: the child's name
/// and date of birth and the mother's name (farajaland's birth dedup rules
/// match on these, fuzzily).
fn duplicate_fingerprint(bundle: &Value) -> String {
    let patients: Vec<&Value> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "Patient")
        .collect();
    let child = patients.first().copied().unwrap_or(&Value::Null);
    let mother = patients.get(1).copied().unwrap_or(&Value::Null);
    sha256_hex(
        json!([child["name"], child["birthDate"], mother["name"]])
            .to_string()
            .as_bytes(),
    )
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

/// The auth service's OAuth errors (`oauthToken/responses.ts`).
fn oauth_error(status: u16, error: &'static str, outcome: Outcome) -> Reply {
    Reply::json(
        status,
        &json!({"error": error, "error_description": error, "error_uri": ""}),
        outcome,
    )
    .header(header::CACHE_CONTROL, "no-store")
    .detail(error)
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

    /// 1.x honours none.
    fn idempotency_key(&self, _req: &MockRequest) -> Option<String> {
        None
    }

    fn handle(&self, endpoint: Endpoint, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        match endpoint {
            Endpoint::Token => self.token(req, now),
            Endpoint::Submit => self.notification(req, now),
            Endpoint::Unknown if req.method == Method::GET && req.path == LOCATION_PATH => {
                self.location_list(req)
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
            "token: POST {TOKEN_PATH}?client_id={}&client_secret={}&grant_type=client_credentials (JWT, {} s)",
            self.credentials.client_id,
            self.credentials.client_secret,
            self.issuer.lifetime().as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use axum::http::HeaderMap;

    use super::*;
    use crate::MockKind;

    /// Workflow's duplicate check asks an index of fingerprints, not a scan
    /// of every saved notification (which grew with the run and slowed
    /// `bench/load.sh`'s drain; that benchmark guards the speed). Among many
    /// notifications, each new child is accepted and the same child again is
    /// flagged.
    #[test]
    fn the_same_child_is_flagged_among_many_notifications() {
        let mock = OpencrvsV1::new(&MockConfig::new(MockKind::OpencrvsV1));
        let req = MockRequest {
            method: Method::POST,
            path: "/notification".into(),
            query: String::new(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        let bundle = |n: u32| {
            json!({"entry": [
                {"resource": {"resourceType": "Composition"}},
                {"resource": {"resourceType": "Task"}},
                {"resource": {"resourceType": "Patient", "name": [{"given": [format!("child {n}")]}]}}
            ]})
        };
        for n in 0..2_000 {
            assert_eq!(
                mock.save(&req, bundle(n), Utc::now()).outcome,
                Outcome::Accepted
            );
        }
        assert_eq!(
            mock.save(&req, bundle(7), Utc::now()).outcome,
            Outcome::Duplicate
        );
    }
}

//! Agencies push records and read their status.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::auth::Caller;
use super::problem::Problem;
use crate::config::{SourceConfig, SourceFormat};
use crate::intake::{IntakeError, Submission};
use crate::model::{RecordId, Role};
use crate::policy::{ConsentSubject, fhir_consent};
use crate::retention::purge_event;
use crate::store::{Erasure, PurgedRecord};
use crate::telemetry::PurgeLabels;

const IDEMPOTENCY_KEY: &str = "idempotency-key";
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// `POST /v1/sources/{source}/records`
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Agency)?;
    state.refuse_unsigned()?;
    let source = state
        .config
        .sources
        .get(&source)
        .ok_or_else(|| Problem::not_found("no source of that name is configured"))?;
    // Primero's webhook connector sends Net::HTTP's default form type with
    // a JSON body (specs/FORMATS.md 4.6): that source reads it as JSON.
    let form_is_json = source.format == SourceFormat::Primero;
    require_json(&headers, form_is_json)?;
    let body = body.map_err(Problem::from_body_rejection)?;
    let idempotency_key = idempotency_key(&headers)?;
    let submission = Submission {
        client_id: &caller.0.id,
        source,
        idempotency_key,
        body: &body,
        request: None,
    };
    let accepted = state
        .intake
        .submit(submission)
        .await
        .map_err(intake_problem)?;
    let status_url = format!("/v1/records/{}", accepted.id);
    let mut response = (
        StatusCode::ACCEPTED,
        Json(if accepted.replayed {
            json!({"id": accepted.id, "status_url": status_url})
        } else {
            json!({"id": accepted.id, "status_url": status_url, "routes": accepted.routes})
        }),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&status_url) {
        headers.insert(header::LOCATION, location);
    }
    if accepted.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `POST /v1/records/{id}/consent`: grant or withdraw consent for the person
/// a record is about, by the agency that owns the record. The body is a
/// consent decision without its subject (`status`, `given_by`, `purposes`,
/// `recipients`, `child_age_years`, `decided_at`, `reference`); it is stored as
/// a canonical consent record, and applies to every delivery of that person
/// that has not left yet.
pub async fn consent(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Agency)?;
    state.refuse_unsigned()?;
    let id = RecordId::parse(&id)
        .ok_or_else(|| Problem::not_found("no record with this id is visible to this client"))?;
    require_json(&headers, false)?;
    let body = body.map_err(Problem::from_body_rejection)?;
    let value = state
        .intake
        .pipeline()
        .parse_json(&body)
        .map_err(Problem::invalid_record)?;
    let serde_json::Value::Object(mut decision) = value else {
        return Err(Problem::invalid_record(vec![crate::schema::Violation {
            pointer: String::new(),
            code: "type",
            message: "must be a JSON object".into(),
        }]));
    };
    for reserved in ["record_type", "subject"] {
        if decision.contains_key(reserved) {
            return Err(Problem::invalid_record(vec![crate::schema::Violation {
                pointer: format!("/{reserved}"),
                code: "not_allowed",
                message: "is set by the gateway for this endpoint".into(),
            }]));
        }
    }
    decision.insert("record_type".into(), json!("consent"));
    decision.entry("record_version").or_insert(json!(1));
    decision.entry("decided_at").or_insert_with(|| {
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    });
    decision.insert("subject".into(), json!({"record_id": id.to_string()}));
    let record = serde_json::to_vec(&decision)
        .map_err(|_| Problem::unavailable("the consent could not be prepared; send it again", 1))?;
    let source = SourceConfig {
        name: CONSENT_API_SOURCE.into(),
        format: SourceFormat::Canonical,
    };
    // The same key with the same body for the same record is a retry, though
    // the gateway fills `decided_at` anew.
    let request = [id.to_string().as_bytes(), b"\0", &body[..]].concat();
    let submission = Submission {
        client_id: &caller.0.id,
        source: &source,
        idempotency_key: idempotency_key(&headers)?,
        body: &record,
        request: Some(&request),
    };
    let accepted = state.intake.submit(submission).await.map_err(|e| match e {
        // A record that is not the caller's reads as missing, as on GET.
        IntakeError::UnknownSubject => {
            Problem::not_found("no record with this id is visible to this client")
        }
        other => intake_problem(other),
    })?;
    if let Some(nudge) = &state.nudge {
        nudge.notify_waiters();
    }
    let status_url = format!("/v1/records/{}", accepted.id);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": accepted.id, "status_url": status_url, "applies_to": id})),
    )
        .into_response())
}

/// `GET /v1/records/{id}/consent`: the latest consent decision for the
/// person a record is about, as an R4 FHIR Consent resource. The patient is
/// named by the gateway's subject key, never by a name.
pub async fn consent_fhir(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    if caller.0.role == Role::Registry {
        return Err(Problem::forbidden(
            "registries do not read consent decisions",
        ));
    }
    let not_found = || Problem::not_found("no record with this id is visible to this client");
    let id = RecordId::parse(&id).ok_or_else(not_found)?;
    let unavailable = |_| Problem::unavailable("the store is not reachable", 5);
    let owner = state
        .store
        .record_owner(id)
        .await
        .map_err(unavailable)?
        .ok_or_else(not_found)?;
    if caller.0.role == Role::Agency && owner.client_id != caller.0.id {
        return Err(not_found());
    }
    let no_consent =
        || Problem::not_found("no consent decision is recorded for this record's subject");
    let subject = owner.subject.ok_or_else(no_consent)?;
    // Decoded by the store; a latest consent that no longer decodes reads as none.
    let consent = state
        .store
        .latest_consent(&subject)
        .await
        .map_err(unavailable)?
        .ok_or_else(no_consent)?;
    let resource = fhir_consent(
        &consent,
        ConsentSubject {
            system: "urn:registry-gateway:subject",
            value: &subject,
        },
        None,
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json"),
        )],
        Json(resource),
    )
        .into_response())
}

/// The source name consent decisions made over the consent API are logged under.
pub const CONSENT_API_SOURCE: &str = "consent-api";

/// `GET /v1/records/{id}`
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    if caller.0.role == Role::Registry {
        return Err(Problem::forbidden("registries do not read record status"));
    }
    let not_found = || Problem::not_found("no record with this id is visible to this client");
    let id = RecordId::parse(&id).ok_or_else(not_found)?;
    let status = state
        .store
        .record_status(id)
        .await
        .map_err(|_| Problem::unavailable("the store is not reachable", 5))?
        .ok_or_else(not_found)?;
    // An agency sees only its own records; another's is "not found", not
    // "forbidden", so that ids reveal nothing about other agencies' records.
    if caller.0.role == Role::Agency && status.client_id != caller.0.id {
        return Err(not_found());
    }
    Ok(Json(status).into_response())
}

/// `DELETE /v1/records/{id}`: the owning agency's erasure request. The
/// record's data key is destroyed at once (the purge the retention period
/// would do later); its ids, statuses, receipts and the exchange log stay.
/// Refused (409) while a delivery still needs the payload.
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    caller.require(Role::Agency)?;
    let not_found = || Problem::not_found("no record with this id is visible to this client");
    let id = RecordId::parse(&id).ok_or_else(not_found)?;
    let now = chrono::Utc::now();
    let client = caller.0.id.clone();
    let audit = move |r: &PurgedRecord| purge_event(&client, r, now);
    let erasure = state
        .store
        .erase(id, &caller.0.id, now, &audit)
        .await
        .map_err(|_| Problem::unavailable("the store is not reachable", 5))?;
    match erasure {
        Erasure::Purged(_) => {
            state
                .metrics
                .records_purged
                .get_or_create(&PurgeLabels { reason: "erased" })
                .inc();
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Erasure::AlreadyPurged => Ok(StatusCode::NO_CONTENT.into_response()),
        Erasure::NotFound => Err(not_found()),
        Erasure::InFlight(delivery_state) => Err(Problem::new(
            StatusCode::CONFLICT,
            "urn:registry-gateway:problem:delivery-in-flight",
            "A delivery of this record still needs its payload",
        )
        .detail(format!(
            "a delivery of this record is {delivery_state}; erase it once every delivery is \
             delivered, referred, dead or cancelled"
        ))),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bad = || {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "urn:registry-gateway:problem:bad-idempotency-key",
            "The Idempotency-Key header is malformed",
        )
        .detail(format!(
            "it must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
        ))
    };
    let key = value.to_str().map_err(|_| bad())?;
    let printable = key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !printable {
        return Err(bad());
    }
    Ok(Some(key.to_string()))
}

/// A JSON route takes `application/json` or a `+json` type (FHIR's
/// `application/fhir+json`); a body sent with no Content-Type is read as
/// JSON, since agency HTTP clients often set none. Anything else (text/plain,
/// XML, forms) is a 415 before the body is read, with `form_is_json` the one
/// exception for Primero's webhooks.
pub(super) fn require_json(headers: &HeaderMap, form_is_json: bool) -> Result<(), Problem> {
    // No content coding is decoded: a compressed body (a possible bomb) is
    // refused unread rather than parsed as if it were JSON.
    if headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return Err(Problem::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .detail("send the body without Content-Encoding"));
    }
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json || (form_is_json && essence == "application/x-www-form-urlencoded") {
        return Ok(());
    }
    Err(Problem::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .detail("send the body as application/json (or application/fhir+json)"))
}

fn intake_problem(error: IntakeError) -> Problem {
    match error {
        IntakeError::Invalid(violations) => Problem::invalid_record(violations),
        e @ IntakeError::UnknownSubject => Problem::invalid_record(e.violations()),
        IntakeError::IdempotencyConflict(_) => Problem::new(
            StatusCode::CONFLICT,
            "urn:registry-gateway:problem:idempotency-conflict",
            "This Idempotency-Key was already used for a different request",
        )
        .detail("use a new key for a new record; resend the original body to read its id"),
        IntakeError::Unavailable(e) => {
            tracing::warn!(error = %e, "store refused a submission");
            Problem::unavailable("the record was not stored; send it again", 2)
        }
        IntakeError::Internal => {
            tracing::error!("decoding a submission failed unexpectedly");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "urn:registry-gateway:problem:internal",
                "Internal error; nothing is confirmed",
            )
        }
    }
}

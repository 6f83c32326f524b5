//! What happens to a submitted record, independent of HTTP: bounded parsing,
//! record-type detection, schema validation, routing, and one durable commit
//! of the record with its deliveries and its audit event.
//!
//! Architecture invariant: an [`Accepted`] is returned only after the store has
//! committed; a rejection is returned only after its audit event is committed.
//! No value from the record reaches an error, a log line or the audit log.

use std::sync::Arc;

use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::audit::{AuditEvent, AuditKind, ProblemRef, RouteDecision};
use crate::config::SourceConfig;
use crate::mapping::LeftOut;
use crate::model::{RecordId, RecordType, subject_key};
use crate::pipeline::{Canonical, Pipeline};
use crate::policy::{ConsentState, Outcome};
use crate::schema::Violation;
use crate::store::{AcceptOutcome, ConsentEntry, NewDelivery, NewRecord, Store, StoreError};
use crate::telemetry::{Metrics, RejectLabels, SourceLabels};

/// One submission as it arrived.
pub struct Submission<'a> {
    pub client_id: &'a str,
    pub source: &'a SourceConfig,
    pub idempotency_key: Option<String>,
    pub body: &'a [u8],
    /// What the client sent, when `body` was built from it (the consent
    /// API adds the subject and a decision time): a retry is "the same
    /// request" by these bytes, not by what the gateway filled in.
    pub request: Option<&'a [u8]>,
}

/// A committed record and the routes that will carry it.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub id: RecordId,
    /// True when an identical earlier request is being answered again.
    pub replayed: bool,
    /// Each route's sharing decision (empty on a replay: see the status URL).
    pub routes: Vec<RouteOutcome>,
}

/// A route's decision as the agency is told it: no values, rule names only.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteOutcome {
    pub route: String,
    pub destination: String,
    /// `deliver` or `deny`.
    pub decision: Outcome,
    pub reason: String,
    pub legal_basis: Option<&'static str>,
    pub rule: String,
    pub policy_sha256: String,
    /// Values the inbound mapping left out (an instance's own lookup values
    /// in fields the route can do without): pointer and rule, never the value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<LeftOutReport>,
}

impl RouteOutcome {
    /// The decision as the exchange log keeps it: no reason, no values.
    pub fn audit_decision(&self) -> RouteDecision {
        RouteDecision {
            route: self.route.clone(),
            destination: self.destination.clone(),
            decision: self.decision,
            legal_basis: self.legal_basis.map(str::to_string),
            rule: Some(self.rule.clone()),
            policy_sha256: Some(self.policy_sha256.clone()),
        }
    }
}

/// One value left out of a record, as the agency is told it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeftOutReport {
    /// Where it was in the payload.
    pub pointer: String,
    /// Always `unknown-lookup-value`.
    pub rule: &'static str,
}

/// Why a submission was not accepted, classified by what the sender should do.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Fix the record: every problem is listed.
    #[error("the record is invalid ({} problem(s))", .0.len())]
    Invalid(Vec<Violation>),
    /// A consent record names its subject by a record id that is no record
    /// of this client's: fix the record (the consent API, which wrote the id
    /// itself, answers "not found"). One problem, at `/subject/record_id`.
    #[error("the record is invalid (1 problem(s))")]
    UnknownSubject,
    /// The same Idempotency-Key was used before with a different body.
    #[error("the Idempotency-Key was already used for a different request")]
    IdempotencyConflict(RecordId),
    /// Nothing was stored; the same request may be sent again later.
    #[error(transparent)]
    Unavailable(#[from] StoreError),
    /// Decoding failed unexpectedly (a bug, or the gateway is stopping):
    /// nothing was stored.
    #[error("the record could not be decoded; nothing was stored")]
    Internal,
}

impl IntakeError {
    /// The problems to answer and log: what is wrong with the record.
    pub fn violations(&self) -> Vec<Violation> {
        match self {
            IntakeError::Invalid(violations) => violations.clone(),
            IntakeError::UnknownSubject => vec![Violation {
                pointer: "/subject/record_id".into(),
                code: "unknown_record",
                message: "names no record visible to this client".into(),
            }],
            IntakeError::IdempotencyConflict(_)
            | IntakeError::Unavailable(_)
            | IntakeError::Internal => Vec::new(),
        }
    }
}

pub struct Intake {
    pipeline: Arc<Pipeline>,
    store: Arc<dyn Store>,
    metrics: Metrics,
    /// Decoding and validating run on blocking threads, at most this many at
    /// once, so that heavy payloads never stall the async runtime (health
    /// checks, other clients' answers) and never take every thread.
    decoders: Arc<tokio::sync::Semaphore>,
    /// Wakes the delivery workers once new deliveries are committed.
    nudge: Option<Arc<tokio::sync::Notify>>,
}

impl Intake {
    pub fn new(pipeline: Arc<Pipeline>, store: Arc<dyn Store>, metrics: Metrics) -> Intake {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Intake {
            pipeline,
            store,
            metrics,
            decoders: Arc::new(tokio::sync::Semaphore::new(cores.max(2))),
            nudge: None,
        }
    }

    pub fn with_nudge(mut self, nudge: Option<Arc<tokio::sync::Notify>>) -> Intake {
        self.nudge = nudge;
        self
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Validate, route and durably commit one submission.
    pub async fn submit(&self, submission: Submission<'_>) -> Result<Accepted, IntakeError> {
        let received_at = Utc::now();
        let request_sha256 = request_hash(
            &submission.source.name,
            submission.request.unwrap_or(submission.body),
        );
        let mut audit = AuditEvent::new(
            AuditKind::RecordRejected,
            received_at,
            submission.client_id,
            &submission.source.name,
        );
        audit.body_sha256 = Some(hex::encode(Sha256::digest(submission.body)));

        let (canonical, left_out) = match self.parse(&submission).await {
            Ok(parsed) => parsed,
            Err(e @ IntakeError::Invalid(_)) => {
                return Err(self.reject(audit, submission.source, e).await);
            }
            Err(other) => return Err(other),
        };

        let record_type = canonical.record_type;
        let id = RecordId::new();
        let subject = match self.consent_subject(submission.client_id, &canonical).await {
            Ok(s) => s,
            Err(e @ IntakeError::UnknownSubject) => {
                return Err(self.reject(audit, submission.source, e).await);
            }
            Err(other) => return Err(other),
        };
        // Without a stable source id, the record is its own subject.
        let subject = subject
            .or_else(|| canonical.subject(submission.client_id))
            .or_else(|| {
                Some(subject_key(
                    submission.client_id,
                    record_type.as_str(),
                    &id.to_string(),
                ))
            });
        // The latest consent recorded for this person (consent API or consent
        // records) overrides the record's own consent fields. Decoded by the
        // store; one that no longer decodes reads as none.
        let consent = match &subject {
            Some(subject) => self.store.latest_consent(subject).await?,
            None => None,
        };
        // The policy decides at acceptance, so the agency learns at once which
        // routes will carry the record; denied routes get no delivery at all.
        let (routes, deliveries) = self.decide(&canonical, consent.as_ref(), &left_out);
        let consent_entry = (record_type == RecordType::Consent)
            .then(|| subject.clone())
            .flatten();
        let withdrawn =
            canonical.record.get("status").and_then(|s| s.as_str()) == Some("withdrawn");
        let canonical = serde_json::to_vec(&canonical.record).expect("a JSON value serialises");
        let consent = consent_entry.map(|subject| ConsentEntry {
            subject,
            consent: canonical.clone(),
        });
        audit.kind = match (record_type, withdrawn) {
            (RecordType::Consent, true) => AuditKind::ConsentWithdrawn,
            (RecordType::Consent, false) => AuditKind::ConsentGranted,
            _ => AuditKind::RecordAccepted,
        };
        audit.record_id = Some(id.to_string());
        audit.record_type = Some(record_type);
        audit.routes = routes.iter().map(RouteOutcome::audit_decision).collect();
        let labels = SourceLabels {
            source: submission.source.name.clone(),
            record_type: record_type.as_str().to_string(),
        };
        let outcome = self
            .store
            .accept(NewRecord {
                id,
                client_id: submission.client_id.to_string(),
                source: submission.source.name.clone(),
                record_type,
                received_at,
                idempotency_key: submission.idempotency_key.clone(),
                request_sha256,
                canonical,
                deliveries,
                audit: audit.clone(),
                subject,
                consent,
            })
            .await?;
        match outcome {
            AcceptOutcome::Created(id) => {
                if let Some(nudge) = &self.nudge {
                    nudge.notify_waiters();
                }
                self.metrics.records_accepted.get_or_create(&labels).inc();
                tracing::info!(record_id = %id, source = %labels.source, record_type = %labels.record_type, "record accepted");
                Ok(Accepted {
                    id,
                    replayed: false,
                    routes,
                })
            }
            AcceptOutcome::Replayed(id) => {
                self.metrics.records_replayed.get_or_create(&labels).inc();
                tracing::info!(record_id = %id, "idempotent replay answered");
                Ok(Accepted {
                    id,
                    replayed: true,
                    routes: Vec::new(),
                })
            }
            AcceptOutcome::Conflict(id) => {
                let mut conflict = AuditEvent::new(
                    AuditKind::IdempotencyConflict,
                    received_at,
                    submission.client_id,
                    &submission.source.name,
                );
                conflict.record_id = Some(id.to_string());
                conflict.body_sha256 = audit.body_sha256;
                self.store.append_audit(conflict).await?;
                self.count_rejection(submission.source, "idempotency_conflict");
                Err(IntakeError::IdempotencyConflict(id))
            }
        }
    }

    /// Each route's decision for `canonical` at acceptance, as the agency is
    /// told it, and one delivery for each route that delivers.
    pub fn decide(
        &self,
        canonical: &Canonical,
        consent: Option<&ConsentState>,
        left_out: &[LeftOut],
    ) -> (Vec<RouteOutcome>, Vec<NewDelivery>) {
        let mut routes = Vec::new();
        let mut deliveries = Vec::new();
        for (route, decision) in self.pipeline.decide_routes(canonical, consent) {
            let deliver = decision.decision == Outcome::Deliver;
            if deliver {
                deliveries.push(NewDelivery {
                    route: route.name.clone(),
                    destination: route.destination.clone(),
                });
            }
            routes.push(RouteOutcome {
                route: route.name.clone(),
                destination: route.destination.clone(),
                decision: decision.decision,
                reason: decision.reason,
                legal_basis: decision.legal_basis.filter(|_| deliver),
                rule: decision.rule,
                policy_sha256: decision.policy_sha256,
                left_out: left_out
                    .iter()
                    .map(|l| LeftOutReport {
                        pointer: l.from.clone(),
                        rule: "unknown-lookup-value",
                    })
                    .collect(),
            });
        }
        (routes, deliveries)
    }

    /// A consent record that names its subject by the gateway's record id
    /// applies to that record's subject, if the record is this client's.
    async fn consent_subject(
        &self,
        client_id: &str,
        canonical: &Canonical,
    ) -> Result<Option<String>, IntakeError> {
        let Some(record_id) = canonical
            .record
            .pointer("/subject/record_id")
            .and_then(serde_json::Value::as_str)
        else {
            return Ok(None);
        };
        let id = RecordId::parse(record_id).ok_or(IntakeError::UnknownSubject)?;
        match self.store.record_owner(id).await? {
            Some(owner) if owner.client_id == client_id => Ok(owner.subject),
            _ => Err(IntakeError::UnknownSubject),
        }
    }

    /// Bounded parse, then the pipeline: decode, map, validate. With the
    /// values the inbound mapping left out.
    /// A body of up to [`PARSE_INLINE_BYTES`] is decoded where it is: tens of
    /// microseconds, less than the hop to a blocking thread and back. A
    /// larger one runs on a blocking thread, within the decoders' permits.
    async fn parse(
        &self,
        submission: &Submission<'_>,
    ) -> Result<(Canonical, Vec<LeftOut>), IntakeError> {
        if submission.body.len() <= PARSE_INLINE_BYTES {
            return decode(&self.pipeline, submission.source, submission.body);
        }
        let _permit = self
            .decoders
            .acquire()
            .await
            .map_err(|_| IntakeError::Internal)?;
        let pipeline = self.pipeline.clone();
        let source = submission.source.clone();
        let body = submission.body.to_vec();
        tokio::task::spawn_blocking(move || decode(&pipeline, &source, &body))
            .await
            .unwrap_or_else(|_| Err(IntakeError::Internal))
    }

    /// Log a rejection for what is wrong with the record (`error`), and
    /// return `error` once it is in the exchange log.
    async fn reject(
        &self,
        mut audit: AuditEvent,
        source: &SourceConfig,
        error: IntakeError,
    ) -> IntakeError {
        let violations = error.violations();
        audit.problems = violations
            .iter()
            .map(|v| ProblemRef {
                pointer: audit_pointer(v),
                code: v.code,
            })
            .collect();
        // The rejection is answered only once it is in the exchange log.
        if let Err(e) = self.store.append_audit(audit).await {
            return IntakeError::Unavailable(e);
        }
        self.count_rejection(source, "invalid");
        tracing::info!(source = %source.name, problems = violations.len(), "record rejected");
        error
    }

    fn count_rejection(&self, source: &SourceConfig, reason: &'static str) {
        self.metrics
            .records_rejected
            .get_or_create(&RejectLabels {
                source: source.name.clone(),
                reason,
            })
            .inc();
    }
}

/// Bodies up to this size are decoded on the async runtime (a birth
/// notification is about 2 KB, a FHIR birth document 5-10 KB); larger ones,
/// up to the body limit, on a blocking thread, so that a heavy payload never
/// stalls health checks and other clients' answers (tests/hostile.rs).
const PARSE_INLINE_BYTES: usize = 16 * 1024;

fn decode(
    pipeline: &Pipeline,
    source: &SourceConfig,
    body: &[u8],
) -> Result<(Canonical, Vec<LeftOut>), IntakeError> {
    let value = pipeline.parse_json(body).map_err(IntakeError::Invalid)?;
    pipeline
        .canonicalize_owned(source, value)
        .map_err(IntakeError::Invalid)
}

/// Two requests are "the same" when source and body are byte-for-byte equal.
fn request_hash(source: &str, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0u8]);
    h.update(body);
    h.finalize().into()
}

/// The pointer an audit event keeps for a problem. An unknown field's name
/// comes from the client, so the log keeps the object that does not define
/// it (a path of the schema) and the code `unknown_field`, never the name.
fn audit_pointer(v: &crate::schema::Violation) -> String {
    if v.code == "unknown_field" {
        match v.pointer.rfind('/') {
            Some(at) => v.pointer[..at].to_string(),
            None => String::new(),
        }
    } else {
        v.pointer.clone()
    }
}

//! `translate`: one record through validation, inbound mapping and every
//! outbound route, without storing or delivering anything. What it writes is
//! exactly what each registry would be sent.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::RouteConfig;
use crate::model::RecordId;
use crate::pipeline::{Canonical, Pipeline};
use crate::policy::Outcome;
use crate::schema::Violation;

/// Namespace of the record ids `translate` derives from its input.
const PREVIEW_NAMESPACE: Uuid = Uuid::from_u128(0x9d2c_51f4_0b7e_4a3d_8e6f_1c2b_3a4d_5e6f);

/// The sharing decision for one route, as `decisions.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub route: String,
    pub destination: String,
    /// `deliver` or `deny`.
    pub decision: Outcome,
    pub reason: String,
    pub legal_basis: Option<&'static str>,
    pub redactions: Vec<RedactionEntry>,
    /// The policy rule that decided, and the SHA-256 of the policy file.
    pub rule: String,
    pub policy_sha256: String,
}

/// One field removed or transformed before mapping, by pointer and action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedactionEntry {
    pub pointer: String,
    pub action: &'static str,
    pub reason: String,
}

/// A file `translate` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Translation {
    pub record_id: RecordId,
    pub canonical: Canonical,
    pub files: Vec<OutputFile>,
    pub decisions: Vec<Decision>,
}

#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("no source named {0} is configured")]
    UnknownSource(String),
    #[error("the record is invalid ({} problem(s))", .0.len())]
    Invalid(Vec<Violation>),
}

/// A valid record, ready to go through its routes: what every route of one
/// `translate` shares.
pub struct Prepared {
    source: String,
    record_id: RecordId,
    canonical: Canonical,
    left_out: Vec<crate::policy::Redaction>,
    timestamp: DateTime<Utc>,
}

impl Prepared {
    pub fn canonical(&self) -> &Canonical {
        &self.canonical
    }
}

/// Translate `input` as if `source` had sent it. `timestamp` is injected (the
/// record's own notification or decision time when `None`), so the output is
/// the same bytes every time.
pub fn translate(
    pipeline: &Pipeline,
    source: &str,
    input: &[u8],
    timestamp: Option<DateTime<Utc>>,
) -> Result<Translation, TranslateError> {
    let prepared = prepare(pipeline, source, input, timestamp)?;
    let mut files = Vec::new();
    let mut decisions = Vec::new();
    for route in pipeline.config().routes_for(prepared.canonical.record_type) {
        let (file, decision) = route_one(pipeline, &prepared, route);
        files.extend(file);
        decisions.push(decision);
    }
    let mut decisions_json = serde_json::to_vec_pretty(&decisions).expect("decisions serialise");
    decisions_json.push(b'\n');
    files.push(OutputFile {
        name: "decisions.json".into(),
        bytes: decisions_json,
    });
    Ok(Translation {
        record_id: prepared.record_id,
        canonical: prepared.canonical,
        files,
        decisions,
    })
}

/// Parse, validate and canonicalize `input`, and derive its preview id from
/// its bytes: the part of [`translate`] that does not depend on the route.
pub fn prepare(
    pipeline: &Pipeline,
    source: &str,
    input: &[u8],
    timestamp: Option<DateTime<Utc>>,
) -> Result<Prepared, TranslateError> {
    let source_config = pipeline
        .config()
        .sources
        .get(source)
        .ok_or_else(|| TranslateError::UnknownSource(source.to_string()))?;
    let payload = pipeline
        .parse_json(input)
        .map_err(TranslateError::Invalid)?;
    let (canonical, left_out) = pipeline
        .canonicalize_owned(source_config, payload)
        .map_err(TranslateError::Invalid)?;
    let left_out = pipeline.left_out_redactions(&left_out);
    let digest = Sha256::new()
        .chain_update(source.as_bytes())
        .chain_update([0])
        .chain_update(input)
        .finalize();
    let record_id = RecordId(Uuid::new_v5(&PREVIEW_NAMESPACE, &digest));
    let timestamp = timestamp
        .or_else(|| canonical.stated_time())
        .unwrap_or(DateTime::UNIX_EPOCH);
    Ok(Prepared {
        source: source.to_string(),
        record_id,
        canonical,
        left_out,
        timestamp,
    })
}

/// One route of a prepared record: the file it would send (when it
/// delivers) and its decision, exactly as [`translate`] writes them.
pub fn route_one(
    pipeline: &Pipeline,
    prepared: &Prepared,
    route: &RouteConfig,
) -> (Option<OutputFile>, Decision) {
    route_canonical(
        pipeline,
        prepared,
        Cow::Borrowed(&prepared.canonical),
        route,
    )
}

/// [`route_one`] for the record's last route (`translate --jsonl` has only
/// one): the record moves into the policy, which minimises it in place
/// instead of copying it.
pub fn route_last(
    pipeline: &Pipeline,
    mut prepared: Prepared,
    route: &RouteConfig,
) -> (Option<OutputFile>, Decision) {
    let canonical = Canonical {
        record_type: prepared.canonical.record_type,
        record: std::mem::take(&mut prepared.canonical.record),
    };
    route_canonical(pipeline, &prepared, Cow::Owned(canonical), route)
}

/// `canonical` is `prepared`'s record, borrowed or moved out of it.
fn route_canonical(
    pipeline: &Pipeline,
    prepared: &Prepared,
    canonical: Cow<'_, Canonical>,
    route: &RouteConfig,
) -> (Option<OutputFile>, Decision) {
    // A preview has no agency; the source's name stands in for it.
    let subject = canonical.subject(&format!("translate:{}", prepared.source));
    let ctx = pipeline.context(
        route,
        prepared.record_id,
        &canonical,
        prepared.timestamp,
        1,
        subject,
    );
    let routed = pipeline.route(route, canonical, &ctx);
    let policy = routed.decision;
    let mut file = None;
    let (decision, reason) = match routed.rendered {
        None => (Outcome::Deny, policy.reason.clone()),
        Some(Ok(encoded)) => {
            file = Some(OutputFile {
                name: format!("{}.{}", route.name, encoded.extension),
                bytes: encoded.bytes,
            });
            (Outcome::Deliver, policy.reason.clone())
        }
        Some(Err(e)) => (
            Outcome::Deny,
            format!("cannot be rendered for this registry: {e}"),
        ),
    };
    let decision = Decision {
        route: route.name.clone(),
        destination: route.destination.clone(),
        decision,
        reason,
        legal_basis: (decision == Outcome::Deliver)
            .then_some(policy.legal_basis)
            .flatten(),
        // What the inbound mapping left out goes for every route.
        redactions: prepared
            .left_out
            .iter()
            .chain(&policy.redactions)
            .map(|r| RedactionEntry {
                pointer: r.pointer.clone(),
                action: r.action.as_str(),
                reason: r.reason.clone(),
            })
            .collect(),
        rule: policy.rule,
        policy_sha256: policy.policy_sha256,
    };
    (file, decision)
}

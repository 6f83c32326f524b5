//! One destination's worker: lease due deliveries, re-check the policy,
//! render, wait for the pace, send, and record the outcome with its audit
//! event in one transaction.
//!
//! The lease is what makes a crash harmless: a delivery whose worker died is
//! due again when its lease runs out, and the registry sees the same
//! idempotency key, so the resend is not a second registration.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use super::activity::DestinationActivity;
use super::backoff;
use super::pace::Pace;
use super::transports::{Outbound, Receipt, ReceiptStatus, SendError, Transport};
use crate::audit::{AuditEvent, AuditKind, DeliveryAudit, ErrorClass};
use crate::config::DestinationConfig;
use crate::pipeline::{Canonical, Pipeline};
use crate::policy::Outcome;
use crate::store::{ClaimedDelivery, Completion, DeliveryOutcome, Store};
use crate::telemetry::{DeliveryLabels, DestinationLabels, Metrics};

/// How often an idle worker looks for due deliveries without being nudged.
const IDLE_POLL: Duration = Duration::from_millis(500);

pub struct Worker {
    pub id: String,
    pub destination: DestinationConfig,
    pub pipeline: Arc<Pipeline>,
    pub store: Arc<dyn Store>,
    pub transport: Arc<dyn Transport>,
    pub pace: Arc<Pace>,
    /// Requests and outcomes per minute, for the console.
    pub activity: Arc<DestinationActivity>,
    pub metrics: Metrics,
    pub nudge: Arc<Notify>,
}

impl Worker {
    /// The longest one send can take: each HTTP exchange is bounded by the
    /// destination's timeout, and a send makes at most six (a token, the
    /// request, a new token and the request again after a refusal, and the
    /// read-then-write of a correction).
    fn worst_send(&self) -> Duration {
        self.destination.timeout * 6
    }

    /// The lease covers the wait for an in-flight slot (a claim takes at most
    /// `max_in_flight` deliveries, so that wait is at most one earlier send)
    /// and the send itself; `deliver` gives a delivery back rather than start
    /// a send its lease could not outlive, so a claim never expires while its
    /// request is on the wire and the delivery is never sent twice at once.
    fn lease(&self) -> Duration {
        self.worst_send() * 2 + Duration::from_secs(30)
    }

    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(
            self.destination.limits.max_in_flight as usize,
        ));
        let batch = self.destination.limits.max_in_flight.clamp(1, 64);
        let mut sending = tokio::task::JoinSet::new();
        while !*stop.borrow() {
            // Reap finished sends so the set does not grow.
            while sending.try_join_next().is_some() {}
            if let Some(wait) = self.pace.hint(Utc::now()) {
                self.sleep_until(wait.until(), &mut stop).await;
                continue;
            }
            let claimed = match self
                .store
                .claim_due(
                    &self.destination.name,
                    &self.id,
                    batch,
                    self.lease(),
                    Utc::now(),
                )
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(destination = %self.destination.name, error = %e, "cannot claim deliveries");
                    self.idle(&mut stop).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                self.idle(&mut stop).await;
                continue;
            }
            for delivery in claimed {
                let permit = tokio::select! {
                    p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                    _ = stop.changed() => {
                        self.release(&delivery, Utc::now()).await;
                        continue;
                    }
                };
                let worker = self.clone();
                let stop = stop.clone();
                sending.spawn(async move {
                    worker.deliver(delivery, permit, stop).await;
                });
            }
        }
        // Let what is on the wire finish; what has not left is released.
        while sending.join_next().await.is_some() {}
    }

    async fn idle(&self, stop: &mut watch::Receiver<bool>) {
        tokio::select! {
            _ = self.nudge.notified() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = stop.changed() => {}
        }
    }

    async fn sleep_until(&self, until: DateTime<Utc>, stop: &mut watch::Receiver<bool>) {
        let wait = (until - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait.min(Duration::from_secs(60))) => {}
            _ = stop.changed() => {}
        }
    }

    /// Give a claimed delivery back without counting an attempt.
    async fn release(&self, d: &ClaimedDelivery, next: DateTime<Utc>) {
        self.finish(d, DeliveryOutcome::Released { next_attempt: next }, None)
            .await;
    }

    /// `slot` is the delivery's in-flight slot: it is given back as soon as
    /// nothing more goes to the registry, before the outcome's commit, so a
    /// group commit (shared with intake) never holds a slot idle.
    async fn deliver(
        &self,
        d: ClaimedDelivery,
        slot: OwnedSemaphorePermit,
        mut stop: watch::Receiver<bool>,
    ) {
        let prepared = match self.prepare(&d).await {
            Ok(p) => p,
            Err(end) => {
                drop(slot);
                let (outcome, audit) = *end;
                self.finish(&d, outcome, Some(audit)).await;
                return;
            }
        };
        // Wait for the registry's pace; a pause that starts meanwhile (another
        // request's Retry-After) is honoured before this one leaves.
        loop {
            if *stop.borrow() {
                return self.release(&d, Utc::now()).await;
            }
            if let Some(wait) = self.pace.hint(Utc::now()) {
                if wait.until() > d.lease_until - TimeDelta::seconds(5) {
                    // Too long to hold the lease: give it back until then.
                    return self.release(&d, wait.until()).await;
                }
                self.sleep_until(wait.until(), &mut stop).await;
                continue;
            }
            tokio::select! {
                _ = self.pace.take_cell() => {}
                _ = stop.changed() => continue,
            }
            // The cell may have come after a pause began. This check also
            // takes the breaker's probe when it is due.
            if self.pace.blocked(Utc::now()).is_none() {
                break;
            }
        }
        let worst_end = TimeDelta::from_std(self.worst_send() + Duration::from_secs(5))
            .unwrap_or(TimeDelta::MAX);
        if Utc::now()
            .checked_add_signed(worst_end)
            .is_none_or(|end| end > d.lease_until)
        {
            // Sending now could outlast the claim: another claim could then
            // send the same delivery while this request is on the wire.
            return self.release(&d, Utc::now()).await;
        }
        if let Some(wait) = self.pace.take_quota(Utc::now()).await {
            // Spent meanwhile (perhaps by another instance): not an attempt.
            return self.release(&d, wait.until()).await;
        }
        self.activity.sent(Utc::now());
        let started = std::time::Instant::now();
        let result = self
            .transport
            .send(&Outbound {
                body: &prepared.body,
                content_type: prepared.content_type,
                idempotency_key: &prepared.idempotency_key,
                record_key: &prepared.record_key,
                record_version: prepared.record_version,
                prior: prepared.prior.as_ref(),
            })
            .await;
        self.metrics
            .delivery_seconds
            .get_or_create(&DestinationLabels {
                destination: self.destination.name.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        // Classified first: a Retry-After pause or the breaker's count is in
        // place before the slot lets the next request go.
        let (outcome, audit) = self.outcome(&d, &prepared, result);
        drop(slot);
        self.finish(&d, outcome, Some(audit)).await;
    }

    /// Re-check the policy with the subject's latest consent and render.
    /// Err: the delivery ends here (cancelled, or dead when it cannot be rendered).
    async fn prepare(
        &self,
        d: &ClaimedDelivery,
    ) -> Result<Prepared, Box<(DeliveryOutcome, AuditEvent)>> {
        let fail = |class: ErrorClass, reason: String| {
            let mut audit = self.audit(d, AuditKind::DeliveryDead);
            if let Some(a) = audit.delivery.as_mut() {
                a.error_class = Some(class);
                a.reason = Some(reason.clone());
            }
            Box::new((DeliveryOutcome::Dead { error: reason }, audit))
        };
        let Some(route) = self
            .pipeline
            .config()
            .routes
            .iter()
            .find(|r| r.name == d.route)
        else {
            return Err(fail(
                ErrorClass::Render,
                "the route is no longer configured".into(),
            ));
        };
        let record_type = d.record_type.map_err(|_| {
            fail(
                ErrorClass::Render,
                "the stored record type is unknown".into(),
            )
        })?;
        // A purged record has nothing to send: a dead letter with the reason.
        let stored = d
            .canonical
            .as_ref()
            .map_err(|gone| fail(ErrorClass::Render, gone.reason().into()))?;
        let record = serde_json::from_slice(stored)
            .map_err(|_| fail(ErrorClass::Render, "the stored record is not JSON".into()))?;
        let canonical = Canonical {
            record_type,
            record,
        };
        let consent = match &d.subject {
            // Decoded by the store; one that no longer decodes reads as none.
            Some(subject) => match self.store.latest_consent(subject).await {
                Ok(consent) => consent,
                // Without the consent state the decision cannot be made: try later.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read consent; delivery postponed");
                    let mut audit = self.audit(d, AuditKind::DeliveryFailed);
                    if let Some(a) = audit.delivery.as_mut() {
                        a.error_class = Some(ErrorClass::Retryable);
                        a.reason = Some("consent state unavailable".into());
                    }
                    return Err(Box::new((
                        DeliveryOutcome::Retry {
                            next_attempt: Utc::now() + TimeDelta::seconds(5),
                            error: "consent state unavailable".into(),
                        },
                        audit,
                    )));
                }
            },
            None => None,
        };
        let ctx = self.pipeline.context(
            route,
            d.record_id,
            &canonical,
            d.received_at,
            // Per-request ids (xrd:id) must be new for every HTTP request:
            // the claim count, unlike attempts, never repeats.
            u32::try_from(d.claim).unwrap_or(u32::MAX),
            d.subject.clone(),
        );
        let routed =
            self.pipeline
                .route_with_consent(route, Cow::Owned(canonical), consent.as_ref(), &ctx);
        let decision = routed.decision;
        if decision.decision == Outcome::Deny {
            let mut audit = self.audit(d, AuditKind::DeliveryCancelled);
            if let Some(a) = audit.delivery.as_mut() {
                a.error_class = Some(ErrorClass::Policy);
                a.reason = Some(decision.reason.clone());
                a.rule = Some(decision.rule.clone());
                a.policy_sha256 = Some(decision.policy_sha256.clone());
            }
            return Err(Box::new((
                DeliveryOutcome::Cancelled {
                    reason: decision.reason,
                },
                audit,
            )));
        }
        match routed.rendered {
            Some(Ok(encoded)) => Ok(Prepared {
                body: encoded.bytes,
                content_type: encoded.content_type,
                idempotency_key: ctx.idempotency_key(),
                record_key: ctx.record_key().to_string(),
                record_version: ctx.record_version,
                // A stored receipt this build cannot read is no receipt: the
                // transport then treats the version as the first it sends.
                prior: d
                    .prior_receipt
                    .clone()
                    .and_then(|r| serde_json::from_value::<Receipt>(r).ok()),
                rule: decision.rule,
                policy_sha256: decision.policy_sha256,
            }),
            Some(Err(e)) => Err(fail(ErrorClass::Render, e.to_string())),
            None => Err(fail(
                ErrorClass::Render,
                "the policy produced no rendering".into(),
            )),
        }
    }

    fn outcome(
        &self,
        d: &ClaimedDelivery,
        prepared: &Prepared,
        result: Result<super::transports::Receipt, SendError>,
    ) -> (DeliveryOutcome, AuditEvent) {
        let now = Utc::now();
        let retry = &self.destination.retry;
        let (kind, outcome, label) = match &result {
            Ok(receipt) => {
                self.pace.breaker.success();
                let mut value = serde_json::to_value(receipt).unwrap_or_default();
                value["delivered_at"] =
                    serde_json::json!(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
                match receipt.status {
                    // Not decided yet: ask again (the same idempotent request)
                    // after the longest backoff.
                    ReceiptStatus::Requested => (
                        AuditKind::DeliveryAwaiting,
                        DeliveryOutcome::Awaiting {
                            receipt: value,
                            next_check: now
                                + TimeDelta::from_std(retry.max_backoff).unwrap_or(TimeDelta::MAX),
                        },
                        "awaiting",
                    ),
                    status => (
                        AuditKind::DeliveryDelivered,
                        DeliveryOutcome::Delivered { receipt: value },
                        match status {
                            ReceiptStatus::Accepted
                            | ReceiptStatus::Requested
                            | ReceiptStatus::Referred => "delivered",
                            ReceiptStatus::Duplicate => "duplicate",
                            ReceiptStatus::Updated => "updated",
                            ReceiptStatus::CorrectionRequested => "correction_requested",
                        },
                    ),
                }
            }
            Err(SendError::OutcomeUnknown { reason }) => {
                self.pace.breaker.failure(now);
                (
                    AuditKind::DeliveryParked,
                    DeliveryOutcome::Parked {
                        reason: format!("outcome unknown: {reason}"),
                    },
                    "parked",
                )
            }
            Err(SendError::NeedsRegistryProcess { reason, reference }) => {
                // What the registry holds stays named, so that a later
                // version finds it (a correction of this record, once the
                // registry has registered it).
                let held = Receipt {
                    status: ReceiptStatus::Referred,
                    reference: reference.clone(),
                    http_status: prepared.prior.as_ref().map_or(0, |p| p.http_status),
                    details: prepared
                        .prior
                        .as_ref()
                        .map(|p| p.details.clone())
                        .unwrap_or_default(),
                };
                let mut receipt = serde_json::to_value(&held).unwrap_or_default();
                receipt["referred_at"] =
                    serde_json::json!(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
                (
                    AuditKind::DeliveryReferred,
                    DeliveryOutcome::Referred {
                        reason: format!("needs the registry's own process: {reason}"),
                        receipt,
                    },
                    "referred",
                )
            }
            Err(SendError::Permanent { reason }) => (
                AuditKind::DeliveryDead,
                DeliveryOutcome::Dead {
                    error: format!("permanent: {reason}"),
                },
                "dead",
            ),
            Err(e @ SendError::RateLimited { .. }) => {
                // The registry's limit, not the record's fault: back off the
                // destination and give the delivery back without using an attempt.
                let wait = backoff::delay(retry, 1, e.retry_after());
                let until = now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX);
                self.pace.pause_until(until);
                self.pace.breaker.failure(now);
                (
                    AuditKind::DeliveryFailed,
                    DeliveryOutcome::Released {
                        next_attempt: until,
                    },
                    "rate_limited",
                )
            }
            Err(e @ SendError::Retryable { .. }) => {
                self.pace.breaker.failure(now);
                if let Some(after) = e.retry_after() {
                    self.pace
                        .pause_until(now + TimeDelta::from_std(after).unwrap_or(TimeDelta::MAX));
                }
                if d.attempt >= i64::from(retry.max_attempts) {
                    (
                        AuditKind::DeliveryDead,
                        DeliveryOutcome::Dead {
                            error: format!("gave up after {} attempts: {e}", d.attempt),
                        },
                        "dead",
                    )
                } else {
                    let attempt = u32::try_from(d.attempt).unwrap_or(u32::MAX);
                    let wait = backoff::delay(retry, attempt, e.retry_after());
                    (
                        AuditKind::DeliveryFailed,
                        DeliveryOutcome::Retry {
                            next_attempt: now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX),
                            error: e.to_string(),
                        },
                        "retry",
                    )
                }
            }
        };
        self.metrics
            .deliveries
            .get_or_create(&DeliveryLabels {
                destination: self.destination.name.clone(),
                outcome: label,
            })
            .inc();
        let mut audit = self.audit(d, kind);
        if let Some(a) = audit.delivery.as_mut() {
            a.payload_sha256 = Some(hex::encode(Sha256::digest(&prepared.body)));
            a.idempotency_key = Some(prepared.idempotency_key.clone());
            a.rule = Some(prepared.rule.clone());
            a.policy_sha256 = Some(prepared.policy_sha256.clone());
            match &result {
                Ok(receipt) => {
                    a.receipt_status = Some(receipt.status.as_str().into());
                    a.receipt_sha256 = receipt
                        .reference
                        .as_ref()
                        .map(|r| hex::encode(Sha256::digest(r.as_bytes())));
                }
                Err(e) => {
                    a.error_class = Some(match e {
                        SendError::Retryable { .. } => ErrorClass::Retryable,
                        SendError::RateLimited { .. } => ErrorClass::RateLimited,
                        SendError::Permanent { .. } => ErrorClass::Permanent,
                        SendError::OutcomeUnknown { .. } => ErrorClass::OutcomeUnknown,
                        SendError::NeedsRegistryProcess { .. } => ErrorClass::RegistryProcess,
                    });
                    if let SendError::NeedsRegistryProcess {
                        reference: Some(reference),
                        ..
                    } = e
                    {
                        a.receipt_sha256 = Some(hex::encode(Sha256::digest(reference.as_bytes())));
                    }
                    a.reason = Some(e.to_string());
                }
            }
        }
        (outcome, audit)
    }

    fn audit(&self, d: &ClaimedDelivery, kind: AuditKind) -> AuditEvent {
        let mut event = AuditEvent::new(kind, Utc::now(), &d.client_id, "delivery");
        event.record_id = Some(d.record_id.to_string());
        // None when the stored type is unknown (the delivery then dies as unrenderable).
        event.record_type = d.record_type.ok();
        event.delivery = Some(DeliveryAudit::new(
            &d.route,
            &d.destination,
            d.delivery_id,
            d.attempt,
        ));
        event
    }

    async fn finish(
        &self,
        d: &ClaimedDelivery,
        outcome: DeliveryOutcome,
        audit: Option<AuditEvent>,
    ) {
        let status = outcome.status();
        // A delivery given back unattempted (no audit event) is no outcome.
        let attempted = audit.is_some();
        let completion = Completion {
            delivery_id: d.delivery_id,
            worker: self.id.clone(),
            claim: d.claim,
            outcome,
            at: Utc::now(),
            audit,
        };
        match self.store.complete(completion).await {
            Ok(true) => {
                if attempted {
                    self.activity.recorded(Utc::now(), status);
                }
                tracing::debug!(record_id = %d.record_id, route = %d.route, status = status.as_str(), "delivery outcome recorded");
            }
            Ok(false) => {
                tracing::warn!(record_id = %d.record_id, route = %d.route, "lease lost before the outcome was recorded; another worker owns the delivery");
            }
            // The lease runs out and the delivery is tried again: the registry
            // deduplicates on the idempotency key.
            Err(e) => {
                tracing::warn!(record_id = %d.record_id, route = %d.route, error = %e, "cannot record a delivery outcome");
            }
        }
    }
}

struct Prepared {
    body: Vec<u8>,
    content_type: &'static str,
    idempotency_key: String,
    record_key: String,
    record_version: i64,
    prior: Option<Receipt>,
    rule: String,
    policy_sha256: String,
}

#[cfg(test)]
mod tests;

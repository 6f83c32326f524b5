//! Retention: the task that purges payloads once their retention period is
//! over, and the `record.purged` event that every purge logs (by age or by
//! the owning agency's erasure request).

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::audit::{AuditEvent, AuditKind};
use crate::config::RetentionConfig;
use crate::model::RecordType;
use crate::store::{PurgedRecord, Store};
use crate::telemetry::{Metrics, PurgeLabels};

/// The client name purges by age are logged under.
pub const RETENTION_ACTOR: &str = "retention";
/// Records purged per transaction at most, so the writer is not held long.
const PURGE_BATCH: u32 = 500;

/// The `record.purged` event: the record's ids and type, who purged it and when.
pub fn purge_event(actor: &str, record: &PurgedRecord, at: chrono::DateTime<Utc>) -> AuditEvent {
    let mut event = AuditEvent::new(AuditKind::RecordPurged, at, actor, &record.source);
    event.record_id = Some(record.id.to_string());
    event.record_type = RecordType::parse(&record.record_type);
    event
}

/// Purge due payloads every `purge_interval` until `stop` turns true.
pub fn spawn_purger(
    store: Arc<dyn Store>,
    retention: RetentionConfig,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            purge_due(store.as_ref(), &retention, &metrics).await;
            tokio::select! {
                _ = tokio::time::sleep(retention.purge_interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}

/// One round: batches until nothing more is due. A failure is logged and
/// the next round tries again.
async fn purge_due(store: &dyn Store, retention: &RetentionConfig, metrics: &Metrics) {
    let keep = TimeDelta::days(i64::from(retention.payload_days));
    loop {
        let now = Utc::now();
        let audit = move |r: &PurgedRecord| purge_event(RETENTION_ACTOR, r, now);
        match store
            .purge_expired(now - keep, now, PURGE_BATCH, &audit)
            .await
        {
            Ok(purged) => {
                let n = purged.len() as u64;
                if n > 0 {
                    metrics
                        .records_purged
                        .get_or_create(&PurgeLabels { reason: "expired" })
                        .inc_by(n);
                    tracing::info!(purged = n, "payloads purged (retention period over)");
                }
                if n < u64::from(PURGE_BATCH) {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "purge failed; tried again next round");
                return;
            }
        }
    }
}

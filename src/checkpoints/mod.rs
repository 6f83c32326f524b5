//! The checkpoint signer: signs the exchange log's tree head every
//! `checkpoint_interval` and on demand, after checking that the tree it is
//! about to sign extends the one it signed last (a consistency proof,
//! verified). A log that was edited, or a store that cannot take the
//! checkpoint, is not signed; past `max_unsigned` without a stored
//! checkpoint, submissions are refused (503) and `/readyz` says why.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::audit::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
use crate::audit::merkle::{self, Tree};
use crate::config::{AuditConfig, AuditKey};
use crate::store::{Store, StoreError, StoredCheckpoint};

/// Why no checkpoint was signed. Messages hold sizes and causes, no data.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the store could not be read or written")]
    Store(#[from] StoreError),
    /// The log no longer extends the last signed checkpoint: it was edited.
    #[error(
        "the exchange log of {size} entries is not consistent with the checkpoint signed at size {signed}: refusing to sign"
    )]
    Inconsistent { signed: u64, size: u64 },
    #[error("the checkpoint could not be signed")]
    Sign,
    /// Another instance holds the signer's lock and has stored no checkpoint yet.
    #[error("another instance signs checkpoints and has stored none yet")]
    Follower,
}

/// What the signer last managed, for intake and `/readyz`.
#[derive(Debug)]
struct Health {
    /// The last time every entry up to then was covered by a stored checkpoint.
    last_signed: Instant,
    last_error: Option<String>,
}

pub struct Checkpointer {
    signer: NoteSigner,
    origin: String,
    interval: Duration,
    max_unsigned: Duration,
    store: Arc<dyn Store>,
    health: Mutex<Health>,
    /// One signing at a time: the interval tick and an on-demand request
    /// must not both sign from the same last checkpoint.
    signing: tokio::sync::Mutex<()>,
}

impl Checkpointer {
    /// The signer of `config`; `generate` makes a fresh key here (the core
    /// holds no randomness).
    pub fn new(config: &AuditConfig, store: Arc<dyn Store>) -> Result<Checkpointer, String> {
        let signer = match &config.signing_key {
            AuditKey::Loaded(signer) => (**signer).clone(),
            AuditKey::Generate => {
                let seed: [u8; 32] = rand::random();
                NoteSigner::from_seed(&config.key_name, &seed).map_err(|e| e.to_string())?
            }
        };
        Ok(Checkpointer {
            signer,
            origin: config.origin.clone(),
            interval: config.checkpoint_interval,
            max_unsigned: config.max_unsigned,
            store,
            health: Mutex::new(Health {
                last_signed: Instant::now(),
                last_error: None,
            }),
            signing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn verifier(&self) -> &NoteVerifier {
        self.signer.verifier()
    }

    /// Signs the log as it is now, unless the latest stored checkpoint is
    /// this key's and already covers it. Refuses a tree that does not extend
    /// the last signed one.
    ///
    /// On a store shared by instances, only the one holding the signer's
    /// lock signs; the others answer with the latest stored checkpoint and
    /// count the log as signed as of then.
    pub async fn sign_now(&self) -> Result<StoredCheckpoint, CheckpointError> {
        let _one = self.signing.lock().await;
        let result = match self.store.checkpoint_leader().await {
            Ok(true) => self.sign_locked().await,
            Ok(false) => return self.follow().await,
            Err(e) => Err(e.into()),
        };
        self.record(&result);
        result
    }

    /// Another instance signs: its latest checkpoint, if it stored one. The
    /// log counts as signed now when that checkpoint covers all of it, else
    /// as of when it was signed.
    async fn follow(&self) -> Result<StoredCheckpoint, CheckpointError> {
        let result = async {
            let size = self.store.audit_size().await?;
            let latest = self
                .store
                .latest_checkpoint()
                .await?
                .ok_or(CheckpointError::Follower)?;
            Ok::<_, CheckpointError>((size, latest))
        }
        .await;
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok((size, latest)) => {
                let age = (Utc::now() - latest.signed_at).to_std().unwrap_or_default();
                let at = if latest.size >= size {
                    Instant::now()
                } else {
                    Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
                };
                health.last_signed = health.last_signed.max(at);
                health.last_error = None;
                Ok(latest)
            }
            Err(e) => {
                health.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    async fn sign_locked(&self) -> Result<StoredCheckpoint, CheckpointError> {
        let size = self.store.audit_size().await?;
        let tree = Tree::new(self.store.audit_leaf_hashes(size).await?);
        if tree.size() != size {
            return Err(CheckpointError::Inconsistent {
                signed: size,
                size: tree.size(),
            });
        }
        let root = tree.root(size).map_err(|_| CheckpointError::Sign)?;
        let last = self.store.latest_checkpoint().await?;
        if let Some(last) = &last {
            let inconsistent = CheckpointError::Inconsistent {
                signed: last.size,
                size,
            };
            let proof = tree.consistency_proof(last.size, size).map_err(|_| {
                CheckpointError::Inconsistent {
                    signed: last.size,
                    size,
                }
            })?;
            merkle::verify_consistency(last.size, size, &last.root, &root, &proof)
                .map_err(|_| inconsistent)?;
            let ours = self.verifier().open(&last.note).is_ok();
            if ours && last.size == size {
                return Ok(last.clone());
            }
        }
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
        };
        let note = checkpoint
            .sign(&self.signer)
            .map_err(|_| CheckpointError::Sign)?;
        let stored = StoredCheckpoint {
            size,
            root,
            note,
            signed_at: Utc::now(),
        };
        self.store.store_checkpoint(&stored).await?;
        Ok(stored)
    }

    fn record(&self, result: &Result<StoredCheckpoint, CheckpointError>) {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(cp) => {
                health.last_signed = Instant::now();
                health.last_error = None;
                tracing::debug!(size = cp.size, "checkpoint signed");
            }
            Err(e) => {
                tracing::error!(error = %e, "no checkpoint signed");
                health.last_error = Some(e.to_string());
            }
        }
    }

    /// Why submissions must be refused, when the log has gone unsigned for
    /// longer than `max_unsigned`.
    pub fn refusal(&self) -> Option<String> {
        let health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let unsigned = health.last_signed.elapsed();
        (unsigned > self.max_unsigned).then(|| {
            format!(
                "no checkpoint of the exchange log stored for {} s (limit {} s): {}",
                unsigned.as_secs(),
                self.max_unsigned.as_secs(),
                health
                    .last_error
                    .as_deref()
                    .unwrap_or("signing has not succeeded")
            )
        })
    }

    /// Signs at start, then every interval, until `stop`.
    pub fn spawn(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let _ = self.sign_now().await;
                tokio::select! {
                    _ = tokio::time::sleep(self.interval) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    }
}

//! Wiring: config -> schemas -> store -> router -> listener, and a shutdown
//! that stops accepting, lets in-flight requests finish, then closes the store.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{AppState, metrics_router, router};
use crate::checkpoints::Checkpointer;
use crate::config::{Config, Listener, StoreLocation};
use crate::delivery::Delivery;
use crate::delivery::transports::BuildError;
use crate::frontdoor::tls::{TlsError, TlsSource};
use crate::intake::Intake;
use crate::pipeline::{LoadError, Pipeline};
use crate::store::keyring::Keyring;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Pipeline(#[from] LoadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("destinations cannot be reached as configured:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Transports(Vec<BuildError>),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("audit.signing_key: {0}")]
    Audit(String),
    #[error("the retention section is missing: {0}")]
    Retention(&'static str),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A gateway that is serving.
pub struct RunningGateway {
    pub local_addr: SocketAddr,
    /// Where `/metrics` is served without a token, if configured.
    pub metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    store: Arc<dyn Store>,
    delivery: Option<Delivery>,
    checkpoints: Option<(Arc<Checkpointer>, JoinHandle<()>)>,
    purger: JoinHandle<()>,
    pub metrics: Metrics,
}

impl RunningGateway {
    /// Stop accepting connections, finish in-flight requests, close the store.
    /// Stop accepting, finish in-flight requests, let deliveries on the wire
    /// finish (the rest stay due), close the store.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        let served = self.task.await.unwrap_or(Ok(()));
        if let Some((_, task)) = self.checkpoints {
            let _ = task.await;
        }
        let _ = self.purger.await;
        if let Some(delivery) = self.delivery {
            delivery.shutdown().await;
        }
        self.store.close().await;
        served
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The checkpoint signer, when `[audit]` is configured.
    pub fn checkpoints(&self) -> Option<&Arc<Checkpointer>> {
        self.checkpoints.as_ref().map(|(c, _)| c)
    }
}

pub async fn open_store(config: &Config, metrics: &Metrics) -> Result<Arc<dyn Store>, StoreError> {
    match &config.server.store {
        StoreLocation::Embedded { data_dir } => {
            let keyring = Keyring::load(config.retention.as_ref(), data_dir)?;
            Ok(Arc::new(
                SqliteStore::open(data_dir, metrics.store.clone(), Arc::new(keyring)).await?,
            ))
        }
    }
}

/// What runs besides the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartOptions {
    /// Run the delivery workers (off: accept and store only).
    pub deliver: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions { deliver: true }
    }
}

/// Load schemas, open the store, bind the listener, start serving and delivering.
pub async fn start(config: Config) -> Result<RunningGateway, StartError> {
    start_with(config, StartOptions::default()).await
}

pub async fn start_with(
    config: Config,
    options: StartOptions,
) -> Result<RunningGateway, StartError> {
    let config = Arc::new(config);
    let pipeline = Arc::new(Pipeline::load(config.clone())?);
    // Read before anything is opened: a missing or bad certificate stops
    // the start, naming the file.
    let tls = match &config.server.front.listener {
        Listener::Tls(listen) => Some(TlsSource::load(listen)?),
        Listener::Plaintext => None,
    };
    // Every record on such a route would be denied: say so at start, by file
    // and line (`config check` fails on it).
    for problem in pipeline.unresolved_mapping_codes() {
        tracing::warn!(%problem, "a place named in a mapping is not in the registry's location list");
    }
    let metrics = Metrics::default();
    let store = open_store(&config, &metrics).await?;
    let delivery = if options.deliver {
        // The embedded store belongs to this process alone: any lease still
        // held is a crashed run's, and its deliveries are due now.
        let released = store.release_all_leases().await?;
        if released > 0 {
            tracing::info!(released, "leases of an earlier run released");
        }
        let instance = uuid::Uuid::new_v4().simple().to_string();
        Some(
            Delivery::start(
                pipeline.clone(),
                store.clone(),
                metrics.clone(),
                &instance[..12],
            )
            .map_err(StartError::Transports)?,
        )
    } else {
        None
    };
    let nudge = delivery.as_ref().map(Delivery::nudge);
    let activity = delivery.as_ref().map(Delivery::activity);
    let intake =
        Arc::new(Intake::new(pipeline, store.clone(), metrics.clone()).with_nudge(nudge.clone()));
    let (stop, stopped) = watch::channel(false);
    let checkpoints = match &config.audit {
        Some(audit) => {
            let signer =
                Arc::new(Checkpointer::new(audit, store.clone()).map_err(StartError::Audit)?);
            let task = signer.clone().spawn(stop.subscribe());
            Some((signer, task))
        }
        None => {
            tracing::warn!("no [audit] section: the exchange log is not checkpointed or signed");
            None
        }
    };
    let state = AppState {
        config: config.clone(),
        intake,
        store: store.clone(),
        metrics: metrics.clone(),
        nudge,
        activity,
        checkpoints: checkpoints.as_ref().map(|(c, _)| c.clone()),
    };
    let addr = config.server.listen;
    let listener = bind(addr).await?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr, source })?;
    let metrics_addr = match config.server.front.metrics_listen {
        Some(addr) => {
            let listener = bind(addr).await?;
            let bound = listener
                .local_addr()
                .map_err(|source| StartError::Listen { addr, source })?;
            // The same listener as the API's (plain: the address is private),
            // so the same connection and header-time bounds hold there.
            let app = metrics_router(metrics.clone());
            let front = config.server.front.clone();
            let stopped = stopped.clone();
            tokio::spawn(async move {
                crate::frontdoor::serve(listener, app, None, &front, stopped).await
            });
            Some(bound)
        }
        None => None,
    };
    if let Some(tls) = &tls {
        tls.clone().spawn_reloader(stopped.clone());
    }
    let app = router(state);
    let retention = config
        .retention
        .clone()
        .ok_or(StartError::Retention("retention.kek"))?;
    let purger =
        crate::retention::spawn_purger(store.clone(), retention, metrics.clone(), stopped.clone());
    let front = config.server.front.clone();
    let task =
        tokio::spawn(
            async move { crate::frontdoor::serve(listener, app, tls, &front, stopped).await },
        );
    Ok(RunningGateway {
        local_addr,
        metrics_addr,
        stop,
        task,
        store,
        delivery,
        checkpoints,
        purger,
        metrics,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

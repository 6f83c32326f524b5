//! Wiring: config -> schemas -> store -> router -> listener, and a shutdown
//! that stops accepting, lets in-flight requests finish, then closes the store.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{AppState, auth::Clients, router};
use crate::config::{Config, StoreLocation};
use crate::intake::Intake;
use crate::mapping::{self, LoadError};
use crate::pipeline::{Pipeline, check_categories};
use crate::policy;
use crate::schema::{SchemaError, SchemaRegistry};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("schemas do not load: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Schemas(Vec<SchemaError>),
    #[error("mappings do not load:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Mappings(Vec<LoadError>),
    #[error("policies do not load or refuse a mapping:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Policies(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A gateway that is serving.
pub struct RunningGateway {
    pub local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    store: Arc<dyn Store>,
}

impl RunningGateway {
    /// Stop accepting connections, finish in-flight requests, close the store.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        let served = self.task.await.unwrap_or(Ok(()));
        self.store.close().await;
        served
    }
}

/// Schemas and mappings, compiled once: everything `serve`, `translate` and
/// `config check` need besides the config itself.
pub fn load_pipeline(config: Arc<Config>) -> Result<Pipeline, StartError> {
    let schemas = SchemaRegistry::load().map_err(StartError::Schemas)?;
    let mappings = mapping::load(&config, &schemas).map_err(StartError::Mappings)?;
    let policies =
        policy::load(&config.policies_dir, &config.routes).map_err(StartError::Policies)?;
    let refused = check_categories(&config, &schemas, &mappings, &policies);
    if !refused.is_empty() {
        return Err(StartError::Policies(refused));
    }
    Ok(Pipeline {
        config,
        schemas: Arc::new(schemas),
        mappings: Arc::new(mappings),
        policies: Arc::new(policies),
    })
}

pub async fn open_store(config: &Config, metrics: &Metrics) -> Result<Arc<dyn Store>, StoreError> {
    match &config.server.store {
        StoreLocation::Embedded { data_dir } => Ok(Arc::new(
            SqliteStore::open(data_dir, metrics.store.clone()).await?,
        )),
    }
}

/// Load schemas, open the store, bind the listener and start serving.
pub async fn start(config: Config) -> Result<RunningGateway, StartError> {
    let config = Arc::new(config);
    let pipeline = Arc::new(load_pipeline(config.clone())?);
    let metrics = Metrics::default();
    let store = open_store(&config, &metrics).await?;
    let intake = Arc::new(Intake::new(pipeline, store.clone(), metrics.clone()));
    let state = AppState {
        clients: Arc::new(Clients::new(&config.clients)),
        config: config.clone(),
        intake,
        store: store.clone(),
        metrics,
        nudge: None,
    };
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr, source })?;
    let (stop, mut stopped) = watch::channel(false);
    let app = router(state);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    Ok(RunningGateway {
        local_addr,
        stop,
        task,
        store,
    })
}

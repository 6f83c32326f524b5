//! Delivery: workers per destination that lease due deliveries, re-check the
//! policy, render, send within the registry's limits, and record the outcome
//! with its audit event.

pub mod activity;
pub mod transports;

mod backoff;
mod breaker;
mod locations;
mod pace;
mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::telemetry::Metrics;
use transports::{BuildError, Transport};

/// Delivery workers, one per destination, until [`Delivery::shutdown`].
pub struct Delivery {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    nudge: Arc<Notify>,
    activity: Arc<activity::Activity>,
}

impl Delivery {
    /// Build every destination's transport (all problems reported at once)
    /// and start its worker.
    pub fn start(
        pipeline: Arc<Pipeline>,
        store: Arc<dyn Store>,
        metrics: Metrics,
        instance: &str,
    ) -> Result<Delivery, Vec<BuildError>> {
        let mut transports: BTreeMap<String, Arc<dyn Transport>> = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, destination) in &pipeline.config().destinations {
            match transports::build(destination) {
                Ok(t) => {
                    transports.insert(name.clone(), t);
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Delivery::start_with(
            pipeline, store, metrics, instance, transports,
        ))
    }

    /// Start workers with the given transports (one per destination that has one).
    pub fn start_with(
        pipeline: Arc<Pipeline>,
        store: Arc<dyn Store>,
        metrics: Metrics,
        instance: &str,
        transports: BTreeMap<String, Arc<dyn Transport>>,
    ) -> Delivery {
        let (stop, stopped) = watch::channel(false);
        let nudge = Arc::new(Notify::new());
        let mut tasks = JoinSet::new();
        let mut activity = activity::Activity::default();
        for (name, transport) in transports {
            let Some(destination) = pipeline.config().destinations.get(&name).cloned() else {
                continue;
            };
            let pace = Arc::new(pace::Pace::new(&destination.limits, &destination.retry));
            if let Some(refresher) = refresher(&pipeline, &destination, &transport, &pace) {
                tasks.spawn(refresher.run(stopped.clone()));
            }
            let worker = Arc::new(worker::Worker {
                id: format!("{instance}/{name}"),
                destination,
                pipeline: pipeline.clone(),
                store: store.clone(),
                transport,
                activity: activity.add(&name, pace.clone()),
                pace,
                metrics: metrics.clone(),
                nudge: nudge.clone(),
            });
            tasks.spawn(worker.run(stopped.clone()));
        }
        Delivery {
            stop,
            tasks,
            nudge,
            activity: Arc::new(activity),
        }
    }

    /// Each destination's pace and recent activity (the console's operator view).
    pub fn activity(&self) -> Arc<activity::Activity> {
        self.activity.clone()
    }

    /// Wake idle workers (new deliveries were committed).
    pub fn nudge(&self) -> Arc<Notify> {
        self.nudge.clone()
    }

    /// Stop claiming; let requests on the wire finish; give back the rest.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The location-list refresher of a destination that names a refresh URL.
fn refresher(
    pipeline: &Pipeline,
    destination: &crate::config::DestinationConfig,
    transport: &Arc<dyn Transport>,
    pace: &Arc<pace::Pace>,
) -> Option<locations::Refresher> {
    let config = destination.locations.clone()?;
    let list = pipeline.locations(&destination.name)?.clone();
    // Checked as a URL by config validation; a malformed one refreshes nothing.
    let url = reqwest::Url::parse(config.refresh_url.as_deref()?).ok()?;
    Some(locations::Refresher {
        destination: destination.name.clone(),
        config,
        url,
        list,
        transport: transport.clone(),
        pace: pace.clone(),
    })
}

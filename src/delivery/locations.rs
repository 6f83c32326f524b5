//! Keeping each registry's location list current: every `refresh` the
//! destination's location endpoint is fetched through its transport (its
//! credentials, one cell of its pace) and, when it parses, replaces the list
//! the pipeline resolves places with. A failed fetch keeps the list it has:
//! a registry's brief outage must not make every facility unknown.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::watch;

use super::pace::Pace;
use super::transports::Transport;
use crate::config::LocationsConfig;
use crate::locations::LocationList;
use crate::pipeline::LocationHandle;

pub(super) struct Refresher {
    pub destination: String,
    pub config: LocationsConfig,
    pub url: reqwest::Url,
    pub list: LocationHandle,
    pub transport: Arc<dyn Transport>,
    pub pace: Arc<Pace>,
}

impl Refresher {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(self.config.refresh) => {}
                _ = stop.changed() => return,
            }
            tokio::select! {
                _ = self.pace.take_cell() => {}
                _ = stop.changed() => return,
            }
            self.refresh_once().await;
        }
    }

    /// Fetch and swap in the registry's list; on any failure keep the current one.
    pub async fn refresh_once(&self) -> bool {
        let bytes = match self.transport.fetch(&self.url).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(destination = %self.destination, error = %e, "location list not refreshed; keeping the current one");
                return false;
            }
        };
        match LocationList::parse(&bytes, Utc::now()) {
            // An empty answer is a registry fault, not a country without places.
            Ok(list) if list.is_empty() => {
                tracing::warn!(destination = %self.destination, "the registry answered an empty location list; keeping the current one");
                false
            }
            Ok(list) => {
                tracing::info!(destination = %self.destination, locations = list.len(), "location list refreshed");
                self.list.replace(list);
                true
            }
            Err(e) => {
                tracing::warn!(destination = %self.destination, error = %e, "the registry's location list does not parse; keeping the current one");
                false
            }
        }
    }
}

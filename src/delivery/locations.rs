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

/// The location list fetch with any answer (#13): the list is replaced by a
/// non-empty list that parses, and otherwise kept as it was, within the bound.
#[cfg(test)]
mod tests_arbitrary {
    use std::time::{Duration, Instant};

    use async_trait::async_trait;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::config::{LimitsConfig, RetryConfig};
    use crate::delivery::transports::{Outbound, Receipt, SendError};
    use crate::locations::{Kind, Location};

    /// A registry that answers every fetch with the same bytes (or failure).
    struct Answers(Result<Vec<u8>, SendError>);

    #[async_trait]
    impl Transport for Answers {
        async fn send(&self, _outbound: &Outbound<'_>) -> Result<Receipt, SendError> {
            unreachable!("a refresher only fetches")
        }

        async fn fetch(&self, _url: &reqwest::Url) -> Result<Vec<u8>, SendError> {
            self.0.clone()
        }
    }

    fn kept() -> LocationList {
        LocationList::from_locations([Location {
            id: "kept".into(),
            kind: Kind::HealthFacility,
            codes: vec!["HF-1".into()],
            part_of: None,
            active: true,
        }])
    }

    fn answer() -> impl Strategy<Value = Result<Vec<u8>, SendError>> {
        let entry = (any::<String>(), prop::sample::select(&["HEALTH_FACILITY", "CRVS_OFFICE", "ADMIN_STRUCTURE", "X"][..]), any::<String>(), proptest::option::of(any::<String>()))
            .prop_map(|(id, kind, code, until)| json!({"id": id, "locationType": kind, "externalId": code, "validUntil": until}));
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512).prop_map(Ok),
            prop::collection::vec(entry, 0..2000)
                .prop_map(|list| Ok(json!(list).to_string().into_bytes())),
            Just(Ok(b"[]".to_vec())),
            Just(Err(SendError::Retryable {
                reason: "status 503".into(),
                retry_after: None
            })),
        ]
    }

    proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(128))]

        #[test]
        fn any_answer_replaces_the_list_or_keeps_it(answer in answer()) {
            let expected = match &answer {
                Ok(bytes) => LocationList::parse(bytes, Utc::now()).ok().filter(|l| !l.is_empty()),
                Err(_) => None,
            };
            let list = LocationHandle::new(kept());
            let refresher = Refresher {
                destination: "d".into(),
                config: LocationsConfig { file: "unused".into(), refresh_url: None, refresh: Duration::from_secs(60) },
                url: reqwest::Url::parse("https://registry.example/locations").unwrap(),
                list: list.clone(),
                transport: Arc::new(Answers(answer)),
                pace: Arc::new(Pace::new(&LimitsConfig::default(), &RetryConfig::default())),
            };
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            let start = Instant::now();
            let replaced = rt.block_on(refresher.refresh_once());
            prop_assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
            prop_assert_eq!(replaced, expected.is_some());
            prop_assert_eq!(&*list.current(), &expected.unwrap_or_else(kept));
        }
    }
}

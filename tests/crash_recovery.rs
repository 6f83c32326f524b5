//! Accepted means durable: records answered 202 survive SIGKILL of the process.

#[path = "it/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn spawn(data_dir: &Path) -> GatewayProcess {
    let config = example_config_without_limits(data_dir);
    spawn_gateway(&config, Some(data_dir), "warn")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_accepted_before_sigkill_are_there_after_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut gateway = spawn(data_dir.path());
    let http = reqwest::Client::new();
    let payload = serde_json::to_vec(&example_record("birth-notification")).unwrap();

    // Submit from several tasks while the process is killed under them.
    let mut submitters = Vec::new();
    for worker in 0..4 {
        let http = http.clone();
        let url = format!("{}/v1/sources/canonical/records", gateway.base);
        let payload = payload.clone();
        submitters.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for i in 0..10_000 {
                let response = http
                    .post(&url)
                    .bearer_auth(AGENCY)
                    .header("idempotency-key", format!("w{worker}-{i}"))
                    .header("content-type", "application/json")
                    .body(payload.clone())
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 202 => {
                        let v: Value = match r.json().await {
                            Ok(v) => v,
                            Err(_) => break, // killed mid-response: not counted as accepted
                        };
                        accepted.push(v["id"].as_str().unwrap().to_string());
                    }
                    _ => break,
                }
            }
            accepted
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    gateway.child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    gateway.child.wait().unwrap();
    let mut accepted = Vec::new();
    for s in submitters {
        accepted.extend(s.await.unwrap());
    }
    assert!(
        accepted.len() >= 10,
        "too few records flowed before the kill to prove anything: {}",
        accepted.len()
    );

    let mut restarted = spawn(data_dir.path());
    for id in &accepted {
        let response = http
            .get(format!("{}/v1/records/{id}", restarted.base))
            .bearer_auth(AGENCY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "record {id} was lost");
        let status: Value = response.json().await.unwrap();
        assert_eq!(status["routes"].as_array().unwrap().len(), 4, "{status}");
    }
    restarted.child.kill().unwrap();
    restarted.child.wait().unwrap();
    let deliveries = count_rows(data_dir.path(), "deliveries", "").await;
    let records = count_rows(data_dir.path(), "records", "").await;
    // Every stored record has all its deliveries: nothing half-stored.
    assert_eq!(deliveries, records * 4);
    assert!(records >= accepted.len() as i64);
    eprintln!(
        "{} records acknowledged before SIGKILL, all present after restart ({records} stored)",
        accepted.len()
    );
}

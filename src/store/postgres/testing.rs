//! PostgreSQL for tests: a fresh schema per test on the machine's database,
//! dropped afterwards. Unreachable: the test says what it skips, unless
//! `CI=true`, where PostgreSQL is part of the test command and its absence
//! fails the test.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The database tests use: `REGISTRY_GATEWAY_TEST_PG`, or the machine's
/// (127.0.0.1:5432, trust auth, database `test`).
pub fn test_url() -> String {
    std::env::var("REGISTRY_GATEWAY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// One test's schema; dropped (with everything in it) when this is dropped.
pub struct PgSchema {
    base: PgConnectOptions,
    pub name: String,
}

impl PgSchema {
    /// A fresh schema, or `None` (after saying so) when PostgreSQL cannot be
    /// reached outside CI. Panics in CI.
    pub async fn create(test: &str) -> Option<PgSchema> {
        let url = test_url();
        let base = PgConnectOptions::from_str(&url)
            .expect("REGISTRY_GATEWAY_TEST_PG is a postgres:// URL")
            .disable_statement_logging();
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::PgConnection::connect_with(&base),
        )
        .await;
        let mut conn = match connected {
            Ok(Ok(conn)) => conn,
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "connect timed out".into(),
                };
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("PostgreSQL at {url} is required in CI: {why}");
                }
                eprintln!("skipped: {test} on PostgreSQL ({url} unreachable: {why})");
                return None;
            }
        };
        let name = format!("rg_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .expect("create a test schema");
        let _ = conn.close().await;
        Some(PgSchema { base, name })
    }

    /// Connection options whose tables are this schema's.
    pub fn options(&self) -> PgConnectOptions {
        self.base
            .clone()
            .options([("search_path", self.name.as_str())])
    }

    /// A URL for the gateway binary naming this schema (tests/multi_instance.rs).
    #[allow(dead_code)]
    pub fn url(&self) -> String {
        let url = test_url();
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-c%20search_path%3D{}", self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime: a thread of its own runs the
        // statement to completion.
        let base = self.base.clone();
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect_with(&base).await.ok()?;
                sqlx::query(&sql).execute(&mut conn).await.ok()?;
                conn.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("test schema {} was not dropped", self.name);
        }
    }
}

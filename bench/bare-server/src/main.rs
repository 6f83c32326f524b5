//! A bare axum server: `POST /v1/sources/{source}/records` parses the body
//! into a `serde_json::Value` and answers 202 with a small JSON body, as the
//! gateway's intake answers. Everything else the gateway does (authentication,
//! validation, policy, the durable commit) is what the benchmark's ratio
//! measures.
//!
//! With `--durable DIR` it also stores each body as one row of an SQLite
//! table in `DIR` (WAL, `synchronous=FULL`, SQLite's own checkpoints) before
//! answering, a writer task committing the bodies waiting in one transaction:
//! the least a durable intake can do, the reference beside the store's cost.
//!
//!     bare-server 127.0.0.1:18090 [--durable DIR]

use std::path::Path;
use std::str::FromStr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

/// A body to store, and who waits for its commit.
type Pending = (Bytes, oneshot::Sender<()>);

/// At most this many bodies share one commit.
const GROUP: usize = 256;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:18090".into());
    let durable = match args.iter().position(|a| a == "--durable") {
        Some(i) => {
            let dir = args.get(i + 1).ok_or("--durable needs a folder")?;
            Some(open_writer(Path::new(dir)).await?)
        }
        None => None,
    };
    let app = Router::new()
        .route("/v1/sources/{source}/records", post(submit))
        .route("/readyz", get(|| async { "ready" }))
        .with_state(durable);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn open_writer(dir: &Path) -> Result<mpsc::Sender<Pending>, sqlx::Error> {
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(dir.join("bare.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut db = SqliteConnection::connect_with(&options).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .execute(&mut db)
        .await?;
    let (send, receive) = mpsc::channel(4 * GROUP);
    tokio::spawn(write_groups(db, receive));
    Ok(send)
}

/// Commits whatever waits, up to `GROUP` bodies, in one transaction of one
/// multi-row insert (one hop to SQLite's thread), then answers each of them.
async fn write_groups(mut db: SqliteConnection, mut receive: mpsc::Receiver<Pending>) {
    let mut group = Vec::with_capacity(GROUP);
    while receive.recv_many(&mut group, GROUP).await > 0 {
        let sql = format!(
            "INSERT INTO bodies (body) VALUES {}",
            vec!["(?)"; group.len()].join(",")
        );
        let mut insert = sqlx::query(&sql);
        for (body, _) in &group {
            insert = insert.bind(body.as_ref());
        }
        let mut tx = db.begin().await.expect("begin");
        insert.execute(&mut *tx).await.expect("insert");
        tx.commit().await.expect("commit");
        for (_, done) in group.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn submit(State(durable): State<Option<mpsc::Sender<Pending>>>, body: Bytes) -> Response {
    // Parsed and kept until the answer, so the compiler cannot skip the work.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if let Some(writer) = durable {
        let (done, committed) = oneshot::channel();
        if writer.send((body, done)).await.is_err() || committed.await.is_err() {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let fields = value.as_object().map_or(0, serde_json::Map::len);
    let answer = format!(r#"{{"accepted":true,"fields":{fields}}}"#);
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        answer,
    )
        .into_response()
}

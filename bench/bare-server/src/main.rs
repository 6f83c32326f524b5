//! A bare axum server: `POST /v1/sources/{source}/records` parses the body
//! into a `serde_json::Value` and answers 202 with a small JSON body, as the
//! gateway's intake answers. Everything else the gateway does (authentication,
//! validation, policy, the durable commit) is what the benchmark's ratio
//! measures.
//!
//!     bare-server 127.0.0.1:18090

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into());
    let app = Router::new()
        .route("/v1/sources/{source}/records", post(submit))
        .route("/readyz", get(|| async { "ready" }));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await
}

async fn submit(body: Bytes) -> Response {
    // Parsed and kept until the answer, so the compiler cannot skip the work.
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(value) => {
            let fields = value.as_object().map_or(0, serde_json::Map::len);
            let answer = format!(r#"{{"accepted":true,"fields":{fields}}}"#);
            (
                StatusCode::ACCEPTED,
                [("content-type", "application/json")],
                answer,
            )
                .into_response()
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

//! RFC 9457 problem details: every error the HTTP API returns.

use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::schema::Violation;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem document. `type` URIs are stable names, documented in the OpenAPI file.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Every problem found, each with its JSON pointer (RFC 6901).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Violation>,
    #[serde(skip)]
    www_authenticate: bool,
    #[serde(skip)]
    retry_after_secs: Option<u64>,
}

impl Problem {
    /// A body axum could not read: too large (413) or unreadable (400). Axum's
    /// own rejection would be text/plain; every error is problem+json.
    pub fn from_body_rejection(rejection: BytesRejection) -> Problem {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large()
        } else {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "urn:registry-gateway:problem:unreadable-body",
                "The request body could not be read",
            )
        }
    }

    pub fn too_large() -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "urn:registry-gateway:problem:too-large",
            "The request body is larger than this gateway accepts",
        )
        .detail("see server.max_body_bytes in the gateway's configuration")
    }

    pub fn new(status: StatusCode, kind: &'static str, title: &'static str) -> Problem {
        Problem {
            kind,
            title,
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            www_authenticate: false,
            retry_after_secs: None,
        }
    }

    /// A problem for an error answer that carried none (see
    /// `errors_as_problems`): its status and the status's own words.
    pub fn for_status(status: StatusCode) -> Problem {
        let (kind, title) = match status {
            StatusCode::PAYLOAD_TOO_LARGE => (
                "urn:registry-gateway:problem:too-large",
                "The request body is larger than this gateway accepts",
            ),
            StatusCode::METHOD_NOT_ALLOWED => (
                "urn:registry-gateway:problem:method-not-allowed",
                "This method is not allowed on this path; see /openapi.json",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "urn:registry-gateway:problem:unsupported-media-type",
                "The request body must be JSON",
            ),
            s if s.is_server_error() => (
                "urn:registry-gateway:problem:internal",
                "Internal error; nothing is confirmed",
            ),
            _ => (
                "urn:registry-gateway:problem:bad-request",
                "The request is malformed",
            ),
        };
        Problem::new(status, kind, title)
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Problem {
        self.detail = Some(detail.into());
        self
    }

    pub fn unauthorized() -> Problem {
        let mut p = Problem::new(
            StatusCode::UNAUTHORIZED,
            "urn:registry-gateway:problem:unauthorized",
            "A valid bearer token is required",
        );
        p.www_authenticate = true;
        p
    }

    pub fn forbidden(detail: &str) -> Problem {
        Problem::new(
            StatusCode::FORBIDDEN,
            "urn:registry-gateway:problem:forbidden",
            "This client's role may not do this",
        )
        .detail(detail)
    }

    pub fn not_found(detail: &str) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "urn:registry-gateway:problem:not-found",
            "Not found",
        )
        .detail(detail)
    }

    pub fn invalid_record(errors: Vec<Violation>) -> Problem {
        let mut p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "urn:registry-gateway:problem:invalid-record",
            "The record is invalid",
        )
        .detail(format!(
            "{} problem(s); each names its place in the record by JSON pointer",
            errors.len()
        ));
        p.errors = errors;
        p
    }

    /// Over a client's request rate or concurrency (or, without credentials,
    /// the source address's): wait `retry_after_secs`.
    pub fn too_many_requests(detail: &str, retry_after_secs: u64) -> Problem {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "urn:registry-gateway:problem:rate-limited",
            "Too many requests from this client; nothing was stored",
        )
        .detail(detail);
        p.retry_after_secs = Some(retry_after_secs);
        p
    }

    pub fn unavailable(detail: &str, retry_after_secs: u64) -> Problem {
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "urn:registry-gateway:problem:unavailable",
            "Temporarily unavailable; nothing was stored",
        )
        .detail(detail);
        p.retry_after_secs = Some(retry_after_secs);
        p
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).expect("a problem always serialises");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"registry-gateway\""),
            );
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

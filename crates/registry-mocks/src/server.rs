//! The HTTP side every mock shares: a listener whose connections can be
//! reset on demand, the request pipeline (maintenance, concurrency, rate,
//! quota, injected fault, registry), the arrival log, and the admin
//! endpoints under `/_mock/`:
//!
//! | method and path | what it does |
//! |---|---|
//! | `GET /_mock` | kind, counts, faults |
//! | `GET /_mock/arrivals` | the arrival log, JSON |
//! | `DELETE /_mock/arrivals` | empty it |
//! | `GET /_mock/faults` | rules and the maintenance override |
//! | `POST /_mock/faults` | add one (`{"fault":"status_503","retry_after_secs":30,"count":3}`) |
//! | `DELETE /_mock/faults` | clear them all |
//! | `GET /_mock/records` | what the registry holds: keys and receipts, no bodies |

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{IncomingStream, Listener};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::arrivals::{ArrivalLog, Endpoint, Entry, Outcome};
use super::faults::{Fault, FaultSpec, Faults};
use super::limits::{Concurrency, DailyQuota, MaintenanceWindow, TokenBucket, retry_secs};
use super::records::Records;
use super::token::sha256_hex;
use super::{
    Clock, MockConfig, MockKind, RunningMock, StartError, examplia, fhir_r4, opencrvs, opencrvs_v1,
    primero,
};

/// A request as a registry sees it.
pub(crate) struct MockRequest {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl MockRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The token of `Authorization: Bearer <token>`.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A registry's answer, and what to log about it.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(header::HeaderName, String)>,
    pub body: Vec<u8>,
    pub outcome: Outcome,
    pub reference: Option<String>,
    pub detail: Option<String>,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>, outcome: Outcome) -> Reply {
        Reply {
            status,
            headers: vec![(header::CONTENT_TYPE, content_type.to_string())],
            body,
            outcome,
            reference: None,
            detail: None,
        }
    }

    pub fn json(status: u16, body: &Value, outcome: Outcome) -> Reply {
        Reply::new(
            status,
            "application/json; charset=utf-8",
            body.to_string().into_bytes(),
            outcome,
        )
    }

    pub fn empty(status: u16, outcome: Outcome) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            outcome,
            reference: None,
            detail: None,
        }
    }

    pub fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn retry_after(self, secs: Option<u64>) -> Reply {
        match secs {
            Some(s) => self.header(header::RETRY_AFTER, s.to_string()),
            None => self,
        }
    }

    pub fn reference(mut self, reference: impl Into<String>) -> Reply {
        self.reference = Some(reference.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Reply {
        self.detail = Some(detail.into());
        self
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Rate,
    DailyQuota,
    Concurrency,
}

impl Limit {
    /// Examplia's `LimitExceeded` code.
    pub fn code(self) -> &'static str {
        match self {
            Limit::Rate => "RATE",
            Limit::DailyQuota => "DAILY_QUOTA",
            Limit::Concurrency => "CONCURRENCY",
        }
    }
}

/// Why the pipeline answers instead of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The maintenance window (scheduled or forced).
    Maintenance {
        retry_after: u64,
    },
    /// An injected 503.
    Unavailable {
        retry_after: Option<u64>,
    },
    /// An injected 500.
    Internal,
    Limited {
        limit: Limit,
        retry_after: u64,
    },
    /// Over the registry's size limit.
    TooLarge,
}

impl Refusal {
    pub fn outcome(self) -> Outcome {
        match self {
            Refusal::Maintenance { .. } | Refusal::Unavailable { .. } | Refusal::Internal => {
                Outcome::Fault
            }
            Refusal::Limited { .. } => Outcome::Limited,
            Refusal::TooLarge => Outcome::Rejected,
        }
    }

    pub fn retry_after(self) -> Option<u64> {
        match self {
            Refusal::Maintenance { retry_after } | Refusal::Limited { retry_after, .. } => {
                Some(retry_after)
            }
            Refusal::Unavailable { retry_after } => retry_after,
            Refusal::Internal | Refusal::TooLarge => None,
        }
    }

    /// For the arrival log.
    pub fn detail(self) -> &'static str {
        match self {
            Refusal::Maintenance { .. } => "maintenance",
            Refusal::Unavailable { .. } => "unavailable",
            Refusal::Internal => "internal_error",
            Refusal::Limited { limit, .. } => limit.code(),
            Refusal::TooLarge => "too_large",
        }
    }
}

/// One registry's behaviour. Handlers are synchronous (the Examplia mock
/// runs xmllint) and run on the blocking pool.
pub(crate) trait Registry: Send + Sync + 'static {
    fn endpoint(&self, method: &Method, path: &str) -> Endpoint;
    /// The token or session endpoint, for [`RunningMock::token_url`].
    fn token_path(&self) -> Option<&'static str>;
    /// The idempotency key, read best-effort before the pipeline (for the log).
    fn idempotency_key(&self, req: &MockRequest) -> Option<String>;
    /// Most bytes a submission may have.
    fn max_body(&self) -> usize {
        4 * 1024 * 1024
    }
    /// Answer a request that passed the pipeline.
    fn handle(&self, endpoint: Endpoint, req: &MockRequest, now: DateTime<Utc>) -> Reply;
    /// Answer a refusal in the registry's dialect.
    fn refuse(&self, refusal: Refusal, req: &MockRequest, now: DateTime<Utc>) -> Reply;
    fn records(&self) -> &Records;
    /// What `describe` prints about credentials and endpoints.
    fn describe(&self) -> String;
}

/// State shared by the handlers of one mock.
pub(crate) struct Shared {
    pub kind: MockKind,
    pub registry: Arc<dyn Registry>,
    pub clock: Clock,
    pub faults: Faults,
    pub arrivals: ArrivalLog,
    bucket: Option<TokenBucket>,
    quota: Option<DailyQuota>,
    concurrency: Concurrency,
    maintenance: Option<MaintenanceWindow>,
    stopped: watch::Receiver<bool>,
}

fn registry_for(config: &MockConfig) -> Result<Arc<dyn Registry>, StartError> {
    Ok(match config.kind {
        MockKind::Opencrvs => Arc::new(opencrvs::Opencrvs::new(config)),
        MockKind::OpencrvsV1 => Arc::new(opencrvs_v1::OpencrvsV1::new(config)),
        MockKind::FhirR4 => Arc::new(fhir_r4::FhirR4::new(config)),
        MockKind::Primero => Arc::new(primero::Primero::new(config)),
        MockKind::Examplia => Arc::new(examplia::Examplia::new(config)?),
    })
}

pub(crate) async fn serve(
    config: MockConfig,
    stopped: watch::Receiver<bool>,
) -> Result<(SocketAddr, Arc<Shared>, JoinHandle<io::Result<()>>), StartError> {
    let registry = registry_for(&config)?;
    let addr = config.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr, source })?;
    let shared = Arc::new(Shared {
        kind: config.kind,
        registry,
        clock: config.clock.clone(),
        faults: Faults::default(),
        arrivals: ArrivalLog::new(),
        bucket: TokenBucket::from_limits(&config.limits),
        quota: DailyQuota::from_limits(&config.limits),
        concurrency: Concurrency::from_limits(&config.limits),
        maintenance: config.maintenance,
        stopped: stopped.clone(),
    });
    let app = Router::new()
        .route("/_mock", get(summary))
        .route("/_mock/arrivals", get(arrivals).delete(clear_arrivals))
        .route(
            "/_mock/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_mock/records", get(records))
        .fallback(dispatch)
        .with_state(shared.clone());
    let mut stop = stopped;
    let task = tokio::spawn(async move {
        axum::serve(
            MockListener(listener),
            app.into_make_service_with_connect_info::<ConnHandle>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
    });
    Ok((local, shared, task))
}

/// The pipeline.
async fn dispatch(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    request: Request,
) -> Response {
    let at = Instant::now();
    let received_at = shared.clock.now();
    let (parts, body) = request.into_parts();
    let endpoint = shared.registry.endpoint(&parts.method, parts.uri.path());
    let limit = shared.registry.max_body();
    let (body, too_large) = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => (bytes, false),
        Err(_) => (Bytes::new(), true),
    };
    let req = Arc::new(MockRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts.headers,
        body,
    });
    let entry = Entry {
        at,
        received_at,
        endpoint,
        method: req.method.to_string(),
        path: req.path.clone(),
        idempotency_key: shared.registry.idempotency_key(&req),
        body_sha256: (endpoint == Endpoint::Submit && !too_large).then(|| sha256_hex(&req.body)),
    };
    let answer = if endpoint == Endpoint::Submit {
        if too_large {
            Answer::Reply(refuse(&shared, Refusal::TooLarge, &req).await)
        } else {
            submit(&shared, &req).await
        }
    } else {
        Answer::Reply(handle(&shared, endpoint, &req).await)
    };
    match answer {
        Answer::Reply(reply) => {
            shared.arrivals.record(
                entry,
                reply.outcome,
                Some(reply.status),
                reply.reference.clone(),
                reply.detail.clone(),
            );
            into_response(reply)
        }
        Answer::Reset => {
            shared.arrivals.record(
                entry,
                Outcome::Fault,
                None,
                None,
                Some("connection_reset".into()),
            );
            conn.reset()
        }
        Answer::Hang => {
            // Logged on arrival: the client may give up before the mock stops.
            shared
                .arrivals
                .record(entry, Outcome::Fault, None, None, Some("timeout".into()));
            let mut stopped = shared.stopped.clone();
            let _ = stopped.wait_for(|s| *s).await;
            conn.reset()
        }
    }
}

enum Answer {
    Reply(Reply),
    Reset,
    Hang,
}

/// The limits, the injected fault, then the registry.
async fn submit(shared: &Arc<Shared>, req: &Arc<MockRequest>) -> Answer {
    let now = shared.clock.now();
    let in_window = match shared.faults.maintenance_override() {
        Some(true) => Some(
            shared
                .maintenance
                .and_then(|w| w.remaining(now))
                .unwrap_or(3600),
        ),
        Some(false) => None,
        None => shared.maintenance.and_then(|w| w.remaining(now)),
    };
    if let Some(retry_after) = in_window {
        return Answer::Reply(refuse(shared, Refusal::Maintenance { retry_after }, req).await);
    }
    // Held until the answer is ready, latency included.
    let _permit = match shared.concurrency.try_enter() {
        Ok(permit) => permit,
        Err(()) => {
            let refusal = Refusal::Limited {
                limit: Limit::Concurrency,
                retry_after: 1,
            };
            return Answer::Reply(refuse(shared, refusal, req).await);
        }
    };
    if let Some(Err(wait)) = shared.bucket.as_ref().map(|b| b.try_take(now)) {
        let refusal = Refusal::Limited {
            limit: Limit::Rate,
            retry_after: retry_secs(wait),
        };
        return Answer::Reply(refuse(shared, refusal, req).await);
    }
    if let Some(Err(wait)) = shared.quota.as_ref().map(|q| q.try_take(now)) {
        let refusal = Refusal::Limited {
            limit: Limit::DailyQuota,
            retry_after: retry_secs(wait),
        };
        return Answer::Reply(refuse(shared, refusal, req).await);
    }
    match shared.faults.take() {
        None | Some(Fault::Maintenance(_)) => {}
        Some(Fault::Latency(delay)) => sleep_unless_stopped(shared, delay).await,
        Some(Fault::ConnectionReset) => return Answer::Reset,
        Some(Fault::Timeout) => return Answer::Hang,
        Some(Fault::Status500) => {
            return Answer::Reply(refuse(shared, Refusal::Internal, req).await);
        }
        Some(Fault::Status503 { retry_after }) => {
            let refusal = Refusal::Unavailable {
                retry_after: retry_after.map(retry_secs),
            };
            return Answer::Reply(refuse(shared, refusal, req).await);
        }
        Some(Fault::Status429 { retry_after }) => {
            let refusal = Refusal::Limited {
                limit: Limit::Rate,
                retry_after: retry_secs(retry_after),
            };
            return Answer::Reply(refuse(shared, refusal, req).await);
        }
    }
    Answer::Reply(handle(shared, Endpoint::Submit, req).await)
}

async fn sleep_unless_stopped(shared: &Shared, delay: Duration) {
    let mut stopped = shared.stopped.clone();
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = stopped.wait_for(|s| *s) => {}
    }
}

async fn handle(shared: &Arc<Shared>, endpoint: Endpoint, req: &Arc<MockRequest>) -> Reply {
    let (registry, req, now) = (shared.registry.clone(), req.clone(), shared.clock.now());
    tokio::task::spawn_blocking(move || registry.handle(endpoint, &req, now))
        .await
        .unwrap_or_else(|_| internal_error())
}

async fn refuse(shared: &Arc<Shared>, refusal: Refusal, req: &Arc<MockRequest>) -> Reply {
    let (registry, req, now) = (shared.registry.clone(), req.clone(), shared.clock.now());
    let mut reply = tokio::task::spawn_blocking(move || registry.refuse(refusal, &req, now))
        .await
        .unwrap_or_else(|_| internal_error());
    reply
        .detail
        .get_or_insert_with(|| refusal.detail().to_string());
    reply
}

/// Only if a registry handler panicked: a bug in the mock, not in the client.
fn internal_error() -> Reply {
    Reply::json(
        500,
        &json!({"error": "the mock registry failed on this request"}),
        Outcome::Fault,
    )
    .detail("mock_bug")
}

fn into_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body).into_response();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(name, value);
        }
    }
    response
}

// --- admin endpoints ---------------------------------------------------------

async fn summary(State(shared): State<Arc<Shared>>) -> Response {
    let arrivals = shared.arrivals.all();
    let count = |o: Outcome| arrivals.iter().filter(|a| a.outcome == o).count();
    axum::Json(json!({
        "kind": shared.kind.as_str(),
        "arrivals": arrivals.len(),
        "accepted": count(Outcome::Accepted),
        "duplicate": count(Outcome::Duplicate),
        "updated": count(Outcome::Updated),
        "rejected": count(Outcome::Rejected),
        "limited": count(Outcome::Limited),
        "fault": count(Outcome::Fault),
        "records": shared.registry.records().len(),
        "faults": faults_json(&shared.faults),
    }))
    .into_response()
}

async fn arrivals(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.arrivals.all()).into_response()
}

async fn clear_arrivals(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.arrivals.clear();
    StatusCode::NO_CONTENT
}

fn faults_json(faults: &Faults) -> Value {
    let rules: Vec<FaultSpec> = faults.rules().iter().map(FaultSpec::from_rule).collect();
    json!({"rules": rules, "maintenance": faults.maintenance_override()})
}

async fn list_faults(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(faults_json(&shared.faults)).into_response()
}

async fn add_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(e) => return admin_error(&format!("not a fault: {e}")),
    };
    match spec.into_rule() {
        Ok(rule) => {
            shared.faults.push(rule);
            (StatusCode::CREATED, axum::Json(faults_json(&shared.faults))).into_response()
        }
        Err(field) => admin_error(&format!("this fault needs `{field}`")),
    }
}

fn admin_error(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "error": message,
            "example": {"fault": "status_503", "retry_after_secs": 30, "count": 3},
            "faults": ["status_503", "status_500", "status_429", "latency",
                       "connection_reset", "timeout", "maintenance"],
        })),
    )
        .into_response()
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.faults.clear();
    StatusCode::NO_CONTENT
}

async fn records(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.registry.records().list()).into_response()
}

pub(crate) fn describe(mock: &RunningMock) -> String {
    format!(
        "{:<14} {}  submit: POST {}  {}",
        mock.kind().as_str(),
        mock.base_url(),
        mock.kind().submit_path(),
        mock.shared.registry.describe()
    )
}

// --- connections that can be reset -------------------------------------------

/// Per connection: set to make the connection end with a TCP reset.
#[derive(Clone)]
pub(crate) struct ConnHandle(Arc<AtomicBool>);

impl ConnHandle {
    /// Mark the connection; the response is never written, the socket is reset.
    fn reset(&self) -> Response {
        self.0.store(true, Ordering::SeqCst);
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

struct MockListener(TcpListener);

impl Listener for MockListener {
    type Io = ResettableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let io = ResettableStream {
                        inner: stream,
                        reset: ConnHandle(Arc::new(AtomicBool::new(false))),
                    };
                    return (io, addr);
                }
                // Out of file descriptors and the like: wait rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, MockListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, MockListener>) -> Self {
        stream.io().reset.clone()
    }
}

pub(crate) struct ResettableStream {
    inner: TcpStream,
    reset: ConnHandle,
}

impl ResettableStream {
    /// When marked: linger 0, so that dropping the socket sends RST, and fail
    /// the I/O so that hyper drops it now.
    fn check(&self) -> io::Result<()> {
        if self.reset.0.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "reset by fault injection",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

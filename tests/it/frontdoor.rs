//! The front door (#13): TLS with client certificates, per-client limits,
//! `/metrics` access. Real TLS (rustls on both sides, certificates made by
//! rcgen), real HTTP on 127.0.0.1:0.

use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use registry_gateway::config::frontdoor::ClientCerts;
use registry_gateway::config::{CertMatch, ClientConfig, Config, Listener, TlsListen};
use registry_gateway::model::Role;
use registry_gateway::server::{self, RunningGateway, StartOptions};
use sha2::{Digest, Sha256};

use crate::common::{config_with, example_record, without_client_limits};

struct Ca(CertifiedIssuer<'static, KeyPair>);

struct Issued {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Issued {
    fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(format!("{}{}", self.cert_pem, self.key_pem).as_bytes())
            .unwrap()
    }

    fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.der).into()
    }
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    fn issue(
        &self,
        org: &str,
        name: &str,
        purpose: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CountryName, "EX");
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
        params.extended_key_usages = vec![purpose];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &*self.0).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn client(id: &str, role: Role, token: Option<&str>, cert: Option<CertMatch>) -> ClientConfig {
    ClientConfig {
        id: id.into(),
        role,
        token_sha256: token.map(|t| Sha256::digest(t.as_bytes()).into()),
        cert,
        limits: registry_gateway::config::ClientLimits {
            rate_per_second: 1000.0,
            burst: 1000,
            max_concurrent: 100,
            max_body_bytes: 1024 * 1024,
        },
    }
}

fn https_client(ca: &Ca, identity: Option<reqwest::Identity>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().unwrap()
}

async fn start(config: Config) -> RunningGateway {
    server::start_with(config, StartOptions { deliver: false })
        .await
        .unwrap()
}

fn record_body() -> Vec<u8> {
    serde_json::to_vec(&example_record("birth-notification")).unwrap()
}

/// A gateway on TLS that requires a client certificate signed by the
/// agencies' CA: `intake` is named by its certificate's hash alone,
/// `blue-dot` by its subject together with its token.
#[tokio::test]
async fn tls_with_a_required_client_certificate_serves_only_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("gateway CA");
    let agencies_ca = Ca::new("agencies CA");
    let other_ca = Ca::new("somebody else");
    let server_cert = server_ca.issue(
        "Gateway",
        "gateway",
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    let intake = agencies_ca.issue(
        "Agency",
        "intake",
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );
    let blue_dot = agencies_ca.issue(
        "UNHCR",
        "blue-dot",
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );
    let stranger = agencies_ca.issue(
        "Agency",
        "stranger",
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );
    let expired = agencies_ca.issue(
        "Agency",
        "intake-old",
        ExtendedKeyUsagePurpose::ClientAuth,
        true,
    );
    let unknown = other_ca.issue(
        "Agency",
        "intake",
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );

    // The subject as the gateway reads it off the certificate.
    assert_eq!(
        registry_gateway::api::gate::PeerCertificate::from_der(&blue_dot.der)
            .subject
            .as_deref(),
        Some(
            registry_gateway::config::frontdoor::normalize_subject("C=EX, O=UNHCR, CN=blue-dot")
                .as_str()
        )
    );
    let mut config = config_with(dir.path(), "", &[]);
    config.server.front.listener = Listener::Tls(TlsListen {
        cert_file: write(dir.path(), "gateway.crt", &server_cert.cert_pem),
        key_file: write(dir.path(), "gateway.key", &server_cert.key_pem),
        client_certs: Some(ClientCerts {
            ca_file: write(dir.path(), "agencies-ca.crt", &agencies_ca.pem()),
            required: true,
        }),
    });
    config.clients = vec![
        client(
            "intake",
            Role::Agency,
            None,
            Some(CertMatch::Sha256(intake.sha256())),
        ),
        client(
            "blue-dot",
            Role::Agency,
            Some("blue-dot-token"),
            Some(CertMatch::Subject(
                registry_gateway::config::frontdoor::normalize_subject(
                    "C=EX, O=UNHCR, CN=blue-dot",
                ),
            )),
        ),
    ];
    let gateway = start(config).await;
    let url = format!(
        "https://127.0.0.1:{}/v1/sources/canonical/records",
        gateway.local_addr.port()
    );
    let post = |client: reqwest::Client, token: Option<&'static str>| {
        let url = url.clone();
        async move {
            let mut request = client
                .post(url)
                .header("content-type", "application/json")
                .body(record_body());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send().await
        }
    };

    // Refused at the handshake: no certificate, another CA's, an expired one.
    for (what, identity) in [
        ("no certificate", None),
        ("a certificate of an unknown CA", Some(unknown.identity())),
        ("an expired certificate", Some(expired.identity())),
    ] {
        let answer = post(https_client(&server_ca, identity), None).await;
        assert!(
            answer.is_err(),
            "{what}: the handshake must fail, got {answer:?}"
        );
    }
    // A certificate the CA signed but no client is named by: 401.
    let answer = post(https_client(&server_ca, Some(stranger.identity())), None)
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    // blue-dot's certificate without its token, and its token over another
    // client's certificate: 401.
    let answer = post(https_client(&server_ca, Some(blue_dot.identity())), None)
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let answer = post(
        https_client(&server_ca, Some(intake.identity())),
        Some("blue-dot-token"),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 401);

    // The right ones are served.
    let answer = post(https_client(&server_ca, Some(intake.identity())), None)
        .await
        .unwrap();
    assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap());
    let answer = post(
        https_client(&server_ca, Some(blue_dot.identity())),
        Some("blue-dot-token"),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 202);
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/healthz",
            gateway.local_addr.port()
        ))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    gateway.shutdown().await.unwrap();
}

/// The certificate is read again when its file changes: new connections get
/// the new one, with no restart.
#[tokio::test]
async fn a_new_certificate_on_disk_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("gateway CA");
    let first = ca.issue(
        "Gateway",
        "first",
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    let second = ca.issue(
        "Gateway",
        "second",
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    let mut config = config_with(dir.path(), "", &[]);
    let cert_file = write(dir.path(), "gateway.crt", &first.cert_pem);
    let key_file = write(dir.path(), "gateway.key", &first.key_pem);
    config.server.front.listener = Listener::Tls(TlsListen {
        cert_file: cert_file.clone(),
        key_file: key_file.clone(),
        client_certs: None,
    });
    let gateway = start(config).await;
    let url = format!("https://127.0.0.1:{}/healthz", gateway.local_addr.port());
    let served = || async {
        // A new client each time: a new connection, a new handshake.
        let answer = https_client(&ca, None).get(&url).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        answer
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate().map(<[u8]>::to_vec))
            .unwrap()
    };
    assert_eq!(served().await, first.der);
    // A half-written pair (new key, old certificate) must not break serving.
    std::fs::write(&key_file, &second.key_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        served().await,
        first.der,
        "a mismatched pair keeps the old one"
    );
    std::fs::write(&cert_file, &second.cert_pem).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if served().await == second.der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    gateway.shutdown().await.unwrap();
}

/// The example config's limits for the demo agencies (50 requests/s, burst
/// 100): 1,200 fast requests from one get 429s with Retry-After, while the
/// other's requests still get 202s at about their usual latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agencys_flood_gets_429s_and_another_agency_is_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with(dir.path(), "", &[]);
    let example = Config::load(&crate::common::example_config_path(), &Default::default()).unwrap();
    for c in &mut config.clients {
        c.limits = example
            .clients
            .iter()
            .find(|e| e.id == c.id)
            .unwrap()
            .limits;
    }
    let limits = config
        .clients
        .iter()
        .find(|c| c.id == "demo-agency")
        .unwrap()
        .limits;
    assert_eq!((limits.rate_per_second, limits.burst), (50.0, 100));
    let gateway = start(config).await;
    let base = format!("http://{}", gateway.local_addr);
    let http = reqwest::Client::new();
    let url = format!("{base}/v1/sources/canonical/records");
    let submit = move |token: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(record_body())
                .send()
                .await
                .unwrap()
        }
    };
    // The other agency's usual latency, alone.
    let mut before = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        assert_eq!(submit("demo-agency-2-token").await.status(), 202);
        before.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The flood: 1,200 requests from 16 connections at once.
    let flood_started = Instant::now();
    let flood: Vec<_> = (0..16)
        .map(|_| {
            let submit = submit.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..75 {
                    let answer = submit("demo-agency-token").await;
                    let status = answer.status().as_u16();
                    if status == 429 {
                        let retry = answer
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok());
                        assert!(retry.is_some_and(|s| s >= 1), "429 without Retry-After");
                        assert_eq!(
                            answer.headers().get("content-type").unwrap(),
                            "application/problem+json"
                        );
                    }
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    let mut during = Vec::new();
    while during.len() < 30 {
        let started = Instant::now();
        let answer = submit("demo-agency-2-token").await;
        assert_eq!(
            answer.status(),
            202,
            "the other agency is refused during the flood"
        );
        during.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut statuses = Vec::new();
    for task in flood {
        statuses.extend(task.await.unwrap());
    }
    let flood_secs = flood_started.elapsed().as_secs_f64();
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(accepted + limited, 1200, "only 202 and 429: {statuses:?}");
    // Never more than the burst plus the rate over the flood's duration.
    let allowed = 100.0 + 50.0 * flood_secs + 1.0;
    assert!(
        accepted as f64 <= allowed,
        "{accepted} accepted in {flood_secs:.1} s"
    );
    assert!(limited >= 1200 - allowed as usize);
    let p95 = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() * 95 / 100]
    };
    let (p95_before, p95_during) = (p95(before), p95(during));
    eprintln!(
        "flood: {accepted} accepted, {limited} limited in {flood_secs:.2} s; the other agency's p95 {p95_during:?} during vs {p95_before:?} before"
    );
    assert!(
        p95_during <= (p95_before * 4).max(p95_before + Duration::from_millis(100)),
        "the other agency slowed down: p95 {p95_during:?} during the flood vs {p95_before:?} before"
    );
    gateway.shutdown().await.unwrap();
}

/// Requests without valid credentials are limited per source address, and a
/// client's own body cap is below the server's.
#[tokio::test]
async fn token_guessing_is_limited_per_address_and_body_caps_are_per_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with(dir.path(), "", &[]);
    config.server.front.unauthenticated_limits.rate_per_second = 1.0;
    config.server.front.unauthenticated_limits.burst = 5;
    for c in &mut config.clients {
        if c.id == "demo-agency" {
            c.limits.max_body_bytes = 2048;
        }
    }
    let gateway = start(config).await;
    let base = format!("http://{}", gateway.local_addr);
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..12 {
        let answer = http
            .get(format!("{base}/v1/admin/dead-letters"))
            .bearer_auth(format!("guess-{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[401; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // Probes are never limited.
    for _ in 0..10 {
        assert_eq!(
            http.get(format!("{base}/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    // A valid client is not held by the address's limit.
    let answer = http
        .get(format!("{base}/v1/admin/dead-letters"))
        .bearer_auth("demo-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    let mut big = example_record("birth-notification");
    big["padding_for_size"] = serde_json::Value::String("x".repeat(3000));
    let body = serde_json::to_vec(&big).unwrap();
    for (token, expected) in [("demo-agency-token", 413), ("demo-agency-2-token", 422)] {
        let answer = http
            .post(format!("{base}/v1/sources/canonical/records"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), expected, "{token}");
    }
    gateway.shutdown().await.unwrap();
}

/// `/metrics` needs a token of role metrics or admin; on `metrics_listen` it
/// is served without one, and nothing else is.
#[tokio::test]
async fn metrics_need_a_metrics_or_admin_token_or_their_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with(dir.path(), "", &[]);
    config.clients.push(client(
        "scraper",
        Role::Metrics,
        Some("scraper-token"),
        None,
    ));
    config.server.front.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let gateway = start(config).await;
    let base = format!("http://{}", gateway.local_addr);
    let http = reqwest::Client::new();
    let status = |token: Option<&'static str>, path: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let mut request = http.get(format!("{base}{path}"));
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(status(None, "/metrics").await, 401);
    assert_eq!(status(Some("demo-agency-token"), "/metrics").await, 403);
    assert_eq!(status(Some("demo-auditor-token"), "/metrics").await, 403);
    assert_eq!(status(Some("scraper-token"), "/metrics").await, 200);
    assert_eq!(status(Some("demo-admin-token"), "/metrics").await, 200);
    // The scraper reads nothing else.
    assert_eq!(
        status(Some("scraper-token"), "/v1/admin/dead-letters").await,
        403
    );
    let metrics_addr = gateway.metrics_addr.unwrap();
    let text = http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 200);
    assert!(
        text.text()
            .await
            .unwrap()
            .contains("gateway_http_responses")
    );
    let other = http
        .get(format!("http://{metrics_addr}/v1/admin/dead-letters"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    gateway.shutdown().await.unwrap();
}

/// The limits the tests lift are the ones the config sets.
#[test]
fn lifting_limits_touches_every_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with(dir.path(), "", &[]);
    config.clients[0].limits.burst = 1;
    without_client_limits(&mut config);
    assert!(config.clients.iter().all(|c| c.limits.burst == 100_000));
}

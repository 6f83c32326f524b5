use std::path::Path;

use super::*;

/// A config from TOML text; one that says nothing of TLS is served in plain
/// HTTP, as if it said `plaintext_http = true` (the front door's own tests
/// say what they mean).
fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    let mut raw: raw::RawConfig = toml::from_str(text).expect("test config is valid TOML");
    if raw.server.plaintext_http.is_none() && raw.server.tls.is_none() {
        raw.server.plaintext_http = Some(true);
    }
    validate(raw)
}

fn example_path() -> &'static Path {
    Path::new(concat!(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../.."),
        "/deploy/gateway.example.toml"
    ))
}

#[test]
fn the_example_config_loads_with_the_names_the_design_promises() {
    let config = Config::load(example_path(), &Overrides::default()).expect("example is valid");
    let ids: Vec<_> = config.clients.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        ["demo-agency", "demo-agency-2", "demo-auditor", "demo-admin"]
    );
    assert_eq!(
        config.sources.keys().collect::<Vec<_>>(),
        ["canonical", "fhir-r4", "primero"]
    );
    assert_eq!(
        config.destinations.keys().collect::<Vec<_>>(),
        [
            "examplia-crvs",
            "fhir-r4",
            "opencrvs",
            "opencrvs-v1",
            "primero"
        ]
    );
    assert!(
        config
            .routes
            .iter()
            .any(|r| r.name == "birth-notification-to-examplia-crvs")
    );
    assert!(
        config
            .routes
            .iter()
            .any(|r| r.name == "child-protection-case-to-primero")
    );
}

#[test]
fn the_example_tokens_hash_to_the_configured_values() {
    use sha2::{Digest, Sha256};
    let config = Config::load(example_path(), &Overrides::default()).unwrap();
    for (id, token) in [
        ("demo-agency", "demo-agency-token"),
        ("demo-agency-2", "demo-agency-2-token"),
        ("demo-auditor", "demo-auditor-token"),
        ("demo-admin", "demo-admin-token"),
    ] {
        let client = config.clients.iter().find(|c| c.id == id).unwrap();
        assert_eq!(
            client.token_sha256,
            Some(<[u8; 32]>::from(Sha256::digest(token)))
        );
    }
}

#[test]
fn overrides_take_precedence_over_the_file() {
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some("/tmp/elsewhere".into()),
        database_url: None,
    };
    let config = Config::load(example_path(), &overrides).unwrap();
    assert_eq!(config.server.listen.port(), 0);
    assert_eq!(
        config.server.store,
        StoreLocation::Embedded {
            data_dir: "/tmp/elsewhere".into()
        }
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let errors = parse(
        r#"
        [server]
        listen = "nowhere"
        max_body_bytes = 10
        log_format = "xml"

        [[clients]]
        id = "Bad Id"
        role = "superuser"
        token_sha256 = "abc"

        [sources.canonical]
        format = "csv"

        [destinations.crvs]
        kind = "fax"
        url = "ftp://x"

        [[routes]]
        record_type = "death-notification"
        destination = "nowhere"
        "#,
    )
    .unwrap_err();
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "server.listen",
        "server.max_body_bytes",
        "server.log_format",
        "clients[0].id",
        "clients[0].role",
        "clients[0].token_sha256",
        "sources.canonical.format",
        "destinations.crvs.url",
        "destinations.crvs.kind",
        "routes[0].record_type",
        "routes[0].destination",
    ] {
        assert!(paths.contains(&expected), "missing {expected} in {paths:?}");
    }
}

#[test]
fn duplicate_clients_tokens_and_routes_are_refused() {
    let hash = "6be0c238debe86a55459d35ee5828e59cec088660bcc42f16453e23e84cdedb7";
    let errors = parse(&format!(
        r#"
        [[clients]]
        id = "a"
        role = "agency"
        token_sha256 = "{hash}"
        [[clients]]
        id = "a"
        role = "agency"
        token_sha256 = "{hash}"
        [destinations.x]
        kind = "primero"
        [[routes]]
        record_type = "child-protection-case"
        destination = "x"
        [[routes]]
        record_type = "child-protection-case"
        destination = "x"
        "#
    ))
    .unwrap_err();
    let messages: Vec<_> = errors.iter().map(ToString::to_string).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("declared twice") && m.starts_with("clients[1].id")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("clients[1].token_sha256"))
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("route child-protection-case-to-x is declared twice"))
    );
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let err = toml::from_str::<raw::RawConfig>("[server]\nlisten_addr = \"x\"\n").unwrap_err();
    assert!(err.to_string().contains("listen_addr"), "{err}");
}

#[test]
fn a_postgres_url_selects_that_store_and_anything_else_is_refused() {
    let config = parse("[server]\ndatabase_url = \"postgres://localhost/test\"\n").unwrap();
    assert_eq!(
        config.server.store,
        StoreLocation::Postgres {
            url: "postgres://localhost/test".into()
        }
    );
    let errors = parse("[server]\ndatabase_url = \"mysql://localhost/test\"\n").unwrap_err();
    assert_eq!(errors[0].path, "server.database_url");
}

#[test]
fn instances_sharing_postgres_need_a_kek_from_env_or_file() {
    let errors = parse(
        "[server]\ndatabase_url = \"postgres://localhost/test\"\n[retention]\nkek = \"generate\"\n",
    )
    .unwrap_err();
    assert_eq!(errors[0].path, "retention.kek");
}

#[test]
fn a_fhir_destination_chooses_how_it_writes_and_others_cannot() {
    let config = parse(
        r#"
        [destinations.moh]
        kind = "fhir-r4"
        write = "put"

        [destinations.moh-default]
        kind = "fhir-r4"
        "#,
    )
    .unwrap();
    assert_eq!(config.destinations["moh"].fhir_write, FhirWrite::Put);
    assert_eq!(
        config.destinations["moh-default"].fhir_write,
        FhirWrite::ConditionalCreate
    );
    let errors = parse(
        r#"
        [destinations.moh]
        kind = "fhir-r4"
        write = "post"

        [destinations.crvs]
        kind = "opencrvs"
        write = "put"
        "#,
    )
    .unwrap_err();
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["destinations.crvs.write", "destinations.moh.write"]);
}

/// Credentials and children's records never travel in clear text: an
/// `http://` registry, token or location URL is a config error unless it is
/// a loopback address (#13, finding 11).
#[test]
fn cleartext_registry_urls_are_refused_unless_loopback() {
    let errors = parse(
        r#"
        [destinations.crvs]
        kind = "opencrvs"
        url = "http://crvs.gov.example/api/events/events/notify"
        auth = { mode = "client-credentials", token_url = "http://crvs.gov.example/auth/token", client_id = "a", client_secret = "b" }
        locations = { file = "l.json", refresh_url = "http://crvs.gov.example/api/events/locations" }
        "#,
    )
    .unwrap_err();
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "destinations.crvs.url",
        "destinations.crvs.auth.token_url",
        "destinations.crvs.locations.refresh_url",
    ] {
        assert!(paths.contains(&expected), "{expected} not in {paths:?}");
    }
    let loopback = parse(
        r#"
        [destinations.crvs]
        kind = "opencrvs"
        url = "http://127.0.0.1:7101/api/events/events/notify"
        auth = { mode = "client-credentials", token_url = "http://localhost:7101/auth/token", client_id = "a", client_secret = "b" }
        "#,
    );
    assert!(loopback.is_ok(), "{loopback:?}");
}

/// A rate so small or a wait so long that the timer arithmetic would
/// overflow used to panic at start-up: they are config errors, each named by
/// its path, all reported together (#13, finding 11).
#[test]
fn absurd_rates_and_waits_are_config_errors_not_panics() {
    let errors = parse(
        r#"
        [destinations.crvs]
        kind = "opencrvs"
        url = "https://crvs.gov.example/api/events/events/notify"
        timeout_secs = 18446744073709551615
        limits = { rate_per_second = 1e-12, burst = 4000000000 }
        retry = { initial_backoff_ms = 18446744073709551615, max_backoff_secs = 18446744073709551615, breaker_cooldown_secs = 18446744073709551615 }
        locations = { file = "l.json", refresh_secs = 18446744073709551615 }
        "#,
    )
    .unwrap_err();
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "destinations.crvs.timeout_secs",
        "destinations.crvs.limits.rate_per_second",
        "destinations.crvs.limits.burst",
        "destinations.crvs.retry.initial_backoff_ms",
        "destinations.crvs.retry.max_backoff_secs",
        "destinations.crvs.retry.breaker_cooldown_secs",
        "destinations.crvs.locations.refresh_secs",
    ] {
        assert!(paths.contains(&expected), "{expected} not in {paths:?}");
    }
}

/// A secret written in the TOML loads with a warning naming its path, never
/// its value; `env:` and `file:` secrets load without one (#13, finding 11).
#[test]
fn literal_secrets_load_with_a_warning_and_file_secrets_are_read() {
    let literal = "s3cr3t-CANARY-value";
    let config = parse(&format!(
        r#"
        [destinations.crvs]
        kind = "opencrvs"
        url = "https://crvs.gov.example/api/events/events/notify"
        auth = {{ mode = "client-credentials", token_url = "https://crvs.gov.example/auth/token", client_id = "a", client_secret = "{literal}" }}
        "#
    ))
    .unwrap();
    let warned: Vec<_> = config.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(warned, ["destinations.crvs.auth.client_secret"]);
    assert!(
        config
            .warnings
            .iter()
            .all(|w| !w.to_string().contains(literal))
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{literal}\n")).unwrap();
    let config = parse(&format!(
        r#"
        [destinations.crvs]
        kind = "opencrvs"
        url = "https://crvs.gov.example/api/events/events/notify"
        auth = {{ mode = "client-credentials", token_url = "https://crvs.gov.example/auth/token", client_id = "a", client_secret = "file:{}" }}
        "#,
        file.display()
    ))
    .unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let AuthConfig::ClientCredentials { client_secret, .. } = &config.destinations["crvs"].auth
    else {
        panic!("client credentials expected");
    };
    assert_eq!(
        client_secret.expose(),
        literal,
        "the newline is not part of it"
    );
    let missing = parse(
        r#"
        [destinations.crvs]
        kind = "opencrvs"
        url = "https://crvs.gov.example/api/events/events/notify"
        auth = { mode = "client-credentials", token_url = "https://crvs.gov.example/auth/token", client_id = "a", client_secret = "file:/nonexistent/secret" }
        "#,
    )
    .unwrap_err();
    assert_eq!(missing[0].path, "destinations.crvs.auth.client_secret");
}

/// Plain HTTP is never implied; TLS needs its files; clients named by
/// certificate need client certificates to be asked for.
#[test]
fn the_front_door_is_tls_unless_plain_http_is_written_out() {
    let no_front: raw::RawConfig =
        toml::from_str("[server]\nlisten = \"127.0.0.1:8080\"\n").unwrap();
    let errors = validate(no_front).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.path == "server.tls" && e.message.contains("plaintext_http = true")),
        "{errors:?}"
    );

    let plain = parse("[server]\nlisten = \"0.0.0.0:8080\"\nplaintext_http = true\n").unwrap();
    assert_eq!(plain.server.front.listener, Listener::Plaintext);
    assert!(
        plain
            .warnings
            .iter()
            .any(|w| w.path == "server.plaintext_http")
    );

    let errors = parse(
        r#"
        [server]
        plaintext_http = false
        [server.tls]
        client_auth = "sometimes"
        "#,
    )
    .unwrap_err();
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "server.tls.cert_file",
        "server.tls.key_file",
        "server.tls.client_auth",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }

    let tls = parse(
        r#"
        [server.tls]
        cert_file = "tls/gateway.crt"
        key_file = "tls/gateway.key"
        client_ca_file = "tls/ca.crt"
        client_auth = "optional"
        [[clients]]
        id = "intake"
        role = "agency"
        cert_subject = "cn=intake ,O=Agency"
        "#,
    )
    .unwrap();
    let Listener::Tls(listen) = &tls.server.front.listener else {
        panic!("TLS expected")
    };
    assert!(!listen.client_certs.as_ref().unwrap().required);
    assert_eq!(
        tls.clients[0].cert,
        Some(CertMatch::Subject(frontdoor::normalize_subject(
            "O=Agency, CN=intake"
        )))
    );
    assert_eq!(tls.clients[0].token_sha256, None);
}

#[test]
fn clients_need_a_credential_and_sane_limits() {
    let errors =
        parse("[server]\nclient_limits = { rate_per_second = 0, burst = 0 }\n").unwrap_err();
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "server.client_limits.rate_per_second",
            "server.client_limits.burst"
        ]
    );
    let errors = parse(
        r#"
        [[clients]]
        id = "nobody"
        role = "agency"
        [[clients]]
        id = "by-cert"
        role = "agency"
        cert_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
        [[clients]]
        id = "scraper"
        role = "metrics"
        token_sha256 = "1111111111111111111111111111111111111111111111111111111111111111"
        limits = { max_body_bytes = 999999999 }
        "#,
    )
    .unwrap_err();
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "clients[0].token_sha256",
        "clients[1].cert_sha256",
        "clients[2].limits.max_body_bytes",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
}

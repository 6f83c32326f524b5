//! The OpenAPI document (`src/api/openapi.json`, served at `/openapi.json`)
//! against the router, in both directions, and against a validator the
//! project did not write.
//!
//! Axum cannot list its routes, so the router is built from one table,
//! `registry_gateway::api::route_table()` (a unit test beside it fails when a
//! route is added any other way). Here, over real HTTP on 127.0.0.1:0:
//! - the table's (method, path) set equals the document's `paths`;
//! - every table entry and every documented operation reaches a handler:
//!   without credentials it answers a status its operation lists (401 when
//!   it is secured), never the router's fallback 404 nor axum's 405;
//! - no other method reaches a handler on these paths (405), so a method
//!   router serving more than its table entry says is caught too.
//!
//! The validator is Python `openapi-spec-validator`, run by `$OPENAPI_PYTHON`
//! (default `python3`); without it the test fails, naming how to install it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const PROBED: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];
const FALLBACK_DETAIL: &str = "no such path; see /openapi.json";
const INSTALL: &str = "python3 -m pip install 'openapi-spec-validator==0.9.0' \
     (or set OPENAPI_PYTHON to a Python that has it)";

fn document() -> Value {
    serde_json::from_str(registry_gateway::api::OPENAPI).expect("openapi.json is JSON")
}

/// (METHOD, path template) of every operation the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (key, _) in item.as_object().expect("a path item") {
            if METHODS.contains(&key.as_str()) {
                out.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn served() -> BTreeSet<(String, String)> {
    registry_gateway::api::route_table()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect()
}

/// A concrete URL path for a template: every `{parameter}` becomes a UUID
/// (unauthenticated requests are refused before any parameter is read).
fn concrete(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("a closed parameter") + start;
        out.push_str(&rest[..start]);
        out.push_str("0190b6a2-4f1e-7c3d-9a5b-3e2f1d0c9b8a");
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Did the request reach no handler: axum's 405, or the router's fallback 404?
async fn unrouted(response: reqwest::Response) -> (u16, bool) {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    (
        status,
        status == 405 || (status == 404 && body.contains(FALLBACK_DETAIL)),
    )
}

async fn send(gw: &TestGateway, method: Method, path: &str) -> reqwest::Response {
    gw.http
        .request(method, gw.url(path))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
}

#[test]
fn the_document_describes_exactly_the_routes_the_router_serves() {
    let doc = document();
    let documented = documented(&doc);
    let served = served();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "src/api/openapi.json and the route table in src/api/mod.rs disagree:\n\
         served but not documented: {undocumented:?}\n\
         documented but not served: {unserved:?}"
    );
    assert_eq!(doc["openapi"], "3.1.0");
}

#[tokio::test]
async fn every_route_reaches_its_handler_and_no_other_method_is_served() {
    let gw = TestGateway::start().await;
    // The document served is the one in the source tree.
    let response = gw.get("/openapi.json", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), document());

    // Controls: the two ways a request reaches no handler are recognised.
    let (status, missed) = unrouted(send(&gw, Method::GET, "/v1/no-such-path").await).await;
    assert!(missed && status == 404, "{status}");
    let (status, missed) = unrouted(send(&gw, Method::DELETE, "/healthz").await).await;
    assert!(missed && status == 405, "{status}");

    // Both sides: a documented operation the router lacks is caught here
    // too, by the router's fallback answering it.
    let doc = document();
    let routes: BTreeSet<(String, String)> = served().union(&documented(&doc)).cloned().collect();
    let mut failures = Vec::new();
    for (method, template) in &routes {
        let operation = &doc["paths"][template][method.to_lowercase()];
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, missed) = unrouted(send(&gw, method.clone(), &concrete(template)).await).await;
        if missed {
            failures.push(format!(
                "{method} {template}: {status} from the router, not a handler"
            ));
            continue;
        }
        if operation["responses"].get(status.to_string()).is_none() {
            failures.push(format!(
                "{method} {template}: answers {status} without credentials, which the document does not list for it"
            ));
        }
        let secured = operation["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty());
        if secured != (status == 401) {
            failures.push(format!(
                "{method} {template}: answers {status} without credentials, but the document says it is {}",
                if secured { "secured" } else { "public" }
            ));
        }
    }
    let paths: BTreeSet<&String> = routes.iter().map(|(_, p)| p).collect();
    for template in paths {
        for method in PROBED {
            if routes.contains(&(method.to_string(), template.clone())) {
                continue;
            }
            let (status, missed) =
                unrouted(send(&gw, method.clone(), &concrete(template)).await).await;
            if !missed {
                failures.push(format!(
                    "{method} {template}: answers {status} from a handler, but neither the document nor the route table has it (expected 405)"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    gw.stop().await;
}

/// Runs openapi-spec-validator on each file: `valid PATH` or `INVALID PATH: why`.
const VALIDATE: &str = r#"
import json, sys
try:
    from openapi_spec_validator import validate
except ImportError as e:
    print(f"openapi-spec-validator is not installed: {e}")
    sys.exit(3)
bad = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    try:
        validate(doc)
        print(f"valid {path}")
    except Exception as e:
        bad += 1
        print(f"INVALID {path}: {type(e).__name__}: {str(e).splitlines()[0]}")
sys.exit(1 if bad else 0)
"#;

fn validate(files: &[PathBuf]) -> (bool, String) {
    let python = std::env::var_os("OPENAPI_PYTHON").unwrap_or_else(|| "python3".into());
    let out = Command::new(&python)
        .arg("-c")
        .arg(VALIDATE)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("{python:?} cannot run ({e}); install: {INSTALL}"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.code() == Some(3) {
        panic!("{report}install it: {INSTALL}");
    }
    (out.status.success(), report)
}

#[test]
fn the_document_passes_openapi_spec_validator() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, registry_gateway::api::OPENAPI).unwrap();
    let (ok, report) = validate(std::slice::from_ref(&file));
    assert!(ok && report.starts_with("valid "), "{report}");

    // Controls the validator must refuse, so that a pass means something: a
    // response without its description, and a path parameter not declared.
    let mut no_description = document();
    no_description["paths"]["/healthz"]["get"]["responses"]["200"] = json!({});
    let mut undeclared = document();
    undeclared["paths"]["/v1/records/{id}"]["get"]["parameters"] = json!([]);
    for (label, doc) in [
        ("no-description", no_description),
        ("undeclared-parameter", undeclared),
    ] {
        let control = dir.path().join(format!("{label}.json"));
        std::fs::write(&control, doc.to_string()).unwrap();
        let (ok, report) = validate(std::slice::from_ref(&control));
        assert!(!ok && report.contains("INVALID"), "{label}: {report}");
    }
}

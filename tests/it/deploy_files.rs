//! The deploy/ folder checked by the tools that will read it: kustomize
//! renders the Kubernetes base and the manifests say what they must (probes,
//! PodDisruptionBudget, NetworkPolicy, non-root, read-only root, Secret
//! references only), `systemd-analyze` accepts the unit, compose.yaml names
//! PostgreSQL, two gateways and the mocks, the Dockerfile has its USER and
//! HEALTHCHECK, and the gateway itself loads the compose and Kubernetes
//! configs. A tool that is absent is skipped with a message, except under
//! CI=true for the tools this machine kind has (kubectl, systemd-analyze).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::repo_path;
use serde::Deserialize;
use serde_json::Value;

/// Runs `program args`; `None` (with a printed skip) when the program is
/// absent, a panic when it is absent under CI=true and `expected`.
fn run_tool(program: &str, args: &[&str], expected: bool) -> Option<Output> {
    match Command::new(program)
        .args(args)
        .current_dir(repo_path(""))
        .output()
    {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if expected && std::env::var("CI").as_deref() == Ok("true") {
                panic!("{program} is part of this machine kind and must run under CI");
            }
            eprintln!("skipped: {program} is not installed");
            None
        }
        Err(e) => panic!("{program} did not start: {e}"),
    }
}

/// Whether a container engine answers `docker info` (this machine kind has
/// the client only); prints what is skipped when none does.
fn container_engine(skipped: &str) -> bool {
    let works = run_tool("docker", &["info"], false).is_some_and(|info| info.status.success());
    if !works {
        eprintln!("skipped: {skipped} (no container engine: docker info failed)");
    }
    works
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every document of a multi-document YAML text, as JSON values (merge keys applied).
fn yaml_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| {
            let mut value = serde_norway::Value::deserialize(doc).expect("valid YAML");
            value.apply_merge().expect("merge keys apply");
            serde_json::to_value(value).expect("YAML that maps to JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn rendered_kubernetes() -> Option<Vec<Value>> {
    let out = run_tool("kubectl", &["kustomize", "deploy/kubernetes"], true)?;
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/kubernetes: {}",
        stderr(&out)
    );
    Some(yaml_documents(&String::from_utf8(out.stdout).unwrap()))
}

fn only<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in the rendered manifests");
    found[0]
}

/// `selector` (a label map) selects a pod with `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("a label selector");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn kubernetes_base_renders_with_probes_pdb_network_policy_and_no_secret_values() {
    let Some(docs) = rendered_kubernetes() else {
        return;
    };
    for doc in &docs {
        assert_eq!(
            doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or("registry-gateway"),
            "registry-gateway",
            "{}",
            doc["kind"]
        );
        // Secrets are referenced, never rendered from the repository.
        assert_ne!(doc["kind"], "Secret", "a Secret with values in the repo");
    }
    let deployment = only(&docs, "Deployment");
    let pod = &deployment["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert!(selects(
        &deployment["spec"]["selector"]["matchLabels"],
        labels
    ));
    let spec = &pod["spec"];
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(spec["automountServiceAccountToken"], false);
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let gateway = &containers[0];
    let ports: BTreeSet<&str> = gateway["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for (probe, path) in [
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ] {
        let get = &gateway[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(
            ports.contains(get["port"].as_str().unwrap()),
            "{probe} port"
        );
    }
    let security = &gateway["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for side in ["requests", "limits"] {
        assert!(
            gateway["resources"][side]["memory"].is_string(),
            "resources.{side}.memory"
        );
    }
    assert!(gateway["resources"]["requests"]["cpu"].is_string());
    // Every secret value comes from a Secret reference.
    for env in gateway["env"].as_array().unwrap() {
        assert!(
            env.get("value").is_none() || env["name"] == "RUST_LOG",
            "{} is written in the manifest: take it from registry-gateway-secrets",
            env["name"]
        );
    }
    let volumes = spec["volumes"].as_array().unwrap();
    let secret_names: BTreeSet<&str> = volumes
        .iter()
        .filter_map(|v| v["secret"]["secretName"].as_str())
        .collect();
    assert_eq!(
        secret_names,
        BTreeSet::from(["registry-gateway-secrets", "registry-gateway-tls"])
    );

    let service = only(&docs, "Service");
    assert!(selects(&service["spec"]["selector"], labels));
    for port in service["spec"]["ports"].as_array().unwrap() {
        assert!(ports.contains(port["targetPort"].as_str().unwrap()));
    }

    let pdb = only(&docs, "PodDisruptionBudget");
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], labels));
    assert!(pdb["spec"]["minAvailable"].as_u64().unwrap() >= 1);
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() > 1);

    let policy = only(&docs, "NetworkPolicy");
    assert!(selects(
        &policy["spec"]["podSelector"]["matchLabels"],
        labels
    ));
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let ingress_ports: BTreeSet<&str> = policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["ports"].as_array().unwrap())
        .map(|p| p["port"].as_str().unwrap())
        .collect();
    assert_eq!(ingress_ports, BTreeSet::from(["api", "metrics"]));
    // Egress: DNS, the database, the registries over HTTPS; nothing open-ended.
    let mut egress_ports = BTreeSet::new();
    for rule in policy["spec"]["egress"].as_array().unwrap() {
        assert!(
            !rule["to"].as_array().unwrap().is_empty(),
            "an egress rule open to every destination"
        );
        for port in rule["ports"].as_array().unwrap() {
            egress_ports.insert(port["port"].as_u64().unwrap());
        }
    }
    assert_eq!(egress_ports, BTreeSet::from([53, 443, 5432]));
}

/// The path `(configmap, key)` pairs the Deployment's config volume mounts,
/// with the rendered ConfigMaps' data.
fn mounted_files(docs: &[Value]) -> BTreeMap<String, String> {
    let maps: BTreeMap<&str, &Value> = docs
        .iter()
        .filter(|d| d["kind"] == "ConfigMap")
        .map(|d| (d["metadata"]["name"].as_str().unwrap(), &d["data"]))
        .collect();
    let deployment = only(docs, "Deployment");
    let config = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "config")
        .expect("the config volume");
    let mut files = BTreeMap::new();
    for source in config["projected"]["sources"].as_array().unwrap() {
        let name = source["configMap"]["name"].as_str().unwrap();
        let data = maps
            .get(name)
            .unwrap_or_else(|| panic!("the volume names ConfigMap {name}, which is not rendered"));
        for item in source["configMap"]["items"].as_array().unwrap() {
            let key = item["key"].as_str().unwrap();
            let text = data[key]
                .as_str()
                .unwrap_or_else(|| panic!("ConfigMap {name} has no key {key}"));
            files.insert(item["path"].as_str().unwrap().to_string(), text.to_string());
        }
    }
    files
}

fn repo_files(folder: &str, extension: &str, into: &mut BTreeMap<String, String>) {
    fn walk(dir: &Path, extension: &str, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, extension, found);
            } else if path.extension().is_some_and(|e| e == extension) {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&repo_path(folder), extension, &mut found);
    for path in found {
        let relative = path.strip_prefix(repo_path("")).unwrap();
        into.insert(
            relative.to_string_lossy().into_owned(),
            std::fs::read_to_string(&path).unwrap(),
        );
    }
}

#[test]
fn kubernetes_pods_see_every_mapping_policy_and_location_file_as_in_the_repository() {
    let Some(docs) = rendered_kubernetes() else {
        return;
    };
    let mut expected = BTreeMap::new();
    repo_files("mappings", "toml", &mut expected);
    repo_files("policies", "toml", &mut expected);
    repo_files("deploy/locations", "json", &mut expected);
    expected.insert(
        "deploy/kubernetes/gateway.toml".into(),
        std::fs::read_to_string(repo_path("deploy/kubernetes/gateway.toml")).unwrap(),
    );
    let mounted = mounted_files(&docs);
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !mounted.contains_key(*k))
        .collect();
    let extra: Vec<&String> = mounted
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the ConfigMap lists are stale (run deploy/kubernetes/sync-config): \
         not mounted {missing:?}, mounted but not in the repository {extra:?}"
    );
    for (path, text) in &expected {
        assert!(mounted[path] == *text, "{path}: the ConfigMap differs");
    }
}

/// `registry-gateway config check` on a deploy config, its secrets given as
/// the deployment gives them (environment; files under `secret_dir`, which
/// the copy points at), its relative paths made absolute.
fn config_check(config: &str, secret_dir: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kek"), "11".repeat(32)).unwrap();
    let keygen = Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
        .args(["audit", "keygen", "--name", "examplia.gateway/exchange-log"])
        .arg("--out")
        .arg(dir.path().join("audit.key"))
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", stderr(&keygen));
    for name in ["audit-signing-key", "audit_signing_key"] {
        std::fs::copy(dir.path().join("audit.key"), dir.path().join(name)).unwrap();
    }
    let text = std::fs::read_to_string(repo_path(config)).unwrap();
    let folder = repo_path(config).parent().unwrap().to_path_buf();
    let absolute = |relative: &str| folder.join(relative).to_string_lossy().into_owned();
    let copied = text
        .replace(secret_dir, &format!("{}/", dir.path().display()))
        .replace(
            "\"../../mappings\"",
            &format!("{:?}", absolute("../../mappings")),
        )
        .replace(
            "\"../../policies\"",
            &format!("{:?}", absolute("../../policies")),
        )
        .replace(
            "\"../locations/",
            &format!("\"{}/", absolute("../locations")),
        );
    assert_ne!(
        text, copied,
        "{config}: nothing to point at the test's secrets"
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, copied).unwrap();
    Command::new(env!("CARGO_BIN_EXE_registry-gateway"))
        .args(["config", "check", "--config"])
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

const REGISTRY_SECRETS: [(&str, &str); 4] = [
    ("OPENCRVS_CLIENT_SECRET", "test-secret-1"),
    ("OPENCRVS_V1_CLIENT_SECRET", "test-secret-2"),
    ("FHIR_CLIENT_SECRET", "test-secret-3"),
    ("PRIMERO_PASSWORD", "test-secret-4"),
];

#[test]
fn the_compose_and_kubernetes_configs_load_with_every_secret_from_outside() {
    for (config, secret_dir) in [
        ("deploy/compose/gateway.toml", "/run/secrets/"),
        (
            "deploy/kubernetes/gateway.toml",
            "/run/secrets/registry-gateway/",
        ),
    ] {
        let out = config_check(config, secret_dir, &REGISTRY_SECRETS);
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(out.status.success(), "{config}: {said}");
        assert!(
            !said.contains("is written in the config file") && !said.contains("generate"),
            "{config}: a secret written in the file or generated: {said}"
        );
        // Without the environment's secrets it does not load, naming each.
        let out = config_check(config, secret_dir, &[]);
        assert!(!out.status.success(), "{config} loads without its secrets");
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        for (name, _) in REGISTRY_SECRETS {
            assert!(said.contains(name), "{config}: {name} not named in {said}");
        }
    }
}

#[test]
fn compose_names_postgres_two_gateways_on_one_database_and_the_mocks() {
    let text = std::fs::read_to_string(repo_path("deploy/compose.yaml")).unwrap();
    let docs = yaml_documents(&text);
    assert_eq!(docs.len(), 1);
    let services = docs[0]["services"].as_object().unwrap();
    assert!(
        services["postgres"]["image"]
            .as_str()
            .unwrap()
            .starts_with("postgres:")
    );
    assert_eq!(services["mocks"]["build"]["target"], "mocks");
    let gateways: Vec<(&String, &Value)> = services
        .iter()
        .filter(|(_, s)| s["build"]["target"] == "gateway")
        .collect();
    assert_eq!(gateways.len(), 2, "two gateways");
    let published: BTreeSet<String> = services["mocks"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let mut databases = BTreeSet::new();
    let mut listens = BTreeSet::new();
    for (name, gateway) in &gateways {
        let args: Vec<&str> = gateway["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let after = |flag: &str| {
            args.iter()
                .position(|a| *a == flag)
                .map(|i| args[i + 1])
                .unwrap_or_else(|| panic!("{name}: no {flag}"))
        };
        let url = after("--database-url");
        assert!(url.starts_with("postgres://") && url.contains("@postgres:5432/"));
        let user_info = url["postgres://".len()..].split('@').next().unwrap();
        assert!(
            !user_info.contains(':'),
            "{name}: a password in the database URL"
        );
        databases.insert(url);
        let port = after("--listen").rsplit(':').next().unwrap();
        listens.insert(port.to_string());
        assert!(
            published.iter().any(|p| p.ends_with(&format!(":{port}"))),
            "{name}: port {port} not published"
        );
        assert_eq!(
            gateway["depends_on"]["postgres"]["condition"],
            "service_healthy"
        );
        assert_eq!(gateway["read_only"], true);
        assert_eq!(
            gateway["network_mode"], "service:mocks",
            "{name}: the mocks are on loopback"
        );
        for secret in gateway["secrets"].as_array().unwrap() {
            let secret = secret.as_str().unwrap();
            assert!(docs[0]["secrets"][secret]["file"].is_string(), "{secret}");
        }
        let config = after("--config")
            .strip_prefix("/etc/registry-gateway/")
            .unwrap();
        assert!(repo_path(config).is_file(), "{name}: {config}");
    }
    assert_eq!(databases.len(), 1, "both gateways share one database");
    assert_eq!(listens.len(), 2, "each gateway on its own port");
    if !container_engine("docker compose config") {
        return;
    }
    let out = run_tool(
        "docker",
        &["compose", "-f", "deploy/compose.yaml", "config", "-q"],
        false,
    )
    .unwrap();
    assert!(
        out.status.success(),
        "docker compose config: {}",
        stderr(&out)
    );
}

#[test]
fn dockerfile_runs_as_a_user_with_a_readyz_healthcheck_and_builds_where_docker_runs() {
    let text = std::fs::read_to_string(repo_path("deploy/Dockerfile")).unwrap();
    // Instructions of each stage, continuation lines joined.
    let joined = text.replace("\\\n", " ");
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    for line in joined.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(from) = line.strip_prefix("FROM ") {
            let name = from.rsplit(" AS ").next().unwrap_or_default().to_string();
            stages.push((name, Vec::new()));
        } else if let Some((_, lines)) = stages.last_mut() {
            lines.push(line.to_string());
        }
    }
    let names: Vec<&str> = stages.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"mocks"), "compose builds target mocks");
    let (last, gateway) = stages.last().unwrap();
    assert_eq!(last, "gateway", "the default target is the gateway");
    let user = gateway
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !matches!(user.split(':').next(), Some("0" | "root")),
        "runs as root"
    );
    let health = gateway
        .iter()
        .find(|l| l.starts_with("HEALTHCHECK "))
        .expect("a HEALTHCHECK line");
    assert!(health.contains(" CMD "), "{health}");
    assert!(
        gateway
            .iter()
            .any(|l| l.starts_with("ENV REGISTRY_GATEWAY_HEALTH_URL=") && l.ends_with("/readyz")),
        "the health check probes /readyz"
    );
    assert!(gateway.iter().any(|l| l.starts_with("VOLUME ")));
    // What the build copies from the context exists and is not ignored.
    let ignored = std::fs::read_to_string(repo_path(".dockerignore")).unwrap();
    for (_, lines) in &stages {
        for line in lines {
            let Some(args) = line.strip_prefix("COPY ") else {
                continue;
            };
            if args.starts_with("--from") {
                continue;
            }
            let words: Vec<&str> = args.split_whitespace().collect();
            for source in &words[..words.len() - 1] {
                if *source != "." {
                    assert!(
                        repo_path(source).exists(),
                        "COPY {source}: not in the repository"
                    );
                    assert!(
                        !ignored.lines().any(|l| l == *source),
                        "COPY {source}: ignored"
                    );
                }
            }
        }
    }
    for line in ["target", ".git"] {
        assert!(ignored.lines().any(|l| l == line), ".dockerignore: {line}");
    }
    if !container_engine("docker build") {
        return;
    }
    let out = run_tool(
        "docker",
        &[
            "build",
            "-f",
            "deploy/Dockerfile",
            "-t",
            "registry-gateway:test",
            ".",
        ],
        false,
    )
    .unwrap();
    assert!(out.status.success(), "docker build: {}", stderr(&out));
}

#[test]
fn systemd_accepts_the_hardened_unit() {
    let unit =
        std::fs::read_to_string(repo_path("deploy/systemd/registry-gateway.service")).unwrap();
    for directive in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=registry-gateway",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=",
    ] {
        assert!(unit.contains(directive), "the unit lacks {directive:?}");
    }
    // verify checks that ExecStart's binary exists: point a copy at the built one.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("registry-gateway.service");
    let binary = env!("CARGO_BIN_EXE_registry-gateway");
    let replaced = unit.replace("/usr/local/bin/registry-gateway", binary);
    assert_ne!(unit, replaced);
    std::fs::write(&copy, replaced).unwrap();
    let copy = copy.to_string_lossy().into_owned();
    let Some(out) = run_tool("systemd-analyze", &["verify", &copy], true) else {
        return;
    };
    // A directive systemd cannot parse is only a warning: any line about the unit fails too.
    let said = stderr(&out);
    assert!(
        out.status.success() && !said.contains("registry-gateway.service"),
        "systemd-analyze verify: {said}"
    );
    let out = run_tool(
        "systemd-analyze",
        &["security", "--offline=yes", &copy],
        true,
    )
    .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for registry-gateway.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}{}", stderr(&out)));
    assert!(
        exposure <= 2.0,
        "systemd rates the unit's exposure {exposure} (at most 2.0)"
    );
}

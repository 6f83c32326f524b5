//! The data-sharing manifest: for every route, its sharing policy (purpose,
//! legal bases, consent rule, rules, redactions) and every field sent, from
//! which source field, through which transform, the sensitivity of what it
//! reads and what the policy does to it. Generated from the loaded mappings
//! and policies, so it cannot drift from what is sent.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::mapping::{Input, Mapping};
use crate::pipeline::Pipeline;
use crate::policy::{FieldPolicy, Policies, PolicySummary};
use crate::schema::Sensitivity;

#[derive(Debug, Serialize)]
pub struct Manifest {
    pub routes: Vec<RouteManifest>,
}

#[derive(Debug, Serialize)]
pub struct RouteManifest {
    pub route: String,
    pub record_type: String,
    pub destination: String,
    pub destination_kind: String,
    pub mapping: String,
    pub description: String,
    pub policy: Option<PolicyManifest>,
    pub fields: Vec<FieldManifest>,
}

#[derive(Debug, Serialize)]
pub struct PolicyManifest {
    pub file: String,
    #[serde(flatten)]
    pub summary: PolicySummary,
}

#[derive(Debug, Serialize)]
pub struct FieldManifest {
    pub line: usize,
    pub to: String,
    pub from: String,
    pub transform: Vec<String>,
    pub sensitivity: Vec<Sensitivity>,
    /// What the route's policy does to what this field reads: `sent`, or its
    /// redactions and the rules that leave it out.
    pub policy: String,
    pub note: Option<String>,
}

pub fn build(pipeline: &Pipeline) -> Manifest {
    let routes = pipeline
        .config()
        .routes
        .iter()
        .filter_map(|route| {
            let mapping = pipeline.mappings().outbound.get(&route.name)?;
            let destination = &pipeline.config().destinations[&route.destination];
            let sensitive = pipeline.schemas().sensitive_fields(route.record_type);
            let policies = pipeline.policies();
            Some(RouteManifest {
                route: route.name.clone(),
                record_type: route.record_type.as_str().into(),
                destination: destination.name.clone(),
                destination_kind: destination.kind.as_str().into(),
                mapping: pipeline.mapping_name(mapping),
                description: mapping.description.clone(),
                policy: policies.summary(&route.name).map(|summary| PolicyManifest {
                    file: policy_file(pipeline, &route.name),
                    summary,
                }),
                fields: fields(mapping, sensitive, policies, &route.name),
            })
        })
        .collect();
    Manifest { routes }
}

fn fields(
    mapping: &Mapping,
    sensitive: &[crate::schema::SensitiveField],
    policies: &Policies,
    route: &str,
) -> Vec<FieldManifest> {
    mapping
        .rules
        .iter()
        .map(|rule| {
            let mut transform = Vec::new();
            if let Some(when) = &rule.when {
                transform.push(format!("when {}", when.source));
            }
            if let Some(expr) = &rule.expr {
                transform.push(format!("expr {}", expr.source));
            }
            if let Some(lookup) = rule.location {
                transform.push(format!("location list: {lookup}"));
            }
            if let Some(list) = &rule.codelist {
                transform.push(format!("codelist {}", list.name));
            }
            if let Input::Constant(v) = &rule.input {
                transform.push(format!("constant {v}"));
            }
            // What the rule reads of the record, its condition included: a
            // condition on a field tells the registry something of it. A
            // field counts when a read is at or inside it (the category check
            // also counts an object read whole, or tested with `has()`, as
            // reading what it holds; here that would tag every rule that
            // asks whether a father is recorded).
            let reads = rule.record_reads();
            let mut sensitivity: Vec<Sensitivity> = sensitive
                .iter()
                .filter(|f| reads.iter().any(|read| f.covers(read)))
                .map(|f| f.category)
                .collect();
            sensitivity.sort();
            sensitivity.dedup();
            FieldManifest {
                line: rule.line,
                to: rule.to.to_string(),
                from: rule.input_name(),
                transform,
                sensitivity,
                policy: field_policy(&rule.value_reads(), policies, route),
                note: rule.note.clone(),
            }
        })
        .collect()
}

/// `policies/<route>.toml`, named from the policies folder so that it reads
/// the same on every machine.
fn policy_file(pipeline: &Pipeline, route: &str) -> String {
    let dir = pipeline
        .config()
        .policies_dir
        .file_name()
        .map_or_else(|| "policies".into(), |d| d.to_string_lossy().into_owned());
    format!("{dir}/{route}.toml")
}

/// The policy's effect on what a rule's value is made from (`reads`, from
/// [`crate::mapping::Rule::value_reads`]; a condition only decides whether
/// the value is sent). Constants and the route context carry no record data.
fn field_policy(reads: &BTreeSet<String>, policies: &Policies, route: &str) -> String {
    let mut merged = FieldPolicy::default();
    for path in reads {
        let p = policies.field_policy(route, path);
        for r in p.redactions {
            if !merged.redactions.contains(&r) {
                merged.redactions.push(r);
            }
        }
        for r in p.limited_by_rules {
            if !merged.limited_by_rules.contains(&r) {
                merged.limited_by_rules.push(r);
            }
        }
    }
    merged.text()
}

/// The manifest as Markdown, for a data-protection officer (docs/policy.md
/// explains how to read it).
pub fn to_markdown(manifest: &Manifest) -> String {
    let mut out = String::from("# Data-sharing manifest\n\n");
    out.push_str(
        "For each route: its sharing policy (purpose, legal bases, who may consent, the rules \
         that let a record through, the redactions), then every field it sends, where it comes \
         from, how it is transformed and what the policy does to it. Nothing else leaves the \
         gateway: a registry receives only what a mapping names and the policy lets through. \
         docs/policy.md explains how to read this.\n",
    );
    for r in &manifest.routes {
        out.push_str(&format!(
            "\n## {}\n\n- record type: `{}`\n- destination: `{}` ({})\n- mapping: `{}`\n- {}\n",
            r.route, r.record_type, r.destination, r.destination_kind, r.mapping, r.description
        ));
        match &r.policy {
            Some(p) => policy_markdown(&mut out, p, "### Policy"),
            None => out.push_str("\nNo policy: every record is denied.\n"),
        }
        out.push_str(&format!("\n### Fields sent to {}\n\n", r.destination));
        out.push_str(
            "| sent as | from | transform | sensitivity | policy | note |\n|---|---|---|---|---|---|\n",
        );
        for f in &r.fields {
            let sensitivity: Vec<&str> = f.sensitivity.iter().map(|s| s.as_str()).collect();
            out.push_str(&format!(
                "| `{}` | `{}` | {} | {} | {} | {} |\n",
                f.to,
                f.from,
                escape_cell(&f.transform.join("; ")),
                sensitivity.join(", "),
                escape_cell(&f.policy),
                escape_cell(f.note.as_deref().unwrap_or(""))
            ));
        }
    }
    out
}

fn code_list(items: &[impl AsRef<str>]) -> String {
    items
        .iter()
        .map(|i| format!("`{}`", i.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Only the routes' policies, one section each, for docs/policy.md.
pub fn policies_markdown(manifest: &Manifest) -> String {
    let mut out = String::new();
    for r in &manifest.routes {
        if let Some(p) = &r.policy {
            policy_markdown(&mut out, p, &format!("### {}", r.route));
        }
    }
    out
}

/// One route's policy in plain words: its part of [`policies_markdown`]
/// (the operators' and auditors' console shows it per route).
pub fn route_policy_markdown(route: &RouteManifest) -> Option<String> {
    let p = route.policy.as_ref()?;
    let mut out = String::new();
    policy_markdown(&mut out, p, &format!("### {}", route.route));
    Some(out)
}

fn policy_markdown(out: &mut String, p: &PolicyManifest, heading: &str) {
    let s = &p.summary;
    let categories: Vec<&str> = s.categories.iter().map(|c| c.as_str()).collect();
    out.push_str(&format!(
        "\n{heading}\n\n- file: `{}` (SHA-256 `{}`)\n- purpose: `{}`\n- legal bases: {}\n- sensitive categories allowed: {}\n",
        p.file,
        s.sha256,
        s.purpose,
        code_list(&s.legal_bases),
        if categories.is_empty() { "none".to_string() } else { code_list(&categories) }
    ));
    match &s.consent {
        Some(c) => out.push_str(&format!(
            "- consent: given by {} (`{}`), or by the child (`{}`) from age {} (`{}`); valid when {} {} true, `{}` includes one of {}, and `{}` is not true. \
             A consent decision (consent API or consent record) replaces these fields: a grant counts when it covers purpose `{}` and names `{}` or one of {}; a withdrawal stops every rule on CONSENT.\n",
            code_list(&c.caregivers),
            c.subject_field,
            c.child,
            c.child_from_age,
            c.age_field,
            code_list(&c.required_true),
            if c.required_true.len() == 1 { "is" } else { "are" },
            c.sharing_field,
            code_list(&c.recipients),
            c.withdrawn_field,
            c.purpose,
            c.destination,
            code_list(&c.recipients),
        )),
        None => out.push_str("- consent: no rule relies on consent; a withdrawal does not stop this route\n"),
    }
    out.push_str("\nRules, in order (the first that holds decides; if none holds, the record is denied):\n\n");
    for (i, rule) in s.rules.iter().enumerate() {
        let mut tests = Vec::new();
        if rule.consent {
            tests.push("valid consent".to_string());
        }
        tests.extend(rule.when.iter().map(|w| format!("`{w}`")));
        let condition = if tests.is_empty() {
            "always".to_string()
        } else {
            format!("when {}", tests.join(" and "))
        };
        let fields = match &rule.keep {
            None => "the whole record, less the redactions".to_string(),
            Some(keep) => format!("only {}, less the redactions", code_list(keep)),
        };
        out.push_str(&format!(
            "{}. `{}` on `{}`: {condition}; {fields}\n",
            i + 1,
            rule.name,
            rule.basis
        ));
    }
    if s.redactions.is_empty() {
        out.push_str("\nRedactions: none.\n");
        return;
    }
    out.push_str("\nRedactions, whichever rule lets the record through:\n\n| path | action | condition | reason |\n|---|---|---|---|\n");
    for r in &s.redactions {
        let mut condition: Vec<String> = r.when.iter().map(|w| format!("when {w}")).collect();
        condition.extend(r.unless.iter().map(|u| format!("unless {u}")));
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            r.path,
            r.action,
            escape_cell(&condition.join(", ")),
            escape_cell(&r.reason)
        ));
    }
}

fn escape_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

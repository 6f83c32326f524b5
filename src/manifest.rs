//! The data-sharing manifest: for every route, every field sent, from which
//! source field, through which transform, and the sensitivity of what it reads.
//! Generated from the loaded mappings, so it cannot drift from what is sent.

use serde::Serialize;

use crate::mapping::{Input, Mapping};
use crate::pipeline::Pipeline;
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
    pub fields: Vec<FieldManifest>,
}

#[derive(Debug, Serialize)]
pub struct FieldManifest {
    pub line: usize,
    pub to: String,
    pub from: String,
    pub transform: Vec<String>,
    pub sensitivity: Vec<Sensitivity>,
    pub note: Option<String>,
}

pub fn build(pipeline: &Pipeline) -> Manifest {
    let routes = pipeline
        .config
        .routes
        .iter()
        .filter_map(|route| {
            let mapping = pipeline.mappings.outbound.get(&route.name)?;
            let destination = &pipeline.config.destinations[&route.destination];
            let sensitive = pipeline.schemas.sensitive_fields(route.record_type);
            Some(RouteManifest {
                route: route.name.clone(),
                record_type: route.record_type.as_str().into(),
                destination: destination.name.clone(),
                destination_kind: destination.kind.as_str().into(),
                mapping: pipeline.mapping_name(mapping),
                description: mapping.description.clone(),
                fields: fields(mapping, sensitive),
            })
        })
        .collect();
    Manifest { routes }
}

fn fields(mapping: &Mapping, sensitive: &[crate::schema::SensitiveField]) -> Vec<FieldManifest> {
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
            if let Some(list) = &rule.codelist {
                transform.push(format!("codelist {}", list.name));
            }
            if let Input::Constant(v) = &rule.input {
                transform.push(format!("constant {v}"));
            }
            let mut sensitivity: Vec<Sensitivity> = match &rule.input {
                Input::Field(path) => {
                    let read = format!("/{path}");
                    sensitive
                        .iter()
                        .filter(|f| f.covers(&read))
                        .map(|f| f.category)
                        .collect()
                }
                _ => Vec::new(),
            };
            sensitivity.sort();
            sensitivity.dedup();
            FieldManifest {
                line: rule.line,
                to: rule.to.to_string(),
                from: rule.input_name(),
                transform,
                sensitivity,
                note: rule.note.clone(),
            }
        })
        .collect()
}

/// The manifest as Markdown, for a data-protection officer.
pub fn to_markdown(manifest: &Manifest) -> String {
    let mut out = String::from("# Data-sharing manifest\n\n");
    out.push_str(
        "Every field each route sends, where it comes from and how it is transformed. \
         Nothing else leaves the gateway: a registry receives only what a mapping names.\n",
    );
    for r in &manifest.routes {
        out.push_str(&format!(
            "\n## {}\n\n- record type: `{}`\n- destination: `{}` ({})\n- mapping: `{}`\n- {}\n\n",
            r.route, r.record_type, r.destination, r.destination_kind, r.mapping, r.description
        ));
        out.push_str(
            "| sent as | from | transform | sensitivity | note |\n|---|---|---|---|---|\n",
        );
        for f in &r.fields {
            let sensitivity: Vec<&str> = f.sensitivity.iter().map(|s| s.as_str()).collect();
            out.push_str(&format!(
                "| `{}` | `{}` | {} | {} | {} |\n",
                f.to,
                f.from,
                escape_cell(&f.transform.join("; ")),
                sensitivity.join(", "),
                escape_cell(f.note.as_deref().unwrap_or(""))
            ));
        }
    }
    out
}

fn escape_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

//! Registry formats: each module's catalogue (what a mapping into it may
//! write) and encoder (the mapped tree to the registry's bytes).

pub mod examplia;
pub mod fhir_r4;
pub mod opencrvs;
pub mod opencrvs_v1;
pub mod primero;
#[cfg(test)]
mod test_trees;

use std::path::Path;

use serde_json::Value;

use crate::config::{DestinationConfig, DestinationKind};
use crate::mapping::{Catalogue, RouteContext};

/// The bytes for a registry, and how to label them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// File extension `translate` uses: `json` or `xml`.
    pub extension: &'static str,
    pub content_type: &'static str,
}

/// A mapped tree the format cannot carry. Names paths, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{0} is required by the format but the mapping produced none")]
    Missing(String),
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// What a mapping into `kind` may write. `folder` is the destination's mapping
/// folder, for formats whose fields are configured per country.
pub fn destination_catalogue(kind: DestinationKind, folder: &Path) -> Result<Catalogue, String> {
    match kind {
        DestinationKind::Opencrvs => opencrvs::catalogue(folder),
        DestinationKind::OpencrvsV1 => opencrvs_v1::catalogue(folder),
        DestinationKind::FhirR4 => fhir_r4::catalogue(folder),
        DestinationKind::Primero => primero::catalogue(folder),
        DestinationKind::ExampliaCrvs => examplia::catalogue(folder),
    }
}

/// Turn a mapped tree into the bytes `destination` is sent: its kind's
/// format, with the settings that change the document (a FHIR destination's
/// `write`).
pub fn encode_for(
    destination: &DestinationConfig,
    tree: &Value,
    ctx: &RouteContext,
) -> Result<Encoded, EncodeError> {
    match destination.kind {
        DestinationKind::FhirR4 => fhir_r4::encode_with(tree, ctx, destination.fhir_write),
        other => encode(other, tree, ctx),
    }
}

/// Turn a mapped tree into the registry's bytes (a FHIR destination's
/// document as conditional create writes it).
pub fn encode(
    kind: DestinationKind,
    tree: &Value,
    ctx: &RouteContext,
) -> Result<Encoded, EncodeError> {
    match kind {
        DestinationKind::Opencrvs => opencrvs::encode(tree, ctx),
        DestinationKind::OpencrvsV1 => opencrvs_v1::encode(tree, ctx),
        DestinationKind::FhirR4 => fhir_r4::encode(tree, ctx),
        DestinationKind::Primero => primero::encode(tree, ctx),
        DestinationKind::ExampliaCrvs => examplia::encode(tree, ctx),
    }
}

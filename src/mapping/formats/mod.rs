//! Registry and source formats: what each side of a mapping may name (its
//! catalogue), how a mapped tree becomes the bytes a registry receives
//! (encoders) and how a source payload becomes a tree a mapping reads (decoders).
//!
//! A closed set: adding a registry kind is a variant of
//! [`DestinationKind`], a file here, and a folder under `mappings/destinations/`;
//! the compiler lists every match that needs an arm.
//!
//! Architecture invariant: an encoder sees only the tree its mapping produced,
//! so nothing reaches a registry that a mapping file does not name.

pub mod examplia;
pub mod fhir_r4;
pub mod fhir_r4_source;
pub mod opencrvs;
pub mod opencrvs_v1;
pub mod primero;
pub mod primero_source;

use std::path::Path;

use serde_json::Value;

use super::{Catalogue, RouteContext};
use crate::config::{DestinationKind, SourceFormat};
use crate::schema::Violation;

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

/// Turn a mapped tree into the registry's bytes.
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

/// What a mapping from a source format may read.
pub fn source_catalogue(format: SourceFormat, folder: &Path) -> Result<Catalogue, String> {
    match format {
        SourceFormat::Canonical => Err("canonical records need no mapping".into()),
        SourceFormat::Primero => primero_source::catalogue(folder),
        SourceFormat::FhirR4 => fhir_r4_source::catalogue(folder),
    }
}

/// Turn a source payload (already parsed, depth-bounded JSON) into the tree its
/// inbound mapping reads, or every problem with its JSON pointer into the payload.
pub fn decode(format: SourceFormat, payload: &Value) -> Result<Value, Vec<Violation>> {
    match format {
        SourceFormat::Canonical => Ok(payload.clone()),
        SourceFormat::Primero => primero_source::decode(payload),
        SourceFormat::FhirR4 => fhir_r4_source::decode(payload),
    }
}

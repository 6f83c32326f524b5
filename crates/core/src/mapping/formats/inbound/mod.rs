//! Agencies' formats: each module's catalogue (what an inbound mapping may
//! read) and decoder (the payload to a tree of named fields, with every
//! problem as a JSON pointer into the payload).

pub mod fhir_r4;
pub mod primero;

use std::path::Path;

use serde_json::Value;

use crate::config::SourceFormat;
use crate::mapping::Catalogue;
use crate::schema::Violation;

/// What a mapping from a source format may read.
pub fn source_catalogue(format: SourceFormat, folder: &Path) -> Result<Catalogue, String> {
    match format {
        SourceFormat::Canonical => Err("canonical records need no mapping".into()),
        SourceFormat::Primero => primero::catalogue(folder),
        SourceFormat::FhirR4 => fhir_r4::catalogue(folder),
    }
}

/// Turn a source payload (already parsed, depth-bounded JSON) into the tree its
/// inbound mapping reads, or every problem with its JSON pointer into the payload.
pub fn decode(format: SourceFormat, payload: &Value) -> Result<Value, Vec<Violation>> {
    match format {
        SourceFormat::Canonical => Ok(payload.clone()),
        SourceFormat::Primero => primero::decode(payload),
        SourceFormat::FhirR4 => fhir_r4::decode(payload),
    }
}

/// Where the decoded tree's fields sit in the payload, to report a field as a
/// pointer into what the agency sent: a Primero case's fields are under
/// `/data`; a FHIR document's decoded fields are named by their tree path.
pub fn payload_root(format: SourceFormat) -> &'static str {
    match format {
        SourceFormat::Canonical | SourceFormat::FhirR4 => "",
        SourceFormat::Primero => "/data",
    }
}

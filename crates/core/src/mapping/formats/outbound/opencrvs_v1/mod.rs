//! OpenCRVS 1.x event notification: `POST /notification` with a FHIR document
//! Bundle in OpenCRVS's own STU3-shaped dialect, not strict R4
//! (../shared/specs/FORMATS.md §2).
//!
//! Mappings write a small logical tree with readable paths
//! (`mother/name/given`, `task/office_id`, `observations/body_weight_kg`);
//! this module turns it into the Bundle OpenCRVS 1.x expects: the Composition
//! first, the Task second (draft, focused on the Composition, carrying
//! `regLastOffice`), then the Patients, the informant's RelatedPerson, the
//! birth Encounter (with `location[0]`) and the Observations, each entry with
//! a `fullUrl` derived from the route context. Office, facility and
//! admin-area ids are deployment data: they come through the mapping and its
//! code lists, never from here.

mod bundle;
mod resources;
mod tree;

use std::path::Path;

use serde_json::Value;

use super::{EncodeError, Encoded};
use crate::mapping::{Catalogue, RouteContext};

/// Fields of a person (child, mother, father) in the logical tree.
const PERSON: [&str; 11] = [
    "name/given",
    "name/family",
    "gender",
    "birth_date",
    "age_years",
    "nationality",
    "identifiers/*/type",
    "identifiers/*/value",
    "address/country",
    "address/state",
    "address/district",
];

/// Paths outside the persons.
const OTHER_PATHS: [&str; 15] = [
    "bundle/last_updated",
    "task/office_id",
    "task/office_location_id",
    "task/contact/relationship",
    "task/contact/phone",
    "task/contact/email",
    "child/multiple_birth_order",
    "father/details_not_available/reason",
    "informant/relationship",
    "informant/name/given",
    "informant/name/family",
    "encounter/location_id",
    "observations/body_weight_kg",
    "observations/birth_plurality",
    "observations/attendant_at_birth",
];

/// The dialect is OpenCRVS's, the same in every country, so the catalogue is
/// fixed; `folder` is unused.
pub fn catalogue(_folder: &Path) -> Result<Catalogue, String> {
    let persons = ["child", "mother", "father"]
        .into_iter()
        .flat_map(|role| PERSON.iter().map(move |f| format!("{role}/{f}")));
    let others = OTHER_PATHS.iter().map(|p| p.to_string());
    Ok(Catalogue::new(persons.chain(others)))
}

pub fn encode(tree: &Value, ctx: &RouteContext) -> Result<Encoded, EncodeError> {
    let notification = tree::Notification::read(tree)?;
    let bundle = bundle::build(&notification, ctx);
    // A document is a few kilobytes: one allocation rather than a doubling series.
    let mut bytes = Vec::with_capacity(8 << 10);
    serde_json::to_writer(&mut bytes, &bundle).map_err(|e| EncodeError::Invalid {
        path: String::new(),
        reason: format!("cannot serialise: {e}"),
    })?;
    Ok(Encoded {
        bytes,
        extension: "json",
        content_type: "application/json",
    })
}

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;

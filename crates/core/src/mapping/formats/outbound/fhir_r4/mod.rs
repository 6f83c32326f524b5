//! Strict HL7 FHIR R4 (4.0.1) birth-notification document, as JSON
//! (`application/fhir+json`), and its XML form ([`to_xml`]).
//!
//! The mapping writes a small logical tree (see [`FIELDS`]) that a
//! data-protection officer can read: `child/given`, `mother/identifiers/*/system`,
//! `birth_weight/value`... The encoder turns it into a document Bundle
//! (../shared/specs/FORMATS.md §3): `identifier` (bdl-9) from the route's
//! record key (the same for every resend and version of one source record), `timestamp` and `meta.lastUpdated` (bdl-10), the Composition
//! first (bdl-11), one entry per resource with a unique `urn:uuid:` fullUrl
//! derived from the route context, and every reference resolving inside the
//! Bundle. Codes and systems that are facts of FHIR (section codes, LOINC,
//! UCUM, v3 ActCode) live here; everything a country may change lives in the
//! mapping file and its code lists.

mod document;
#[cfg(test)]
mod json;
#[cfg(test)]
mod oracle;
mod order;
mod tree;
mod walk;
mod xml;

use std::path::Path;

use serde_json::Value;

use super::{EncodeError, Encoded};
use crate::config::FhirWrite;
use crate::mapping::{Catalogue, RouteContext};

pub use xml::to_xml;

/// Every path a mapping into this format may write, and what it becomes.
#[rustfmt::skip]
pub const FIELDS: &[(&str, &str)] = &[
    ("document/timestamp",                "Bundle.timestamp, Bundle.meta.lastUpdated, Composition.date (instant)"),
    ("document/title",                    "Composition.title"),
    ("document/type/system",              "Composition.type first coding: system (http://loinc.org: the exchange requires a LOINC document code)"),
    ("document/type/code",                "Composition.type first coding: code"),
    ("document/type/display",             "Composition.type first coding: display"),
    ("document/type/text",                "Composition.type text"),
    ("document/type/local/system",        "Composition.type second coding (a local document type): system"),
    ("document/type/local/code",          "Composition.type second coding: code"),
    ("document/type/local/display",       "Composition.type second coding: display"),
    ("author/name",                       "Organization.name of the notifier (Composition.author)"),
    ("author/identifier/system",          "Organization.identifier.system of the notifier"),
    ("author/identifier/value",           "Organization.identifier.value of the notifier"),
    ("child/given",                       "Patient(child).name.given: text, or a list of texts"),
    ("child/family",                      "Patient(child).name.family"),
    ("child/name_latin/given",            "Patient(child) second name, Latin transliteration (ISO 21090 ABC)"),
    ("child/name_latin/family",           "Patient(child) second name, Latin transliteration"),
    ("child/gender",                      "Patient(child).gender: male|female|other|unknown"),
    ("child/birth_date",                  "Patient(child).birthDate: YYYY (an estimate), YYYY-MM or YYYY-MM-DD, local"),
    ("child/birth_time",                  "patient-birthTime extension on birthDate: local time HH:MM:SS"),
    ("child/birth_time_offset",           "UTC offset of the local birth time (Z, +HH:MM)"),
    ("child/birth_place/text",            "patient-birthPlace extension: Address.text"),
    ("child/birth_place/district",        "patient-birthPlace extension: Address.district (admin-area code)"),
    ("child/birth_place/country",         "patient-birthPlace extension: Address.country"),
    ("birth_order",                       "Patient(child).multipleBirthInteger"),
    ("plurality",                         "Observation LOINC 57722-1 valueInteger (subject: mother)"),
    ("mother/given",                      "Patient(mother).name.given"),
    ("mother/family",                     "Patient(mother).name.family"),
    ("mother/name_latin/given",           "Patient(mother) second name, Latin transliteration"),
    ("mother/name_latin/family",          "Patient(mother) second name, Latin transliteration"),
    ("mother/gender",                     "Patient(mother).gender"),
    ("mother/birth_date",                 "Patient(mother).birthDate"),
    ("mother/nationality/system",         "patient-nationality extension: code system"),
    ("mother/nationality/code",           "patient-nationality extension: code"),
    ("mother/address/district",           "Patient(mother).address (home): district (admin-area code)"),
    ("mother/address/country",            "Patient(mother).address (home): country"),
    ("mother/identifiers/*/system",       "Patient(mother).identifier.system"),
    ("mother/identifiers/*/value",        "Patient(mother).identifier.value"),
    ("mother/identifiers/*/type/system",  "Patient(mother).identifier.type coding system"),
    ("mother/identifiers/*/type/code",    "Patient(mother).identifier.type coding code"),
    ("mother/identifiers/*/type/text",    "Patient(mother).identifier.type text"),
    ("mother/identifiers/*/assigner",     "Patient(mother).identifier.assigner display"),
    ("father/given",                      "RelatedPerson(father, FTH).name.given"),
    ("father/family",                     "RelatedPerson(father).name.family"),
    ("father/name_latin/given",           "RelatedPerson(father) second name, Latin transliteration"),
    ("father/name_latin/family",          "RelatedPerson(father) second name, Latin transliteration"),
    ("father/gender",                     "RelatedPerson(father).gender"),
    ("father/birth_date",                 "RelatedPerson(father).birthDate"),
    ("father/identifiers/*/system",       "RelatedPerson(father).identifier.system"),
    ("father/identifiers/*/value",        "RelatedPerson(father).identifier.value"),
    ("father/identifiers/*/type/system",  "RelatedPerson(father).identifier.type coding system"),
    ("father/identifiers/*/type/code",    "RelatedPerson(father).identifier.type coding code"),
    ("father/identifiers/*/type/text",    "RelatedPerson(father).identifier.type text"),
    ("father/identifiers/*/assigner",     "RelatedPerson(father).identifier.assigner display"),
    ("father_absent/reason",              "father-details section emptyReason (list-empty-reason code)"),
    ("informant/relationship/system",     "RelatedPerson(informant).relationship coding system"),
    ("informant/relationship/code",       "RelatedPerson(informant).relationship coding code"),
    ("informant/relationship/text",       "RelatedPerson(informant).relationship text"),
    ("informant/given",                   "RelatedPerson(informant).name.given"),
    ("informant/family",                  "RelatedPerson(informant).name.family"),
    ("informant/phone",                   "RelatedPerson(informant).telecom (phone)"),
    ("encounter/class",                   "Encounter.class: v3 ActCode (IMP, HH, FLD...)"),
    ("encounter/facility/system",         "Encounter.location identifier system (facility list)"),
    ("encounter/facility/value",          "Encounter.location identifier value (facility code)"),
    ("birth_weight/value",                "Observation LOINC 8339-4 valueQuantity, sent in g; a vital sign (R4 vital signs profile) measured at birth: effectiveDateTime is the child's birth date and time"),
    ("birth_weight/unit",                 "unit of birth_weight/value: g or kg"),
];

pub fn catalogue(_folder: &Path) -> Result<Catalogue, String> {
    Ok(Catalogue::new(FIELDS.iter().map(|(p, _)| p.to_string())))
}

/// The document as a destination that writes with conditional create gets it.
pub fn encode(tree: &Value, ctx: &RouteContext) -> Result<Encoded, EncodeError> {
    encode_with(tree, ctx, FhirWrite::ConditionalCreate)
}

/// The document for a destination that writes with `write`: with PUT, the
/// Bundle carries its stable logical id (R4 update: the body's id equals the
/// URL's); with conditional create it carries none (a create ignores a
/// client's id, and a conditional update of a Bundle whose server id differs
/// from the body's is refused).
pub fn encode_with(
    tree: &Value,
    ctx: &RouteContext,
    write: FhirWrite,
) -> Result<Encoded, EncodeError> {
    Ok(Encoded {
        bytes: document::write(tree, ctx, write)?,
        extension: "json",
        content_type: "application/fhir+json",
    })
}

#[cfg(test)]
mod tests;

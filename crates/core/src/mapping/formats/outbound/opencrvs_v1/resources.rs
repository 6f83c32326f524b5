//! The JSON shape of the dialect's resources, as structs that borrow the
//! notification's text and serialise straight to bytes: no
//! `serde_json::Value` tree is built, written and dropped. The bytes are those
//! of the former `Value` tree, whose objects are ordered maps, so every struct
//! declares its fields in the byte order of their JSON keys, absent ones
//! skipped (`tests::struct_writer_agrees_with_the_value_tree` holds this
//! against the former builder, `oracle/`).

use serde::{Serialize, Serializer};
use uuid::Uuid;

/// `urn:uuid:<id>`, written without being formatted into a string first.
#[derive(Clone, Copy)]
pub struct Url(pub Uuid);

impl Serialize for Url {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("urn:uuid:{}", self.0))
    }
}

/// `Location/<id>`: a place in the registry's own list.
#[derive(Clone, Copy)]
pub struct Location<'a>(pub &'a str);

impl Serialize for Location<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("Location/{}", self.0))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle<'a> {
    pub entry: Vec<Entry<'a>>,
    pub meta: Meta<'a>,
    pub resource_type: &'static str,
    pub r#type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta<'a> {
    pub last_updated: &'a str,
}

/// One entry of the Bundle.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry<'a> {
    pub full_url: Url,
    pub resource: Resource<'a>,
}

/// Each resource writes its own `resourceType` among its keys.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Resource<'a> {
    Composition(Composition<'a>),
    Task(Task<'a>),
    Patient(Patient<'a>),
    RelatedPerson(RelatedPerson<'a>),
    Encounter(Encounter<'a>),
    Observation(Observation<'a>),
}

#[derive(Serialize)]
pub struct Reference<T> {
    pub reference: T,
}

#[derive(Serialize)]
pub struct Coding<'a> {
    pub code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<&'static str>,
    pub system: &'static str,
}

/// A CodeableConcept of one coding.
#[derive(Serialize)]
pub struct Concept<'a> {
    pub coding: [Coding<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'static str>,
}

impl<'a> Concept<'a> {
    pub fn code(system: &'static str, code: &'a str) -> Concept<'a> {
        Concept {
            coding: [Coding {
                code,
                display: None,
                system,
            }],
            text: None,
        }
    }

    pub fn text(mut self, text: &'static str) -> Concept<'a> {
        self.text = Some(text);
        self
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Composition<'a> {
    pub author: [(); 0],
    pub class: Concept<'static>,
    pub date: &'a str,
    pub identifier: DocumentIdentifier,
    pub resource_type: &'static str,
    pub section: Vec<Section>,
    pub status: &'static str,
    pub subject: Reference<Url>,
    pub title: &'static str,
    pub r#type: Concept<'static>,
}

#[derive(Serialize)]
pub struct DocumentIdentifier {
    pub system: &'static str,
    pub value: Url,
}

#[derive(Serialize)]
pub struct Section {
    pub code: Concept<'static>,
    pub entry: [Reference<Url>; 1],
    pub title: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Task<'a> {
    pub code: Concept<'static>,
    pub extension: Vec<Extension<'a>>,
    pub focus: Reference<Url>,
    pub identifier: [(); 0],
    pub intent: &'static str,
    pub resource_type: &'static str,
    pub status: &'static str,
}

/// Every extension of the dialect, its value under the key its type names.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Extension<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<[Nationality<'a>; 1]>,
    pub url: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_integer: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_reference: Option<Reference<Location<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_string: Option<&'a str>,
}

impl<'a> Extension<'a> {
    pub fn new(url: &'static str) -> Extension<'a> {
        Extension {
            extension: None,
            url,
            value_integer: None,
            value_reference: None,
            value_string: None,
        }
    }

    pub fn string(url: &'static str, value: &'a str) -> Extension<'a> {
        Extension {
            value_string: Some(value),
            ..Extension::new(url)
        }
    }

    pub fn location(url: &'static str, id: &'a str) -> Extension<'a> {
        Extension {
            value_reference: Some(Reference {
                reference: Location(id),
            }),
            ..Extension::new(url)
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Nationality<'a> {
    pub url: &'static str,
    pub value_codeable_concept: Concept<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient<'a> {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<[PostalAddress<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<PatientIdentifier<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiple_birth_integer: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<[HumanName<'a>; 1]>,
    pub resource_type: &'static str,
}

impl<'a> Patient<'a> {
    pub fn new(active: bool) -> Patient<'a> {
        Patient {
            active,
            address: None,
            birth_date: None,
            extension: Vec::new(),
            gender: None,
            identifier: Vec::new(),
            multiple_birth_integer: None,
            name: None,
            resource_type: "Patient",
        }
    }
}

/// The dialect's `use` is a language tag, and `family` a string since 1.7.
#[derive(Serialize)]
pub struct HumanName<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given: Option<[&'a str; 1]>,
    pub r#use: &'static str,
}

#[derive(Serialize)]
pub struct PatientIdentifier<'a> {
    pub r#type: Concept<'a>,
    pub value: &'a str,
}

#[derive(Serialize)]
pub struct PostalAddress<'a> {
    pub country: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub district: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'a str>,
    pub r#type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelatedPerson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<Reference<Url>>,
    pub relationship: Concept<'a>,
    pub resource_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Encounter<'a> {
    pub location: [EncounterLocation<'a>; 1],
    pub resource_type: &'static str,
    pub status: &'static str,
}

#[derive(Serialize)]
pub struct EncounterLocation<'a> {
    pub location: Reference<Location<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation<'a> {
    pub category: [Concept<'static>; 1],
    pub code: Concept<'static>,
    pub context: Reference<Url>,
    pub resource_type: &'static str,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_quantity: Option<Quantity<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_string: Option<&'a str>,
}

#[derive(Serialize)]
pub struct Quantity<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    pub value: QuantityValue<'a>,
}

/// OpenCRVS sends the plurality code as a string quantity value.
#[derive(Serialize)]
#[serde(untagged)]
pub enum QuantityValue<'a> {
    Number(f64),
    Code(&'a str),
}

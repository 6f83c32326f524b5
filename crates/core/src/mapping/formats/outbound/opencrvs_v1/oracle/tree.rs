//! (The former reader, kept as the oracle of a property test.)
//!
//! The logical tree a mapping writes, read into types. Every problem names
//! the tree path and the rule, never the value found there.

use serde_json::Value;
use uuid::Uuid;

use crate::mapping::formats::EncodeError;

#[derive(Debug, Default)]
pub struct Name {
    pub given: Option<String>,
    pub family: Option<String>,
}

#[derive(Debug)]
pub struct Identifier {
    pub kind: String,
    pub value: String,
}

#[derive(Debug)]
pub struct Address {
    pub country: String,
    pub state: Option<String>,
    pub district: Option<String>,
}

#[derive(Debug, Default)]
pub struct Person {
    pub name: Name,
    pub gender: Option<String>,
    pub birth_date: Option<String>,
    pub age_years: Option<i64>,
    pub nationality: Option<String>,
    pub identifiers: Vec<Identifier>,
    pub address: Option<Address>,
    pub multiple_birth_order: Option<i64>,
}

#[derive(Debug)]
pub enum Father {
    Given(Box<Person>),
    /// OpenCRVS 1.x records an absent father as an inactive Patient with a reason.
    NotAvailable {
        reason: String,
    },
}

#[derive(Debug)]
pub struct Informant {
    pub relationship: String,
    pub name: Name,
}

#[derive(Debug, Default)]
pub struct Contact {
    pub relationship: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug)]
pub struct Notification {
    pub last_updated: String,
    pub office_id: String,
    pub office_location_id: Option<String>,
    pub contact: Contact,
    pub child: Person,
    pub mother: Option<Person>,
    pub father: Option<Father>,
    pub informant: Option<Informant>,
    pub encounter_location_id: String,
    pub body_weight_kg: Option<f64>,
    pub birth_plurality: Option<String>,
    pub attendant_at_birth: Option<String>,
}

impl Notification {
    pub fn read(tree: &Value) -> Result<Notification, EncodeError> {
        if !tree.is_object() {
            return Err(invalid("", "the mapped tree must be an object"));
        }
        let last_updated = required(text(tree, "bundle/last_updated")?, "bundle/last_updated")?;
        if chrono::DateTime::parse_from_rfc3339(&last_updated).is_err() {
            return Err(invalid(
                "bundle/last_updated",
                "must be an ISO 8601 date-time with an offset (Bundle.meta.lastUpdated)",
            ));
        }
        Ok(Notification {
            last_updated,
            office_id: required(location_id(tree, "task/office_id")?, "task/office_id")?,
            office_location_id: location_id(tree, "task/office_location_id")?,
            contact: Contact {
                relationship: text(tree, "task/contact/relationship")?,
                phone: text(tree, "task/contact/phone")?,
                email: text(tree, "task/contact/email")?,
            },
            child: person(tree, "child")?.unwrap_or_default(),
            mother: person(tree, "mother")?,
            father: father(tree)?,
            informant: informant(tree)?,
            encounter_location_id: required(
                location_id(tree, "encounter/location_id")?,
                "encounter/location_id",
            )?,
            body_weight_kg: weight(tree)?,
            birth_plurality: text(tree, "observations/birth_plurality")?,
            attendant_at_birth: text(tree, "observations/attendant_at_birth")?,
        })
    }
}

fn invalid(path: &str, reason: &str) -> EncodeError {
    EncodeError::Invalid {
        path: path.into(),
        reason: reason.into(),
    }
}

fn required<T>(value: Option<T>, path: &str) -> Result<T, EncodeError> {
    value.ok_or_else(|| EncodeError::Missing(path.into()))
}

fn at<'v>(tree: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('/')
        .try_fold(tree, |node, key| node.get(key))
        .filter(|v| !v.is_null())
}

/// A non-empty string, or nothing.
fn text(tree: &Value, path: &str) -> Result<Option<String>, EncodeError> {
    match at(tree, path) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(invalid(path, "must not be empty")),
        Some(_) => Err(invalid(path, "must be text")),
    }
}

/// A FHIR Location id in the registry: OpenCRVS resolves `Location/<id>`.
fn location_id(tree: &Value, path: &str) -> Result<Option<String>, EncodeError> {
    let id = text(tree, path)?;
    match &id {
        Some(s) if Uuid::try_parse(s).is_err() => {
            Err(invalid(path, "must be the UUID of an OpenCRVS location"))
        }
        _ => Ok(id),
    }
}

fn integer(tree: &Value, path: &str) -> Result<Option<i64>, EncodeError> {
    match at(tree, path) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| invalid(path, "must be a whole number, 0 or more")),
    }
}

fn weight(tree: &Value) -> Result<Option<f64>, EncodeError> {
    let path = "observations/body_weight_kg";
    match at(tree, path) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|kg| *kg > 0.0 && *kg <= 10.0)
            .map(Some)
            .ok_or_else(|| invalid(path, "must be a number of kilograms above 0 and at most 10")),
    }
}

fn name(tree: &Value, prefix: &str) -> Result<Name, EncodeError> {
    Ok(Name {
        given: text(tree, &format!("{prefix}/name/given"))?,
        family: text(tree, &format!("{prefix}/name/family"))?,
    })
}

fn person(tree: &Value, role: &str) -> Result<Option<Person>, EncodeError> {
    let Some(node) = at(tree, role) else {
        return Ok(None);
    };
    if !node.is_object() {
        return Err(invalid(role, "must be an object"));
    }
    let p = Person {
        name: name(tree, role)?,
        gender: text(tree, &format!("{role}/gender"))?,
        birth_date: text(tree, &format!("{role}/birth_date"))?,
        age_years: integer(tree, &format!("{role}/age_years"))?,
        nationality: text(tree, &format!("{role}/nationality"))?,
        identifiers: identifiers(tree, role)?,
        address: address(tree, role)?,
        multiple_birth_order: integer(tree, &format!("{role}/multiple_birth_order"))?,
    };
    Ok(Some(p))
}

fn identifiers(tree: &Value, role: &str) -> Result<Vec<Identifier>, EncodeError> {
    let path = format!("{role}/identifiers");
    let Some(node) = at(tree, &path) else {
        return Ok(Vec::new());
    };
    let items = node
        .as_array()
        .ok_or_else(|| invalid(&path, "must be a list"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let item_path = format!("{path}/{i}");
            Ok(Identifier {
                kind: required(text(item, "type")?, &format!("{item_path}/type"))?,
                value: required(text(item, "value")?, &format!("{item_path}/value"))?,
            })
        })
        .collect()
}

fn address(tree: &Value, role: &str) -> Result<Option<Address>, EncodeError> {
    let path = format!("{role}/address");
    if at(tree, &path).is_none() {
        return Ok(None);
    }
    let country = required(
        text(tree, &format!("{path}/country"))?,
        &format!("{path}/country"),
    )?;
    let state = location_id(tree, &format!("{path}/state"))?;
    let district = location_id(tree, &format!("{path}/district"))?;
    // OpenCRVS checks that the district is part of the state it is given.
    if district.is_some() && state.is_none() {
        return Err(EncodeError::Missing(format!("{path}/state")));
    }
    Ok(Some(Address {
        country,
        state,
        district,
    }))
}

fn father(tree: &Value) -> Result<Option<Father>, EncodeError> {
    let reason = text(tree, "father/details_not_available/reason")?;
    let given = at(tree, "father").is_some_and(|f| {
        f.as_object()
            .is_some_and(|m| m.keys().any(|k| k != "details_not_available"))
    });
    match (given, reason) {
        (true, Some(_)) => Err(invalid(
            "father/details_not_available",
            "a father given and a father not available are exclusive",
        )),
        (false, Some(reason)) => Ok(Some(Father::NotAvailable { reason })),
        (_, None) => Ok(person(tree, "father")?.map(|p| Father::Given(Box::new(p)))),
    }
}

fn informant(tree: &Value) -> Result<Option<Informant>, EncodeError> {
    let name = name(tree, "informant")?;
    match text(tree, "informant/relationship")? {
        Some(relationship) => Ok(Some(Informant { relationship, name })),
        None if name.given.is_some() || name.family.is_some() => {
            Err(EncodeError::Missing("informant/relationship".into()))
        }
        None => Ok(None),
    }
}

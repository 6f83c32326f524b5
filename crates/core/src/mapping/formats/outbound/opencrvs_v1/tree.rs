//! The logical tree a mapping writes, read into types that borrow its text.
//! Every problem names the tree path and the rule, never the value found
//! there; paths are spelled out only for an error.

use std::fmt;

use serde_json::Value;
use uuid::Uuid;

use crate::mapping::formats::EncodeError;

#[derive(Debug, Default)]
pub struct Name<'t> {
    pub given: Option<&'t str>,
    pub family: Option<&'t str>,
}

#[derive(Debug)]
pub struct Identifier<'t> {
    pub kind: &'t str,
    pub value: &'t str,
}

#[derive(Debug)]
pub struct Address<'t> {
    pub country: &'t str,
    pub state: Option<&'t str>,
    pub district: Option<&'t str>,
}

#[derive(Debug, Default)]
pub struct Person<'t> {
    pub name: Name<'t>,
    pub gender: Option<&'t str>,
    pub birth_date: Option<&'t str>,
    pub age_years: Option<i64>,
    pub nationality: Option<&'t str>,
    pub identifiers: Vec<Identifier<'t>>,
    pub address: Option<Address<'t>>,
    pub multiple_birth_order: Option<i64>,
}

#[derive(Debug)]
pub enum Father<'t> {
    Given(Box<Person<'t>>),
    /// OpenCRVS 1.x records an absent father as an inactive Patient with a reason.
    NotAvailable {
        reason: &'t str,
    },
}

#[derive(Debug)]
pub struct Informant<'t> {
    pub relationship: &'t str,
    pub name: Name<'t>,
}

#[derive(Debug, Default)]
pub struct Contact<'t> {
    pub relationship: Option<&'t str>,
    pub phone: Option<&'t str>,
    pub email: Option<&'t str>,
}

#[derive(Debug)]
pub struct Notification<'t> {
    pub last_updated: &'t str,
    pub office_id: &'t str,
    pub office_location_id: Option<&'t str>,
    pub contact: Contact<'t>,
    pub child: Person<'t>,
    pub mother: Option<Person<'t>>,
    pub father: Option<Father<'t>>,
    pub informant: Option<Informant<'t>>,
    pub encounter_location_id: &'t str,
    pub body_weight_kg: Option<f64>,
    pub birth_plurality: Option<&'t str>,
    pub attendant_at_birth: Option<&'t str>,
}

/// A path in the tree: `base/rest`, or `rest` alone at the root.
#[derive(Clone, Copy)]
struct Place<'a> {
    base: &'a str,
    rest: &'a str,
}

impl<'a> Place<'a> {
    fn new(base: &'a str, rest: &'a str) -> Place<'a> {
        Place { base, rest }
    }
}

impl<'a> From<&'a str> for Place<'a> {
    fn from(path: &'a str) -> Place<'a> {
        Place::new("", path)
    }
}

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.base.is_empty() {
            write!(f, "{}/", self.base)?;
        }
        f.write_str(self.rest)
    }
}

impl<'t> Notification<'t> {
    pub fn read(tree: &'t Value) -> Result<Notification<'t>, EncodeError> {
        if !tree.is_object() {
            return Err(invalid(&"", "the mapped tree must be an object"));
        }
        let last_updated = required(
            text(tree, "bundle/last_updated".into())?,
            &"bundle/last_updated",
        )?;
        if chrono::DateTime::parse_from_rfc3339(last_updated).is_err() {
            return Err(invalid(
                &"bundle/last_updated",
                "must be an ISO 8601 date-time with an offset (Bundle.meta.lastUpdated)",
            ));
        }
        Ok(Notification {
            last_updated,
            office_id: required(
                location_id(tree, "task/office_id".into())?,
                &"task/office_id",
            )?,
            office_location_id: location_id(tree, "task/office_location_id".into())?,
            contact: Contact {
                relationship: text(tree, "task/contact/relationship".into())?,
                phone: text(tree, "task/contact/phone".into())?,
                email: text(tree, "task/contact/email".into())?,
            },
            child: person(tree, "child")?.unwrap_or_default(),
            mother: person(tree, "mother")?,
            father: father(tree)?,
            informant: informant(tree)?,
            encounter_location_id: required(
                location_id(tree, "encounter/location_id".into())?,
                &"encounter/location_id",
            )?,
            body_weight_kg: weight(tree)?,
            birth_plurality: text(tree, "observations/birth_plurality".into())?,
            attendant_at_birth: text(tree, "observations/attendant_at_birth".into())?,
        })
    }
}

fn invalid(path: &impl fmt::Display, reason: &str) -> EncodeError {
    EncodeError::Invalid {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn required<T>(value: Option<T>, path: &impl fmt::Display) -> Result<T, EncodeError> {
    value.ok_or_else(|| EncodeError::Missing(path.to_string()))
}

fn at<'v>(tree: &'v Value, place: Place<'_>) -> Option<&'v Value> {
    let base = place.base.split('/').filter(|k| !k.is_empty());
    base.chain(place.rest.split('/'))
        .try_fold(tree, |node, key| node.get(key))
        .filter(|v| !v.is_null())
}

/// A non-empty string, or nothing.
fn text<'t>(tree: &'t Value, place: Place<'_>) -> Result<Option<&'t str>, EncodeError> {
    match at(tree, place) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s)),
        Some(Value::String(_)) => Err(invalid(&place, "must not be empty")),
        Some(_) => Err(invalid(&place, "must be text")),
    }
}

/// A FHIR Location id in the registry: OpenCRVS resolves `Location/<id>`.
fn location_id<'t>(tree: &'t Value, place: Place<'_>) -> Result<Option<&'t str>, EncodeError> {
    let id = text(tree, place)?;
    match id {
        Some(s) if Uuid::try_parse(s).is_err() => {
            Err(invalid(&place, "must be the UUID of an OpenCRVS location"))
        }
        _ => Ok(id),
    }
}

fn integer(tree: &Value, place: Place<'_>) -> Result<Option<i64>, EncodeError> {
    match at(tree, place) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| invalid(&place, "must be a whole number, 0 or more")),
    }
}

fn weight(tree: &Value) -> Result<Option<f64>, EncodeError> {
    let path = "observations/body_weight_kg";
    match at(tree, path.into()) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|kg| *kg > 0.0 && *kg <= 10.0)
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    &path,
                    "must be a number of kilograms above 0 and at most 10",
                )
            }),
    }
}

fn name<'t>(tree: &'t Value, prefix: &str) -> Result<Name<'t>, EncodeError> {
    Ok(Name {
        given: text(tree, Place::new(prefix, "name/given"))?,
        family: text(tree, Place::new(prefix, "name/family"))?,
    })
}

fn person<'t>(tree: &'t Value, role: &str) -> Result<Option<Person<'t>>, EncodeError> {
    let Some(node) = at(tree, role.into()) else {
        return Ok(None);
    };
    if !node.is_object() {
        return Err(invalid(&role, "must be an object"));
    }
    let field = |rest| Place::new(role, rest);
    let p = Person {
        name: name(tree, role)?,
        gender: text(tree, field("gender"))?,
        birth_date: text(tree, field("birth_date"))?,
        age_years: integer(tree, field("age_years"))?,
        nationality: text(tree, field("nationality"))?,
        identifiers: identifiers(tree, role)?,
        address: address(tree, role)?,
        multiple_birth_order: integer(tree, field("multiple_birth_order"))?,
    };
    Ok(Some(p))
}

fn identifiers<'t>(tree: &'t Value, role: &str) -> Result<Vec<Identifier<'t>>, EncodeError> {
    let path = Place::new(role, "identifiers");
    let Some(node) = at(tree, path) else {
        return Ok(Vec::new());
    };
    let items = node
        .as_array()
        .ok_or_else(|| invalid(&path, "must be a list"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            // A faulty item's text is named by its key alone, as it always was.
            Ok(Identifier {
                kind: required(text(item, "type".into())?, &format_args!("{path}/{i}/type"))?,
                value: required(
                    text(item, "value".into())?,
                    &format_args!("{path}/{i}/value"),
                )?,
            })
        })
        .collect()
}

fn address<'t>(tree: &'t Value, role: &str) -> Result<Option<Address<'t>>, EncodeError> {
    if at(tree, Place::new(role, "address")).is_none() {
        return Ok(None);
    }
    let country = Place::new(role, "address/country");
    let country = required(text(tree, country)?, &country)?;
    let state_place = Place::new(role, "address/state");
    let state = location_id(tree, state_place)?;
    let district = location_id(tree, Place::new(role, "address/district"))?;
    // OpenCRVS checks that the district is part of the state it is given.
    if district.is_some() && state.is_none() {
        return Err(EncodeError::Missing(state_place.to_string()));
    }
    Ok(Some(Address {
        country,
        state,
        district,
    }))
}

fn father(tree: &Value) -> Result<Option<Father<'_>>, EncodeError> {
    let reason = text(tree, "father/details_not_available/reason".into())?;
    let given = at(tree, "father".into()).is_some_and(|f| {
        f.as_object()
            .is_some_and(|m| m.keys().any(|k| k != "details_not_available"))
    });
    match (given, reason) {
        (true, Some(_)) => Err(invalid(
            &"father/details_not_available",
            "a father given and a father not available are exclusive",
        )),
        (false, Some(reason)) => Ok(Some(Father::NotAvailable { reason })),
        (_, None) => Ok(person(tree, "father")?.map(|p| Father::Given(Box::new(p)))),
    }
}

fn informant(tree: &Value) -> Result<Option<Informant<'_>>, EncodeError> {
    let name = name(tree, "informant")?;
    match text(tree, "informant/relationship".into())? {
        Some(relationship) => Ok(Some(Informant { relationship, name })),
        None if name.given.is_some() || name.family.is_some() => {
            Err(EncodeError::Missing("informant/relationship".into()))
        }
        None => Ok(None),
    }
}

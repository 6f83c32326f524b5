//! A registry's location list: the ids it files places under (receiving
//! offices, health facilities, districts, states), read from the registry's
//! own list rather than kept by hand. Mappings name a place by the code a
//! record carries (a master-facility-list code, a P-code, an office's code)
//! and a lookup kind ([`Lookup`]); the list turns it into the registry's id.
//!
//! Two shapes are read, both as the registries serve them:
//! - a FHIR R4 Bundle of `Location` resources (OpenCRVS 1.x `GET /location`,
//!   and Examplia's published list, `specs/examplia-locations/`);
//! - OpenCRVS 2.x `GET /api/events/locations`: a JSON array of
//!   `{id, name, externalId, administrativeAreaId, validUntil, locationType}`.
//!
//! Names are never kept: a location is its id, kind, codes, parent and
//! whether it still takes new events.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// What kind of place a location is (OpenCRVS location types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    AdminStructure,
    CrvsOffice,
    HealthFacility,
}

impl Kind {
    fn parse(code: &str) -> Option<Kind> {
        match code {
            "ADMIN_STRUCTURE" => Some(Kind::AdminStructure),
            "CRVS_OFFICE" => Some(Kind::CrvsOffice),
            "HEALTH_FACILITY" => Some(Kind::HealthFacility),
            _ => None,
        }
    }
}

/// How a mapping rule resolves a code: `location = "<name>"` in a mapping file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// A health facility by its facility code.
    Facility,
    /// A receiving office by its code.
    Office,
    /// The district an admin code (P-code) lies in; a deeper code resolves
    /// to its district (its first six characters).
    District,
    /// The top-level area (state) an admin code lies in.
    State,
}

impl Lookup {
    pub const ALL: [Lookup; 4] = [
        Lookup::Facility,
        Lookup::Office,
        Lookup::District,
        Lookup::State,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Lookup::Facility => "facility",
            Lookup::Office => "office",
            Lookup::District => "district",
            Lookup::State => "state",
        }
    }

    pub fn parse(s: &str) -> Option<Lookup> {
        Lookup::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a code did not resolve. Its message names the kind of place, not the
/// code: a record's place code (a home's P-code) is the record's data, so it
/// stays out of decisions and logs; `code` is kept for `config check`, which
/// reports codes written in mapping files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    #[error("no {lookup} with this code is in the registry's location list")]
    Unknown { lookup: Lookup, code: String },
    #[error("the {lookup} with this code is closed in the registry's location list")]
    Inactive { lookup: Lookup, code: String },
}

impl Unresolved {
    /// A short code for decisions and status: `location_unknown` or `location_inactive`.
    pub fn code(&self) -> &'static str {
        match self {
            Unresolved::Unknown { .. } => "location_unknown",
            Unresolved::Inactive { .. } => "location_inactive",
        }
    }

    /// The place code that did not resolve.
    pub fn place_code(&self) -> &str {
        match self {
            Unresolved::Unknown { code, .. } | Unresolved::Inactive { code, .. } => code,
        }
    }
}

/// One place the registry knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub id: String,
    pub kind: Kind,
    /// Codes it is known by (facility code, P-code, internal id), any system.
    pub codes: Vec<String>,
    /// The id of the area it lies in.
    pub part_of: Option<String>,
    /// False for a closed place: records may name it, a registry takes no new event at it.
    pub active: bool,
}

/// Why a location list could not be read. Names the entry, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("is not JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("is neither a FHIR Bundle of Location resources nor an OpenCRVS 2.x location array")]
    UnknownShape,
    #[error("entry {index}: {problem}")]
    Entry { index: usize, problem: &'static str },
}

/// A registry's locations, indexed by id and by code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocationList {
    by_id: HashMap<String, Location>,
    /// (kind, code) -> id
    by_code: HashMap<(Kind, String), String>,
}

impl LocationList {
    /// Read a list in either shape. `now` decides whether a 2.x `validUntil` has passed.
    pub fn parse(bytes: &[u8], now: DateTime<Utc>) -> Result<LocationList, ParseError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
        let locations = match &value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| from_events_v2(item, now).map_err(|p| entry(i, p)))
                .collect::<Result<Vec<_>, _>>()?,
            Value::Object(o) if o.get("resourceType") == Some(&Value::from("Bundle")) => o
                .get("entry")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .enumerate()
                .filter_map(|(i, e)| {
                    from_fhir(e.get("resource").unwrap_or(&Value::Null))
                        .map_err(|p| entry(i, p))
                        .transpose()
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(ParseError::UnknownShape),
        };
        Ok(LocationList::from_locations(locations))
    }

    pub fn from_locations(locations: impl IntoIterator<Item = Location>) -> LocationList {
        let mut list = LocationList::default();
        for location in locations {
            for code in &location.codes {
                list.by_code
                    .insert((location.kind, code.clone()), location.id.clone());
            }
            list.by_id.insert(location.id.clone(), location);
        }
        list
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Location> {
        self.by_id.get(id)
    }

    /// The registry's id for `code`, looked up as `lookup` says.
    pub fn resolve(&self, lookup: Lookup, code: &str) -> Result<&str, Unresolved> {
        let unknown = || Unresolved::Unknown {
            lookup,
            code: code.to_string(),
        };
        let found = match lookup {
            Lookup::Facility => self.find(Kind::HealthFacility, code),
            Lookup::Office => self.find(Kind::CrvsOffice, code),
            Lookup::District => self.area(code),
            Lookup::State => self.area(code).map(|l| self.top(l)),
        }
        .ok_or_else(unknown)?;
        if !found.active {
            return Err(Unresolved::Inactive {
                lookup,
                code: code.to_string(),
            });
        }
        Ok(&found.id)
    }

    fn find(&self, kind: Kind, code: &str) -> Option<&Location> {
        self.by_code
            .get(&(kind, code.to_string()))
            .and_then(|id| self.by_id.get(id))
    }

    /// An admin area by P-code; a code deeper than a district (`EXssddnnn`)
    /// falls back to its district (`EXssdd`), the deepest level OpenCRVS keeps.
    fn area(&self, code: &str) -> Option<&Location> {
        self.find(Kind::AdminStructure, code).or_else(|| {
            code.get(..6)
                .filter(|d| d.len() < code.len())
                .and_then(|district| self.find(Kind::AdminStructure, district))
        })
    }

    /// The top-level area above `location` (itself when it has no parent area).
    fn top<'a>(&'a self, mut location: &'a Location) -> &'a Location {
        // Bounded: a list with a cycle stops after as many steps as it has entries.
        for _ in 0..self.by_id.len() {
            match location
                .part_of
                .as_ref()
                .and_then(|p| self.by_id.get(p))
                .filter(|p| p.kind == Kind::AdminStructure)
            {
                Some(parent) => location = parent,
                None => break,
            }
        }
        location
    }
}

fn entry(index: usize, problem: &'static str) -> ParseError {
    ParseError::Entry { index, problem }
}

/// A FHIR `Location`; other resources in the Bundle are skipped (Ok(None)).
fn from_fhir(resource: &Value) -> Result<Option<Location>, &'static str> {
    if resource.get("resourceType").and_then(Value::as_str) != Some("Location") {
        return Ok(None);
    }
    let id = resource
        .get("id")
        .and_then(Value::as_str)
        .ok_or("a Location has no id")?;
    let Some(kind) = resource
        .pointer("/type/0/coding/0/code")
        .and_then(Value::as_str)
        .and_then(Kind::parse)
    else {
        // A location type this gateway does not resolve (e.g. IDP offices).
        return Ok(None);
    };
    let codes = resource
        .get("identifier")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.get("value").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    let part_of = resource
        .pointer("/partOf/reference")
        .and_then(Value::as_str)
        .map(|r| r.strip_prefix("Location/").unwrap_or(r).to_string())
        .filter(|r| r != "0");
    Ok(Some(Location {
        id: id.to_string(),
        kind,
        codes,
        part_of,
        active: resource.get("status").and_then(Value::as_str) != Some("inactive"),
    }))
}

/// One entry of OpenCRVS 2.x `GET /api/events/locations`.
fn from_events_v2(item: &Value, now: DateTime<Utc>) -> Result<Location, &'static str> {
    let text = |key: &str| item.get(key).and_then(Value::as_str);
    let id = text("id").ok_or("a location has no id")?;
    let kind = text("locationType")
        .and_then(Kind::parse)
        .ok_or("a location has no known locationType")?;
    let valid_until = match item.get("validUntil") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| "validUntil is not an RFC 3339 date-time")?
                .with_timezone(&Utc),
        ),
        Some(_) => return Err("validUntil is not a string"),
    };
    Ok(Location {
        id: id.to_string(),
        kind,
        codes: text("externalId").map(str::to_string).into_iter().collect(),
        part_of: text("administrativeAreaId").map(str::to_string),
        active: valid_until.is_none_or(|until| until > now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn examplia() -> LocationList {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/locations/examplia-opencrvs.json"
        );
        LocationList::parse(&std::fs::read(path).unwrap(), now()).unwrap()
    }

    #[test]
    fn examplias_list_resolves_facilities_offices_districts_and_states() {
        let list = examplia();
        assert_eq!(list.len(), 48);
        assert_eq!(
            list.resolve(Lookup::Facility, "HF-010112"),
            Ok("86d5e060-5e72-5f98-906f-5d28a340da85")
        );
        assert_eq!(
            list.resolve(Lookup::Office, "CRVS-EX01-HQ"),
            Ok("cf1a580d-e405-5d49-93d8-20b7cc249525")
        );
        let district = list.resolve(Lookup::District, "EX0101").unwrap();
        assert_eq!(district, "b3ff5cc8-e118-5ba2-ac10-8e70693fe102");
        // A settlement code resolves to its district.
        assert_eq!(list.resolve(Lookup::District, "EX0101003"), Ok(district));
        assert_eq!(
            list.resolve(Lookup::State, "EX0101003"),
            Ok("3567b97e-55d3-599e-b9c2-6c4404e03a5c")
        );
        assert_eq!(
            list.resolve(Lookup::State, "EX01"),
            Ok("3567b97e-55d3-599e-b9c2-6c4404e03a5c")
        );
    }

    #[test]
    fn unknown_and_closed_places_do_not_resolve() {
        let list = examplia();
        assert_eq!(
            list.resolve(Lookup::Facility, "HF-999999"),
            Err(Unresolved::Unknown {
                lookup: Lookup::Facility,
                code: "HF-999999".into()
            })
        );
        let closed = list.resolve(Lookup::Facility, "HF-020410").unwrap_err();
        assert_eq!(closed.code(), "location_inactive");
        // A facility code is not an office code, nor a P-code.
        assert!(list.resolve(Lookup::Office, "HF-010112").is_err());
        assert!(list.resolve(Lookup::District, "HF-010112").is_err());
        // A six-character prefix of an unknown district does not match anything else.
        assert!(list.resolve(Lookup::District, "EX9901001").is_err());
    }

    #[test]
    fn the_events_v2_shape_reads_the_same_places() {
        let v2 = json!([
            {"id": "s1", "name": "State", "externalId": "EX01", "administrativeAreaId": null, "validUntil": null, "locationType": "ADMIN_STRUCTURE"},
            {"id": "d1", "name": "District", "externalId": "EX0101", "administrativeAreaId": "s1", "validUntil": null, "locationType": "ADMIN_STRUCTURE"},
            {"id": "f1", "name": "Clinic", "externalId": "HF-010101", "administrativeAreaId": "d1", "validUntil": null, "locationType": "HEALTH_FACILITY"},
            {"id": "f2", "name": "Closed", "externalId": "HF-010102", "administrativeAreaId": "d1", "validUntil": "2026-11-01T00:00:00Z", "locationType": "HEALTH_FACILITY"},
            {"id": "f3", "name": "Closing", "externalId": "HF-010103", "administrativeAreaId": "d1", "validUntil": "2027-01-01T00:00:00Z", "locationType": "HEALTH_FACILITY"}
        ]);
        let list = LocationList::parse(v2.to_string().as_bytes(), now()).unwrap();
        assert_eq!(list.resolve(Lookup::Facility, "HF-010101"), Ok("f1"));
        assert_eq!(list.resolve(Lookup::State, "EX0101007"), Ok("s1"));
        assert_eq!(
            list.resolve(Lookup::Facility, "HF-010102")
                .unwrap_err()
                .code(),
            "location_inactive"
        );
        assert_eq!(list.resolve(Lookup::Facility, "HF-010103"), Ok("f3"));
    }

    #[test]
    fn malformed_lists_are_refused_naming_the_entry() {
        assert!(matches!(
            LocationList::parse(b"{", now()),
            Err(ParseError::NotJson { .. })
        ));
        assert_eq!(
            LocationList::parse(b"{\"resourceType\": \"Patient\"}", now()),
            Err(ParseError::UnknownShape)
        );
        let bad = json!([{"id": "x", "locationType": "MOON_BASE"}]);
        assert_eq!(
            LocationList::parse(bad.to_string().as_bytes(), now()),
            Err(ParseError::Entry {
                index: 0,
                problem: "a location has no known locationType"
            })
        );
    }

    #[test]
    fn a_cycle_in_part_of_does_not_loop() {
        let area = |id: &str, parent: &str, code: &str| Location {
            id: id.into(),
            kind: Kind::AdminStructure,
            codes: vec![code.into()],
            part_of: Some(parent.into()),
            active: true,
        };
        let list = LocationList::from_locations([area("a", "b", "EX01"), area("b", "a", "EX02")]);
        assert!(list.resolve(Lookup::State, "EX01").is_ok());
    }
}

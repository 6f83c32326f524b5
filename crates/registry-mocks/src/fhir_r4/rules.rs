//! The document rules of the Ministry of Health's exchange, checked on every
//! Bundle it is sent, whatever the interaction (create, update, conditional
//! update). Each rule names where it comes from:
//!
//! - FHIR R4 4.0.1, Bundle (bundle.html, invariants bdl-7, bdl-9, bdl-10,
//!   bdl-11; a document entry has no request, response or search) and
//!   documents.html (every reference resolves inside the document);
//! - R4 Composition (composition.html: status, type, date, author 1..*, title;
//!   cmp-1), Encounter (status, class 1..1), Observation (status, code 1..1),
//!   RelatedPerson (patient 1..1), Patient (gender value set, birthDate a date);
//! - R4 json.html: no empty strings, arrays, objects or nulls;
//! - the R4 Vital Signs profile (observation-vitalsigns.html,
//!   `http://hl7.org/fhir/StructureDefinition/vitalsigns`), for every
//!   Observation whose category is `vital-signs`: status, category, a LOINC
//!   code, subject (a Patient), effective[x] 1..1 (dateTime or Period, vs-1: a
//!   dateTime is precise to the day at least), value[x] or dataAbsentReason
//!   (vs-2), a valueQuantity with value, unit, UCUM system and code;
//! - the exchange's own document profile: Composition.type carries a LOINC
//!   coding (R4 binds it to the LOINC document codes, "FHIR Document Type
//!   Codes", with strength preferred; this exchange requires it).

use std::collections::{HashMap, HashSet};

use chrono::DateTime;
use serde_json::{Value, json};

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const VITAL_SIGNS_PROFILE: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";

/// One failed rule: FHIRPath location, issue type, rule text.
pub(super) struct Issue {
    pub expression: String,
    pub code: &'static str,
    pub diagnostics: String,
}

pub(super) fn issue(
    expression: impl Into<String>,
    code: &'static str,
    diagnostics: impl Into<String>,
) -> Issue {
    Issue {
        expression: expression.into(),
        code,
        diagnostics: diagnostics.into(),
    }
}

/// `system|value` of `Bundle.identifier`.
pub(super) fn bundle_key(bundle: &Value) -> Option<String> {
    let system = bundle["identifier"]["system"].as_str()?;
    let value = bundle["identifier"]["value"].as_str()?;
    Some(format!("{system}|{value}"))
}

/// Every document rule the Bundle breaks.
pub(super) fn document_issues(bundle: &Value) -> Vec<Issue> {
    let mut issues = Vec::new();
    empty_values(bundle, "Bundle", &mut issues);
    if bundle["type"] != "document" {
        issues.push(issue(
            "Bundle.type",
            "value",
            "Bundle.type must be 'document'",
        ));
    }
    if bundle_key(bundle).is_none() {
        issues.push(issue(
            "Bundle.identifier",
            "invariant",
            "bdl-9: a document must have an identifier with a system and a value",
        ));
    }
    if !bundle["timestamp"].as_str().is_some_and(is_instant) {
        issues.push(issue(
            "Bundle.timestamp",
            "invariant",
            "bdl-10: a document must have a timestamp (an instant)",
        ));
    }
    let entries = bundle["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if entries.first().map(|e| &e["resource"]["resourceType"]) != Some(&json!("Composition")) {
        issues.push(issue(
            "Bundle.entry[0]",
            "invariant",
            "bdl-11: the first resource of a document must be a Composition",
        ));
    }
    let mut urls = HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("Bundle.entry[{i}]");
        match entry["fullUrl"].as_str() {
            None => issues.push(issue(
                format!("{at}.fullUrl"),
                "required",
                "every entry of a document needs a fullUrl",
            )),
            Some(url) if !urls.insert(url) => {
                issues.push(issue(
                    format!("{at}.fullUrl"),
                    "invariant",
                    "bdl-7: fullUrl must be unique",
                ));
            }
            Some(_) => {}
        }
        for element in ["request", "response", "search"] {
            if !entry[element].is_null() {
                issues.push(issue(
                    format!("{at}.{element}"),
                    "invariant",
                    format!("a document entry has no {element}"),
                ));
            }
        }
        resource_issues(&entry["resource"], &format!("{at}.resource"), &mut issues);
    }
    if let Some(composition) = entries.first().map(|e| &e["resource"]) {
        composition_issues(composition, &mut issues);
    }
    let kinds: HashMap<&str, &str> = entries
        .iter()
        .filter_map(|e| {
            Some((
                e["fullUrl"].as_str()?,
                e["resource"]["resourceType"].as_str()?,
            ))
        })
        .collect();
    for (i, entry) in entries.iter().enumerate() {
        let resource = &entry["resource"];
        if resource["resourceType"] == "Observation" && is_vital_sign(resource) {
            let at = format!("Bundle.entry[{i}].resource");
            vital_sign_issues(resource, &at, &kinds, &mut issues);
        }
    }
    reference_issues(bundle, &urls, &mut issues);
    issues
}

fn resource_issues(resource: &Value, at: &str, issues: &mut Vec<Issue>) {
    let Some(kind) = resource["resourceType"].as_str() else {
        issues.push(issue(
            at,
            "required",
            "every entry of a document needs a resource",
        ));
        return;
    };
    let required: &[&str] = match kind {
        "Encounter" => &["status", "class"],
        "Observation" => &["status", "code"],
        "RelatedPerson" => &["patient"],
        _ => &[],
    };
    for field in required {
        if resource[field].is_null() {
            issues.push(issue(
                format!("{at}.{field}"),
                "required",
                format!("{kind}.{field} is required (1..1)"),
            ));
        }
    }
    if kind == "Patient" {
        if let Some(gender) = resource.get("gender") {
            if !["male", "female", "other", "unknown"]
                .contains(&gender.as_str().unwrap_or_default())
            {
                issues.push(issue(
                    format!("{at}.gender"),
                    "code-invalid",
                    "Patient.gender is not in the required value set",
                ));
            }
        }
        if let Some(date) = resource.get("birthDate") {
            if !date.as_str().is_some_and(is_date) {
                issues.push(issue(
                    format!("{at}.birthDate"),
                    "value",
                    "Patient.birthDate is not a FHIR date",
                ));
            }
        }
    }
}

fn composition_issues(composition: &Value, issues: &mut Vec<Issue>) {
    let at = "Bundle.entry[0].resource";
    if composition["resourceType"] != "Composition" {
        return;
    }
    let status = composition["status"].as_str().unwrap_or_default();
    if !["preliminary", "final", "amended", "entered-in-error"].contains(&status) {
        issues.push(issue(
            format!("{at}.status"),
            "required",
            "Composition.status is required and must be a valid code",
        ));
    }
    for field in ["type", "date", "title", "subject"] {
        if composition[field].is_null() {
            issues.push(issue(
                format!("{at}.{field}"),
                "required",
                format!("Composition.{field} is required"),
            ));
        }
    }
    if !composition["type"].is_null() && !has_coding(&composition["type"], LOINC) {
        issues.push(issue(
            format!("{at}.type"),
            "code-invalid",
            "Composition.type must carry a LOINC document code (system http://loinc.org)",
        ));
    }
    if composition["author"]
        .as_array()
        .is_none_or(|a| a.is_empty())
    {
        issues.push(issue(
            format!("{at}.author"),
            "required",
            "Composition.author is required (1..*)",
        ));
    }
    for (i, section) in composition["section"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let has = |f: &str| !section[f].is_null();
        if !has("text") && !has("entry") && !has("section") {
            issues.push(issue(
                format!("{at}.section[{i}]"),
                "invariant",
                "cmp-1: a section must have text, entries or sections",
            ));
        }
    }
}

/// A CodeableConcept with a coding of `system` that has a code.
fn has_coding(concept: &Value, system: &str) -> bool {
    codings(concept).any(|c| c["system"] == system && c["code"].is_string())
}

fn codings(concept: &Value) -> impl Iterator<Item = &Value> {
    concept["coding"].as_array().into_iter().flatten()
}

/// An Observation the vital signs profile applies to: it claims the profile,
/// or its category is `vital-signs` (the profile's VSCat slice).
fn is_vital_sign(observation: &Value) -> bool {
    let claims = observation["meta"]["profile"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p == VITAL_SIGNS_PROFILE);
    claims || vital_signs_category(observation)
}

fn vital_signs_category(observation: &Value) -> bool {
    observation["category"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(codings)
        .any(|c| c["system"] == OBSERVATION_CATEGORY && c["code"] == "vital-signs")
}

/// The R4 vital signs profile's required elements and invariants vs-1, vs-2.
fn vital_sign_issues(o: &Value, at: &str, kinds: &HashMap<&str, &str>, issues: &mut Vec<Issue>) {
    let mut fail = |path: &str, code: &'static str, text: &str| {
        issues.push(issue(format!("{at}{path}"), code, text));
    };
    const STATUSES: [&str; 8] = [
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    ];
    if !o["status"].as_str().is_some_and(|s| STATUSES.contains(&s)) {
        fail(
            ".status",
            "required",
            "vital signs: status is required (1..1)",
        );
    }
    if !vital_signs_category(o) {
        fail(
            ".category",
            "required",
            "vital signs: a category coding observation-category#vital-signs is required",
        );
    }
    if !has_coding(&o["code"], LOINC) {
        fail(
            ".code",
            "code-invalid",
            "vital signs: code needs a LOINC coding",
        );
    }
    let subject = o["subject"]["reference"].as_str().unwrap_or_default();
    let patient = kinds.get(subject) == Some(&"Patient") || subject.starts_with("Patient/");
    if !patient {
        fail(
            ".subject",
            "required",
            "vital signs: subject is required and must be a Patient (1..1)",
        );
    }
    effective_issues(o, &mut fail);
    let has_value = o
        .as_object()
        .is_some_and(|m| m.keys().any(|k| k.starts_with("value")));
    let grouped = !o["component"].is_null() || !o["hasMember"].is_null();
    if !grouped && !has_value && o["dataAbsentReason"].is_null() {
        fail(
            "",
            "invariant",
            "vs-2: without component or hasMember, value[x] or dataAbsentReason is required",
        );
    }
    let q = &o["valueQuantity"];
    let complete = q["value"].is_number()
        && q["unit"].is_string()
        && q["system"] == UCUM
        && q["code"].is_string();
    if !q.is_null() && !complete {
        fail(
            ".valueQuantity",
            "required",
            "vital signs: valueQuantity needs value, unit, system http://unitsofmeasure.org and code",
        );
    }
}

/// effective[x] 1..1, only dateTime or Period; vs-1: a dateTime is precise to the day.
fn effective_issues(o: &Value, fail: &mut impl FnMut(&str, &'static str, &str)) {
    let other = ["effectiveInstant", "effectiveTiming"]
        .iter()
        .any(|k| !o[k].is_null());
    match (&o["effectiveDateTime"], &o["effectivePeriod"]) {
        (Value::String(t), Value::Null) => {
            if t.len() < 10 || !is_date(&t[..10]) {
                fail(
                    ".effectiveDateTime",
                    "invariant",
                    "vs-1: effectiveDateTime must be precise to the day at least",
                );
            }
        }
        (Value::Null, Value::Object(_)) => {}
        _ if other => fail(
            ".effective",
            "structure",
            "vital signs: effective[x] must be a dateTime or a Period",
        ),
        _ => fail(
            ".effective",
            "required",
            "vital signs: effective[x] is required (1..1, dateTime or Period)",
        ),
    }
}

/// Every `urn:uuid:` reference in the document resolves to an entry.
fn reference_issues(bundle: &Value, urls: &HashSet<&str>, issues: &mut Vec<Issue>) {
    let mut unresolved = Vec::new();
    walk(bundle, "Bundle", &mut |path, value| {
        if let Some(reference) = value.get("reference").and_then(Value::as_str) {
            if reference.starts_with("urn:uuid:") && !urls.contains(reference) {
                unresolved.push(format!("{path}.reference"));
            }
        }
    });
    for path in unresolved {
        issues.push(issue(
            path,
            "invariant",
            "a urn:uuid reference does not resolve to an entry of the document",
        ));
    }
}

/// FHIR JSON has no empty strings, arrays or objects and no nulls.
fn empty_values(value: &Value, path: &str, issues: &mut Vec<Issue>) {
    let empty = match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if empty {
        issues.push(issue(
            path,
            "structure",
            "empty values and nulls are not allowed in FHIR JSON",
        ));
        return;
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                empty_values(item, &format!("{path}[{i}]"), issues);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                // `_x` arrays align with `x` and may hold nulls.
                if k.starts_with('_') && v.is_array() {
                    continue;
                }
                empty_values(v, &format!("{path}.{k}"), issues);
            }
        }
        _ => {}
    }
}

/// Visit every object with its FHIRPath-like path. Depth is bounded by the
/// gateway's JSON parser defaults (serde_json refuses beyond 128).
fn walk(value: &Value, path: &str, visit: &mut dyn FnMut(&str, &Value)) {
    match value {
        Value::Object(map) => {
            visit(path, value);
            for (k, v) in map {
                walk(v, &format!("{path}.{k}"), visit);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), visit);
            }
        }
        _ => {}
    }
}

pub(super) fn is_instant(s: &str) -> bool {
    s.len() > 19 && s.contains('T') && DateTime::parse_from_rfc3339(s).is_ok()
}

fn is_date(s: &str) -> bool {
    match s.len() {
        4 => s.bytes().all(|b| b.is_ascii_digit()),
        7 => chrono::NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").is_ok(),
        10 => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        json!({
            "resourceType": "Bundle", "type": "document",
            "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:5f0c0000-0000-4000-8000-000000000001"},
            "timestamp": "2025-03-04T09:30:00Z",
            "entry": [
                {"fullUrl": "urn:uuid:01", "resource": {"resourceType": "Composition", "status": "final",
                  "type": {"coding": [{"system": "http://loinc.org", "code": "71230-7"}]}, "subject": {"reference": "urn:uuid:02"}, "date": "2025-03-04T09:30:00Z",
                  "author": [{"reference": "urn:uuid:02"}], "title": "Birth notification",
                  "section": [{"title": "Child", "entry": [{"reference": "urn:uuid:02"}]}]}},
                {"fullUrl": "urn:uuid:02", "resource": {"resourceType": "Patient", "gender": "female", "birthDate": "2025-03-01"}},
                {"fullUrl": "urn:uuid:03", "resource": {"resourceType": "Observation", "status": "final",
                  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
                  "code": {"coding": [{"system": "http://loinc.org", "code": "8339-4"}]},
                  "subject": {"reference": "urn:uuid:02"}, "effectiveDateTime": "2025-03-01T06:40:00+02:00",
                  "valueQuantity": {"value": 3150, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"}}}
            ]
        })
    }

    fn rules(bundle: &Value) -> Vec<String> {
        document_issues(bundle)
            .into_iter()
            .map(|i| format!("{} {}", i.code, i.expression))
            .collect()
    }

    #[test]
    fn a_valid_document_has_no_issue() {
        assert_eq!(rules(&document()), Vec::<String>::new());
    }

    #[test]
    fn each_document_rule_is_checked() {
        let mut b = document();
        b["identifier"] = json!({"value": "x"});
        b["entry"][1]["fullUrl"] = json!("urn:uuid:01");
        b["entry"][0]["resource"]["section"][0] = json!({"title": "Empty"});
        b["entry"][0]["resource"]["author"] = json!([]);
        b["entry"][1]["resource"]["gender"] = json!("F");
        let found = rules(&b);
        for expected in [
            "invariant Bundle.identifier",
            "invariant Bundle.entry[1].fullUrl",
            "invariant Bundle.entry[0].resource.section[0]",
            "required Bundle.entry[0].resource.author",
            "structure Bundle.entry[0].resource.author",
            "code-invalid Bundle.entry[1].resource.gender",
            // urn:uuid:02 no longer exists once entry 1 took 01's fullUrl.
            "invariant Bundle.entry[0].resource.subject.reference",
        ] {
            assert!(
                found.contains(&expected.to_string()),
                "{expected} not in {found:?}"
            );
        }
    }

    #[test]
    fn the_composition_must_come_first() {
        let mut b = document();
        b["entry"].as_array_mut().unwrap().reverse();
        assert!(rules(&b).contains(&"invariant Bundle.entry[0]".to_string()));
    }

    #[test]
    fn the_composition_type_needs_a_loinc_coding() {
        let mut b = document();
        b["entry"][0]["resource"]["type"] = json!({"coding": [{"system": "http://opencrvs.org/doc-types", "code": "birth-notification"}]});
        assert_eq!(rules(&b), ["code-invalid Bundle.entry[0].resource.type"]);
    }

    #[test]
    fn a_vital_sign_needs_effective_subject_loinc_and_a_value() {
        let obs = "Bundle.entry[2].resource";
        let mut b = document();
        b["entry"][2]["resource"]
            .as_object_mut()
            .unwrap()
            .remove("effectiveDateTime");
        assert_eq!(rules(&b), [format!("required {obs}.effective")]);
        b["entry"][2]["resource"]["effectiveDateTime"] = json!("2025-03");
        assert_eq!(rules(&b), [format!("invariant {obs}.effectiveDateTime")]);
        b["entry"][2]["resource"]["effectivePeriod"] = json!({"start": "2025-03-01"});
        b["entry"][2]["resource"]
            .as_object_mut()
            .unwrap()
            .remove("effectiveDateTime");
        assert_eq!(rules(&b), Vec::<String>::new());
        let o = &mut b["entry"][2]["resource"];
        o["code"] = json!({"text": "birth weight"});
        o["subject"] = json!({"reference": "urn:uuid:01"});
        o.as_object_mut().unwrap().remove("valueQuantity");
        let found = rules(&b);
        for expected in [
            format!("code-invalid {obs}.code"),
            format!("required {obs}.subject"),
            format!("invariant {obs}"),
        ] {
            assert!(found.contains(&expected), "{expected} not in {found:?}");
        }
    }

    #[test]
    fn an_observation_without_the_vital_signs_category_needs_no_effective() {
        let mut b = document();
        let o = b["entry"][2]["resource"].as_object_mut().unwrap();
        o.remove("category");
        o.remove("effectiveDateTime");
        assert_eq!(rules(&b), Vec::<String>::new());
    }
}

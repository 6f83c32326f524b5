//! The document as a `serde_json::Value` tree, as the encoder built it
//! before it wrote bytes directly (`document.rs`): kept for the tests only,
//! as the oracle the direct writer must agree with (through the generic
//! element-order writer, `json.rs`).

use std::cell::RefCell;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::document::{
    ACT_CODE, EMPTY_REASON, EMPTY_REASONS, ENCOUNTER_CLASSES, EXT_BIRTH_PLACE, EXT_BIRTH_TIME,
    EXT_NAME_REPRESENTATION, EXT_NATIONALITY, LOINC, OBSERVATION_CATEGORY, ROLE_CODE, SECTIONS,
    STATE_DOCUMENT_TYPES, UCUM, UNHCR_SYSTEMS, birth_date, from_table, gender, kilograms_to_grams,
};
use super::tree::{Tree, invalid, is_full_date, is_instant, is_offset, is_time};
use crate::config::FhirWrite;
use crate::mapping::RouteContext;
use crate::mapping::formats::EncodeError;

/// One resource of the document and its place in it.
struct Entry {
    role: &'static str,
    resource: Value,
}

/// Stable per-role ids: the entry's `fullUrl` is `urn:uuid:<id>` and the resource's `id` is `<id>`.
struct Ids<'c>(&'c RouteContext, RefCell<Vec<(String, Uuid)>>);

impl Ids<'_> {
    /// Each role's id is a SHA-1 (UUIDv5), and a document names most roles
    /// several times: derived once per role.
    fn id(&self, role: &str) -> String {
        let mut known = self.1.borrow_mut();
        let id = match known.iter().find(|(r, _)| r == role) {
            Some((_, id)) => *id,
            None => {
                let id = self.0.derived(role);
                known.push((role.to_string(), id));
                id
            }
        };
        id.to_string()
    }
    fn url(&self, role: &str) -> String {
        format!("urn:uuid:{}", self.id(role))
    }
    fn reference(&self, role: &str) -> Value {
        obj([("reference", Value::String(self.url(role)))])
    }
}

pub fn build(tree: &Value, ctx: &RouteContext, write: FhirWrite) -> Result<Value, EncodeError> {
    let t = Tree(tree);
    let ids = Ids(ctx, RefCell::default());
    let timestamp = t.required_text("document/timestamp")?;
    if !is_instant(timestamp) {
        return Err(invalid(
            "document/timestamp",
            "must be a date-time to the second with an offset (FHIR instant)",
        ));
    }
    if !t.has("child") {
        return Err(EncodeError::Missing("child".into()));
    }
    let entry = |role, resource| Entry { role, resource };
    let mut entries = vec![entry("child", child(&t)?)];
    let mut sections = vec![section(&ids, "child-details", "Child details", &["child"])];
    if t.has("mother") {
        entries.push(entry("mother", mother(&t)?));
        sections.push(section(
            &ids,
            "mother-details",
            "Mother details",
            &["mother"],
        ));
    }
    match (t.has("father"), t.has("father_absent")) {
        (true, true) => {
            return Err(invalid(
                "father_absent",
                "cannot be given together with father",
            ));
        }
        (true, false) => {
            entries.push(entry("father", father(&t, &ids)?));
            sections.push(section(
                &ids,
                "father-details",
                "Father details",
                &["father"],
            ));
        }
        (false, true) => sections.push(father_absent(&t)?),
        (false, false) => {}
    }
    if t.has("informant") {
        entries.push(entry("informant", informant(&t, &ids)?));
        sections.push(section(
            &ids,
            "informant-details",
            "Informant details",
            &["informant"],
        ));
    }
    let encounter = t.has("encounter");
    let mut birth = Vec::new();
    if encounter {
        entries.push(entry("encounter", birth_encounter(&t, &ids)?));
        birth.push("encounter");
    }
    let born = birth_instant(&entries[0].resource);
    if let Some(obs) = birth_weight(&t, &ids, encounter, born)? {
        entries.push(entry("birth-weight", obs));
        birth.push("birth-weight");
    }
    if let Some(obs) = plurality(&t, &ids, encounter)? {
        entries.push(entry("plurality", obs));
        birth.push("plurality");
    }
    if !birth.is_empty() {
        sections.push(section(&ids, "birth-encounter", "Birth encounter", &birth));
    }
    entries.push(entry("author", author(&t)?));
    // bdl-11: the Composition is the first entry.
    let mut composition = composition(&t, &ids, timestamp, encounter, sections)?;
    if ctx.record_version > 1 {
        // R4 CompositionStatus: modified after it was released as final.
        composition["status"] = json!("amended");
    }
    entries.insert(0, entry("composition", composition));
    // Stable for every resend and version of one source record on this route
    // (per owning agency): a resend is recognised, a correction updates.
    let document = ctx.record_key();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "meta": {"lastUpdated": timestamp},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{document}")},
        "type": "document",
        "timestamp": timestamp,
    });
    // Moved in, not through json!, which would copy every resource.
    bundle["entry"] = entries.into_iter().map(|e| bundle_entry(&ids, e)).collect();
    if write == FhirWrite::Put {
        bundle["id"] = json!(document.to_string());
    }
    Ok(bundle)
}

/// When the child was born, as precisely as the document says: the
/// patient-birthTime dateTime, else a full birthDate; `None` for an estimate
/// (a year or a month), which the vital signs profile cannot take (vs-1).
fn birth_instant(child: &Value) -> Option<String> {
    let time = child["_birthDate"]["extension"][0]["valueDateTime"].as_str();
    let date = child["birthDate"].as_str().filter(|d| is_full_date(d));
    time.or(date).map(str::to_string)
}

fn bundle_entry(ids: &Ids, e: Entry) -> Value {
    let mut resource = e.resource;
    resource["id"] = Value::String(ids.id(e.role));
    let mut entry = Map::new();
    entry.insert("fullUrl".into(), Value::String(ids.url(e.role)));
    entry.insert("resource".into(), resource);
    Value::Object(entry)
}

/// An object of `members`, moved in. (`json!` serialises each value it is
/// given, so a `Value` passed to it would be copied whole.)
fn obj<const N: usize>(members: [(&str, Value); N]) -> Value {
    Value::Object(
        members
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
    )
}

fn coding(system: &str, code: &str, display: Option<&str>) -> Value {
    let mut c = json!({"system": system, "code": code});
    if let Some(d) = display {
        c["display"] = json!(d);
    }
    c
}

/// A Composition section coded like the Examplia profile, listing the entries of `roles`.
fn section(ids: &Ids, code: &str, title: &str, roles: &[&str]) -> Value {
    let mut section = obj([
        ("title", title.into()),
        (
            "code",
            obj([("coding", vec![coding(SECTIONS, code, None)].into())]),
        ),
    ]);
    section["entry"] = roles.iter().map(|r| ids.reference(r)).collect();
    section
}

fn composition(
    t: &Tree,
    ids: &Ids,
    timestamp: &str,
    encounter: bool,
    sections: Vec<Value>,
) -> Result<Value, EncodeError> {
    let code = t.required_code("document/type/code")?;
    let system = t.required_uri("document/type/system")?;
    let display = t.text("document/type/display")?;
    let mut codings = vec![coding(system, code, display)];
    if let Some(local) = t.code("document/type/local/code")? {
        let system = t.required_uri("document/type/local/system")?;
        codings.push(coding(
            system,
            local,
            t.text("document/type/local/display")?,
        ));
    }
    let mut doc_type = obj([("coding", codings.into())]);
    if let Some(text) = t.text("document/type/text")? {
        doc_type["text"] = json!(text);
    }
    let mut c = obj([
        ("resourceType", "Composition".into()),
        ("status", "final".into()),
        ("type", doc_type),
        ("subject", ids.reference("child")),
        ("date", timestamp.into()),
        ("author", vec![ids.reference("author")].into()),
        ("title", t.required_text("document/title")?.into()),
        ("section", sections.into()),
    ]);
    if encounter {
        c["encounter"] = ids.reference("encounter");
    }
    Ok(c)
}

/// A name in its original script, and its Latin transliteration (marked
/// alphabetic, ISO 21090 `ABC`) when the tree has one.
fn names(t: &Tree, person: &str) -> Result<Option<Value>, EncodeError> {
    let mut names = Vec::new();
    if let Some(n) = human_name(t, person)? {
        names.push(n);
    }
    if let Some(mut n) = human_name(t, &format!("{person}/name_latin"))? {
        n["extension"] = json!([{"url": EXT_NAME_REPRESENTATION, "valueCode": "ABC"}]);
        names.push(n);
    }
    Ok((!names.is_empty()).then_some(Value::Array(names)))
}

fn human_name(t: &Tree, base: &str) -> Result<Option<Value>, EncodeError> {
    let given_path = format!("{base}/given");
    let given: Vec<&str> = match t.get(&given_path) {
        Some(Value::Array(items)) => (0..items.len())
            .map(|i| t.required_text(&format!("{given_path}/{i}")))
            .collect::<Result<_, _>>()?,
        _ => t.text(&given_path)?.into_iter().collect(),
    };
    let family = t.text(&format!("{base}/family"))?;
    if given.is_empty() && family.is_none() {
        return Ok(None);
    }
    let mut name = json!({"use": "official"});
    if let Some(f) = family {
        name["family"] = json!(f);
    }
    if !given.is_empty() {
        name["given"] = json!(given);
    }
    Ok(Some(name))
}

/// Name, gender, birth date and identifiers: what every person resource here carries.
fn person(t: &Tree, who: &str, resource_type: &str) -> Result<Value, EncodeError> {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!(resource_type));
    if let Some(n) = names(t, who)? {
        r.insert("name".into(), n);
    }
    if let Some(g) = gender(t, who)? {
        r.insert("gender".into(), json!(g));
    }
    if let Some(d) = birth_date(t, who)? {
        r.insert("birthDate".into(), json!(d));
    }
    if let Some(ids) = identifiers(t, who)? {
        r.insert("identifier".into(), ids);
    }
    Ok(Value::Object(r))
}

fn child(t: &Tree) -> Result<Value, EncodeError> {
    let mut p = person(t, "child", "Patient")?;
    if let Some(place) = address(t, "child/birth_place")? {
        p["extension"] = vec![obj([
            ("url", EXT_BIRTH_PLACE.into()),
            ("valueAddress", place),
        ])]
        .into();
    }
    if let Some(time) = t.text("child/birth_time")? {
        let date = p["birthDate"]
            .as_str()
            .filter(|d| is_full_date(d))
            .ok_or_else(|| invalid("child/birth_time", "needs child/birth_date as a full date"))?;
        if !is_time(time) {
            return Err(invalid("child/birth_time", "must be a local time HH:MM:SS"));
        }
        let offset = t.required_text("child/birth_time_offset")?;
        if !is_offset(offset) {
            return Err(invalid(
                "child/birth_time_offset",
                "must be Z or +HH:MM / -HH:MM",
            ));
        }
        // The birth date stays the local date; the time is written with its
        // offset, never converted to UTC.
        p["_birthDate"] = json!({"extension": [{
            "url": EXT_BIRTH_TIME,
            "valueDateTime": format!("{date}T{time}{offset}"),
        }]});
    }
    if let Some(order) = t.integer("birth_order", 1)? {
        p["multipleBirthInteger"] = json!(order);
    }
    Ok(p)
}

fn mother(t: &Tree) -> Result<Value, EncodeError> {
    let mut p = person(t, "mother", "Patient")?;
    if t.has("mother/nationality") {
        let code = t.required_code("mother/nationality/code")?;
        let system = t.required_uri("mother/nationality/system")?;
        let concept = obj([("coding", vec![coding(system, code, None)].into())]);
        let code = obj([("url", "code".into()), ("valueCodeableConcept", concept)]);
        p["extension"] = vec![obj([
            ("url", EXT_NATIONALITY.into()),
            ("extension", vec![code].into()),
        ])]
        .into();
    }
    if let Some(mut a) = address(t, "mother/address")? {
        a["use"] = json!("home");
        p["address"] = vec![a].into();
    }
    Ok(p)
}

/// A related person of the child: `patient` is always the child.
fn related_person(
    t: &Tree,
    ids: &Ids,
    who: &str,
    relationship: Value,
) -> Result<Value, EncodeError> {
    let mut r = person(t, who, "RelatedPerson")?;
    r["patient"] = ids.reference("child");
    r["relationship"] = vec![relationship].into();
    Ok(r)
}

fn father(t: &Tree, ids: &Ids) -> Result<Value, EncodeError> {
    let relationship = obj([(
        "coding",
        vec![coding(ROLE_CODE, "FTH", Some("father"))].into(),
    )]);
    related_person(t, ids, "father", relationship)
}

fn informant(t: &Tree, ids: &Ids) -> Result<Value, EncodeError> {
    let relationship = codeable_concept(t, "informant/relationship")?;
    let mut r = related_person(t, ids, "informant", relationship)?;
    if let Some(phone) = t.text("informant/phone")? {
        r["telecom"] = json!([{"system": "phone", "value": phone}]);
    }
    Ok(r)
}

/// A section that says why there is no father, instead of a father (cmp-1
/// wants text in an empty section; cmp-2 allows emptyReason only there).
fn father_absent(t: &Tree) -> Result<Value, EncodeError> {
    let (code, display) = from_table(
        t,
        "father_absent/reason",
        &EMPTY_REASONS,
        "must be a list-empty-reason code",
    )?;
    let div =
        format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">No father details: {display}.</div>");
    Ok(obj([
        ("title", "Father details".into()),
        (
            "code",
            obj([(
                "coding",
                vec![coding(SECTIONS, "father-details", None)].into(),
            )]),
        ),
        (
            "text",
            obj([("status", "generated".into()), ("div", div.into())]),
        ),
        (
            "emptyReason",
            obj([(
                "coding",
                vec![coding(EMPTY_REASON, code, Some(display))].into(),
            )]),
        ),
    ]))
}

/// `text`, `district` (an admin-area code) and `country` of an address.
fn address(t: &Tree, base: &str) -> Result<Option<Value>, EncodeError> {
    let mut a = Map::new();
    for part in ["text", "district", "country"] {
        if let Some(v) = t.text(&format!("{base}/{part}"))? {
            a.insert(part.into(), json!(v));
        }
    }
    Ok((!a.is_empty()).then_some(Value::Object(a)))
}

/// Identifiers with a real type. A UNHCR number keeps its proGres system and
/// is never typed as a national id or a passport.
fn identifiers(t: &Tree, who: &str) -> Result<Option<Value>, EncodeError> {
    let list = format!("{who}/identifiers");
    let mut out = Vec::new();
    for i in 0..t.count(&list)? {
        let base = format!("{list}/{i}");
        let mut id =
            identifier(t, &base)?.ok_or_else(|| EncodeError::Missing(format!("{base}/value")))?;
        let type_code = t.code(&format!("{base}/type/code"))?;
        let unhcr = id["system"]
            .as_str()
            .is_some_and(|s| s.starts_with(UNHCR_SYSTEMS));
        if unhcr && type_code.is_some_and(|c| STATE_DOCUMENT_TYPES.contains(&c)) {
            return Err(invalid(
                &format!("{base}/type/code"),
                "a UNHCR number is never a national id or a passport",
            ));
        }
        id["type"] = codeable_concept(t, &format!("{base}/type"))?;
        if let Some(assigner) = t.text(&format!("{base}/assigner"))? {
            id["assigner"] = json!({"display": assigner});
        }
        out.push(id);
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

fn birth_encounter(t: &Tree, ids: &Ids) -> Result<Value, EncodeError> {
    let (code, display) = from_table(
        t,
        "encounter/class",
        &ENCOUNTER_CLASSES,
        "must be a v3 ActCode encounter class",
    )?;
    let mut e = obj([
        ("resourceType", "Encounter".into()),
        ("status", "finished".into()),
        ("class", coding(ACT_CODE, code, Some(display))),
        ("subject", ids.reference("child")),
    ]);
    if let Some(identifier) = identifier(t, "encounter/facility")? {
        // A facility is named by its master-facility-list code, a logical reference.
        e["location"] = vec![obj([("location", obj([("identifier", identifier)]))])].into();
    }
    Ok(e)
}

fn observation(ids: &Ids, code: Value, subject: &str, encounter: bool) -> Value {
    let mut o = obj([
        ("resourceType", "Observation".into()),
        ("status", "final".into()),
        ("code", code),
        ("subject", ids.reference(subject)),
    ]);
    if encounter {
        o["encounter"] = ids.reference("encounter");
    }
    o
}

/// Birth weight, LOINC 8339-4, always in grams (UCUM `g`). Measured at
/// birth: a vital sign (R4 vital signs profile, category `vital-signs`) whose
/// effective[x] is the birth. When the birth is known only to the year or
/// month, the profile cannot be met (effective[x] 1..1, vs-1: a dateTime
/// precise to the day), so the Observation does not claim it.
fn birth_weight(
    t: &Tree,
    ids: &Ids,
    encounter: bool,
    born: Option<String>,
) -> Result<Option<Value>, EncodeError> {
    let Some(value) = t.positive_decimal("birth_weight/value")? else {
        return Ok(None);
    };
    let grams = match t.required_text("birth_weight/unit")? {
        "g" => value.clone(),
        "kg" => kilograms_to_grams(value)
            .ok_or_else(|| invalid("birth_weight/value", "cannot be converted to grams"))?,
        _ => return Err(invalid("birth_weight/unit", "must be g or kg")),
    };
    let code = obj([
        (
            "coding",
            vec![coding(LOINC, "8339-4", Some("Birth weight Measured"))].into(),
        ),
        ("text", "Birth weight".into()),
    ]);
    let mut o = observation(ids, code, "child", encounter);
    if let Some(born) = born {
        let vital_signs = coding(OBSERVATION_CATEGORY, "vital-signs", Some("Vital Signs"));
        o["category"] = vec![obj([("coding", vec![vital_signs].into())])].into();
        o["effectiveDateTime"] = born.into();
    }
    o["valueQuantity"] = obj([
        ("value", grams.into()),
        ("unit", "g".into()),
        ("system", UCUM.into()),
        ("code", "g".into()),
    ]);
    Ok(Some(o))
}

/// Plurality of the pregnancy, LOINC 57722-1, about the mother.
fn plurality(t: &Tree, ids: &Ids, encounter: bool) -> Result<Option<Value>, EncodeError> {
    let Some(count) = t.integer("plurality", 1)? else {
        return Ok(None);
    };
    if !t.has("mother") {
        return Err(invalid("plurality", "is about the mother, so needs mother"));
    }
    let code = obj([(
        "coding",
        vec![coding(
            LOINC,
            "57722-1",
            Some("Birth plurality of Pregnancy"),
        )]
        .into(),
    )]);
    let mut o = observation(ids, code, "mother", encounter);
    o["valueInteger"] = json!(count);
    Ok(Some(o))
}

/// The notifier, as the Organization that authors the document (org-1: a name or an identifier).
fn author(t: &Tree) -> Result<Value, EncodeError> {
    let mut o = json!({"resourceType": "Organization"});
    if let Some(identifier) = identifier(t, "author/identifier")? {
        o["identifier"] = vec![identifier].into();
    }
    if let Some(name) = t.text("author/name")? {
        o["name"] = json!(name);
    }
    if o.get("identifier").is_none() && o.get("name").is_none() {
        return Err(EncodeError::Missing("author/identifier/value".into()));
    }
    Ok(o)
}

/// A CodeableConcept from `base/system` + `base/code` and/or `base/text`; one is required.
fn codeable_concept(t: &Tree, base: &str) -> Result<Value, EncodeError> {
    let mut concept = Map::new();
    if let Some(code) = t.code(&format!("{base}/code"))? {
        let system = t.required_uri(&format!("{base}/system"))?;
        concept.insert("coding".into(), vec![coding(system, code, None)].into());
    }
    if let Some(text) = t.text(&format!("{base}/text"))? {
        concept.insert("text".into(), json!(text));
    }
    if concept.is_empty() {
        return Err(EncodeError::Missing(format!("{base}/code")));
    }
    Ok(Value::Object(concept))
}

/// `{system, value}` from `base/system` and `base/value`, when there is a value.
fn identifier(t: &Tree, base: &str) -> Result<Option<Value>, EncodeError> {
    let Some(value) = t.text(&format!("{base}/value"))? else {
        return Ok(None);
    };
    let mut identifier = json!({"value": value});
    if let Some(system) = t.uri(&format!("{base}/system"))? {
        identifier["system"] = json!(system);
    }
    Ok(Some(identifier))
}

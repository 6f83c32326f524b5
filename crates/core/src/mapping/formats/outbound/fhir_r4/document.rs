//! The mapped tree -> an R4 document Bundle, written as FHIR JSON in element
//! order. Each resource is first read and checked from one part of the tree
//! (borrowing its text), then written straight to bytes: no `Value` tree is
//! built for the writer to walk again. The element order of each object
//! below is the StructureDefinition order of `r4-element-order.txt`; the
//! tests hold it to the generic writer (`json.rs`) over the tree-building
//! builder (`oracle.rs`). Ids come from the route context only.

use serde_json::{Number, Value};
use uuid::Uuid;

use super::tree::{Tree, invalid, is_date, is_full_date, is_instant, is_offset, is_time};
use crate::config::FhirWrite;
use crate::mapping::RouteContext;
use crate::mapping::formats::EncodeError;

pub(super) const SECTIONS: &str = "http://opencrvs.org/specs/sections";
pub(super) const LOINC: &str = "http://loinc.org";
pub(super) const UCUM: &str = "http://unitsofmeasure.org";
pub(super) const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub(super) const ROLE_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
pub(super) const EMPTY_REASON: &str = "http://terminology.hl7.org/CodeSystem/list-empty-reason";
pub(super) const OBSERVATION_CATEGORY: &str =
    "http://terminology.hl7.org/CodeSystem/observation-category";
pub(super) const EXT_BIRTH_TIME: &str = "http://hl7.org/fhir/StructureDefinition/patient-birthTime";
pub(super) const EXT_BIRTH_PLACE: &str =
    "http://hl7.org/fhir/StructureDefinition/patient-birthPlace";
pub(super) const EXT_NATIONALITY: &str =
    "http://hl7.org/fhir/StructureDefinition/patient-nationality";
pub(super) const EXT_NAME_REPRESENTATION: &str =
    "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";
/// Identifier systems of UNHCR's proGres registration numbers.
pub(super) const UNHCR_SYSTEMS: &str = "urn:unhcr:progres:";
/// v2-0203 identifier types a UNHCR number must never be sent as.
pub(super) const STATE_DOCUMENT_TYPES: [&str; 2] = ["NI", "PPN"];

/// v3 ActCode encounter classes a birth encounter may have, with their displays.
pub(super) const ENCOUNTER_CLASSES: [(&str, &str); 6] = [
    ("IMP", "inpatient encounter"),
    ("AMB", "ambulatory"),
    ("EMER", "emergency"),
    ("HH", "home health"),
    ("FLD", "field"),
    ("VR", "virtual"),
];

/// list-empty-reason codes, for a father-details section without a father.
pub(super) const EMPTY_REASONS: [(&str, &str); 6] = [
    ("nilknown", "Nil Known"),
    ("notasked", "Not Asked"),
    ("withheld", "Information Withheld"),
    ("unavailable", "Unavailable"),
    ("notstarted", "Not Started"),
    ("closed", "Closed"),
];

pub(super) const GENDERS: [&str; 4] = ["male", "female", "other", "unknown"];

/// The document's bytes. Checks run in the order the tree-building
/// builder ran them, so a tree with several faults gets the same error.
pub fn write(tree: &Value, ctx: &RouteContext, write: FhirWrite) -> Result<Vec<u8>, EncodeError> {
    let t = Tree(tree);
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
    let child = child(&t)?;
    let mother = if t.has("mother") {
        Some(mother(&t)?)
    } else {
        None
    };
    let father = match (t.has("father"), t.has("father_absent")) {
        (true, true) => {
            return Err(invalid(
                "father_absent",
                "cannot be given together with father",
            ));
        }
        (true, false) => Father::Present(father(&t)?),
        (false, true) => Father::Absent(father_absent(&t)?),
        (false, false) => Father::Unknown,
    };
    let informant = if t.has("informant") {
        Some(informant(&t)?)
    } else {
        None
    };
    let encounter = if t.has("encounter") {
        Some(birth_encounter(&t)?)
    } else {
        None
    };
    let birth_weight = birth_weight(&t)?;
    let plurality = plurality(&t)?;
    let author = author(&t)?;
    let doc_type = document_type(&t)?;
    let title = t.required_text("document/title")?;

    let document = ctx.record_key();
    let mut ids = Ids {
        ctx,
        known: Vec::with_capacity(9),
    };
    let out = &mut Vec::with_capacity(8192);
    let mut bundle = Obj::open(out);
    bundle.raw("resourceType", b"\"Bundle\"");
    if write == FhirWrite::Put {
        write_uuid(bundle.key("id"), b"", document);
    }
    let meta = bundle.key("meta");
    let mut m = Obj::open(meta);
    m.str("lastUpdated", timestamp);
    m.close();
    let mut id = Obj::open(bundle.key("identifier"));
    id.raw("system", b"\"urn:ietf:rfc:3986\"");
    write_uuid(id.key("value"), b"urn:uuid:", document);
    id.close();
    bundle.raw("type", b"\"document\"");
    bundle.str("timestamp", timestamp);
    let entries = bundle.key("entry");
    entries.push(b'[');

    // bdl-11: the Composition is the first entry.
    let encounter_present = encounter.is_some();
    let mut r = entry(entries, &mut ids, "composition", "Composition");
    r.raw(
        "status",
        if ctx.record_version > 1 {
            // R4 CompositionStatus: modified after it was released as final.
            b"\"amended\""
        } else {
            b"\"final\""
        },
    );
    doc_type.write(r.key("type"));
    ids.reference(r.key("subject"), "child");
    if encounter_present {
        ids.reference(r.key("encounter"), "encounter");
    }
    r.str("date", timestamp);
    let authors = r.key("author");
    authors.push(b'[');
    ids.reference(authors, "author");
    authors.push(b']');
    r.str("title", title);
    let sections = r.key("section");
    sections.push(b'[');
    section(
        sections,
        &mut ids,
        "child-details",
        "Child details",
        &["child"],
    );
    if mother.is_some() {
        sections.push(b',');
        section(
            sections,
            &mut ids,
            "mother-details",
            "Mother details",
            &["mother"],
        );
    }
    match &father {
        Father::Present(_) => {
            sections.push(b',');
            section(
                sections,
                &mut ids,
                "father-details",
                "Father details",
                &["father"],
            );
        }
        Father::Absent(reason) => {
            sections.push(b',');
            reason.write(sections);
        }
        Father::Unknown => {}
    }
    if informant.is_some() {
        sections.push(b',');
        section(
            sections,
            &mut ids,
            "informant-details",
            "Informant details",
            &["informant"],
        );
    }
    let mut birth: Vec<&'static str> = Vec::with_capacity(3);
    if encounter_present {
        birth.push("encounter");
    }
    if birth_weight.is_some() {
        birth.push("birth-weight");
    }
    if plurality.is_some() {
        birth.push("plurality");
    }
    if !birth.is_empty() {
        sections.push(b',');
        section(
            sections,
            &mut ids,
            "birth-encounter",
            "Birth encounter",
            &birth,
        );
    }
    sections.push(b']');
    r.close();
    close_entry(entries);

    entries.push(b',');
    let born = child.born();
    child.write(entries, &mut ids);
    if let Some(mother) = &mother {
        entries.push(b',');
        mother.write(entries, &mut ids);
    }
    if let Father::Present(father) = &father {
        entries.push(b',');
        father.write(entries, &mut ids, "father");
    }
    if let Some(informant) = &informant {
        entries.push(b',');
        informant.write(entries, &mut ids, "informant");
    }
    if let Some(encounter) = &encounter {
        entries.push(b',');
        encounter.write(entries, &mut ids);
    }
    if let Some(grams) = &birth_weight {
        entries.push(b',');
        write_birth_weight(entries, &mut ids, grams, born, encounter_present);
    }
    if let Some(count) = plurality {
        entries.push(b',');
        write_plurality(entries, &mut ids, count, encounter_present);
    }
    entries.push(b',');
    author.write(entries, &mut ids);
    entries.push(b']');
    bundle.close();
    Ok(std::mem::take(out))
}

/// A JSON object being written. Keys are this module's own element names,
/// which need no escaping.
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// Writes `"key":` and returns the buffer for its value.
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A value already in JSON.
    fn raw(&mut self, key: &str, json: &[u8]) {
        self.key(key).extend_from_slice(json);
    }

    fn str(&mut self, key: &str, text: &str) {
        write_str(self.key(key), text);
    }

    fn opt_str(&mut self, key: &str, text: Option<&str>) {
        if let Some(text) = text {
            self.str(key, text);
        }
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// serde_json escapes, as the generic writer did; writing into a Vec cannot fail.
fn write_str(out: &mut Vec<u8>, text: &str) {
    let _ = serde_json::to_writer(&mut *out, text);
}

/// `"<prefix><uuid>"`, hyphenated lower case (as `Uuid`'s `Display`).
fn write_uuid(out: &mut Vec<u8>, prefix: &[u8], id: Uuid) {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.push(b'"');
    out.extend_from_slice(prefix);
    out.extend_from_slice(id.hyphenated().encode_lower(&mut text).as_bytes());
    out.push(b'"');
}

/// `[item, item...]`.
fn write_list<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

/// Stable per-role ids: the entry's `fullUrl` is `urn:uuid:<id>` and the
/// resource's `id` is `<id>`. Each is a SHA-1 (UUIDv5) and a document names
/// most roles several times: derived once per role.
struct Ids<'c> {
    ctx: &'c RouteContext,
    known: Vec<(&'static str, Uuid)>,
}

impl Ids<'_> {
    fn id(&mut self, role: &'static str) -> Uuid {
        if let Some((_, id)) = self.known.iter().find(|(r, _)| *r == role) {
            return *id;
        }
        let id = self.ctx.derived(role);
        self.known.push((role, id));
        id
    }

    /// `{"reference":"urn:uuid:<id>"}`.
    fn reference(&mut self, out: &mut Vec<u8>, role: &'static str) {
        let id = self.id(role);
        out.extend_from_slice(b"{\"reference\":");
        write_uuid(out, b"urn:uuid:", id);
        out.push(b'}');
    }
}

/// Opens a Bundle entry and its resource, up to and including the
/// resource's `id`; the caller writes the rest and closes the resource, then
/// [`close_entry`].
fn entry<'o>(
    out: &'o mut Vec<u8>,
    ids: &mut Ids,
    role: &'static str,
    resource_type: &str,
) -> Obj<'o> {
    let id = ids.id(role);
    out.extend_from_slice(b"{\"fullUrl\":");
    write_uuid(out, b"urn:uuid:", id);
    out.extend_from_slice(b",\"resource\":");
    let mut r = Obj::open(out);
    r.str("resourceType", resource_type);
    write_uuid(r.key("id"), b"", id);
    r
}

fn close_entry(out: &mut Vec<u8>) {
    out.push(b'}');
}

/// A Composition section coded like the Examplia profile, listing the entries of `roles`.
fn section(out: &mut Vec<u8>, ids: &mut Ids, code: &str, title: &str, roles: &[&'static str]) {
    let mut s = Obj::open(out);
    s.str("title", title);
    write_section_code(s.key("code"), code);
    write_list(s.key("entry"), roles, |out, role| ids.reference(out, role));
    s.close();
}

fn write_section_code(out: &mut Vec<u8>, code: &str) {
    Coding {
        system: SECTIONS,
        code,
        display: None,
    }
    .write_concept(out);
}

#[derive(Clone, Copy)]
struct Coding<'a> {
    system: &'a str,
    code: &'a str,
    display: Option<&'a str>,
}

impl Coding<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        let mut c = Obj::open(out);
        c.str("system", self.system);
        c.str("code", self.code);
        c.opt_str("display", self.display);
        c.close();
    }

    /// A CodeableConcept of this one coding.
    fn write_concept(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"coding\":[");
        self.write(out);
        out.extend_from_slice(b"]}");
    }
}

/// A CodeableConcept of at most one coding, and/or text.
struct Concept<'a> {
    coding: Option<Coding<'a>>,
    text: Option<&'a str>,
}

impl Concept<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        let mut c = Obj::open(out);
        if let Some(coding) = &self.coding {
            let list = c.key("coding");
            list.push(b'[');
            coding.write(list);
            list.push(b']');
        }
        c.opt_str("text", self.text);
        c.close();
    }
}

/// The Composition's type: its coding, a local one, and text.
struct DocumentType<'a> {
    codings: Vec<Coding<'a>>,
    text: Option<&'a str>,
}

impl DocumentType<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        let mut c = Obj::open(out);
        write_list(c.key("coding"), &self.codings, |out, coding| {
            coding.write(out)
        });
        c.opt_str("text", self.text);
        c.close();
    }
}

struct Identifier<'a> {
    kind: Option<Concept<'a>>,
    system: Option<&'a str>,
    value: &'a str,
    assigner: Option<&'a str>,
}

impl Identifier<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        let mut i = Obj::open(out);
        if let Some(kind) = &self.kind {
            kind.write(i.key("type"));
        }
        i.opt_str("system", self.system);
        i.str("value", self.value);
        if let Some(assigner) = self.assigner {
            let mut a = Obj::open(i.key("assigner"));
            a.str("display", assigner);
            a.close();
        }
        i.close();
    }
}

struct Name<'a> {
    /// A Latin transliteration (ISO 21090 `ABC`), not the original script.
    latin: bool,
    family: Option<&'a str>,
    given: Vec<&'a str>,
}

impl Name<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        let mut n = Obj::open(out);
        if self.latin {
            n.raw("extension", b"[{\"url\":");
            write_str(n.out, EXT_NAME_REPRESENTATION);
            n.out.extend_from_slice(b",\"valueCode\":\"ABC\"}]");
        }
        n.raw("use", b"\"official\"");
        n.opt_str("family", self.family);
        if !self.given.is_empty() {
            write_list(n.key("given"), &self.given, |out, g| write_str(out, g));
        }
        n.close();
    }
}

struct Address<'a> {
    text: Option<&'a str>,
    district: Option<&'a str>,
    country: Option<&'a str>,
}

impl Address<'_> {
    fn write(&self, out: &mut Vec<u8>, home: bool) {
        let mut a = Obj::open(out);
        if home {
            a.raw("use", b"\"home\"");
        }
        a.opt_str("text", self.text);
        a.opt_str("district", self.district);
        a.opt_str("country", self.country);
        a.close();
    }
}

/// Name, gender, birth date and identifiers: what every person resource here carries.
struct Person<'a> {
    names: Vec<Name<'a>>,
    gender: Option<&'static str>,
    birth_date: Option<&'a str>,
    identifiers: Vec<Identifier<'a>>,
}

impl Person<'_> {
    fn write_identifiers(&self, r: &mut Obj) {
        if !self.identifiers.is_empty() {
            write_list(r.key("identifier"), &self.identifiers, |out, i| {
                i.write(out)
            });
        }
    }

    fn write_names(&self, r: &mut Obj) {
        if !self.names.is_empty() {
            write_list(r.key("name"), &self.names, |out, n| n.write(out));
        }
    }

    fn write_gender_and_birth_date(&self, r: &mut Obj) {
        r.opt_str("gender", self.gender);
        r.opt_str("birthDate", self.birth_date);
    }
}

struct Child<'a> {
    person: Person<'a>,
    birth_place: Option<Address<'a>>,
    /// The patient-birthTime dateTime: local date, time and offset.
    birth_time: Option<String>,
    birth_order: Option<i64>,
}

impl Child<'_> {
    /// When the child was born, as precisely as the document says: the
    /// patient-birthTime dateTime, else a full birthDate; `None` for an
    /// estimate (a year or a month), which the vital signs profile cannot
    /// take (vs-1).
    fn born(&self) -> Option<&str> {
        let date = self.person.birth_date.filter(|d| is_full_date(d));
        self.birth_time.as_deref().or(date)
    }

    fn write(&self, out: &mut Vec<u8>, ids: &mut Ids) {
        let mut r = entry(out, ids, "child", "Patient");
        if let Some(place) = &self.birth_place {
            let ext = r.key("extension");
            ext.extend_from_slice(b"[{\"url\":");
            write_str(ext, EXT_BIRTH_PLACE);
            ext.extend_from_slice(b",\"valueAddress\":");
            place.write(ext, false);
            ext.extend_from_slice(b"}]");
        }
        self.person.write_identifiers(&mut r);
        self.person.write_names(&mut r);
        self.person.write_gender_and_birth_date(&mut r);
        if let Some(time) = &self.birth_time {
            let meta = r.key("_birthDate");
            meta.extend_from_slice(b"{\"extension\":[{\"url\":");
            write_str(meta, EXT_BIRTH_TIME);
            meta.extend_from_slice(b",\"valueDateTime\":");
            write_str(meta, time);
            meta.extend_from_slice(b"}]}");
        }
        if let Some(order) = self.birth_order {
            let _ = serde_json::to_writer(&mut *r.key("multipleBirthInteger"), &order);
        }
        r.close();
        close_entry(out);
    }
}

struct Mother<'a> {
    person: Person<'a>,
    /// System and code.
    nationality: Option<(&'a str, &'a str)>,
    address: Option<Address<'a>>,
}

impl Mother<'_> {
    fn write(&self, out: &mut Vec<u8>, ids: &mut Ids) {
        let mut r = entry(out, ids, "mother", "Patient");
        if let Some((system, code)) = self.nationality {
            let ext = r.key("extension");
            ext.extend_from_slice(b"[{\"extension\":[{\"url\":\"code\",\"valueCodeableConcept\":");
            Coding {
                system,
                code,
                display: None,
            }
            .write_concept(ext);
            ext.extend_from_slice(b"}],\"url\":");
            write_str(ext, EXT_NATIONALITY);
            ext.extend_from_slice(b"}]");
        }
        self.person.write_identifiers(&mut r);
        self.person.write_names(&mut r);
        self.person.write_gender_and_birth_date(&mut r);
        if let Some(address) = &self.address {
            let list = r.key("address");
            list.push(b'[');
            address.write(list, true);
            list.push(b']');
        }
        r.close();
        close_entry(out);
    }
}

/// A related person of the child: `patient` is always the child.
struct Related<'a> {
    person: Person<'a>,
    relationship: Concept<'a>,
    phone: Option<&'a str>,
}

impl Related<'_> {
    fn write(&self, out: &mut Vec<u8>, ids: &mut Ids, role: &'static str) {
        let mut r = entry(out, ids, role, "RelatedPerson");
        self.person.write_identifiers(&mut r);
        ids.reference(r.key("patient"), "child");
        let list = r.key("relationship");
        list.push(b'[');
        self.relationship.write(list);
        list.push(b']');
        self.person.write_names(&mut r);
        if let Some(phone) = self.phone {
            let telecom = r.key("telecom");
            telecom.extend_from_slice(b"[{\"system\":\"phone\",\"value\":");
            write_str(telecom, phone);
            telecom.extend_from_slice(b"}]");
        }
        self.person.write_gender_and_birth_date(&mut r);
        r.close();
        close_entry(out);
    }
}

enum Father<'a> {
    Present(Related<'a>),
    Absent(FatherAbsent),
    Unknown,
}

/// A section that says why there is no father, instead of a father (cmp-1
/// wants text in an empty section; cmp-2 allows emptyReason only there).
struct FatherAbsent {
    code: &'static str,
    display: &'static str,
}

impl FatherAbsent {
    fn write(&self, out: &mut Vec<u8>) {
        let mut s = Obj::open(out);
        s.raw("title", b"\"Father details\"");
        write_section_code(s.key("code"), "father-details");
        let mut text = Obj::open(s.key("text"));
        text.raw("status", b"\"generated\"");
        let div = format!(
            "<div xmlns=\"http://www.w3.org/1999/xhtml\">No father details: {}.</div>",
            self.display
        );
        text.str("div", &div);
        text.close();
        Coding {
            system: EMPTY_REASON,
            code: self.code,
            display: Some(self.display),
        }
        .write_concept(s.key("emptyReason"));
        s.close();
    }
}

struct Encounter<'a> {
    class: Coding<'static>,
    facility: Option<Identifier<'a>>,
}

impl Encounter<'_> {
    fn write(&self, out: &mut Vec<u8>, ids: &mut Ids) {
        let mut r = entry(out, ids, "encounter", "Encounter");
        r.raw("status", b"\"finished\"");
        self.class.write(r.key("class"));
        ids.reference(r.key("subject"), "child");
        if let Some(facility) = &self.facility {
            // A facility is named by its master-facility-list code, a logical reference.
            let list = r.key("location");
            list.extend_from_slice(b"[{\"location\":{\"identifier\":");
            facility.write(list);
            list.extend_from_slice(b"}}]");
        }
        r.close();
        close_entry(out);
    }
}

/// Status, code, subject and encounter of an Observation; the caller writes
/// what follows `encounter` and closes it.
fn observation<'o>(
    out: &'o mut Vec<u8>,
    ids: &mut Ids,
    role: &'static str,
    subject: &'static str,
    encounter: bool,
    category: bool,
    code: impl FnOnce(&mut Vec<u8>),
) -> Obj<'o> {
    let mut o = entry(out, ids, role, "Observation");
    o.raw("status", b"\"final\"");
    if category {
        let list = o.key("category");
        list.push(b'[');
        Coding {
            system: OBSERVATION_CATEGORY,
            code: "vital-signs",
            display: Some("Vital Signs"),
        }
        .write_concept(list);
        list.push(b']');
    }
    code(o.key("code"));
    ids.reference(o.key("subject"), subject);
    if encounter {
        ids.reference(o.key("encounter"), "encounter");
    }
    o
}

/// Birth weight, LOINC 8339-4, always in grams (UCUM `g`). Measured at
/// birth: a vital sign (R4 vital signs profile, category `vital-signs`) whose
/// effective[x] is the birth. When the birth is known only to the year or
/// month, the profile cannot be met (effective[x] 1..1, vs-1: a dateTime
/// precise to the day), so the Observation does not claim it.
fn write_birth_weight(
    out: &mut Vec<u8>,
    ids: &mut Ids,
    grams: &Number,
    born: Option<&str>,
    encounter: bool,
) {
    let code = |out: &mut Vec<u8>| {
        let mut c = Obj::open(out);
        let list = c.key("coding");
        list.push(b'[');
        Coding {
            system: LOINC,
            code: "8339-4",
            display: Some("Birth weight Measured"),
        }
        .write(list);
        list.push(b']');
        c.raw("text", b"\"Birth weight\"");
        c.close();
    };
    let mut o = observation(
        out,
        ids,
        "birth-weight",
        "child",
        encounter,
        born.is_some(),
        code,
    );
    o.opt_str("effectiveDateTime", born);
    let mut q = Obj::open(o.key("valueQuantity"));
    let _ = serde_json::to_writer(&mut *q.key("value"), grams);
    q.raw("unit", b"\"g\"");
    q.str("system", UCUM);
    q.raw("code", b"\"g\"");
    q.close();
    o.close();
    close_entry(out);
}

/// Plurality of the pregnancy, LOINC 57722-1, about the mother.
fn write_plurality(out: &mut Vec<u8>, ids: &mut Ids, count: i64, encounter: bool) {
    let code = |out: &mut Vec<u8>| {
        Coding {
            system: LOINC,
            code: "57722-1",
            display: Some("Birth plurality of Pregnancy"),
        }
        .write_concept(out)
    };
    let mut o = observation(out, ids, "plurality", "mother", encounter, false, code);
    let _ = serde_json::to_writer(&mut *o.key("valueInteger"), &count);
    o.close();
    close_entry(out);
}

/// The notifier, as the Organization that authors the document (org-1: a name or an identifier).
struct Author<'a> {
    identifier: Option<Identifier<'a>>,
    name: Option<&'a str>,
}

impl Author<'_> {
    fn write(&self, out: &mut Vec<u8>, ids: &mut Ids) {
        let mut r = entry(out, ids, "author", "Organization");
        if let Some(identifier) = &self.identifier {
            let list = r.key("identifier");
            list.push(b'[');
            identifier.write(list);
            list.push(b']');
        }
        r.opt_str("name", self.name);
        r.close();
        close_entry(out);
    }
}

// Reading and checking the tree, in the order the checks have always run.

fn document_type<'a>(t: &Tree<'a>) -> Result<DocumentType<'a>, EncodeError> {
    let code = t.required_code("document/type/code")?;
    let system = t.required_uri("document/type/system")?;
    let display = t.text("document/type/display")?;
    let mut codings = Vec::with_capacity(2);
    codings.push(Coding {
        system,
        code,
        display,
    });
    if let Some(local) = t.code("document/type/local/code")? {
        let system = t.required_uri("document/type/local/system")?;
        codings.push(Coding {
            system,
            code: local,
            display: t.text("document/type/local/display")?,
        });
    }
    let text = t.text("document/type/text")?;
    Ok(DocumentType { codings, text })
}

/// A name in its original script, and its Latin transliteration when the tree has one.
fn names<'a>(t: &Tree<'a>, person: &str) -> Result<Vec<Name<'a>>, EncodeError> {
    let mut names = Vec::with_capacity(2);
    if let Some(n) = human_name(t, person, false)? {
        names.push(n);
    }
    if let Some(n) = human_name(t, &format!("{person}/name_latin"), true)? {
        names.push(n);
    }
    Ok(names)
}

fn human_name<'a>(t: &Tree<'a>, base: &str, latin: bool) -> Result<Option<Name<'a>>, EncodeError> {
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
    Ok(Some(Name {
        latin,
        family,
        given,
    }))
}

pub(super) fn gender(t: &Tree, person: &str) -> Result<Option<&'static str>, EncodeError> {
    let path = format!("{person}/gender");
    match t.code(&path)? {
        None => Ok(None),
        Some(g) => GENDERS
            .iter()
            .find(|x| **x == g)
            .copied()
            .map(Some)
            .ok_or_else(|| invalid(&path, "must be male, female, other or unknown")),
    }
}

pub(super) fn birth_date<'a>(t: &Tree<'a>, person: &str) -> Result<Option<&'a str>, EncodeError> {
    let path = format!("{person}/birth_date");
    let date = t.text(&path)?;
    if date.is_some_and(|d| !is_date(d)) {
        return Err(invalid(
            &path,
            "must be a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)",
        ));
    }
    Ok(date)
}

fn person<'a>(t: &Tree<'a>, who: &str) -> Result<Person<'a>, EncodeError> {
    Ok(Person {
        names: names(t, who)?,
        gender: gender(t, who)?,
        birth_date: birth_date(t, who)?,
        identifiers: identifiers(t, who)?,
    })
}

fn child<'a>(t: &Tree<'a>) -> Result<Child<'a>, EncodeError> {
    let person = person(t, "child")?;
    let birth_place = address(t, "child/birth_place")?;
    let mut birth_time = None;
    if let Some(time) = t.text("child/birth_time")? {
        let date = person
            .birth_date
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
        birth_time = Some(format!("{date}T{time}{offset}"));
    }
    let birth_order = t.integer("birth_order", 1)?;
    Ok(Child {
        person,
        birth_place,
        birth_time,
        birth_order,
    })
}

fn mother<'a>(t: &Tree<'a>) -> Result<Mother<'a>, EncodeError> {
    let person = person(t, "mother")?;
    let nationality = if t.has("mother/nationality") {
        let code = t.required_code("mother/nationality/code")?;
        let system = t.required_uri("mother/nationality/system")?;
        Some((system, code))
    } else {
        None
    };
    let address = address(t, "mother/address")?;
    Ok(Mother {
        person,
        nationality,
        address,
    })
}

fn father<'a>(t: &Tree<'a>) -> Result<Related<'a>, EncodeError> {
    let relationship = Concept {
        coding: Some(Coding {
            system: ROLE_CODE,
            code: "FTH",
            display: Some("father"),
        }),
        text: None,
    };
    Ok(Related {
        person: person(t, "father")?,
        relationship,
        phone: None,
    })
}

fn informant<'a>(t: &Tree<'a>) -> Result<Related<'a>, EncodeError> {
    let relationship = codeable_concept(t, "informant/relationship")?;
    let person = person(t, "informant")?;
    let phone = t.text("informant/phone")?;
    Ok(Related {
        person,
        relationship,
        phone,
    })
}

fn father_absent(t: &Tree) -> Result<FatherAbsent, EncodeError> {
    let (code, display) = from_table(
        t,
        "father_absent/reason",
        &EMPTY_REASONS,
        "must be a list-empty-reason code",
    )?;
    Ok(FatherAbsent { code, display })
}

/// `text`, `district` (an admin-area code) and `country` of an address.
fn address<'a>(t: &Tree<'a>, base: &str) -> Result<Option<Address<'a>>, EncodeError> {
    let a = Address {
        text: t.text(&format!("{base}/text"))?,
        district: t.text(&format!("{base}/district"))?,
        country: t.text(&format!("{base}/country"))?,
    };
    let empty = a.text.is_none() && a.district.is_none() && a.country.is_none();
    Ok((!empty).then_some(a))
}

/// Identifiers with a real type. A UNHCR number keeps its proGres system and
/// is never typed as a national id or a passport.
fn identifiers<'a>(t: &Tree<'a>, who: &str) -> Result<Vec<Identifier<'a>>, EncodeError> {
    let list = format!("{who}/identifiers");
    let count = t.count(&list)?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let base = format!("{list}/{i}");
        let mut id =
            identifier(t, &base)?.ok_or_else(|| EncodeError::Missing(format!("{base}/value")))?;
        let type_code = t.code(&format!("{base}/type/code"))?;
        let unhcr = id.system.is_some_and(|s| s.starts_with(UNHCR_SYSTEMS));
        if unhcr && type_code.is_some_and(|c| STATE_DOCUMENT_TYPES.contains(&c)) {
            return Err(invalid(
                &format!("{base}/type/code"),
                "a UNHCR number is never a national id or a passport",
            ));
        }
        id.kind = Some(codeable_concept(t, &format!("{base}/type"))?);
        id.assigner = t.text(&format!("{base}/assigner"))?;
        out.push(id);
    }
    Ok(out)
}

fn birth_encounter<'a>(t: &Tree<'a>) -> Result<Encounter<'a>, EncodeError> {
    let (code, display) = from_table(
        t,
        "encounter/class",
        &ENCOUNTER_CLASSES,
        "must be a v3 ActCode encounter class",
    )?;
    Ok(Encounter {
        class: Coding {
            system: ACT_CODE,
            code,
            display: Some(display),
        },
        facility: identifier(t, "encounter/facility")?,
    })
}

/// The birth weight in grams, when the tree has one.
fn birth_weight(t: &Tree) -> Result<Option<Number>, EncodeError> {
    let Some(value) = t.positive_decimal("birth_weight/value")? else {
        return Ok(None);
    };
    let grams = match t.required_text("birth_weight/unit")? {
        "g" => value.clone(),
        "kg" => kilograms_to_grams(value)
            .ok_or_else(|| invalid("birth_weight/value", "cannot be converted to grams"))?,
        _ => return Err(invalid("birth_weight/unit", "must be g or kg")),
    };
    Ok(Some(grams))
}

fn plurality(t: &Tree) -> Result<Option<i64>, EncodeError> {
    let Some(count) = t.integer("plurality", 1)? else {
        return Ok(None);
    };
    if !t.has("mother") {
        return Err(invalid("plurality", "is about the mother, so needs mother"));
    }
    Ok(Some(count))
}

fn author<'a>(t: &Tree<'a>) -> Result<Author<'a>, EncodeError> {
    let identifier = identifier(t, "author/identifier")?;
    let name = t.text("author/name")?;
    if identifier.is_none() && name.is_none() {
        return Err(EncodeError::Missing("author/identifier/value".into()));
    }
    Ok(Author { identifier, name })
}

/// A code at `path` that must be one of `table`'s, with its display.
pub(super) fn from_table(
    t: &Tree,
    path: &str,
    table: &[(&'static str, &'static str)],
    rule: &str,
) -> Result<(&'static str, &'static str), EncodeError> {
    let code = t.required_code(path)?;
    table
        .iter()
        .find(|(c, _)| *c == code)
        .copied()
        .ok_or_else(|| invalid(path, rule))
}

/// A CodeableConcept from `base/system` + `base/code` and/or `base/text`; one is required.
fn codeable_concept<'a>(t: &Tree<'a>, base: &str) -> Result<Concept<'a>, EncodeError> {
    let coding = match t.code(&format!("{base}/code"))? {
        Some(code) => Some(Coding {
            system: t.required_uri(&format!("{base}/system"))?,
            code,
            display: None,
        }),
        None => None,
    };
    let text = t.text(&format!("{base}/text"))?;
    if coding.is_none() && text.is_none() {
        return Err(EncodeError::Missing(format!("{base}/code")));
    }
    Ok(Concept { coding, text })
}

/// `{system, value}` from `base/system` and `base/value`, when there is a value.
fn identifier<'a>(t: &Tree<'a>, base: &str) -> Result<Option<Identifier<'a>>, EncodeError> {
    let Some(value) = t.text(&format!("{base}/value"))? else {
        return Ok(None);
    };
    Ok(Some(Identifier {
        kind: None,
        system: t.uri(&format!("{base}/system"))?,
        value,
        assigner: None,
    }))
}

/// Shift the decimal point three places, on the number's text, so that
/// 3.12 kg is exactly 3120 g (no binary floating-point rounding).
pub(super) fn kilograms_to_grams(kg: &Number) -> Option<Number> {
    let text = kg.to_string();
    if text.contains(['e', 'E', '-']) {
        return None;
    }
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let frac = format!("{frac:0<3}");
    let (moved, rest) = frac.split_at(3);
    let int = format!("{int}{moved}");
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let rest = rest.trim_end_matches('0');
    let grams = if rest.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{rest}")
    };
    serde_json::from_str(&grams).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kilograms_become_grams_exactly() {
        let g = |kg: f64| kilograms_to_grams(&Number::from_f64(kg).unwrap()).map(|n| n.to_string());
        assert_eq!(g(3.12).as_deref(), Some("3120"));
        assert_eq!(g(0.95).as_deref(), Some("950"));
        assert_eq!(g(3.1255).as_deref(), Some("3125.5"));
        assert_eq!(g(3.0).as_deref(), Some("3000"));
        assert_eq!(
            kilograms_to_grams(&Number::from(4)).unwrap().to_string(),
            "4000"
        );
    }
}

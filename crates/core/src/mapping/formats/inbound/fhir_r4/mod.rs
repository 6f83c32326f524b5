//! FHIR R4 birth-notification documents from health facilities' EMRs
//! (../shared/specs/FORMATS.md §3; the Examplia profile in
//! ../shared/specs/EXAMPLIA-DEPLOYMENT.md).
//!
//! `decode` checks the document envelope (a `document` Bundle, fullUrls, the
//! Composition first, its subject resolving) and reads a small, readable tree
//! that the inbound mapping names field by field: the child
//! (`Composition.subject`), the persons of the coded sections, the birth
//! encounter and the few Observations a birth notification carries. Nothing
//! else is read: Observations and sections with other codes (HIV status,
//! depression scores, narrative notes) never enter the tree.
//!
//! Codes stay as the document wrote them (`IMP`, `MTH`, identifier systems);
//! the mapping's code lists turn them into canonical values, because which
//! systems a country uses is data, not code. Dates are never converted: the
//! local date and time of birth are read as written.

mod bundle;
mod read;

use std::path::Path;

use serde_json::{Map, Number, Value};

use bundle::{Bundle, Entry};
use read::{Reader, at, coded};

use crate::mapping::Catalogue;
use crate::schema::Violation;

/// Section code systems: the Examplia profile uses OpenCRVS's, whose 1.x
/// templates also wrote the second form.
const SECTION_SYSTEMS: [&str; 2] = [
    "http://opencrvs.org/specs/sections",
    "http://opencrvs.org/doc-sections",
];
const LOINC: [&str; 1] = ["http://loinc.org"];
const ROLE_CODE: [&str; 1] = ["http://terminology.hl7.org/CodeSystem/v3-RoleCode"];
const NATIONALITY_SYSTEMS: [&str; 2] = ["urn:iso:std:iso:3166", "urn:icao:doc-9303:nationality"];
const UCUM: &str = "http://unitsofmeasure.org";
/// `http://hl7.org/fhir/sid/passport-<ISO3>`: the suffix is the issuing State.
const PASSPORT_PREFIX: &str = "http://hl7.org/fhir/sid/passport-";

const EXT_BIRTH_PLACE: &str = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace";
const EXT_BIRTH_TIME: &str = "http://hl7.org/fhir/StructureDefinition/patient-birthTime";
const EXT_NATIONALITY: &str = "http://hl7.org/fhir/StructureDefinition/patient-nationality";
/// ISO 21090 name representation: `ABC` marks the alphabetic (Latin) form.
const EXT_NAME_REPRESENTATION: &str =
    "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";

/// Birth weight: the specific LOINC code first, then the generic body weight.
const BIRTH_WEIGHT_CODES: [&str; 2] = ["8339-4", "3141-9"];
const PLURALITY_CODE: &str = "57722-1";

/// The paths of the decoded tree. Every prefix of a path is readable too.
const TREE: &[&str] = &[
    "document/identifier",
    "document/timestamp",
    "document/version",
    "author/facility_code",
    "author/facility_system",
    "author/system_name",
    "author/system_version",
    "child/name/given_names",
    "child/name/family_name",
    "child/name/given_names_latin",
    "child/name/family_name_latin",
    "child/gender",
    "child/birth_date",
    "child/birth_year",
    "child/birth_date_precision",
    "child/birth_time",
    "child/multiple_birth",
    "child/birth_order",
    "child/birth_place/district",
    "child/birth_place/state",
    "child/birth_place/city",
    "child/birth_place/country",
    "child/birth_place/text",
    "mother/*",
    "father/*",
    "informant/relationship",
    "informant/practitioner",
    "informant/name/given_names",
    "informant/name/family_name",
    "informant/name/given_names_latin",
    "informant/name/family_name_latin",
    "informant/phone",
    "informant/email",
    "encounter/class",
    "encounter/facility_code",
    "encounter/facility_system",
    "birth_weight/value",
    "birth_weight/unit",
    "plurality",
];

/// What `mother/*` and `father/*` stand for in [`TREE`].
const PARENT: &[&str] = &[
    "name/given_names",
    "name/family_name",
    "name/given_names_latin",
    "name/family_name_latin",
    "gender",
    "birth_date",
    "birth_year",
    "nationality",
    "identifiers/*/system",
    "identifiers/*/value",
    "identifiers/*/issuer",
    "address/district",
    "address/state",
    "address/country",
];

/// What an inbound mapping from `fhir-r4` may read: the decoded tree's paths
/// and every prefix of them. The tree's shape is the decoder's, so it lives in
/// code; the folder holds no catalogue data.
pub fn catalogue(_folder: &Path) -> Result<Catalogue, String> {
    let mut paths = Vec::new();
    for path in TREE {
        match path.strip_suffix("/*") {
            Some(parent) => paths.extend(PARENT.iter().map(|p| format!("{parent}/{p}"))),
            None => paths.push(path.to_string()),
        }
    }
    let mut all: Vec<String> = Vec::new();
    for path in &paths {
        let mut prefix = String::new();
        for segment in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(segment);
            all.push(prefix.clone());
        }
    }
    Ok(Catalogue::new(all))
}

/// Decode a FHIR R4 birth-notification document into the tree the inbound
/// mapping reads, or every problem found, each by pointer into the payload.
pub fn decode(payload: &Value) -> Result<Value, Vec<Violation>> {
    let mut reader = Reader::default();
    let Some(bundle) = bundle::open(payload, &mut reader) else {
        return Err(reader.violations);
    };
    let composition = match bundle.entries.first() {
        Some(Some(e)) if e.resource_type == "Composition" => *e,
        _ => return Err(reader.violations),
    };
    let tree = Document::new(&bundle, composition, &mut reader).read();
    if reader.violations.is_empty() {
        return Ok(tree);
    }
    // An element read twice (the envelope check, then the tree) is reported once.
    let mut seen = std::collections::HashSet::new();
    reader
        .violations
        .retain(|v| seen.insert((v.pointer.clone(), v.code)));
    Err(reader.violations)
}

const COMPOSITION: &str = "/entry/0/resource";

fn resource_pointer(index: usize) -> String {
    format!("/entry/{index}/resource")
}

/// Reading one document: the Bundle, its Composition, and what was found so far.
struct Document<'b, 'v> {
    bundle: &'b Bundle<'v>,
    composition: &'v Map<String, Value>,
    reader: &'b mut Reader,
}

/// A resource found in the Bundle, with its index.
type Found<'v> = (usize, Entry<'v>);

impl<'b, 'v> Document<'b, 'v> {
    fn new(bundle: &'b Bundle<'v>, composition: Entry<'v>, reader: &'b mut Reader) -> Self {
        Document {
            bundle,
            composition: composition.resource,
            reader,
        }
    }

    fn read(mut self) -> Value {
        let mut tree = Map::new();
        put(&mut tree, "document", Value::Object(self.envelope()));
        let Some(child) = self.subject() else {
            return Value::Object(tree);
        };
        let sections = self.sections();
        let section = |code: &str| {
            sections
                .iter()
                .find(|(c, _)| c == code)
                .map(|(_, entries)| entries.as_slice())
                .unwrap_or_default()
        };
        put(&mut tree, "author", Value::Object(self.author()));
        put(&mut tree, "child", Value::Object(self.child(child)));
        let mother = first_person(section("mother-details"));
        let father = first_person(section("father-details"));
        if let Some(m) = mother {
            put(&mut tree, "mother", Value::Object(self.parent(m)));
        }
        if let Some(f) = father {
            put(&mut tree, "father", Value::Object(self.parent(f)));
        }
        if let Some(&informant) = section("informant-details").first() {
            let informant = self.informant(informant, mother, father);
            put(&mut tree, "informant", Value::Object(informant));
        }
        let encounter = self.encounter(section("birth-encounter"));
        put(&mut tree, "encounter", Value::Object(encounter));
        self.observations(child, &mut tree);
        Value::Object(tree)
    }

    fn envelope(&mut self) -> Map<String, Value> {
        let root = self.bundle.root;
        let mut out = Map::new();
        put_str(
            &mut out,
            "timestamp",
            self.reader.str(root, "", "timestamp"),
        );
        if let Some(identifier) = self.reader.obj(root, "", "identifier") {
            put_str(
                &mut out,
                "identifier",
                self.reader.str(identifier, "/identifier", "value"),
            );
        }
        if let Some(meta) = self.reader.obj(root, "", "meta") {
            // Only a plain positive integer versionId is a record version.
            let version = self.reader.str(meta, "/meta", "versionId");
            if let Some(v) = version
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|v| *v >= 1)
            {
                put(&mut out, "version", Value::from(v));
            }
        }
        out
    }

    /// The child: `Composition.subject`, which must resolve to a Patient.
    fn subject(&mut self) -> Option<Found<'v>> {
        let ptr = at(COMPOSITION, "subject");
        let required = |reader: &mut Reader, pointer: String| {
            reader.push(
                pointer,
                "required",
                "is required: the subject of a birth notification is the child's Patient",
            )
        };
        if !self.composition.contains_key("subject") {
            required(self.reader, ptr);
            return None;
        }
        let subject = self.reader.obj(self.composition, COMPOSITION, "subject")?;
        if !subject.contains_key("reference") {
            required(self.reader, at(&ptr, "reference"));
            return None;
        }
        // An unresolved reference is reported by follow_reference.
        let found = self.bundle.follow_reference(self.reader, subject, &ptr)?;
        if found.1.resource_type != "Patient" {
            self.reader.push(
                at(&ptr, "reference"),
                "wrong_target",
                "must refer to the child's Patient",
            );
            return None;
        }
        Some(found)
    }

    /// Sections by code, each with the entries it refers to.
    fn sections(&mut self) -> Vec<(String, Vec<Found<'v>>)> {
        let mut out = Vec::new();
        for (ptr, section) in self
            .reader
            .objects(self.composition, COMPOSITION, "section")
        {
            let Some(code) = self
                .reader
                .obj(section, &ptr, "code")
                .and_then(|c| coded(self.reader, c, &at(&ptr, "code"), &SECTION_SYSTEMS))
            else {
                continue;
            };
            let mut entries = Vec::new();
            for (entry_ptr, reference) in self.reader.objects(section, &ptr, "entry") {
                if let Some(found) =
                    self.bundle
                        .follow_reference(self.reader, reference, &entry_ptr)
                {
                    entries.push(found);
                }
            }
            out.push((code.to_string(), entries));
        }
        out
    }

    /// The notifying system: a facility by identifier, or a Device by name.
    fn author(&mut self) -> Map<String, Value> {
        let mut out = Map::new();
        for (ptr, author) in self.reader.objects(self.composition, COMPOSITION, "author") {
            if let Some(identifier) = self.reader.obj(author, &ptr, "identifier") {
                self.facility(identifier, &at(&ptr, "identifier"), &mut out);
            }
            if !author.contains_key("reference") {
                continue;
            }
            let Some((i, entry)) = self.bundle.follow_reference(self.reader, author, &ptr) else {
                continue;
            };
            let base = resource_pointer(i);
            match entry.resource_type {
                "Device" => self.device(entry.resource, &base, &mut out),
                "Organization" | "Location" => {
                    let ids = self.reader.objects(entry.resource, &base, "identifier");
                    if let Some((id_ptr, identifier)) = ids.first() {
                        self.facility(identifier, id_ptr, &mut out);
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn facility(
        &mut self,
        identifier: &Map<String, Value>,
        ptr: &str,
        out: &mut Map<String, Value>,
    ) {
        if out.contains_key("facility_code") {
            return;
        }
        put_str(
            out,
            "facility_code",
            self.reader.str(identifier, ptr, "value"),
        );
        put_str(
            out,
            "facility_system",
            self.reader.str(identifier, ptr, "system"),
        );
    }

    fn device(&mut self, device: &Map<String, Value>, base: &str, out: &mut Map<String, Value>) {
        if let Some((ptr, name)) = self.reader.objects(device, base, "deviceName").first() {
            put_str(out, "system_name", self.reader.str(name, ptr, "name"));
        }
        if let Some((ptr, version)) = self.reader.objects(device, base, "version").first() {
            put_str(
                out,
                "system_version",
                self.reader.str(version, ptr, "value"),
            );
        }
    }

    fn child(&mut self, (index, child): Found<'v>) -> Map<String, Value> {
        let base = resource_pointer(index);
        let patient = child.resource;
        let mut out = Map::new();
        if let Some(name) = self.name(patient, &base) {
            put(&mut out, "name", name);
        }
        put_str(
            &mut out,
            "gender",
            self.reader.str(patient, &base, "gender"),
        );
        self.birth_date_and_time(patient, &base, &mut out);
        if let Some(b) = self.reader.bool(patient, &base, "multipleBirthBoolean") {
            put(&mut out, "multiple_birth", Value::Bool(b));
        }
        if let Some(order) = self.reader.int(patient, &base, "multipleBirthInteger") {
            put(&mut out, "birth_order", Value::from(order));
        }
        if let Some((ptr, ext)) = extension(self.reader, patient, &base, EXT_BIRTH_PLACE)
            && let Some(address) = self.reader.obj(ext, &ptr, "valueAddress")
        {
            let ptr = at(&ptr, "valueAddress");
            let mut place = Map::new();
            for (from, to) in [
                ("district", "district"),
                ("state", "state"),
                ("city", "city"),
                ("country", "country"),
                ("text", "text"),
            ] {
                put_str(&mut place, to, self.reader.str(address, &ptr, from));
            }
            put(&mut out, "birth_place", Value::Object(place));
        }
        out
    }

    /// `birthDate` is the local date of birth and the `patient-birthTime`
    /// extension the local time: both are read as written, never shifted to
    /// UTC. A year (or year and month) alone is an estimate.
    fn birth_date_and_time(
        &mut self,
        patient: &Map<String, Value>,
        base: &str,
        out: &mut Map<String, Value>,
    ) {
        let date = self.date(patient, base, "birthDate");
        let time = self.birth_time(patient, base);
        let (year, precision) = match date {
            Some(FhirDate::Full(d)) => {
                if let Some((ptr, t_date, t_time)) = time {
                    if t_date == d {
                        put_str(out, "birth_time", Some(&t_time));
                    } else {
                        self.reader.push(
                            ptr,
                            "inconsistent",
                            "must fall on birthDate: the time of birth is given in local time",
                        );
                    }
                }
                put_str(out, "birth_date", Some(&d));
                put_str(out, "birth_date_precision", Some("day"));
                return;
            }
            None => {
                if let Some((_, t_date, t_time)) = time {
                    put_str(out, "birth_date", Some(&t_date));
                    put_str(out, "birth_date_precision", Some("day"));
                    put_str(out, "birth_time", Some(&t_time));
                }
                return;
            }
            Some(FhirDate::Year(y)) => (y, "year"),
            Some(FhirDate::YearMonth(y)) => (y, "month"),
        };
        if let Some((ptr, _, _)) = time {
            self.reader.push(
                ptr,
                "inconsistent",
                "a time of birth needs a complete birthDate",
            );
        }
        put(out, "birth_year", Value::from(year));
        put_str(out, "birth_date_precision", Some(precision));
    }

    /// The birth-time extension: its pointer, local date and local time.
    fn birth_time(
        &mut self,
        patient: &Map<String, Value>,
        base: &str,
    ) -> Option<(String, String, String)> {
        let meta = self.reader.obj(patient, base, "_birthDate")?;
        let meta_ptr = at(base, "_birthDate");
        let (ptr, ext) = extension(self.reader, meta, &meta_ptr, EXT_BIRTH_TIME)?;
        let text = self.reader.str(ext, &ptr, "valueDateTime")?;
        let ptr = at(&ptr, "valueDateTime");
        match local_date_time(text) {
            Some((date, time)) => Some((ptr, date, time)),
            None => {
                self.reader.push(
                    ptr,
                    "format",
                    "must be a FHIR dateTime with seconds and a UTC offset",
                );
                None
            }
        }
    }

    fn date(&mut self, obj: &Map<String, Value>, base: &str, key: &str) -> Option<FhirDate> {
        let text = self.reader.str(obj, base, key)?;
        let parsed = FhirDate::parse(text);
        if parsed.is_none() {
            self.reader.push(
                at(base, key),
                "format",
                "must be a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)",
            );
        }
        parsed
    }

    /// A mother or father: a Patient, or a RelatedPerson of the child.
    fn parent(&mut self, (index, person): Found<'v>) -> Map<String, Value> {
        let base = resource_pointer(index);
        let resource = person.resource;
        let mut out = Map::new();
        if let Some(name) = self.name(resource, &base) {
            put(&mut out, "name", name);
        }
        put_str(
            &mut out,
            "gender",
            self.reader.str(resource, &base, "gender"),
        );
        match self.date(resource, &base, "birthDate") {
            Some(FhirDate::Full(d)) => put_str(&mut out, "birth_date", Some(&d)),
            Some(FhirDate::Year(y) | FhirDate::YearMonth(y)) => {
                put(&mut out, "birth_year", Value::from(y))
            }
            None => {}
        }
        if let Some(code) = self.nationality(resource, &base) {
            put_str(&mut out, "nationality", Some(code));
        }
        let identifiers = self.identifiers(resource, &base);
        if !identifiers.is_empty() {
            put(&mut out, "identifiers", Value::Array(identifiers));
        }
        if let Some(address) = self.home_address(resource, &base) {
            put(&mut out, "address", Value::Object(address));
        }
        out
    }

    /// `patient-nationality` with its nested `code` extension.
    fn nationality(&mut self, resource: &'v Map<String, Value>, base: &str) -> Option<&'v str> {
        let (ptr, ext) = extension(self.reader, resource, base, EXT_NATIONALITY)?;
        let (ptr, code) = extension(self.reader, ext, &ptr, "code")?;
        let concept = self.reader.obj(code, &ptr, "valueCodeableConcept")?;
        coded(
            self.reader,
            concept,
            &at(&ptr, "valueCodeableConcept"),
            &NATIONALITY_SYSTEMS,
        )
    }

    /// Identifiers with their system; a passport system's suffix is the issuer.
    fn identifiers(&mut self, resource: &Map<String, Value>, base: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for (ptr, identifier) in self.reader.objects(resource, base, "identifier") {
            let system = self.reader.str(identifier, &ptr, "system");
            let value = self.reader.str(identifier, &ptr, "value");
            let (Some(system), Some(value)) = (system, value) else {
                continue;
            };
            let mut item = Map::new();
            match system.strip_prefix(PASSPORT_PREFIX) {
                Some(issuer) if !issuer.is_empty() => {
                    put_str(
                        &mut item,
                        "system",
                        Some(PASSPORT_PREFIX.trim_end_matches('-')),
                    );
                    put_str(&mut item, "issuer", Some(issuer));
                }
                _ => put_str(&mut item, "system", Some(system)),
            }
            put_str(&mut item, "value", Some(value));
            out.push(Value::Object(item));
        }
        out
    }

    /// The home address (or the first one without a use).
    fn home_address(
        &mut self,
        resource: &Map<String, Value>,
        base: &str,
    ) -> Option<Map<String, Value>> {
        let addresses = self.reader.objects(resource, base, "address");
        let mut chosen = None;
        for (ptr, address) in &addresses {
            match self.reader.str(address, ptr, "use") {
                Some("home") => {
                    chosen = Some((ptr, address));
                    break;
                }
                None if chosen.is_none() => chosen = Some((ptr, address)),
                _ => {}
            }
        }
        let (ptr, address) = chosen?;
        let mut out = Map::new();
        for key in ["district", "state", "country"] {
            put_str(&mut out, key, self.reader.str(address, ptr, key));
        }
        Some(out)
    }

    /// The person's name in its original script, and its Latin form when the
    /// document gives one (a second name marked `ABC`, ISO 21090).
    fn name(&mut self, resource: &Map<String, Value>, base: &str) -> Option<Value> {
        let names = self.reader.objects(resource, base, "name");
        let mut primary: Option<(u8, &str, &Map<String, Value>)> = None;
        let mut latin = None;
        for (ptr, name) in &names {
            if representation(self.reader, name, ptr) == Some("ABC") && names.len() > 1 {
                latin = latin.or(Some((ptr.as_str(), *name)));
                continue;
            }
            let rank = match self.reader.str(name, ptr, "use") {
                Some("official") => 0,
                Some("usual") | None => 1,
                Some("old" | "maiden" | "anonymous") => continue,
                Some(_) => 2,
            };
            if primary.is_none_or(|(r, _, _)| rank < r) {
                primary = Some((rank, ptr.as_str(), *name));
            }
        }
        let (_, ptr, name) = primary?;
        let mut out = Map::new();
        self.name_parts(name, ptr, "", &mut out);
        if let Some((ptr, name)) = latin {
            self.name_parts(name, ptr, "_latin", &mut out);
        }
        (!out.is_empty()).then_some(Value::Object(out))
    }

    fn name_parts(
        &mut self,
        name: &Map<String, Value>,
        ptr: &str,
        suffix: &str,
        out: &mut Map<String, Value>,
    ) {
        let given = self.reader.strings(name, ptr, "given");
        if !given.is_empty() {
            put_str(out, &format!("given_names{suffix}"), Some(&given.join(" ")));
        }
        put_str(
            out,
            &format!("family_name{suffix}"),
            self.reader.str(name, ptr, "family"),
        );
    }

    /// The informant: a RelatedPerson's v3 RoleCode, the mother's or the
    /// father's own Patient, or a practitioner.
    fn informant(
        &mut self,
        (index, informant): Found<'v>,
        mother: Option<Found<'v>>,
        father: Option<Found<'v>>,
    ) -> Map<String, Value> {
        let base = resource_pointer(index);
        let resource = informant.resource;
        let mut out = Map::new();
        let is = |p: Option<Found<'v>>| p.is_some_and(|(i, _)| i == index);
        match informant.resource_type {
            "RelatedPerson" => {
                for (ptr, concept) in self.reader.objects(resource, &base, "relationship") {
                    if let Some(code) = coded(self.reader, concept, &ptr, &ROLE_CODE) {
                        put_str(&mut out, "relationship", Some(code));
                        break;
                    }
                }
                if let Some(name) = self.name(resource, &base) {
                    put(&mut out, "name", name);
                }
                self.telecom(resource, &base, &mut out);
            }
            "Patient" if is(mother) => put_str(&mut out, "relationship", Some("MTH")),
            "Patient" if is(father) => put_str(&mut out, "relationship", Some("FTH")),
            "Practitioner" | "PractitionerRole" => put(&mut out, "practitioner", Value::Bool(true)),
            _ => {}
        }
        out
    }

    fn telecom(&mut self, resource: &Map<String, Value>, base: &str, out: &mut Map<String, Value>) {
        for (ptr, point) in self.reader.objects(resource, base, "telecom") {
            let key = match self.reader.str(point, &ptr, "system") {
                Some("phone" | "sms") => "phone",
                Some("email") => "email",
                _ => continue,
            };
            if !out.contains_key(key) {
                put_str(out, key, self.reader.str(point, &ptr, "value"));
            }
        }
    }

    /// The birth encounter: `Composition.encounter`, else the first Encounter
    /// of the birth-encounter section.
    fn encounter(&mut self, section: &[Found<'v>]) -> Map<String, Value> {
        let mut out = Map::new();
        let from_composition = if self.composition.contains_key("encounter") {
            self.bundle
                .follow(self.reader, self.composition, COMPOSITION, "encounter")
        } else {
            None
        };
        let encounter = from_composition
            .filter(|(_, e)| e.resource_type == "Encounter")
            .or_else(|| {
                section
                    .iter()
                    .copied()
                    .find(|(_, e)| e.resource_type == "Encounter")
            });
        let Some((index, encounter)) = encounter else {
            return out;
        };
        let base = resource_pointer(index);
        let resource = encounter.resource;
        if let Some(class) = self.reader.obj(resource, &base, "class") {
            put_str(
                &mut out,
                "class",
                self.reader.str(class, &at(&base, "class"), "code"),
            );
        }
        let locations = self.reader.objects(resource, &base, "location");
        if let Some((ptr, location)) = locations.first() {
            self.location_facility(location, ptr, &mut out);
        }
        out
    }

    /// The facility of `Encounter.location[0].location`: its identifier, or
    /// the identifier of the Location it refers to.
    fn location_facility(
        &mut self,
        location: &'v Map<String, Value>,
        ptr: &str,
        out: &mut Map<String, Value>,
    ) {
        let Some(reference) = self.reader.obj(location, ptr, "location") else {
            return;
        };
        let ptr = at(ptr, "location");
        if let Some(identifier) = self.reader.obj(reference, &ptr, "identifier") {
            let id_ptr = at(&ptr, "identifier");
            put_str(
                out,
                "facility_code",
                self.reader.str(identifier, &id_ptr, "value"),
            );
            put_str(
                out,
                "facility_system",
                self.reader.str(identifier, &id_ptr, "system"),
            );
            return;
        }
        if !reference.contains_key("reference") {
            return;
        }
        if let Some((i, entry)) = self.bundle.follow_reference(self.reader, reference, &ptr)
            && entry.resource_type == "Location"
        {
            let base = resource_pointer(i);
            if let Some((id_ptr, identifier)) = self
                .reader
                .objects(entry.resource, &base, "identifier")
                .first()
            {
                put_str(
                    out,
                    "facility_code",
                    self.reader.str(identifier, id_ptr, "value"),
                );
                put_str(
                    out,
                    "facility_system",
                    self.reader.str(identifier, id_ptr, "system"),
                );
            }
        }
    }

    /// Birth weight and plurality. Only these codes are read; every other
    /// Observation is skipped unread.
    fn observations(&mut self, child: Found<'v>, tree: &mut Map<String, Value>) {
        let mut weight: Option<(usize, Value)> = None;
        for (index, entry) in self.bundle.iter() {
            if entry.resource_type != "Observation" {
                continue;
            }
            let base = resource_pointer(index);
            let obs = entry.resource;
            let Some(code) = self
                .reader
                .obj(obs, &base, "code")
                .and_then(|c| coded(self.reader, c, &at(&base, "code"), &LOINC))
            else {
                continue;
            };
            let rank = BIRTH_WEIGHT_CODES.iter().position(|c| *c == code);
            if rank.is_none() && code != PLURALITY_CODE {
                continue;
            }
            if matches!(
                self.reader.str(obs, &base, "status"),
                Some("entered-in-error" | "cancelled")
            ) {
                continue;
            }
            if let Some(rank) = rank {
                if weight.as_ref().is_some_and(|(r, _)| *r <= rank)
                    || !self.about(obs, &base, child)
                {
                    continue;
                }
                if let Some(w) = self.weight(obs, &base) {
                    weight = Some((rank, w));
                }
            } else if !tree.contains_key("plurality") {
                match self.reader.int(obs, &base, "valueInteger") {
                    Some(n) => put(tree, "plurality", Value::from(n)),
                    None if !obs.contains_key("valueInteger") => self.reader.push(
                        at(&base, "valueInteger"),
                        "required",
                        "plurality (LOINC 57722-1) is given as valueInteger",
                    ),
                    None => {}
                }
            }
        }
        if let Some((_, w)) = weight {
            put(tree, "birth_weight", w);
        }
    }

    /// Is this Observation about the child? One without a subject is taken to be.
    fn about(&mut self, obs: &'v Map<String, Value>, base: &str, (child, _): Found<'v>) -> bool {
        if !obs.contains_key("subject") {
            return true;
        }
        self.bundle
            .follow(self.reader, obs, base, "subject")
            .is_some_and(|(i, _)| i == child)
    }

    /// A birth weight as `{value, unit}` in g or kg. Other UCUM mass units are
    /// converted to grams, since the canonical record carries only these two.
    fn weight(&mut self, obs: &Map<String, Value>, base: &str) -> Option<Value> {
        let Some(quantity) = self.reader.obj(obs, base, "valueQuantity") else {
            self.reader.push(
                at(base, "valueQuantity"),
                "required",
                "a birth weight is given as valueQuantity",
            );
            return None;
        };
        let ptr = at(base, "valueQuantity");
        let value = match quantity.get("value") {
            Some(Value::Number(n)) => n,
            None | Some(Value::Null) => {
                self.reader
                    .push(at(&ptr, "value"), "required", "is required");
                return None;
            }
            Some(_) => {
                self.reader
                    .push(at(&ptr, "value"), "type", "must be a number");
                return None;
            }
        };
        let system = self.reader.str(quantity, &ptr, "system");
        let code = self.reader.str(quantity, &ptr, "code");
        let unit = self.reader.str(quantity, &ptr, "unit");
        let (unit, unit_ptr) = match (system, code) {
            (Some(UCUM) | None, Some(code)) => (Some(code), at(&ptr, "code")),
            (None, None) => (unit, at(&ptr, "unit")),
            (Some(_), _) => (None, at(&ptr, "system")),
        };
        match unit.and_then(|u| mass(value, u)) {
            Some((value, unit)) => {
                let mut out = Map::new();
                put(&mut out, "value", value);
                put_str(&mut out, "unit", Some(unit));
                Some(Value::Object(out))
            }
            None => {
                self.reader.push(
                    unit_ptr,
                    "unit",
                    "must be a UCUM mass unit (g, kg, mg, [lb_av], [oz_av])",
                );
                None
            }
        }
    }
}

/// `value unit` as (value, g|kg): g and kg are kept as sent.
fn mass(value: &Number, unit: &str) -> Option<(Value, &'static str)> {
    let grams_per_unit = match unit {
        "g" => return Some((Value::Number(value.clone()), "g")),
        "kg" => return Some((Value::Number(value.clone()), "kg")),
        "mg" => 0.001,
        "[lb_av]" => 453.592_37,
        "[oz_av]" => 28.349_523_125,
        _ => return None,
    };
    let grams = (value.as_f64()? * grams_per_unit * 1000.0).round() / 1000.0;
    Number::from_f64(grams).map(|n| (Value::Number(n), "g"))
}

/// The first person (Patient or RelatedPerson) among a section's entries.
fn first_person<'v>(entries: &[Found<'v>]) -> Option<Found<'v>> {
    entries
        .iter()
        .copied()
        .find(|(_, e)| matches!(e.resource_type, "Patient" | "RelatedPerson"))
}

/// The first extension with this url, and its pointer.
fn extension<'v>(
    reader: &mut Reader,
    obj: &'v Map<String, Value>,
    base: &str,
    url: &str,
) -> Option<(String, &'v Map<String, Value>)> {
    for (ptr, ext) in reader.objects(obj, base, "extension") {
        if reader.str(ext, &ptr, "url") == Some(url) {
            return Some((ptr, ext));
        }
    }
    None
}

/// The ISO 21090 representation code of a HumanName, if marked.
fn representation<'v>(
    reader: &mut Reader,
    name: &'v Map<String, Value>,
    ptr: &str,
) -> Option<&'v str> {
    let (ext_ptr, ext) = extension(reader, name, ptr, EXT_NAME_REPRESENTATION)?;
    reader.str(ext, &ext_ptr, "valueCode")
}

/// A FHIR `date`: a full date, or a year (with or without a month).
#[derive(Debug, Clone, PartialEq, Eq)]
enum FhirDate {
    Full(String),
    Year(i64),
    YearMonth(i64),
}

impl FhirDate {
    /// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, checked byte by byte (no signs, no
    /// other lengths) and, for a full date, against the calendar.
    fn parse(text: &str) -> Option<FhirDate> {
        let bytes = text.as_bytes();
        let shape_ok = |dashes: &[usize]| {
            bytes.iter().enumerate().all(|(i, b)| {
                if dashes.contains(&i) {
                    *b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
        };
        let number = |from: usize, to: usize| text.get(from..to)?.parse::<i64>().ok();
        match bytes.len() {
            4 if shape_ok(&[]) => Some(FhirDate::Year(number(0, 4)?)),
            7 if shape_ok(&[4]) => (1..=12)
                .contains(&number(5, 7)?)
                .then_some(FhirDate::YearMonth(number(0, 4)?)),
            10 if shape_ok(&[4, 7]) => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map(|_| FhirDate::Full(text.to_string())),
            _ => None,
        }
    }
}

/// The local date and time of a FHIR dateTime, exactly as written. The offset
/// is checked for form but not applied: a birth at 00:40 local time keeps its
/// local date.
fn local_date_time(text: &str) -> Option<(String, String)> {
    chrono::DateTime::parse_from_rfc3339(text).ok()?;
    if !text.is_ascii() || text.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    Some((text.get(..10)?.to_string(), text.get(11..19)?.to_string()))
}

fn put(map: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if !empty {
        map.insert(key.to_string(), value);
    }
}

fn put_str(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        map.insert(key.to_string(), Value::String(v.to_string()));
    }
}

#[cfg(test)]
mod tests;

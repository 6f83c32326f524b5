//! (The former builder, kept as the oracle of a property test.)
//!
//! The Bundle as OpenCRVS 1.x takes it (FORMATS.md §2; the shape of
//! OpenCRVS's event-notification documentation and Farajaland's Postman
//! collection). The dialect's departures from R4 are kept on purpose:
//! `Composition.class`, `Composition.author: []`, `HumanName.use: "en"`,
//! `Address.type: "PRIMARY_ADDRESS"`, a single `RelatedPerson.relationship`,
//! no `Encounter.class`, `Observation.context`, and the birth plurality as a
//! string in `valueQuantity.value`.

use serde_json::{Map, Value, json};

use super::tree::{Address, Father, Identifier, Informant, Name, Notification, Person};
use crate::mapping::RouteContext;

const SPEC: &str = "http://opencrvs.org/specs";
const SECTIONS: &str = "http://opencrvs.org/specs/sections";

/// One entry of the Bundle before it is placed.
struct Entry {
    full_url: String,
    resource: Value,
}

/// Each resource's fullUrl is a UUIDv5 of the record, version, route and
/// the resource's role, so the same record version gives the same Bundle.
fn full_url(ctx: &RouteContext, role: &str) -> String {
    format!("urn:uuid:{}", ctx.derived(&format!("opencrvs-v1/{role}")))
}

pub fn build(n: &Notification, ctx: &RouteContext) -> Value {
    let composition_url = full_url(ctx, "composition");
    let child = Entry {
        full_url: full_url(ctx, "child"),
        resource: patient(&n.child),
    };
    let mother = n.mother.as_ref().map(|m| Entry {
        full_url: full_url(ctx, "mother"),
        resource: patient(m),
    });
    let father = n.father.as_ref().map(|f| Entry {
        full_url: full_url(ctx, "father"),
        resource: match f {
            Father::Given(p) => patient(p),
            Father::NotAvailable { reason } => father_not_available(reason),
        },
    });
    let encounter = Entry {
        full_url: full_url(ctx, "encounter"),
        resource: json!({
            "resourceType": "Encounter",
            "status": "finished",
            "location": [{"location": {"reference": format!("Location/{}", n.encounter_location_id)}}]
        }),
    };
    let (informant_patient, related_person) =
        informant_entries(n, ctx, mother.as_ref(), father.as_ref());
    let observations = observations(n, ctx, &encounter.full_url);

    let mut sections = vec![section("child-details", "Child details", &child.full_url)];
    if let Some(m) = &mother {
        sections.push(section("mother-details", "Mother's details", &m.full_url));
    }
    if let Some(f) = &father {
        sections.push(section("father-details", "Father's details", &f.full_url));
    }
    if let Some(r) = &related_person {
        sections.push(section(
            "informant-details",
            "Informant's details",
            &r.full_url,
        ));
    }
    sections.push(section(
        "birth-encounter",
        "Birth encounter",
        &encounter.full_url,
    ));

    let composition = Entry {
        full_url: composition_url.clone(),
        resource: composition(n, ctx, &child.full_url, sections),
    };
    let task = Entry {
        full_url: full_url(ctx, "task"),
        resource: task(n, &composition_url),
    };

    // Joi checks the order: the Composition first, the Task second.
    let entries: Vec<Entry> = [Some(composition), Some(task), Some(child)]
        .into_iter()
        .chain([
            mother,
            father,
            informant_patient,
            related_person,
            Some(encounter),
        ])
        .flatten()
        .chain(observations)
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "document",
        "meta": {"lastUpdated": n.last_updated},
    });
    // Moved in, not through json!, which would copy every resource twice.
    bundle["entry"] = entries.into_iter().map(Entry::into_value).collect();
    bundle
}

impl Entry {
    fn into_value(self) -> Value {
        let mut entry = Map::new();
        entry.insert("fullUrl".into(), Value::String(self.full_url));
        entry.insert("resource".into(), self.resource);
        Value::Object(entry)
    }
}

fn composition(
    n: &Notification,
    ctx: &RouteContext,
    child_url: &str,
    sections: Vec<Value>,
) -> Value {
    let mut composition = json!({
        "resourceType": "Composition",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{}", ctx.document_id())},
        "status": "final",
        "type": {
            "coding": [{"system": "http://opencrvs.org/doc-types", "code": "birth-notification"}],
            "text": "Birth Notification"
        },
        "class": {
            "coding": [{"system": "http://opencrvs.org/doc-classes", "code": "crvs-document"}],
            "text": "CRVS Document"
        },
        "subject": {"reference": child_url},
        "date": n.last_updated,
        "author": [],
        "title": "Birth Notification",
    });
    // Moved in: json! would copy every section.
    composition["section"] = Value::Array(sections);
    composition
}

fn section(code: &str, title: &str, reference: &str) -> Value {
    json!({
        "title": title,
        "code": {"coding": [{"system": SECTIONS, "code": code}], "text": title},
        "entry": [{"reference": reference}]
    })
}

fn task(n: &Notification, composition_url: &str) -> Value {
    let mut extensions = Vec::new();
    let contact = [
        ("contact-person", &n.contact.relationship),
        ("contact-person-phone-number", &n.contact.phone),
        ("contact-person-email", &n.contact.email),
    ];
    for (name, value) in contact {
        if let Some(v) = value {
            extensions.push(json!({"url": format!("{SPEC}/extension/{name}"), "valueString": v}));
        }
    }
    if let Some(location) = &n.office_location_id {
        extensions.push(location_extension("regLastLocation", location));
    }
    extensions.push(location_extension("regLastOffice", &n.office_id));
    json!({
        "resourceType": "Task",
        "status": "draft",
        "intent": "unknown",
        "code": {"coding": [{"system": format!("{SPEC}/types"), "code": "BIRTH"}]},
        "focus": {"reference": composition_url},
        // workflow spreads this list to add the tracking id (v1.9.15
        // eventNotificationHandler.ts): without it the notification is a 500.
        "identifier": [],
        "extension": extensions
    })
}

fn location_extension(name: &str, id: &str) -> Value {
    json!({
        "url": format!("{SPEC}/extension/{name}"),
        "valueReference": {"reference": format!("Location/{id}")}
    })
}

fn patient(p: &Person) -> Value {
    let mut r = json!({"resourceType": "Patient", "active": true});
    if let Some(name) = human_name(&p.name) {
        r["name"] = Value::Array(vec![name]);
    }
    set(&mut r, "gender", &p.gender);
    set(&mut r, "birthDate", &p.birth_date);
    if let Some(order) = p.multiple_birth_order {
        r["multipleBirthInteger"] = json!(order);
    }
    if !p.identifiers.is_empty() {
        r["identifier"] = p.identifiers.iter().map(identifier).collect();
    }
    if let Some(a) = &p.address {
        r["address"] = Value::Array(vec![address(a)]);
    }
    let mut extensions = Vec::new();
    if let Some(code) = &p.nationality {
        extensions.push(json!({
            "url": "http://hl7.org/fhir/StructureDefinition/patient-nationality",
            "extension": [{
                "url": "code",
                "valueCodeableConcept": {"coding": [{"system": "urn:iso:std:iso:3166", "code": code}]}
            }]
        }));
    }
    if let Some(age) = p.age_years {
        extensions.push(json!({
            "url": format!("{SPEC}/extension/age-of-individual-in-years"),
            "valueInteger": age
        }));
    }
    if !extensions.is_empty() {
        r["extension"] = Value::Array(extensions);
    }
    r
}

fn set(resource: &mut Value, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        resource[key] = json!(v);
    }
}

fn human_name(name: &Name) -> Option<Value> {
    if name.given.is_none() && name.family.is_none() {
        return None;
    }
    // The dialect's `use` is a language tag, and `family` a string since 1.7.
    let mut n = json!({"use": "en"});
    if let Some(given) = &name.given {
        n["given"] = json!([given]);
    }
    if let Some(family) = &name.family {
        n["family"] = json!(family);
    }
    Some(n)
}

fn identifier(id: &Identifier) -> Value {
    json!({
        "type": {"coding": [{"system": format!("{SPEC}/identifier-type"), "code": id.kind}]},
        "value": id.value
    })
}

fn address(a: &Address) -> Value {
    let mut v = json!({"type": "PRIMARY_ADDRESS", "country": a.country});
    set(&mut v, "state", &a.state);
    set(&mut v, "district", &a.district);
    v
}

fn father_not_available(reason: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "active": false,
        "extension": [{"url": format!("{SPEC}/extension/reason-not-applying"), "valueString": reason}]
    })
}

/// The informant's RelatedPerson points at the Patient that holds the
/// informant's details: the mother's or father's own entry, or a Patient of
/// its own when someone else informed and was named.
fn informant_entries(
    n: &Notification,
    ctx: &RouteContext,
    mother: Option<&Entry>,
    father: Option<&Entry>,
) -> (Option<Entry>, Option<Entry>) {
    let Some(Informant { relationship, name }) = &n.informant else {
        return (None, None);
    };
    let father_given = matches!(n.father, Some(Father::Given(_)));
    let (own, points_at) = match relationship.as_str() {
        "MOTHER" if mother.is_some() => (None, mother.map(|m| m.full_url.clone())),
        "FATHER" if father_given => (None, father.map(|f| f.full_url.clone())),
        _ => match human_name(name) {
            Some(hn) => {
                let url = full_url(ctx, "informant");
                let mut resource = json!({"resourceType": "Patient", "active": true});
                resource["name"] = Value::Array(vec![hn]);
                let entry = Entry {
                    full_url: url.clone(),
                    resource,
                };
                (Some(entry), Some(url))
            }
            None => (None, None),
        },
    };
    let mut related = json!({
        "resourceType": "RelatedPerson",
        "relationship": {
            "coding": [{
                "system": "http://hl7.org/fhir/ValueSet/relatedperson-relationshiptype",
                "code": relationship
            }]
        }
    });
    if let Some(url) = points_at {
        related["patient"] = json!({"reference": url});
    }
    let related = Entry {
        full_url: full_url(ctx, "informant-relationship"),
        resource: related,
    };
    (own, Some(related))
}

fn observations(n: &Notification, ctx: &RouteContext, encounter_url: &str) -> Vec<Entry> {
    let observation = |role: &str,
                       category: (&str, &str),
                       code: (&str, &str),
                       value: (&str, Value)| {
        let mut r = json!({
            "resourceType": "Observation",
            "status": "final",
            "context": {"reference": encounter_url},
            "category": [{"coding": [{
                "system": "http://hl7.org/fhir/observation-category",
                "code": category.0,
                "display": category.1
            }]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code.0, "display": code.1}]}
        });
        r[value.0] = value.1;
        Entry {
            full_url: full_url(ctx, role),
            resource: r,
        }
    };
    let mut out = Vec::new();
    if let Some(kg) = n.body_weight_kg {
        out.push(observation(
            "body-weight",
            ("vital-signs", "Vital Signs"),
            ("3141-9", "Body weight Measured"),
            (
                "valueQuantity",
                json!({"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}),
            ),
        ));
    }
    if let Some(plurality) = &n.birth_plurality {
        // OpenCRVS sends the plurality code as a string quantity value.
        out.push(observation(
            "birth-plurality",
            ("procedure", "Procedure"),
            ("57722-1", "Birth plurality of Pregnancy"),
            ("valueQuantity", json!({"value": plurality})),
        ));
    }
    if let Some(attendant) = &n.attendant_at_birth {
        out.push(observation(
            "birth-attendant",
            ("procedure", "Procedure"),
            ("73764-3", "Birth attendant title"),
            ("valueString", json!(attendant)),
        ));
    }
    out
}

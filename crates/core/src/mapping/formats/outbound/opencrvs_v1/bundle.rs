//! The Bundle as OpenCRVS 1.x takes it (FORMATS.md §2; the shape of
//! OpenCRVS's event-notification documentation and Farajaland's Postman
//! collection). The dialect's departures from R4 are kept on purpose:
//! `Composition.class`, `Composition.author: []`, `HumanName.use: "en"`,
//! `Address.type: "PRIMARY_ADDRESS"`, a single `RelatedPerson.relationship`,
//! no `Encounter.class`, `Observation.context`, and the birth plurality as a
//! string in `valueQuantity.value`.
//!
//! The resources are the structs of `resources.rs`, written straight to bytes.

use super::resources::*;

use super::tree::{Address, Father, Identifier, Informant, Name, Notification, Person};
use crate::mapping::RouteContext;

/// `http://opencrvs.org/specs` and its extensions, spelled out.
const TYPES: &str = "http://opencrvs.org/specs/types";
const IDENTIFIER_TYPE: &str = "http://opencrvs.org/specs/identifier-type";
const SECTIONS: &str = "http://opencrvs.org/specs/sections";
const CONTACT_PERSON: &str = "http://opencrvs.org/specs/extension/contact-person";
const CONTACT_PHONE: &str = "http://opencrvs.org/specs/extension/contact-person-phone-number";
const CONTACT_EMAIL: &str = "http://opencrvs.org/specs/extension/contact-person-email";
const REG_LAST_LOCATION: &str = "http://opencrvs.org/specs/extension/regLastLocation";
const REG_LAST_OFFICE: &str = "http://opencrvs.org/specs/extension/regLastOffice";
const AGE_IN_YEARS: &str = "http://opencrvs.org/specs/extension/age-of-individual-in-years";
const REASON_NOT_APPLYING: &str = "http://opencrvs.org/specs/extension/reason-not-applying";

/// The role of a resource in the document, which its fullUrl is derived from.
#[derive(Clone, Copy)]
enum Role {
    Composition,
    Task,
    Child,
    Mother,
    Father,
    Informant,
    InformantRelationship,
    Encounter,
    BodyWeight,
    BirthPlurality,
    BirthAttendant,
}

impl Role {
    /// The UUIDv5 name's last part, `opencrvs-v1/<role>`: written out rather
    /// than formatted for every entry of every document.
    fn purpose(self) -> &'static str {
        match self {
            Role::Composition => "opencrvs-v1/composition",
            Role::Task => "opencrvs-v1/task",
            Role::Child => "opencrvs-v1/child",
            Role::Mother => "opencrvs-v1/mother",
            Role::Father => "opencrvs-v1/father",
            Role::Informant => "opencrvs-v1/informant",
            Role::InformantRelationship => "opencrvs-v1/informant-relationship",
            Role::Encounter => "opencrvs-v1/encounter",
            Role::BodyWeight => "opencrvs-v1/body-weight",
            Role::BirthPlurality => "opencrvs-v1/birth-plurality",
            Role::BirthAttendant => "opencrvs-v1/birth-attendant",
        }
    }
}

/// Each resource's fullUrl is a UUIDv5 of the record, version, route and
/// the resource's role, so the same record version gives the same Bundle.
fn full_url(ctx: &RouteContext, role: Role) -> Url {
    Url(ctx.derived(role.purpose()))
}

pub fn build<'a>(n: &'a Notification<'a>, ctx: &RouteContext) -> Bundle<'a> {
    let composition_url = full_url(ctx, Role::Composition);
    let child = Entry {
        full_url: full_url(ctx, Role::Child),
        resource: Resource::Patient(patient(&n.child)),
    };
    let mother = n.mother.as_ref().map(|m| Entry {
        full_url: full_url(ctx, Role::Mother),
        resource: Resource::Patient(patient(m)),
    });
    let father = n.father.as_ref().map(|f| Entry {
        full_url: full_url(ctx, Role::Father),
        resource: Resource::Patient(match f {
            Father::Given(p) => patient(p),
            Father::NotAvailable { reason } => father_not_available(reason),
        }),
    });
    let encounter = Entry {
        full_url: full_url(ctx, Role::Encounter),
        resource: Resource::Encounter(Encounter {
            location: [EncounterLocation {
                location: Reference {
                    reference: Location(n.encounter_location_id),
                },
            }],
            resource_type: "Encounter",
            status: "finished",
        }),
    };
    let (informant_patient, related_person) =
        informant_entries(n, ctx, mother.as_ref(), father.as_ref());
    let observations = observations(n, ctx, encounter.full_url);

    let mut sections = Vec::with_capacity(5);
    sections.push(section("child-details", "Child details", child.full_url));
    if let Some(m) = &mother {
        sections.push(section("mother-details", "Mother's details", m.full_url));
    }
    if let Some(f) = &father {
        sections.push(section("father-details", "Father's details", f.full_url));
    }
    if let Some(r) = &related_person {
        sections.push(section(
            "informant-details",
            "Informant's details",
            r.full_url,
        ));
    }
    sections.push(section(
        "birth-encounter",
        "Birth encounter",
        encounter.full_url,
    ));

    let composition = Entry {
        full_url: composition_url,
        resource: Resource::Composition(composition(n, ctx, child.full_url, sections)),
    };
    let task = Entry {
        full_url: full_url(ctx, Role::Task),
        resource: Resource::Task(task(n, composition_url)),
    };

    // Joi checks the order: the Composition first, the Task second.
    let entry = [Some(composition), Some(task), Some(child)]
        .into_iter()
        .chain([
            mother,
            father,
            informant_patient,
            related_person,
            Some(encounter),
        ])
        .flatten()
        .chain(observations.into_iter().flatten())
        .collect();
    Bundle {
        entry,
        meta: Meta {
            last_updated: n.last_updated,
        },
        resource_type: "Bundle",
        r#type: "document",
    }
}

fn composition<'a>(
    n: &Notification<'a>,
    ctx: &RouteContext,
    child_url: Url,
    section: Vec<Section>,
) -> Composition<'a> {
    Composition {
        author: [],
        class: Concept::code("http://opencrvs.org/doc-classes", "crvs-document")
            .text("CRVS Document"),
        date: n.last_updated,
        identifier: DocumentIdentifier {
            system: "urn:ietf:rfc:3986",
            value: Url(ctx.document_id()),
        },
        resource_type: "Composition",
        section,
        status: "final",
        subject: Reference {
            reference: child_url,
        },
        title: "Birth Notification",
        r#type: Concept::code("http://opencrvs.org/doc-types", "birth-notification")
            .text("Birth Notification"),
    }
}

fn section(code: &'static str, title: &'static str, reference: Url) -> Section {
    Section {
        code: Concept::code(SECTIONS, code).text(title),
        entry: [Reference { reference }],
        title,
    }
}

fn task<'a>(n: &Notification<'a>, composition_url: Url) -> Task<'a> {
    let mut extension = Vec::with_capacity(5);
    let contact = [
        (CONTACT_PERSON, n.contact.relationship),
        (CONTACT_PHONE, n.contact.phone),
        (CONTACT_EMAIL, n.contact.email),
    ];
    for (url, value) in contact {
        if let Some(v) = value {
            extension.push(Extension::string(url, v));
        }
    }
    if let Some(location) = n.office_location_id {
        extension.push(Extension::location(REG_LAST_LOCATION, location));
    }
    extension.push(Extension::location(REG_LAST_OFFICE, n.office_id));
    Task {
        code: Concept::code(TYPES, "BIRTH"),
        extension,
        focus: Reference {
            reference: composition_url,
        },
        // workflow spreads this list to add the tracking id (v1.9.15
        // eventNotificationHandler.ts): without it the notification is a 500.
        identifier: [],
        intent: "unknown",
        resource_type: "Task",
        status: "draft",
    }
}

fn patient<'a>(p: &'a Person<'a>) -> Patient<'a> {
    let mut extension = Vec::new();
    if let Some(code) = p.nationality {
        extension.push(Extension {
            extension: Some([Nationality {
                url: "code",
                value_codeable_concept: Concept::code("urn:iso:std:iso:3166", code),
            }]),
            ..Extension::new("http://hl7.org/fhir/StructureDefinition/patient-nationality")
        });
    }
    if let Some(age) = p.age_years {
        extension.push(Extension {
            value_integer: Some(age),
            ..Extension::new(AGE_IN_YEARS)
        });
    }
    Patient {
        address: p.address.as_ref().map(|a| [address(a)]),
        birth_date: p.birth_date,
        extension,
        gender: p.gender,
        identifier: p.identifiers.iter().map(identifier).collect(),
        multiple_birth_integer: p.multiple_birth_order,
        name: human_name(&p.name).map(|name| [name]),
        ..Patient::new(true)
    }
}

fn human_name<'a>(name: &Name<'a>) -> Option<HumanName<'a>> {
    if name.given.is_none() && name.family.is_none() {
        return None;
    }
    Some(HumanName {
        family: name.family,
        given: name.given.map(|given| [given]),
        r#use: "en",
    })
}

fn identifier<'a>(id: &Identifier<'a>) -> PatientIdentifier<'a> {
    PatientIdentifier {
        r#type: Concept::code(IDENTIFIER_TYPE, id.kind),
        value: id.value,
    }
}

fn address<'a>(a: &Address<'a>) -> PostalAddress<'a> {
    PostalAddress {
        country: a.country,
        district: a.district,
        state: a.state,
        r#type: "PRIMARY_ADDRESS",
    }
}

fn father_not_available(reason: &str) -> Patient<'_> {
    Patient {
        extension: vec![Extension::string(REASON_NOT_APPLYING, reason)],
        ..Patient::new(false)
    }
}

/// The informant's RelatedPerson points at the Patient that holds the
/// informant's details: the mother's or father's own entry, or a Patient of
/// its own when someone else informed and was named.
fn informant_entries<'a>(
    n: &Notification<'a>,
    ctx: &RouteContext,
    mother: Option<&Entry<'a>>,
    father: Option<&Entry<'a>>,
) -> (Option<Entry<'a>>, Option<Entry<'a>>) {
    let Some(Informant { relationship, name }) = &n.informant else {
        return (None, None);
    };
    let father_given = matches!(n.father, Some(Father::Given(_)));
    let relationship: &'a str = relationship;
    let (own, points_at) = match relationship {
        "MOTHER" if mother.is_some() => (None, mother.map(|m| m.full_url)),
        "FATHER" if father_given => (None, father.map(|f| f.full_url)),
        _ => match human_name(name) {
            Some(hn) => {
                let url = full_url(ctx, Role::Informant);
                let entry = Entry {
                    full_url: url,
                    resource: Resource::Patient(Patient {
                        name: Some([hn]),
                        ..Patient::new(true)
                    }),
                };
                (Some(entry), Some(url))
            }
            None => (None, None),
        },
    };
    let related = Entry {
        full_url: full_url(ctx, Role::InformantRelationship),
        resource: Resource::RelatedPerson(RelatedPerson {
            patient: points_at.map(|reference| Reference { reference }),
            relationship: Concept::code(
                "http://hl7.org/fhir/ValueSet/relatedperson-relationshiptype",
                relationship,
            ),
            resource_type: "RelatedPerson",
        }),
    };
    (own, Some(related))
}

fn observations<'a>(
    n: &Notification<'a>,
    ctx: &RouteContext,
    encounter_url: Url,
) -> [Option<Entry<'a>>; 3] {
    let observation = |role: Role,
                       category: (&'static str, &'static str),
                       code: (&'static str, &'static str),
                       value_quantity: Option<Quantity<'a>>,
                       value_string: Option<&'a str>| {
        let coding = |system: &'static str, (code, display): (&'static str, &'static str)| Coding {
            code,
            display: Some(display),
            system,
        };
        Entry {
            full_url: full_url(ctx, role),
            resource: Resource::Observation(Observation {
                category: [Concept {
                    coding: [coding("http://hl7.org/fhir/observation-category", category)],
                    text: None,
                }],
                code: Concept {
                    coding: [coding("http://loinc.org", code)],
                    text: None,
                },
                context: Reference {
                    reference: encounter_url,
                },
                resource_type: "Observation",
                status: "final",
                value_quantity,
                value_string,
            }),
        }
    };
    [
        n.body_weight_kg.map(|kg| {
            let quantity = Quantity {
                code: Some("kg"),
                system: Some("http://unitsofmeasure.org"),
                unit: Some("kg"),
                value: QuantityValue::Number(kg),
            };
            observation(
                Role::BodyWeight,
                ("vital-signs", "Vital Signs"),
                ("3141-9", "Body weight Measured"),
                Some(quantity),
                None,
            )
        }),
        n.birth_plurality.map(|plurality| {
            let quantity = Quantity {
                code: None,
                system: None,
                unit: None,
                value: QuantityValue::Code(plurality),
            };
            observation(
                Role::BirthPlurality,
                ("procedure", "Procedure"),
                ("57722-1", "Birth plurality of Pregnancy"),
                Some(quantity),
                None,
            )
        }),
        n.attendant_at_birth.map(|attendant| {
            observation(
                Role::BirthAttendant,
                ("procedure", "Procedure"),
                ("73764-3", "Birth attendant title"),
                None,
                Some(attendant),
            )
        }),
    ]
}

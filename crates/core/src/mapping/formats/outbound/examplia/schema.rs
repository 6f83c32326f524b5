//! `BirthNotification` v1 as one table, transcribed from
//! `schemas/registries/examplia-crvs/birth-notification-v1.xsd` in its sequence
//! order. The catalogue (what a mapping may write) and the encoder (which
//! elements exist, which are required, in which order they are written) both
//! read it, so the two cannot disagree.
//!
//! Only structure is transcribed: element names, order, occurrence, choices and
//! attributes. Value facets (patterns, enumerations, ranges) stay with the XSD,
//! which the tests run through xmllint.

/// One element of the XSD.
#[derive(Debug)]
pub struct Element {
    pub name: &'static str,
    pub presence: Presence,
    /// 1 for a single element; more for a repeated one, which the tree holds as
    /// an array (`*` in mapping paths).
    pub max: usize,
    pub content: Content,
}

/// When an element must, may or must not appear among its siblings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
    /// An `xs:choice`: at most one of the siblings in `group`, and exactly one
    /// when `required`.
    OneOf {
        group: &'static str,
        required: bool,
    },
    /// At least one of the siblings in the group (a name has given names, a
    /// family name, or both).
    AnyOf(&'static str),
    /// Optional, and only together with the named sibling (TimeOfBirth with
    /// DateOfBirth, a Latin form with the name it transliterates).
    With(&'static str),
}

#[derive(Debug)]
pub enum Content {
    Text,
    /// Simple content with attributes: the tree holds `$text` and `@name` keys.
    TextWithAttributes(&'static [Attribute]),
    Children(&'static [Element]),
}

#[derive(Debug)]
pub struct Attribute {
    pub name: &'static str,
    pub required: bool,
}

const fn el(name: &'static str, presence: Presence, content: Content) -> Element {
    Element {
        name,
        presence,
        max: 1,
        content,
    }
}

const fn text(name: &'static str, presence: Presence) -> Element {
    el(name, presence, Content::Text)
}

const fn repeated(name: &'static str, max: usize, content: Content) -> Element {
    Element {
        name,
        presence: Presence::Required,
        max,
        content,
    }
}

use Presence::{AnyOf, Optional, Required, With};

const fn one_of(group: &'static str, required: bool) -> Presence {
    Presence::OneOf { group, required }
}

/// `BirthNotificationType`.
pub const BIRTH_NOTIFICATION: &[Element] = &[
    text("NotificationId", Required),
    el("SourceSystem", Required, Content::Children(SOURCE_SYSTEM)),
    text("NotifiedAt", Required),
    el("Child", Required, Content::Children(CHILD)),
    text("BirthType", Required),
    text("BirthOrder", Required),
    el(
        "MultipleBirthSiblings",
        Optional,
        Content::Children(SIBLINGS),
    ),
    text("BirthWeightGrams", Optional),
    text("AttendantAtBirth", Required),
    el("Mother", Required, Content::Children(MOTHER)),
    el("Father", one_of("father", true), Content::Children(FATHER)),
    el(
        "FatherDetailsNotAvailable",
        one_of("father", true),
        Content::Children(FATHER_DETAILS_NOT_AVAILABLE),
    ),
    el("Informant", Required, Content::Children(INFORMANT)),
    text("LegalBasis", Required),
    text("ConsentReference", Optional),
    text("DisplacementStatus", Optional),
];

/// `SourceSystemType`.
const SOURCE_SYSTEM: &[Element] = &[
    text("AgencyCode", Required),
    text("SystemName", Required),
    text("SystemVersion", Optional),
];

const ESTIMATE_REASON: &[Attribute] = &[Attribute {
    name: "reason",
    required: true,
}];

/// `ChildType`: the date of birth (with its time) or one of two estimates.
const CHILD: &[Element] = &[
    el("Name", Optional, Content::Children(PERSON_NAME)),
    text("Sex", Required),
    text("DateOfBirth", one_of("birth-date", true)),
    text("TimeOfBirth", With("DateOfBirth")),
    el(
        "EstimatedYearOfBirth",
        one_of("birth-date", true),
        Content::TextWithAttributes(ESTIMATE_REASON),
    ),
    el(
        "EstimatedAgeMonths",
        one_of("birth-date", true),
        Content::TextWithAttributes(ESTIMATE_REASON),
    ),
    el("PlaceOfBirth", Required, Content::Children(PLACE_OF_BIRTH)),
];

/// `PlaceOfBirthType`.
const PLACE_OF_BIRTH: &[Element] = &[
    text("Type", Required),
    text("FacilityCode", Optional),
    text("AdminArea", Optional),
    text("CountryOfBirth", Optional),
    text("Description", Optional),
];

/// `SiblingListType`.
const SIBLINGS: &[Element] = &[repeated("NotificationId", 8, Content::Text)];

const SCRIPT: &[Attribute] = &[Attribute {
    name: "script",
    required: false,
}];

/// `PersonNameType`: given names, family name or both, each with an optional
/// Latin form after it.
const PERSON_NAME: &[Element] = &[
    el(
        "GivenNames",
        AnyOf("name"),
        Content::TextWithAttributes(SCRIPT),
    ),
    text("GivenNamesLatin", With("GivenNames")),
    el(
        "FamilyName",
        AnyOf("name"),
        Content::TextWithAttributes(SCRIPT),
    ),
    text("FamilyNameLatin", With("FamilyName")),
];

/// `MotherType`: `ParentAgeGroup` is required.
const MOTHER: &[Element] = &[
    el("Name", Required, Content::Children(PERSON_NAME)),
    text("DateOfBirth", one_of("age", true)),
    text("AgeYears", one_of("age", true)),
    text("Nationality", Required),
    el("Identifiers", Optional, Content::Children(IDENTIFIERS)),
    text("ResidenceAdminArea", Optional),
];

/// `FatherType`: `ParentAgeGroup` is optional.
const FATHER: &[Element] = &[
    el("Name", Required, Content::Children(PERSON_NAME)),
    text("DateOfBirth", one_of("age", false)),
    text("AgeYears", one_of("age", false)),
    text("Nationality", Required),
    el("Identifiers", Optional, Content::Children(IDENTIFIERS)),
    text("ResidenceAdminArea", Optional),
];

const FATHER_DETAILS_NOT_AVAILABLE: &[Element] = &[text("Reason", Required)];

const IDENTIFIER_ATTRIBUTES: &[Attribute] = &[
    Attribute {
        name: "scheme",
        required: true,
    },
    Attribute {
        name: "issuer",
        required: false,
    },
    Attribute {
        name: "schemeLabel",
        required: false,
    },
];

/// `IdentifierListType`.
const IDENTIFIERS: &[Element] = &[repeated(
    "Identifier",
    5,
    Content::TextWithAttributes(IDENTIFIER_ATTRIBUTES),
)];

/// `InformantType`.
const INFORMANT: &[Element] = &[
    text("Relationship", Required),
    el("Name", Optional, Content::Children(PERSON_NAME)),
    text("ContactPhone", Optional),
];

/// The X-Road header parts a mapping supplies. The service's member, subsystem,
/// code and version are fixed by the spec, so the encoder writes them itself.
pub const HEADER: &[Element] = &[
    el("client", Required, Content::Children(CLIENT)),
    el("service", Required, Content::Children(SERVICE)),
    text("userId", Required),
    text("issue", Optional),
];

/// `XRoadClientIdentifierType` of a SUBSYSTEM, in X-Road's order.
pub const CLIENT: &[Element] = &[
    text("xRoadInstance", Required),
    text("memberClass", Required),
    text("memberCode", Required),
    text("subsystemCode", Required),
];

/// The service's instance: `EXA`, or `EXA-TEST` for the test environment.
const SERVICE: &[Element] = &[text("xRoadInstance", Required)];

/// Every path a mapping may write below `prefix` for `table`.
pub fn paths(prefix: &str, table: &[Element], out: &mut Vec<String>) {
    for element in table {
        let mut base = format!("{prefix}/{}", element.name);
        if element.max > 1 {
            base.push_str("/*");
        }
        match element.content {
            Content::Text => out.push(base),
            Content::TextWithAttributes(attributes) => {
                out.push(format!("{base}/$text"));
                out.extend(attributes.iter().map(|a| format!("{base}/@{}", a.name)));
            }
            Content::Children(children) => paths(&base, children, out),
        }
    }
}

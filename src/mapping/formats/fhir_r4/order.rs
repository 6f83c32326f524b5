//! The XML element order of every FHIR R4 type, read from a table generated
//! from the official R4 JSON Schema (`r4-element-order.txt`; how it is made is
//! in its header and in `tools/fhir-validate/gen_xml_order.py`). JSON order is
//! free but XML order is fixed by the StructureDefinitions, so the converter
//! walks this table rather than the JSON object.

use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("r4-element-order.txt");

/// What an element holds, by the type named in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A primitive: written as a `value` attribute.
    Primitive,
    /// `Narrative.div`: inline XHTML.
    Xhtml,
    /// A contained resource, wrapped in an element named after its type.
    Resource,
    /// A datatype or backbone element, by its definition name.
    Complex(&'static str),
}

#[derive(Debug)]
pub struct TypeDef {
    /// Resources write `id` as an element; datatypes and backbone elements as an attribute.
    pub is_resource: bool,
    /// Elements in StructureDefinition order.
    pub elements: Vec<(&'static str, Kind)>,
}

impl TypeDef {
    pub fn element(&self, name: &str) -> Option<Kind> {
        self.elements
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
    }
}

fn kind(type_name: &'static str) -> Kind {
    match type_name {
        "xhtml" => Kind::Xhtml,
        "Resource" => Kind::Resource,
        t if t.starts_with(|c: char| c.is_ascii_lowercase()) => Kind::Primitive,
        t => Kind::Complex(t),
    }
}

fn parse() -> HashMap<&'static str, TypeDef> {
    TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|line| {
            let mut cells = line.split(' ');
            let name = cells.next()?;
            let is_resource = cells.next()? == "R";
            let elements = cells
                .filter_map(|cell| cell.split_once(':'))
                .map(|(element, type_name)| (element, kind(type_name)))
                .collect();
            Some((
                name,
                TypeDef {
                    is_resource,
                    elements,
                },
            ))
        })
        .collect()
}

/// The definition of a resource, datatype or backbone element (`Bundle_Entry`).
pub fn lookup(name: &str) -> Option<&'static TypeDef> {
    static TYPES: OnceLock<HashMap<&'static str, TypeDef>> = OnceLock::new();
    TYPES.get_or_init(parse).get(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_resources_datatypes_and_backbone_elements_in_spec_order() {
        let patient = lookup("Patient").unwrap();
        assert!(patient.is_resource);
        let names: Vec<&str> = patient.elements.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            &names[..8],
            [
                "id",
                "meta",
                "implicitRules",
                "language",
                "text",
                "contained",
                "extension",
                "modifierExtension"
            ]
        );
        let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(pos("identifier") < pos("name") && pos("name") < pos("gender"));
        assert!(pos("birthDate") < pos("multipleBirthInteger"));
        assert_eq!(
            patient.element("multipleBirthInteger"),
            Some(Kind::Primitive)
        );
        assert_eq!(patient.element("name"), Some(Kind::Complex("HumanName")));
        assert_eq!(patient.element("contained"), Some(Kind::Resource));
        assert_eq!(patient.element("_birthDate"), None);
        assert_eq!(patient.element("resourceType"), None);
        let entry = lookup("Bundle_Entry").unwrap();
        assert!(!entry.is_resource);
        assert_eq!(entry.element("resource"), Some(Kind::Resource));
        assert_eq!(
            lookup("Narrative").unwrap().element("div"),
            Some(Kind::Xhtml)
        );
        let quantity: Vec<&str> = lookup("Quantity")
            .unwrap()
            .elements
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(
            quantity,
            [
                "id",
                "extension",
                "value",
                "comparator",
                "unit",
                "system",
                "code"
            ]
        );
        assert!(lookup("string").is_none());
    }
}

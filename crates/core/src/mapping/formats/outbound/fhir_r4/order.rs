//! The XML element order of every FHIR R4 type, read from a table generated
//! from the official R4 JSON Schema (`r4-element-order.txt`; how it is made is
//! in its header and in `tools/fhir-validate/gen_xml_order.py`). JSON order is
//! free but XML order is fixed by the StructureDefinitions, so the converter
//! walks this table rather than the JSON object.

use std::sync::OnceLock;

use rustc_hash::FxHashMap;

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

/// One element of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element {
    pub name: &'static str,
    pub kind: Kind,
    /// A JSON array (max cardinality above 1), else a single value.
    pub repeats: bool,
}

#[derive(Debug)]
pub struct TypeDef {
    /// Resources write `id` as an element; datatypes and backbone elements as an attribute.
    pub is_resource: bool,
    /// Elements in StructureDefinition order.
    pub elements: Vec<Element>,
    /// Each element's place in `elements`, by name. Looked up for every key
    /// written; a fixed map built from our own table, so an unkeyed fast
    /// hash is safe.
    positions: FxHashMap<&'static str, usize>,
}

impl TypeDef {
    pub fn element(&self, name: &str) -> Option<Element> {
        self.position(name).map(|i| self.elements[i])
    }

    /// Where the element `name` comes in StructureDefinition order.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.positions.get(name).copied()
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

fn parse() -> FxHashMap<&'static str, TypeDef> {
    TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|line| {
            let mut cells = line.split(' ');
            let name = cells.next()?;
            let is_resource = cells.next()? == "R";
            let elements: Vec<Element> = cells
                .filter_map(|cell| cell.split_once(':'))
                .map(|(name, type_name)| {
                    let (type_name, repeats) = match type_name.strip_suffix('*') {
                        Some(t) => (t, true),
                        None => (type_name, false),
                    };
                    Element {
                        name,
                        kind: kind(type_name),
                        repeats,
                    }
                })
                .collect();
            let positions = elements
                .iter()
                .enumerate()
                .map(|(i, e)| (e.name, i))
                .collect();
            Some((
                name,
                TypeDef {
                    is_resource,
                    elements,
                    positions,
                },
            ))
        })
        .collect()
}

/// The definition of a resource, datatype or backbone element (`Bundle_Entry`).
pub fn lookup(name: &str) -> Option<&'static TypeDef> {
    static TYPES: OnceLock<FxHashMap<&'static str, TypeDef>> = OnceLock::new();
    TYPES.get_or_init(parse).get(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_resources_datatypes_and_backbone_elements_in_spec_order() {
        let patient = lookup("Patient").unwrap();
        assert!(patient.is_resource);
        let names: Vec<&str> = patient.elements.iter().map(|e| e.name).collect();
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
        let kind = |n: &str| patient.element(n).map(|e| e.kind);
        assert_eq!(kind("multipleBirthInteger"), Some(Kind::Primitive));
        assert_eq!(kind("name"), Some(Kind::Complex("HumanName")));
        assert_eq!(kind("contained"), Some(Kind::Resource));
        assert!(patient.element("name").unwrap().repeats);
        assert!(!patient.element("gender").unwrap().repeats);
        assert_eq!(patient.element("_birthDate"), None);
        assert_eq!(patient.element("resourceType"), None);
        let entry = lookup("Bundle_Entry").unwrap();
        assert!(!entry.is_resource);
        assert_eq!(
            entry.element("resource").map(|e| e.kind),
            Some(Kind::Resource)
        );
        let div = lookup("Narrative").unwrap().element("div");
        assert_eq!(div.map(|e| e.kind), Some(Kind::Xhtml));
        let quantity: Vec<&str> = lookup("Quantity")
            .unwrap()
            .elements
            .iter()
            .map(|e| e.name)
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

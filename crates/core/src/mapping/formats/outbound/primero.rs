//! Primero v2 case creation: the body of `POST /api/v2/cases` with a
//! client-supplied id, `{"data": {"id": <uuid>, "module_id": ..., <fields>}}`
//! (../shared/specs/FORMATS.md §4.2). With an id, Primero answers 204 and a
//! retry answers 409, so the id is the idempotency key.
//!
//! Primero fields are configured per instance, so the catalogue is data:
//! `case-fields.toml` in the destination's mapping folder lists the case
//! fields and subforms the government instance has. A subform row is
//! `data/<subform>/*/<field>`; a mapping that fills a subform from one
//! canonical object (the current care arrangement) writes its only row as
//! `data/<subform>/0/<field>`, and the encoder turns that row into a
//! one-element array.

use std::collections::BTreeMap;
use std::path::Path;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{EncodeError, Encoded};
use crate::mapping::{Catalogue, RouteContext};

/// The file in the destination folder that describes the instance.
pub const INSTANCE_FILE: &str = "case-fields.toml";

/// Primero field types the instance file may use. `multi_select_box` is
/// Primero's `select_box` with `multi_select: true`: its value is a list.
const FIELD_TYPES: [&str; 8] = [
    "text_field",
    "textarea",
    "select_box",
    "multi_select_box",
    "radio_button",
    "tick_box",
    "date_field",
    "numeric_field",
];

/// Every case carries these; they are not instance fields.
const ENVELOPE: [&str; 2] = ["data/id", "data/module_id"];

/// The key of the single row a mapping writes from one canonical object.
const ONLY_ROW: &str = "0";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Instance {
    #[allow(dead_code)]
    description: String,
    /// Case field name -> Primero field type.
    fields: BTreeMap<String, String>,
    /// Subform field name (the key in the case's data) -> its fields.
    #[serde(default)]
    subforms: BTreeMap<String, BTreeMap<String, String>>,
}

pub fn catalogue(folder: &Path) -> Result<Catalogue, String> {
    let file = folder.join(INSTANCE_FILE);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "{}: cannot read the Primero instance fields: {e}",
            file.display()
        )
    })?;
    let instance: Instance =
        toml::from_str(&text).map_err(|e| format!("{}: {}", file.display(), e.message()))?;
    instance_paths(&instance).map_err(|e| format!("{}: {e}", file.display()))
}

fn instance_paths(instance: &Instance) -> Result<Catalogue, String> {
    let mut paths: Vec<String> = ENVELOPE.iter().map(|s| s.to_string()).collect();
    for (name, field_type) in &instance.fields {
        check_field(name, field_type)?;
        if instance.subforms.contains_key(name) {
            return Err(format!(
                "{name} is declared both as a field and as a subform"
            ));
        }
        paths.extend(field_paths(&format!("data/{name}"), field_type));
    }
    for (subform, fields) in &instance.subforms {
        check_name(subform)?;
        for row in ["*", ONLY_ROW] {
            let prefix = format!("data/{subform}/{row}");
            paths.push(format!("{prefix}/unique_id"));
            for (name, field_type) in fields {
                check_field(name, field_type)?;
                paths.extend(field_paths(&format!("{prefix}/{name}"), field_type));
            }
        }
    }
    Ok(Catalogue::new(paths))
}

fn field_paths(path: &str, field_type: &str) -> Vec<String> {
    if field_type == "multi_select_box" {
        vec![path.to_string(), format!("{path}/*")]
    } else {
        vec![path.to_string()]
    }
}

fn check_field(name: &str, field_type: &str) -> Result<(), String> {
    check_name(name)?;
    if FIELD_TYPES.contains(&field_type) {
        Ok(())
    } else {
        Err(format!(
            "field {name}: type must be one of {}",
            FIELD_TYPES.join(", ")
        ))
    }
}

/// Primero field names are lower_snake_case; anything else is a typo.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !matches!(name, "id" | "module_id" | "unique_id");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a usable Primero field name (lower_snake_case, not id/module_id/unique_id)"
        ))
    }
}

pub fn encode(tree: &Value, ctx: &RouteContext) -> Result<Encoded, EncodeError> {
    let data = tree
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| EncodeError::Missing("data".into()))?;
    check_id(data)?;
    if !data.get("module_id").is_some_and(Value::is_string) {
        return Err(EncodeError::Missing("data/module_id".into()));
    }
    // Every field is checked (and each subform row's id derived) first; the
    // body is then written from the tree itself: nothing of the case is copied.
    let fields = data
        .iter()
        .map(|(key, value)| Ok((key.as_str(), encode_field(key, value, ctx)?)))
        .collect::<Result<Vec<_>, EncodeError>>()?;
    // Room for a typical case (about 3 kB) up front, rather than growing
    // from 128 bytes by doubling.
    let mut bytes = Vec::with_capacity(4096);
    serde_json::to_writer(&mut bytes, &Body(fields)).map_err(|e| EncodeError::Invalid {
        path: "data".into(),
        reason: format!("cannot serialise: {e}"),
    })?;
    Ok(Encoded {
        bytes,
        extension: "json",
        content_type: "application/json",
    })
}

/// The client-supplied id is what makes a retry a 409 instead of a second case.
fn check_id(data: &Map<String, Value>) -> Result<(), EncodeError> {
    let id = data
        .get("id")
        .ok_or_else(|| EncodeError::Missing("data/id".into()))?;
    match id.as_str().map(Uuid::try_parse) {
        Some(Ok(_)) => Ok(()),
        _ => Err(EncodeError::Invalid {
            path: "data/id".into(),
            reason: "must be a UUID (the client-supplied case id)".into(),
        }),
    }
}

/// A field of the case as Primero takes it.
enum Field<'v> {
    Value(&'v Value),
    Rows(Vec<Row<'v>>),
}

/// A subform row, with the `unique_id` it is sent with when it has none.
struct Row<'v> {
    fields: &'v Map<String, Value>,
    unique_id: Option<String>,
}

/// `{"data": {<field>: ...}}`, in the tree's key order.
struct Body<'v>(Vec<(&'v str, Field<'v>)>);

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Data<'a, 'v>(&'a [(&'v str, Field<'v>)]);
        impl Serialize for Data<'_, '_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (key, field) in self.0 {
                    match field {
                        Field::Value(value) => map.serialize_entry(key, value)?,
                        Field::Rows(rows) => map.serialize_entry(key, rows)?,
                    }
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("data", &Data(&self.0))?;
        map.end()
    }
}

impl Serialize for Row<'_> {
    /// The row's fields in key order, `unique_id` in its place among them
    /// (as an object of the tree would hold it).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const KEY: &str = "unique_id";
        let mut map = serializer.serialize_map(None)?;
        let mut id = self.unique_id.as_deref();
        for (key, value) in self.fields {
            if let Some(derived) = id.filter(|_| key.as_str() >= KEY) {
                map.serialize_entry(KEY, derived)?;
                id = None;
                if key == KEY {
                    continue;
                }
            }
            map.serialize_entry(key, value)?;
        }
        if let Some(derived) = id {
            map.serialize_entry(KEY, derived)?;
        }
        map.end()
    }
}

/// A field's value as Primero takes it: subform rows become arrays of rows,
/// each with a `unique_id`.
fn encode_field<'v>(
    key: &str,
    value: &'v Value,
    ctx: &RouteContext,
) -> Result<Field<'v>, EncodeError> {
    match value {
        Value::Object(map) if map.keys().all(|k| k == ONLY_ROW) => {
            // `{}` has no row 0: a row that is not an object, refused below.
            encode_rows(key, vec![map.get(ONLY_ROW).unwrap_or(&Value::Null)], ctx)
        }
        Value::Object(_) => Err(EncodeError::Invalid {
            path: format!("data/{key}"),
            reason: "an object is only allowed as a subform's single row (key 0)".into(),
        }),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            encode_rows(key, items.iter().collect(), ctx)
        }
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
            Err(EncodeError::Invalid {
                path: format!("data/{key}"),
                reason: "a list mixes subform rows and values".into(),
            })
        }
        _ => Ok(Field::Value(value)),
    }
}

fn encode_rows<'v>(
    key: &str,
    rows: Vec<&'v Value>,
    ctx: &RouteContext,
) -> Result<Field<'v>, EncodeError> {
    let mut out = Vec::with_capacity(rows.len());
    for (index, row) in rows.into_iter().enumerate() {
        let Value::Object(fields) = row else {
            return Err(EncodeError::Invalid {
                path: format!("data/{key}/{index}"),
                reason: "a subform row must be an object".into(),
            });
        };
        if let Some(bad) = fields.iter().find(|(_, v)| v.is_object()) {
            return Err(EncodeError::Invalid {
                path: format!("data/{key}/{index}/{}", bad.0),
                reason: "a subform field cannot hold an object".into(),
            });
        }
        // Primero keys rows by unique_id; a row the source gave no id gets a
        // stable one, so that the same record version renders the same bytes.
        // The same row of every version keeps its id: a correction's PATCH
        // merges rows by unique_id.
        let unique_id = (!fields.get("unique_id").is_some_and(Value::is_string)).then(|| {
            ctx.record_derived(&format!("primero/{key}/{index}"))
                .to_string()
        });
        out.push(Row { fields, unique_id });
    }
    Ok(Field::Rows(out))
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::mapping::path::FieldPath;
    use crate::model::RecordId;

    fn ctx(version: i64) -> RouteContext {
        RouteContext {
            record_id: RecordId::parse("0192f0c2-7b1e-7c3a-9f00-000000000001").unwrap(),
            record_version: version,
            route: "child-protection-case-to-primero".into(),
            destination: "primero".into(),
            timestamp: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            attempt: 1,
            subject: Some("child-1".into()),
            locations: None,
            legal_basis: None,
        }
    }

    fn instance(text: &str) -> Result<Catalogue, String> {
        let instance: Instance = toml::from_str(text).map_err(|e| e.to_string())?;
        instance_paths(&instance)
    }

    fn allows(c: &Catalogue, p: &str) -> bool {
        c.allows(&FieldPath::parse(p).unwrap())
    }

    #[test]
    fn the_catalogue_lists_fields_multi_selects_and_subform_rows() {
        let c = instance(
            r#"
description = "t"
[fields]
name_first = "text_field"
nationality = "multi_select_box"
[subforms.family_details_section]
relation = "select_box"
relation_nationality = "multi_select_box"
"#,
        )
        .unwrap();
        for p in [
            "data/id",
            "data/module_id",
            "data/name_first",
            "data/nationality",
            "data/nationality/*",
            "data/family_details_section/*/unique_id",
            "data/family_details_section/*/relation",
            "data/family_details_section/*/relation_nationality/*",
            "data/family_details_section/0/relation",
        ] {
            assert!(allows(&c, p), "{p}");
        }
        for p in [
            "data/name_first/*",
            "data/family_details_section",
            "data/family_details_section/*",
            "data/family_details_section/1/relation",
            "data/relation",
            "name_first",
        ] {
            assert!(!allows(&c, p), "{p}");
        }
    }

    #[test]
    fn the_instance_file_is_checked() {
        let unknown_type =
            instance("description = \"t\"\n[fields]\nname_first = \"text\"\n").unwrap_err();
        assert!(unknown_type.contains("name_first"), "{unknown_type}");
        let reserved = instance("description = \"t\"\n[fields]\nid = \"text_field\"\n");
        assert!(reserved.is_err());
        let both = instance(
            "description = \"t\"\n[fields]\nnotes_section = \"textarea\"\n[subforms.notes_section]\nnote_text = \"textarea\"\n",
        );
        assert!(both.unwrap_err().contains("both"));
    }

    #[test]
    fn the_shipped_instance_file_loads() {
        let folder = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("mappings/destinations/primero");
        let c = catalogue(&folder).unwrap();
        assert!(allows(&c, "data/protection_status"));
        assert!(allows(
            &c,
            "data/care_arrangements_section/0/care_arrangements_type"
        ));
        assert!(!allows(&c, "data/gbv_survivor"));
    }

    #[test]
    fn encode_requires_a_uuid_id_and_a_module() {
        let missing = encode(&json!({"data": {"module_id": "m"}}), &ctx(1)).unwrap_err();
        assert_eq!(missing, EncodeError::Missing("data/id".into()));
        let not_uuid = encode(
            &json!({"data": {"id": "CANARY-7", "module_id": "m"}}),
            &ctx(1),
        )
        .unwrap_err();
        assert!(matches!(not_uuid, EncodeError::Invalid { ref path, .. } if path == "data/id"));
        assert!(!not_uuid.to_string().contains("CANARY"));
        let id = ctx(1).message_id().to_string();
        let no_module = encode(&json!({"data": {"id": id}}), &ctx(1)).unwrap_err();
        assert_eq!(no_module, EncodeError::Missing("data/module_id".into()));
        assert_eq!(
            encode(&json!({"nodata": 1}), &ctx(1)).unwrap_err(),
            EncodeError::Missing("data".into())
        );
    }

    #[test]
    fn single_rows_become_arrays_and_rows_get_stable_unique_ids() {
        let id = ctx(1).message_id().to_string();
        let tree = json!({"data": {
            "id": id, "module_id": "primeromodule-cp",
            "nationality": ["syria"],
            "care_arrangements_section": {"0": {"care_arrangements_type": "foster_care"}},
            "family_details_section": [
                {"unique_id": "row-1", "relation": "aunt"},
                {"relation": "mother"}
            ]
        }});
        let a = encode(&tree, &ctx(1)).unwrap();
        let b = encode(&tree, &ctx(1)).unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.content_type, "application/json");
        let body: Value = serde_json::from_slice(&a.bytes).unwrap();
        let data = &body["data"];
        assert_eq!(data["nationality"], json!(["syria"]));
        let care = data["care_arrangements_section"].as_array().unwrap();
        assert_eq!(care.len(), 1);
        assert_eq!(care[0]["care_arrangements_type"], "foster_care");
        let derived = care[0]["unique_id"].as_str().unwrap();
        assert!(Uuid::try_parse(derived).is_ok());
        let family = data["family_details_section"].as_array().unwrap();
        assert_eq!(family[0]["unique_id"], "row-1");
        assert_ne!(family[1]["unique_id"], care[0]["unique_id"]);
        // A correction (another record id, the same subject) keeps each
        // row's id, so Primero's PATCH merges it into the same row.
        let correction = RouteContext {
            record_id: RecordId::parse("0192f0c2-7b1e-7c3a-9f00-000000000002").unwrap(),
            ..ctx(2)
        };
        let other: Value =
            serde_json::from_slice(&encode(&tree, &correction).unwrap().bytes).unwrap();
        assert_eq!(
            other["data"]["care_arrangements_section"][0]["unique_id"],
            data["care_arrangements_section"][0]["unique_id"]
        );
        // Another child's record does not share it.
        let someone_else = RouteContext {
            subject: Some("child-2".into()),
            ..ctx(1)
        };
        let theirs: Value =
            serde_json::from_slice(&encode(&tree, &someone_else).unwrap().bytes).unwrap();
        assert_ne!(
            theirs["data"]["care_arrangements_section"][0]["unique_id"],
            data["care_arrangements_section"][0]["unique_id"]
        );
    }

    #[test]
    fn shapes_primero_cannot_take_are_refused_by_path() {
        let id = ctx(1).message_id().to_string();
        for (tree, path) in [
            (
                json!({"data": {"id": id, "module_id": "m", "sex": {"a": "CANARY"}}}),
                "data/sex",
            ),
            (
                json!({"data": {"id": id, "module_id": "m", "x": [{"a": 1}, "CANARY"]}}),
                "data/x",
            ),
            (
                json!({"data": {"id": id, "module_id": "m", "x": [{"a": {"b": "CANARY"}}]}}),
                "data/x/0/a",
            ),
        ] {
            let err = encode(&tree, &ctx(1)).unwrap_err();
            assert!(
                matches!(&err, EncodeError::Invalid { path: p, .. } if p == path),
                "{err}"
            );
            assert!(!err.to_string().contains("CANARY"));
        }
    }

    mod no_panic {
        use proptest::prelude::*;
        use serde_json::{Map, Value};

        use super::*;

        const KEYS: [&str; 8] = [
            "data",
            "id",
            "module_id",
            "0",
            "1",
            "unique_id",
            "sex",
            "family_details_section",
        ];

        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                Just(json!("5d112008-0cfd-5d6a-979a-fcb0f0b37a3c")),
                ".{0,8}".prop_map(Value::String),
            ]
        }

        fn tree() -> impl Strategy<Value = Value> {
            leaf().prop_recursive(5, 64, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    proptest::collection::vec(
                        (proptest::sample::select(KEYS.to_vec()), inner),
                        0..6
                    )
                    .prop_map(|kv| Value::Object(
                        kv.into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect::<Map<_, _>>()
                    )),
                ]
            })
        }

        proptest! {
            #[test]
            fn any_tree_encodes_or_is_refused_without_panicking(t in tree()) {
                let _ = encode(&t, &ctx(1));
            }

            #[test]
            fn any_field_value_encodes_or_is_refused(v in tree(), key in proptest::sample::select(KEYS.to_vec())) {
                let id = ctx(1).message_id().to_string();
                let mut t = json!({"data": {"id": id, "module_id": "m"}});
                t["data"][key] = v;
                if let Ok(encoded) = encode(&t, &ctx(1)) {
                    let body: Value = serde_json::from_slice(&encoded.bytes).unwrap();
                    prop_assert!(body["data"]["id"].is_string());
                }
            }
        }
    }
}

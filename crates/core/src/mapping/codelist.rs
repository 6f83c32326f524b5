//! Code lists: the tables that turn one vocabulary's codes into another's
//! (canonical `female` -> ISO/IEC 5218 `2`). Data, not code: a country changes
//! files, not Rust.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCodeList {
    description: String,
    /// Used when a code is not in the table; without it, an unknown code is an error.
    default: Option<toml::Value>,
    codes: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CodeList {
    pub name: String,
    pub description: String,
    pub codes: BTreeMap<String, Value>,
    pub default: Option<Value>,
}

impl CodeList {
    /// Translate one code. Numbers and booleans are looked up by their text.
    pub fn lookup(&self, code: &Value) -> Option<Value> {
        let key = match code {
            Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
            Value::Number(n) => n.to_string().into(),
            Value::Bool(b) => b.to_string().into(),
            _ => return self.default.clone(),
        };
        self.codes
            .get(&*key)
            .cloned()
            .or_else(|| self.default.clone())
    }
}

/// Load every `*.toml` in `dir` as a code list named after its file.
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, CodeList>, Vec<String>> {
    let mut lists = BTreeMap::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return Err(vec![format!("{}: cannot read: {e}", dir.display())]),
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| toml::from_str::<RawCodeList>(&text).map_err(|e| e.to_string()))
        {
            Ok(raw) => {
                let list = CodeList {
                    name: name.clone(),
                    description: raw.description,
                    codes: raw
                        .codes
                        .into_iter()
                        .map(|(k, v)| (k, toml_to_json(v)))
                        .collect(),
                    default: raw.default.map(toml_to_json),
                };
                lists.insert(name, list);
            }
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    if errors.is_empty() {
        Ok(lists)
    } else {
        Err(errors)
    }
}

pub fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lookup_uses_the_text_of_scalars_and_the_default() {
        let list = CodeList {
            name: "x".into(),
            description: String::new(),
            codes: [
                ("1".to_string(), json!("ONE")),
                ("true".to_string(), json!("YES")),
            ]
            .into_iter()
            .collect(),
            default: None,
        };
        assert_eq!(list.lookup(&json!(1)), Some(json!("ONE")));
        assert_eq!(list.lookup(&json!(true)), Some(json!("YES")));
        assert_eq!(list.lookup(&json!("2")), None);
        let with_default = CodeList {
            default: Some(json!("OTHER")),
            ..list
        };
        assert_eq!(with_default.lookup(&json!("2")), Some(json!("OTHER")));
    }
}

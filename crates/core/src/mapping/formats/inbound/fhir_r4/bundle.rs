//! The document Bundle's envelope: the checks that make it a document at all
//! (type, fullUrls, Composition first) and reference resolution among entries.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::read::{Reader, at};

/// One entry of the Bundle, with the pointer of its resource.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'v> {
    pub full_url: &'v str,
    pub resource_type: &'v str,
    pub resource: &'v Map<String, Value>,
}

/// A document holds a handful of resources; past this many entries a bundle is
/// refused before any is read, so that no payload costs more than a bounded
/// amount of work (a 1 MiB body can otherwise carry ~10k entries).
pub const MAX_ENTRIES: usize = 1000;

/// References followed while reading one document; past this, the rest are
/// reported once and not followed.
pub const MAX_REFERENCES: usize = 4 * MAX_ENTRIES;

/// A Bundle whose envelope is valid: every entry has a fullUrl and a resource,
/// and the first is the Composition.
pub struct Bundle<'v> {
    pub root: &'v Map<String, Value>,
    /// Entries by index; `None` for an entry that was reported as malformed.
    pub entries: Vec<Option<Entry<'v>>>,
    /// Built once, so that resolving a reference is a lookup, not a scan.
    index: Index<'v>,
    followed: std::cell::Cell<usize>,
}

/// Where each entry can be found: by fullUrl, by the `Type/id` its fullUrl
/// ends in, and by its resource's type and id. The first entry wins, as a
/// scan in entry order would.
#[derive(Default)]
struct Index<'v> {
    by_full_url: HashMap<&'v str, usize>,
    by_url_tail: HashMap<(&'v str, &'v str), usize>,
    by_type_id: HashMap<(&'v str, &'v str), usize>,
}

impl<'v> Index<'v> {
    fn build(entries: &[Option<Entry<'v>>]) -> Index<'v> {
        let mut index = Index::default();
        for (i, entry) in entries.iter().enumerate() {
            let Some(e) = entry else { continue };
            index.by_full_url.entry(e.full_url).or_insert(i);
            if let Some(tail) = url_tail(e.full_url) {
                index.by_url_tail.entry(tail).or_insert(i);
            }
            if let Some(id) = e.resource.get("id").and_then(Value::as_str) {
                index.by_type_id.entry((e.resource_type, id)).or_insert(i);
            }
        }
        index
    }
}

/// The last two segments of a URL (`.../Patient/123` gives `("Patient", "123")`).
fn url_tail(url: &str) -> Option<(&str, &str)> {
    let (rest, id) = url.rsplit_once('/')?;
    let (_, kind) = rest.rsplit_once('/')?;
    Some((kind, id))
}

/// Check the envelope. Problems go to `reader`; `None` when the payload cannot
/// be read as a document at all.
pub fn open<'v>(payload: &'v Value, reader: &mut Reader) -> Option<Bundle<'v>> {
    let Value::Object(root) = payload else {
        reader.push(
            String::new(),
            "type",
            "must be a FHIR Bundle (a JSON object)",
        );
        return None;
    };
    if root.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        reader.push("/resourceType".into(), "const", "must be Bundle");
    }
    if root.get("type").and_then(Value::as_str) != Some("document") {
        reader.push(
            "/type".into(),
            "not_a_document",
            "must be document (a FHIR document Bundle)",
        );
    }
    match root.get("timestamp") {
        Some(Value::String(_)) => {}
        None | Some(Value::Null) => reader.push(
            "/timestamp".into(),
            "required",
            "is required in a document Bundle (bdl-10)",
        ),
        Some(_) => reader.push("/timestamp".into(), "type", "must be a string"),
    }
    if let Some(Value::Array(items)) = root.get("entry")
        && items.len() > MAX_ENTRIES
    {
        reader.push(
            "/entry".into(),
            "too_many_entries",
            &format!("holds more than {MAX_ENTRIES} entries; a birth document holds a few"),
        );
        return None;
    }
    let entries = read_entries(root, reader);
    if entries.is_empty() {
        reader.push(
            "/entry".into(),
            "required",
            "must hold the document's resources",
        );
        return None;
    }
    match entries[0] {
        Some(first) if first.resource_type == "Composition" => {}
        Some(_) => reader.push(
            "/entry/0/resource/resourceType".into(),
            "composition_not_first",
            "the first entry of a document must be its Composition (bdl-11)",
        ),
        None => {}
    }
    let index = Index::build(&entries);
    Some(Bundle {
        root,
        entries,
        index,
        followed: std::cell::Cell::new(0),
    })
}

fn read_entries<'v>(root: &'v Map<String, Value>, reader: &mut Reader) -> Vec<Option<Entry<'v>>> {
    let items = match root.get("entry") {
        Some(Value::Array(items)) => items.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => {
            reader.push("/entry".into(), "type", "must be an array");
            &[]
        }
    };
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let base = format!("/entry/{i}");
        let Value::Object(entry) = item else {
            reader.push(base, "type", "must be an object");
            entries.push(None);
            continue;
        };
        let full_url = match entry.get("fullUrl") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
            _ => {
                reader.push(
                    at(&base, "fullUrl"),
                    "required",
                    "every entry of a document needs a fullUrl",
                );
                None
            }
        };
        if let Some(url) = full_url
            && !seen.insert(url)
        {
            reader.push(
                at(&base, "fullUrl"),
                "duplicate",
                "must be unique within the Bundle (bdl-7)",
            );
        }
        let resource = match entry.get("resource") {
            Some(Value::Object(r)) => Some(r),
            _ => {
                reader.push(at(&base, "resource"), "required", "must be a resource");
                None
            }
        };
        let resource_type = resource
            .and_then(|r| r.get("resourceType"))
            .and_then(Value::as_str);
        if resource.is_some() && resource_type.is_none() {
            reader.push(
                at(&at(&base, "resource"), "resourceType"),
                "required",
                "is required",
            );
        }
        entries.push(match (full_url, resource, resource_type) {
            (Some(full_url), Some(resource), Some(resource_type)) => Some(Entry {
                full_url,
                resource_type,
                resource,
            }),
            _ => None,
        });
    }
    entries
}

impl<'v> Bundle<'v> {
    /// The entries that were read, with their index.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Entry<'v>)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.map(|e| (i, e)))
    }

    /// Resolve a reference the way a document does: by fullUrl (`urn:uuid:...`),
    /// or for a relative `Type/id`, by a fullUrl ending in it or the resource's
    /// type and id.
    pub fn resolve(&self, reference: &str) -> Option<(usize, Entry<'v>)> {
        let found = self.index.by_full_url.get(reference).copied().or_else(|| {
            let (kind, id) = reference.split_once('/')?;
            if id.contains('/') || id.is_empty() {
                return None;
            }
            // Of the two relative matches, the earlier entry wins.
            let by_url = self.index.by_url_tail.get(&(kind, id)).copied();
            let by_id = self.index.by_type_id.get(&(kind, id)).copied();
            by_url.into_iter().chain(by_id).min()
        })?;
        self.entries[found].map(|e| (found, e))
    }

    /// Resolve the `reference` of a Reference element at `base/key`, reporting
    /// one that points at nothing in the Bundle.
    pub fn follow(
        &self,
        reader: &mut Reader,
        obj: &'v Map<String, Value>,
        base: &str,
        key: &str,
    ) -> Option<(usize, Entry<'v>)> {
        let target = reader.obj(obj, base, key)?;
        self.follow_reference(reader, target, &at(base, key))
    }

    /// Resolve a Reference element found at `base`, reporting one that points
    /// at nothing in the Bundle. A Reference by identifier only resolves to `None`.
    pub fn follow_reference(
        &self,
        reader: &mut Reader,
        reference: &'v Map<String, Value>,
        base: &str,
    ) -> Option<(usize, Entry<'v>)> {
        let text = reader.str(reference, base, "reference")?;
        let followed = self.followed.get() + 1;
        self.followed.set(followed);
        if followed > MAX_REFERENCES {
            if followed == MAX_REFERENCES + 1 {
                reader.push(
                    at(base, "reference"),
                    "too_many_references",
                    &format!("is past the {MAX_REFERENCES} references a document may make"),
                );
            }
            return None;
        }
        let found = self.resolve(text);
        if found.is_none() {
            reader.push(
                at(base, "reference"),
                "unresolved_reference",
                "does not resolve to an entry of the Bundle",
            );
        }
        found
    }
}

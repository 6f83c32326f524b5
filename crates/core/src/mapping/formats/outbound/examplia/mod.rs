//! Examplia CRVSO birth notification: a SOAP 1.1 envelope following X-Road
//! message protocol 4.0, whose body carries one `BirthNotification` valid
//! against `schemas/registries/examplia-crvs/birth-notification-v1.xsd`
//! (the government's published spec, `EXA-CRVS-IF-BN` 1.0.2).
//!
//! Tree convention: root keys `Header` (the X-Road parts that belong to the
//! deployment: `client/*`, `service/xRoadInstance`, `userId`, `issue`) and
//! `BirthNotification`, below which keys are the XSD's element local names.
//! Attributes are `@name` keys, and an element that has attributes carries its
//! text in `$text`. Repeated elements are arrays (`*` in mapping paths).
//!
//! The encoder writes elements in XSD sequence order whatever the tree's key
//! order, refuses what the XSD's structure cannot hold (an unknown key, a
//! missing required element, two branches of a choice) by path, and leaves
//! value facets to the XSD (checked with xmllint in `tests/examplia_xsd.rs`).

mod document;
mod schema;
mod xml;

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{EncodeError, Encoded};
use crate::mapping::{Catalogue, RouteContext};

/// The registry refuses larger requests (README §3).
const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// The format is fixed by the XSD, so the destination folder holds nothing it needs.
pub fn catalogue(_folder: &Path) -> Result<Catalogue, String> {
    let mut paths = Vec::new();
    schema::paths("Header", schema::HEADER, &mut paths);
    schema::paths("BirthNotification", schema::BIRTH_NOTIFICATION, &mut paths);
    Ok(Catalogue::new(paths))
}

pub fn encode(tree: &Value, ctx: &RouteContext) -> Result<Encoded, EncodeError> {
    let root = root(tree)?;
    let mut request = xml::Request::start()?;
    // X-Road's `xrd:id`, written out from the UUID without formatting.
    let mut id = Uuid::encode_buffer();
    let request_id = ctx.request_id().hyphenated().encode_lower(&mut id);
    request.header(part(root, "Header")?, request_id)?;
    request.body(part(root, "BirthNotification")?)?;
    sized(request.finish()?)
}

/// The tree's root: an object of `Header` and `BirthNotification`.
fn root(tree: &Value) -> Result<&Map<String, Value>, EncodeError> {
    let Value::Object(root) = tree else {
        return Err(EncodeError::Invalid {
            path: String::new(),
            reason: "expected an object with Header and BirthNotification".into(),
        });
    };
    if let Some(key) = root
        .keys()
        .find(|k| !matches!(k.as_str(), "Header" | "BirthNotification"))
    {
        return Err(EncodeError::Invalid {
            path: key.clone(),
            reason: "the format has only Header and BirthNotification".into(),
        });
    }
    Ok(root)
}

fn part<'t>(root: &'t Map<String, Value>, name: &str) -> Result<&'t Value, EncodeError> {
    root.get(name)
        .ok_or_else(|| EncodeError::Missing(name.into()))
}

fn sized(bytes: Vec<u8>) -> Result<Encoded, EncodeError> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(EncodeError::Invalid {
            path: "BirthNotification".into(),
            reason: "the request exceeds the registry's 256 KiB limit".into(),
        });
    }
    Ok(Encoded {
        bytes,
        extension: "xml",
        content_type: "text/xml; charset=UTF-8",
    })
}

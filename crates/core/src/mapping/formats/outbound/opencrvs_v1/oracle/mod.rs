//! The former encoder, compiled for tests only: it read the tree into owned
//! strings (a path formatted for every field), built a `serde_json::Value`
//! Bundle with `json!`, serialised it and dropped it. The struct writer is
//! held to it by `tests::struct_writer_agrees_with_the_value_tree`.

mod bundle;
mod tree;

use serde_json::Value;

use crate::mapping::RouteContext;
use crate::mapping::formats::EncodeError;

/// The document's bytes, or the error, as the former encoder gave them.
pub fn encode(tree: &Value, ctx: &RouteContext) -> Result<Vec<u8>, EncodeError> {
    let notification = tree::Notification::read(tree)?;
    let bundle = bundle::build(&notification, ctx);
    serde_json::to_vec(&bundle).map_err(|e| EncodeError::Invalid {
        path: String::new(),
        reason: format!("cannot serialise: {e}"),
    })
}

//! Registry and source formats, one module per format, split by direction:
//! `outbound` (what a mapping into a registry may write, and the encoder that
//! turns the mapped tree into the registry's bytes) and `inbound` (what a
//! mapping from an agency's format may read, and the decoder that turns its
//! payload into a tree).
//!
//! A closed set: adding a registry kind is a variant of
//! [`DestinationKind`](crate::config::DestinationKind), a module under
//! `outbound/`, and a folder under `mappings/destinations/`; the compiler
//! lists every match that needs an arm.
//!
//! Architecture invariant: an encoder sees only the tree its mapping produced,
//! so nothing reaches a registry that a mapping file does not name; a decoder
//! never reads what no mapping names.

pub mod inbound;
pub mod outbound;

pub use inbound::{decode, payload_root, source_catalogue};
pub use outbound::{
    EncodeError, Encoded, destination_catalogue, encode, encode_for, examplia, fhir_r4, opencrvs,
    opencrvs_v1, primero,
};

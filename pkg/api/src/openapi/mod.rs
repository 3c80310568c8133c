//! The OpenAPI documents kubectl and client-go read: `/openapi/v2` and `/openapi/v3`.
//!
//! `kubectl explain` walks these schemas, kubectl decides whether the server
//! validates fields by finding the `fieldValidation` parameter on a kind's
//! PATCH operation, and kubectl's client-side validation and apply read the
//! `x-kubernetes-*` extensions. Built-in definitions come from
//! [`crate::schema`]; custom resources are passed in with their
//! `openAPIV3Schema`. v3 documents are built per group version so the
//! apiserver can rebuild only the group version a CRD change touches.

mod custom;
mod paths;
mod v2;
mod v2_protobuf;
mod v3;

pub use custom::{CustomResource, custom_definition_name};
pub use v2::build_v2;
pub use v2_protobuf::{V2_PROTOBUF, V2_PROTOBUF_DEPRECATED, encode_v2};
pub use v3::{OpenApiV3, build_v3_group_version};

/// The `info.version` kube-apiserver puts in its documents.
pub const INFO_VERSION: &str = "v1.33.0";

#[cfg(test)]
mod tests;

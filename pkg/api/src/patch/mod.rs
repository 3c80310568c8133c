//! The patch types kube-apiserver accepts, and applying them to JSON objects.
//!
//! A PATCH request names its type in `Content-Type` ([`PatchType`]). JSON
//! patch (RFC 6902) and JSON merge patch (RFC 7386) work on any object;
//! strategic merge patch needs the kind's schema ([`crate::schema`]) for merge
//! keys and is refused for custom resources with 415, as kube-apiserver does.
//! Server-side apply (`application/apply-patch+yaml`) is recognised here but
//! implemented elsewhere. Failures are [`PatchError`]s, each mapping to the
//! `Status` kube-apiserver answers with.

mod error;
mod json;
mod strategic;

pub use error::PatchError;
pub use json::{MAX_JSON_PATCH_OPERATIONS, apply_json_patch, apply_merge_patch};
pub use strategic::{apply_strategic_merge_patch, strategic_merge};

use crate::schema::SchemaNode;
use serde_json::Value;

/// `Result` with [`PatchError`].
pub type Result<T, E = PatchError> = std::result::Result<T, E>;

/// One of the patch types of `PATCH` requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json` (built-in kinds only).
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

/// The patch media types a built-in resource accepts, in kube-apiserver's order.
pub const BUILTIN_PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// The patch media types a custom resource accepts (no strategic merge patch).
pub const CUSTOM_RESOURCE_PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

impl PatchType {
    /// The patch type of a `Content-Type` header; parameters such as
    /// `; charset=utf-8` are ignored. `None` for anything else.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::StrategicMerge),
            "application/apply-patch+yaml" => Some(Self::Apply),
            _ => None,
        }
    }

    /// The media type naming this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json-patch+json",
            Self::Merge => "application/merge-patch+json",
            Self::StrategicMerge => "application/strategic-merge-patch+json",
            Self::Apply => "application/apply-patch+yaml",
        }
    }

    /// Parses the header and checks it against what the resource accepts:
    /// custom resources refuse strategic merge patch. Errors are 415s.
    pub fn negotiate(content_type: &str, custom_resource: bool) -> Result<Self> {
        let accepted = if custom_resource {
            CUSTOM_RESOURCE_PATCH_TYPES
        } else {
            BUILTIN_PATCH_TYPES
        };
        match Self::from_content_type(content_type) {
            Some(Self::StrategicMerge) if custom_resource => {
                Err(PatchError::UnsupportedForCustomResources)
            }
            Some(t) => Ok(t),
            None => Err(PatchError::UnsupportedMediaType { accepted }),
        }
    }
}

/// Applies a JSON, merge or strategic merge patch `body` to `current`.
///
/// `schema` is the kind's definition; `None` means a custom resource, for
/// which strategic merge patch is refused. Apply patches are not handled here
/// and return [`PatchError::ApplyNotHandledHere`].
pub fn apply(
    patch_type: PatchType,
    current: &Value,
    body: &[u8],
    schema: Option<SchemaNode<'_>>,
) -> Result<Value> {
    match patch_type {
        PatchType::Json => apply_json_patch(current, body),
        PatchType::Merge => apply_merge_patch(current, body),
        PatchType::StrategicMerge => match schema {
            Some(node) => apply_strategic_merge_patch(current, body, Some(node)),
            None => Err(PatchError::UnsupportedForCustomResources),
        },
        PatchType::Apply => Err(PatchError::ApplyNotHandledHere),
    }
}

#[cfg(test)]
mod tests;

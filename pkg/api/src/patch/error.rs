//! Patch failures and the `Status` kube-apiserver answers each with.

use crate::status::{Status, StatusDetails, StatusReason};

/// Why a patch could not be applied.
///
/// | variant | code | reason | message |
/// |---|---|---|---|
/// | `UnsupportedMediaType`, `UnsupportedForCustomResources` | 415 | UnsupportedMediaType | `the body of the request was in an unknown format - accepted media types include: ...` |
/// | `BadRequest` (undecodable body, malformed directives) | 400 | BadRequest | the decoder's message |
/// | `TooManyOperations` | 413 | RequestEntityTooLarge | `Request entity too large: The allowed maximum operations in a JSON patch is 10000, got N` |
/// | `Unprocessable` (JSON patch op failed, e.g. `test` or a missing path; lists of lists) | 422 | Invalid | `the server rejected our request due to an error in our request` |
/// | `Internal` (e.g. a merge-list element without its merge key) | 500 | (empty) | the error text |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The `Content-Type` is not a patch type this resource accepts.
    #[error("unsupported patch type; accepted: {}", accepted.join(", "))]
    UnsupportedMediaType {
        /// The media types the resource accepts.
        accepted: &'static [&'static str],
    },
    /// Strategic merge patch on a custom resource (which has no merge keys).
    #[error("strategic merge patch is not supported for custom resources")]
    UnsupportedForCustomResources,
    /// The patch body or a directive in it is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A JSON patch with more operations than kube-apiserver allows.
    #[error("json patch has {count} operations, more than {max}")]
    TooManyOperations {
        /// Operations in the patch.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The patch is well-formed but cannot be applied to this object.
    #[error("{0}")]
    Unprocessable(String),
    /// Any other failure, reported verbatim with code 500 and no reason.
    #[error("{0}")]
    Internal(String),
    /// Server-side apply is handled by the field manager, not this module.
    #[error("apply patches are handled by server-side apply")]
    ApplyNotHandledHere,
}

impl PatchError {
    /// The `Status` body kube-apiserver sends for this failure.
    pub fn status(&self) -> Status {
        match self {
            Self::UnsupportedMediaType { accepted } => unsupported(accepted),
            Self::UnsupportedForCustomResources => unsupported(super::CUSTOM_RESOURCE_PATCH_TYPES),
            Self::BadRequest(message) => Status::failure(StatusReason::BadRequest, message.clone()),
            Self::TooManyOperations { count, max } => Status::failure(
                StatusReason::RequestEntityTooLarge,
                format!(
                    "Request entity too large: The allowed maximum operations in a JSON patch is {max}, got {count}"
                ),
            ),
            Self::Unprocessable(_) => Status::failure(
                StatusReason::Invalid,
                "the server rejected our request due to an error in our request",
            )
            .with_details(StatusDetails::default()),
            Self::Internal(message) => internal(message),
            Self::ApplyNotHandledHere => internal("apply patches are handled by server-side apply"),
        }
    }
}

fn unsupported(accepted: &[&str]) -> Status {
    Status::failure(
        StatusReason::UnsupportedMediaType,
        format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        ),
    )
}

/// A plain error as kube-apiserver reports it: code 500, empty reason.
fn internal(message: &str) -> Status {
    let mut status = Status::failure(StatusReason::InternalError, message);
    status.reason = String::new();
    status
}

//! Building the `Status` bodies of failed requests, worded as kube-apiserver words them.

use kite_api::status::qualified_resource;
use kite_api::{ResourceInfo, Status, StatusDetails, StatusReason};

/// The result type of request handlers: failures are `Status` bodies.
pub type ApiResult<T> = Result<T, Status>;

fn details(resource: &ResourceInfo, name: &str) -> StatusDetails {
    StatusDetails {
        name: name.into(),
        group: resource.group.clone(),
        kind: resource.plural.clone(),
        ..StatusDetails::default()
    }
}

/// `pods "web" not found`.
pub fn not_found(resource: &ResourceInfo, name: &str) -> Status {
    Status::not_found(&resource.group, &resource.plural, name)
}

/// `configmaps "x" already exists`.
pub fn already_exists(resource: &ResourceInfo, name: &str) -> Status {
    Status::failure(
        StatusReason::AlreadyExists,
        format!("{} {name:?} already exists", resource.group_resource()),
    )
    .with_details(details(resource, name))
}

/// The optimistic-concurrency conflict of an update with a stale resourceVersion.
pub fn conflict(resource: &ResourceInfo, name: &str) -> Status {
    Status::failure(
        StatusReason::Conflict,
        format!(
            "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
            resource.group_resource()
        ),
    )
    .with_details(details(resource, name))
}

/// A conflict with a custom message (failed preconditions).
pub fn conflict_with(resource: &ResourceInfo, name: &str, why: &str) -> Status {
    Status::failure(
        StatusReason::Conflict,
        format!(
            "Operation cannot be fulfilled on {} {name:?}: {why}",
            resource.group_resource()
        ),
    )
    .with_details(details(resource, name))
}

/// 400 with the given message.
pub fn bad_request(message: impl Into<String>) -> Status {
    Status::failure(StatusReason::BadRequest, message)
}

/// 405 for a verb the resource does not support.
pub fn method_not_allowed(resource: &ResourceInfo, verb: &str) -> Status {
    Status::failure(
        StatusReason::MethodNotAllowed,
        format!(
            "{verb} is not supported on resources of kind {:?}",
            qualified_resource(&resource.group, &resource.plural)
        ),
    )
    .with_details(StatusDetails {
        group: resource.group.clone(),
        kind: resource.plural.clone(),
        ..StatusDetails::default()
    })
}

/// 404 for a path that names nothing served.
pub fn no_such_resource() -> Status {
    Status::failure(
        StatusReason::NotFound,
        "the server could not find the requested resource",
    )
}

/// 500 for a failure inside the server; the cause is logged, not shown.
pub fn internal(error: impl std::fmt::Display) -> Status {
    tracing::error!(%error, "internal error");
    Status::failure(
        StatusReason::InternalError,
        format!("Internal error occurred: {error}"),
    )
}

/// Maps a datastore failure to the status kube-apiserver gives for the same etcd failure.
pub fn from_store(error: kite_store::Error) -> Status {
    match error {
        kite_store::Error::Compacted {
            requested,
            compact_revision,
        } => Status::failure(
            StatusReason::Expired,
            format!("too old resource version: {requested} ({compact_revision})"),
        ),
        kite_store::Error::FutureRevision { requested, current } => {
            let mut status = Status::failure(
                StatusReason::Timeout,
                format!("Too large resource version: {requested}, current: {current}"),
            );
            status.details = Some(StatusDetails {
                causes: vec![kite_api::StatusCause {
                    reason: "ResourceVersionTooLarge".into(),
                    message: "Too large resource version".into(),
                    field: String::new(),
                }],
                retry_after_seconds: Some(1),
                ..StatusDetails::default()
            });
            status
        }
        other => internal(other),
    }
}

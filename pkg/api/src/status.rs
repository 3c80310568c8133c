//! `meta.k8s.io/v1` `Status`: the body of every API error.
//!
//! kube-apiserver answers each failure with a `Status` whose `reason` and
//! `code` clients switch on (client-go's `errors.IsNotFound` looks at the
//! reason), so the reason/code pairs here follow Kubernetes exactly.

use serde::{Deserialize, Serialize};

/// Machine-readable reason for a failed request, as `metav1.StatusReason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusReason {
    /// 401: the request carried no valid credentials.
    Unauthorized,
    /// 403: the authenticated user may not do this.
    Forbidden,
    /// 404: the object or resource does not exist.
    NotFound,
    /// 409: an object with that name already exists.
    AlreadyExists,
    /// 409: the write lost an optimistic-concurrency race.
    Conflict,
    /// 410: the requested resourceVersion has been compacted.
    Expired,
    /// 410: the resource is gone.
    Gone,
    /// 422: the object failed validation.
    Invalid,
    /// 400: the request itself is malformed.
    BadRequest,
    /// 405: the verb is not supported on this resource.
    MethodNotAllowed,
    /// 406: none of the accepted media types can be produced.
    NotAcceptable,
    /// 413: the request body is too large.
    RequestEntityTooLarge,
    /// 415: the request body's media type is not supported.
    UnsupportedMediaType,
    /// 429: the server is overloaded; retry later.
    TooManyRequests,
    /// 500: an unexpected server-side failure.
    InternalError,
    /// 503: the server cannot serve the request right now.
    ServiceUnavailable,
    /// 504: the request timed out on the server.
    Timeout,
}

impl StatusReason {
    /// The reason string as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "NotFound",
            Self::AlreadyExists => "AlreadyExists",
            Self::Conflict => "Conflict",
            Self::Expired => "Expired",
            Self::Gone => "Gone",
            Self::Invalid => "Invalid",
            Self::BadRequest => "BadRequest",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::NotAcceptable => "NotAcceptable",
            Self::RequestEntityTooLarge => "RequestEntityTooLarge",
            Self::UnsupportedMediaType => "UnsupportedMediaType",
            Self::TooManyRequests => "TooManyRequests",
            Self::InternalError => "InternalError",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::Timeout => "Timeout",
        }
    }

    /// The HTTP status code kube-apiserver pairs with this reason.
    pub fn code(self) -> u16 {
        match self {
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::AlreadyExists | Self::Conflict => 409,
            Self::Expired | Self::Gone => 410,
            Self::Invalid => 422,
            Self::BadRequest => 400,
            Self::MethodNotAllowed => 405,
            Self::NotAcceptable => 406,
            Self::RequestEntityTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::TooManyRequests => 429,
            Self::InternalError => 500,
            Self::ServiceUnavailable => 503,
            Self::Timeout => 504,
        }
    }
}

/// One field-level cause inside [`StatusDetails`], as `metav1.StatusCause`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    /// A machine-readable cause such as `FieldValueRequired`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable description of this cause.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The JSON path of the offending field, e.g. `metadata.name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// Extra data about the object a failure concerns, as `metav1.StatusDetails`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// The object's name, when one is involved.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The API group of the resource.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The resource (plural) or kind involved.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The object's UID, when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Field-level causes, e.g. each failed validation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// Seconds a client should wait before retrying (429/503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<i32>,
}

/// A `meta.k8s.io/v1` `Status` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Always `Status`.
    pub kind: String,
    /// Always `v1`.
    pub api_version: String,
    /// Empty list metadata, as kube-apiserver sends it.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `Success` or `Failure`.
    pub status: String,
    /// A human-readable description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The machine-readable reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Details about the object involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// The HTTP status code.
    pub code: u16,
}

impl Status {
    /// A failure with the given reason and message.
    pub fn failure(reason: StatusReason, message: impl Into<String>) -> Self {
        Self {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: serde_json::Map::new(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.as_str().into(),
            details: None,
            code: reason.code(),
        }
    }

    /// A `Success` status, as returned by some deletes.
    pub fn success() -> Self {
        Self {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: serde_json::Map::new(),
            status: "Success".into(),
            message: String::new(),
            reason: String::new(),
            details: None,
            code: 200,
        }
    }

    /// kube-apiserver's answer to a request without valid credentials.
    pub fn unauthorized() -> Self {
        Self::failure(StatusReason::Unauthorized, "Unauthorized")
    }

    /// `NotFound` for a named object of a resource in a group.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified_resource(group, resource);
        Self::failure(
            StatusReason::NotFound,
            format!("{qualified} \"{name}\" not found"),
        )
        .with_details(StatusDetails {
            name: name.into(),
            group: group.into(),
            kind: resource.into(),
            ..StatusDetails::default()
        })
    }

    /// Attaches details to this status.
    pub fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(details);
        self
    }

    /// The body as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `resource.group` as Kubernetes prints it in messages (`pods`, `deployments.apps`).
pub fn qualified_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_status_matches_kube_apiserver_body() {
        let body: serde_json::Value =
            serde_json::from_slice(&Status::unauthorized().to_json()).expect("json");
        assert_eq!(
            body,
            serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": "Unauthorized",
                "reason": "Unauthorized", "code": 401
            })
        );
    }

    #[test]
    fn not_found_names_the_group_qualified_resource() {
        let status = Status::not_found("apps", "deployments", "web");
        assert_eq!(status.message, "deployments.apps \"web\" not found");
        assert_eq!(status.code, 404);
        let details = status.details.expect("details");
        assert_eq!(details.kind, "deployments");
        assert_eq!(details.name, "web");
    }

    #[test]
    fn every_reason_has_the_kubernetes_code() {
        let table = [
            (StatusReason::AlreadyExists, 409),
            (StatusReason::Conflict, 409),
            (StatusReason::Expired, 410),
            (StatusReason::Invalid, 422),
            (StatusReason::RequestEntityTooLarge, 413),
            (StatusReason::UnsupportedMediaType, 415),
            (StatusReason::TooManyRequests, 429),
        ];
        for (reason, code) in table {
            assert_eq!(reason.code(), code, "{}", reason.as_str());
        }
    }
}

//! Field errors: one failed check on one field, worded as Kubernetes words them.
//!
//! `spec.replicas: Invalid value: -1: must be greater than or equal to 0` is
//! what users and tests see from kube-apiserver, so the error types and their
//! messages follow `k8s.io/apimachinery/pkg/util/validation/field`.

use crate::status::{Status, StatusCause, StatusDetails, StatusReason};
use serde_json::Value;
use std::fmt;

/// What kind of check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorType {
    /// A required field is missing.
    Required,
    /// A value is malformed or out of range.
    Invalid,
    /// A value is not one of the supported values.
    NotSupported,
    /// A value appears twice where it must be unique.
    Duplicate,
    /// The field may not be set (or changed) here.
    Forbidden,
    /// A value is longer than allowed.
    TooLong,
    /// A list has more items than allowed.
    TooMany,
    /// A value has the wrong JSON type.
    TypeInvalid,
    /// A field is not part of the schema (strict field validation).
    Unknown,
    /// An internal failure while validating.
    Internal,
    /// A value refers to something that does not exist (e.g. a volume mount's volume).
    NotFound,
}

impl FieldErrorType {
    /// The `StatusCause.reason` for this type.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::Unknown => "FieldValueInvalid",
            Self::Internal => "InternalError",
            Self::NotFound => "FieldValueNotFound",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Duplicate => "Duplicate value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::TypeInvalid => "Invalid value",
            Self::Unknown => "Unknown field",
            Self::Internal => "Internal error",
            Self::NotFound => "Not found",
        }
    }

    /// Whether the message shows the offending value.
    fn shows_value(self) -> bool {
        matches!(
            self,
            Self::Invalid
                | Self::NotSupported
                | Self::Duplicate
                | Self::TypeInvalid
                | Self::NotFound
        )
    }
}

/// One validation failure.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// What failed.
    pub kind: FieldErrorType,
    /// The field's path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// The offending value, when it is shown.
    pub value: Option<Value>,
    /// Why, in words; may be empty.
    pub detail: String,
}

impl FieldError {
    fn new(
        kind: FieldErrorType,
        field: impl Into<String>,
        value: Option<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            field: field.into(),
            value,
            detail: detail.into(),
        }
    }

    /// `field: Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Required, field, None, detail)
    }

    /// `field: Invalid value: <value>: detail`.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(FieldErrorType::Invalid, field, Some(value.into()), detail)
    }

    /// `field: Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<Value>,
        supported: &[&str],
    ) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            FieldErrorType::NotSupported,
            field,
            Some(value.into()),
            detail,
        )
    }

    /// `field: Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(FieldErrorType::Duplicate, field, Some(value.into()), "")
    }

    /// `field: Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Forbidden, field, None, detail)
    }

    /// `field: Too long: may not be more than N bytes`.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self::new(
            FieldErrorType::TooLong,
            field,
            None,
            format!("may not be more than {max} bytes"),
        )
    }

    /// `field: Too many: N: must have at most M items`.
    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Self {
        Self::new(
            FieldErrorType::TooMany,
            field,
            None,
            format!("{actual}: must have at most {max} items"),
        )
    }

    /// `field: Invalid value: <value>: detail` for a value of the wrong JSON type.
    pub fn type_invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(
            FieldErrorType::TypeInvalid,
            field,
            Some(value.into()),
            detail,
        )
    }

    /// `field: Not found: <value>`.
    pub fn not_found(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(FieldErrorType::NotFound, field, Some(value.into()), "")
    }

    /// `field: Internal error: detail`.
    pub fn internal(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Internal, field, None, detail)
    }

    /// A field the schema does not know (strict field validation).
    pub fn unknown(field: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Unknown, field, None, "")
    }

    /// The part after `field: `, as `StatusCause.message` carries it.
    pub fn body(&self) -> String {
        let mut out = self.kind.label().to_string();
        if let (true, Some(value)) = (self.kind.shows_value(), &self.value) {
            out.push_str(": ");
            out.push_str(&render_value(value));
        }
        if !self.detail.is_empty() {
            out.push_str(": ");
            out.push_str(&self.detail);
        }
        out
    }

    /// This error as a `StatusCause`.
    pub fn cause(&self) -> StatusCause {
        StatusCause {
            reason: self.kind.reason().into(),
            message: self.body(),
            field: self.field.clone(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.body())
        } else {
            write!(f, "{}: {}", self.field, self.body())
        }
    }
}

fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// The 422 `Invalid` status for `kind` (e.g. `Deployment`) in `group` named `name`.
pub fn invalid_status(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Status {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let list = match errors {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Status::failure(
        StatusReason::Invalid,
        format!("{qualified} {name:?} is invalid: {list}"),
    )
    .with_details(StatusDetails {
        name: name.into(),
        group: group.into(),
        kind: kind.into(),
        causes: errors.iter().map(FieldError::cause).collect(),
        ..StatusDetails::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_like_kube_apiserver() {
        assert_eq!(
            FieldError::invalid("spec.replicas", -1, "must be greater than or equal to 0")
                .to_string(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            FieldError::required("spec.containers[0].image", "").to_string(),
            "spec.containers[0].image: Required value"
        );
        assert_eq!(
            FieldError::not_supported(
                "spec.restartPolicy",
                "Sometimes",
                &["Always", "OnFailure", "Never"]
            )
            .to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn invalid_status_lists_every_cause() {
        let errors = [
            FieldError::required("spec.selector", ""),
            FieldError::invalid(
                "metadata.name",
                "Web",
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters",
            ),
        ];
        let status = invalid_status("apps", "Deployment", "Web", &errors);
        assert_eq!(status.code, 422);
        assert!(
            status.message.starts_with(
                "Deployment.apps \"Web\" is invalid: [spec.selector: Required value, "
            )
        );
        let details = status.details.expect("details");
        assert_eq!(details.causes.len(), 2);
        assert_eq!(details.causes[0].reason, "FieldValueRequired");
        assert_eq!(details.causes[0].field, "spec.selector");
        let one = invalid_status("", "Pod", "p", &errors[..1]);
        assert_eq!(
            one.message,
            "Pod \"p\" is invalid: spec.selector: Required value"
        );
    }
}

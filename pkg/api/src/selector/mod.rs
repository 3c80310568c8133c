//! Label and field selectors, as `?labelSelector=` and `?fieldSelector=` use them.
//!
//! Parsing, validation, matching and printing follow
//! `k8s.io/apimachinery/pkg/labels` and `.../fields`, so a bad selector fails
//! with kube-apiserver's own 400 message. Start at [`LabelSelector::parse`],
//! [`FieldSelector::parse`] and [`field_set`].

mod field_labels;
mod fields;
mod label_object;
mod label_parse;
mod labels;
mod names;
#[cfg(test)]
mod tests;

pub use field_labels::{
    convert_custom_field_label, convert_field_label, custom_field_set, field_set,
};
pub use fields::{
    FieldOperator, FieldSet, Selector as FieldSelector, Term, escape_value, unescape_value,
};
pub use labels::{Labels, Operator, Requirement, Selector as LabelSelector};

use crate::status::{Status, StatusReason};
use std::fmt;

/// Why a selector was rejected; every variant is a 400 `BadRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The label selector is malformed or names an invalid key or value.
    InvalidLabelSelector(String),
    /// The field selector is malformed.
    InvalidFieldSelector(String),
    /// The field selector names a field the kind cannot be selected by.
    UnsupportedFieldLabel(String),
}

impl Error {
    /// The message, exactly as kube-apiserver words it.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidLabelSelector(m)
            | Self::InvalidFieldSelector(m)
            | Self::UnsupportedFieldLabel(m) => m,
        }
    }

    /// The 400 `BadRequest` status carrying the message.
    pub fn status(&self) -> Status {
        Status::failure(StatusReason::BadRequest, self.message())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

impl FieldSelector {
    /// Parses a field selector for a built-in kind and converts its labels,
    /// as the apiserver does before listing or watching `group`/`kind`.
    pub fn parse_for_kind(input: &str, group: &str, kind: &str) -> Result<Self, Error> {
        Self::parse(input)?.transform(|label, value| {
            Ok((convert_field_label(group, kind, label)?, value.to_string()))
        })
    }
}

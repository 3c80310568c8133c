//! Validation of API objects: field errors and the checks that produce them.

pub mod field;

pub use field::{FieldError, FieldErrorType, invalid_status};

//! Small helpers shared by the validators: field paths and typed reads of JSON.

use super::FieldError;
use serde_json::{Map, Value};

/// `parent.name`, or `name` at the root.
pub(crate) fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// `parent[key]`.
pub(crate) fn key(parent: &str, k: &str) -> String {
    format!("{parent}[{k}]")
}

/// The string at `v[field]`, or `""` when absent or not a string.
pub(crate) fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `v[field]`, if any.
pub(crate) fn int_of(v: &Value, field: &str) -> Option<i64> {
    v.get(field).and_then(Value::as_i64)
}

/// The array at `v[field]`, or an empty slice.
pub(crate) fn arr_of<'a>(v: &'a Value, field: &str) -> &'a [Value] {
    v.get(field)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The object at `v[field]`, if any.
pub(crate) fn obj_of<'a>(v: &'a Value, field: &str) -> Option<&'a Map<String, Value>> {
    v.get(field).and_then(Value::as_object)
}

/// Whether `v[field]` is present and not null.
pub(crate) fn has(v: &Value, field: &str) -> bool {
    v.get(field).is_some_and(|x| !x.is_null())
}

/// The value at `v[field]`, or null.
pub(crate) fn get<'a>(v: &'a Value, field: &str) -> &'a Value {
    v.get(field).unwrap_or(&Value::Null)
}

/// Wraps each message of a syntax check as an `Invalid` error on `path`.
pub(crate) fn invalid_each(errs: &mut Vec<FieldError>, path: &str, value: &str, msgs: Vec<String>) {
    for m in msgs {
        errs.push(FieldError::invalid(path, value, m));
    }
}

/// `path: Invalid value: N: must be greater than or equal to 0` for negative integers.
pub(crate) fn non_negative(errs: &mut Vec<FieldError>, v: &Value, field: &str, parent: &str) {
    if let Some(n) = int_of(v, field)
        && n < 0
    {
        errs.push(FieldError::invalid(
            child(parent, field),
            n,
            "must be greater than or equal to 0",
        ));
    }
}

/// `path: Invalid value: N: must be greater than 0` for integers below 1.
pub(crate) fn positive(errs: &mut Vec<FieldError>, v: &Value, field: &str, parent: &str) {
    if let Some(n) = int_of(v, field)
        && n <= 0
    {
        errs.push(FieldError::invalid(
            child(parent, field),
            n,
            "must be greater than 0",
        ));
    }
}

/// A string field that must be one of `supported` when set; required when `required`.
pub(crate) fn one_of(
    errs: &mut Vec<FieldError>,
    v: &Value,
    field: &str,
    parent: &str,
    supported: &[&str],
    required: bool,
) {
    let value = v.get(field).and_then(Value::as_str).unwrap_or("");
    if value.is_empty() {
        if required {
            errs.push(FieldError::required(child(parent, field), ""));
        }
    } else if !supported.contains(&value) {
        errs.push(FieldError::not_supported(
            child(parent, field),
            value,
            supported,
        ));
    }
}

/// `path: Invalid value: <old>: field is immutable` when `field` differs between objects.
pub(crate) fn immutable(
    errs: &mut Vec<FieldError>,
    new: &Value,
    old: &Value,
    field: &str,
    parent: &str,
) {
    let (n, o) = (get(new, field), get(old, field));
    if n != o {
        errs.push(FieldError::invalid(
            child(parent, field),
            n.clone(),
            "field is immutable",
        ));
    }
}

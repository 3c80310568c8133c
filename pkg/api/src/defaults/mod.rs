//! Server-side defaulting of built-in kinds, as kube-apiserver 1.33 applies it.
//!
//! [`apply`] fills in what `kubectl get -o yaml` shows after `kubectl apply`
//! (restart policies, strategies, probe timings, service ports...) on objects
//! held as `serde_json::Value`, recursing into embedded pod templates. Values
//! the user set are never changed. Stateful defaults (cluster IPs, node ports,
//! the Job selector that needs the object's uid) are left to the apiserver,
//! which asks [`service_allocations`] and calls [`job_selector`].
//!
//! Start at [`apply`]; one file per API group or kind family.

mod apps;
mod batch;
mod core;
mod core_pod;
mod other;

pub use batch::job_selector;
pub use core::{ServiceAllocations, service_allocations, service_ip_families};
pub use core_pod::{pod_qos_class, prepare_pod_for_create};

use serde_json::{Map, Value, json};

/// Applies kube-apiserver's defaults for `kind` in `group` (`""` for core) to `obj`.
///
/// Unknown kinds (custom resources) are left alone.
pub fn apply(group: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match group {
        "" => core::apply(kind, obj),
        "apps" => apps::apply(kind, obj),
        "batch" => batch::apply(kind, obj),
        _ => other::apply(group, kind, obj),
    }
}

/// Sets `v[key] = value` when `v` is an object and `key` is absent or null.
pub(crate) fn set_default(v: &mut Value, key: &str, value: Value) {
    if let Some(m) = v.as_object_mut() {
        match m.get(key) {
            Some(x) if !x.is_null() => {}
            _ => {
                m.insert(key.to_string(), value);
            }
        }
    }
}

/// Like [`set_default`] but also replaces an empty string.
pub(crate) fn set_default_str(v: &mut Value, key: &str, value: &str) {
    if let Some(m) = v.as_object_mut() {
        match m.get(key) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(x) if !x.is_null() && !x.is_string() => {}
            _ => {
                m.insert(key.to_string(), Value::String(value.to_string()));
            }
        }
    }
}

/// `v[key]` as a mutable object, created empty when absent or null.
pub(crate) fn ensure_obj<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let m = v.as_object_mut()?;
    let slot = m
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = json!({});
    }
    slot.is_object().then_some(slot)
}

/// `v[key]` when present and an object.
pub(crate) fn at<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    v.get_mut(key).filter(|x| x.is_object())
}

/// Calls `f` on each element of the array `v[key]`.
pub(crate) fn each(v: &mut Value, key: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(items) = v.get_mut(key).and_then(Value::as_array_mut) {
        items.iter_mut().filter(|x| x.is_object()).for_each(&mut f);
    }
}

/// The string at `v[key]`, or `""`.
pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Whether `v[key]` is present and not null.
pub(crate) fn present(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

#[cfg(test)]
pub(crate) mod test_util {
    use serde_json::Value;

    /// Defaults `input` as `kind` in `group` and compares with `expected`.
    pub(crate) fn check(group: &str, kind: &str, mut input: Value, expected: Value) {
        super::apply(group, kind, &mut input);
        assert_eq!(
            input,
            expected,
            "\n got: {}\nwant: {}",
            serde_json::to_string_pretty(&input).unwrap_or_default(),
            serde_json::to_string_pretty(&expected).unwrap_or_default()
        );
    }
}

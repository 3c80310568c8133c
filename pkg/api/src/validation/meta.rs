//! ObjectMeta checks every kind shares: name syntax, labels, annotations,
//! finalizers, owner references; and label selectors.

use super::FieldError;
use super::names::{NameValidator, is_qualified_name, is_valid_label_value};
use super::util::{arr_of, child, index, int_of, invalid_each, str_of};
use serde_json::Value;

/// The most bytes all annotations of one object may hold (keys plus values).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Checks `metadata` (at `path`, usually `metadata`) with `name_fn` for the name.
pub fn validate_object_meta(meta: &Value, name_fn: NameValidator, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = str_of(meta, "name");
    let generate = str_of(meta, "generateName");
    if !generate.is_empty() {
        invalid_each(
            &mut errs,
            &child(path, "generateName"),
            generate,
            name_fn(generate, true),
        );
    }
    if name.is_empty() {
        if generate.is_empty() {
            errs.push(FieldError::required(
                child(path, "name"),
                "name or generateName is required",
            ));
        }
    } else {
        invalid_each(&mut errs, &child(path, "name"), name, name_fn(name, false));
    }
    if let Some(g) = int_of(meta, "generation")
        && g < 0
    {
        errs.push(FieldError::invalid(
            child(path, "generation"),
            g,
            "must be greater than or equal to 0",
        ));
    }
    errs.extend(validate_labels(meta.get("labels"), &child(path, "labels")));
    errs.extend(validate_annotations(
        meta.get("annotations"),
        &child(path, "annotations"),
    ));
    errs.extend(validate_finalizers(meta, &child(path, "finalizers")));
    errs.extend(validate_owner_references(
        meta,
        &child(path, "ownerReferences"),
    ));
    errs
}

/// Checks the metadata of an embedded template (labels and annotations only).
pub fn validate_template_meta(meta: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = validate_labels(meta.get("labels"), &child(path, "labels"));
    errs.extend(validate_annotations(
        meta.get("annotations"),
        &child(path, "annotations"),
    ));
    errs
}

/// Checks label keys (qualified names) and values.
pub fn validate_labels(labels: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(map) = labels.and_then(Value::as_object) else {
        return errs;
    };
    for (k, v) in map {
        invalid_each(&mut errs, path, k, is_qualified_name(k));
        match v.as_str() {
            Some(s) => invalid_each(&mut errs, path, s, is_valid_label_value(s)),
            None => errs.push(FieldError::invalid(path, v.clone(), "must be a string")),
        }
    }
    errs
}

/// Checks annotation keys and the total size.
pub fn validate_annotations(annotations: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(map) = annotations.and_then(Value::as_object) else {
        return errs;
    };
    let mut total = 0;
    for (k, v) in map {
        invalid_each(&mut errs, path, k, is_qualified_name(&k.to_lowercase()));
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

fn validate_finalizers(meta: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, f) in arr_of(meta, "finalizers").iter().enumerate() {
        let s = f.as_str().unwrap_or("");
        invalid_each(&mut errs, &index(path, i), s, is_qualified_name(s));
        if !seen.insert(s) {
            errs.push(FieldError::duplicate(index(path, i), s));
        }
    }
    errs
}

fn validate_owner_references(meta: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut controllers = 0;
    for r in arr_of(meta, "ownerReferences") {
        if str_of(r, "apiVersion").is_empty() {
            errs.push(FieldError::invalid(
                child(path, "apiVersion"),
                str_of(r, "apiVersion"),
                "version must not be empty",
            ));
        }
        if str_of(r, "kind").is_empty() {
            errs.push(FieldError::invalid(
                child(path, "kind"),
                "",
                "kind must not be empty",
            ));
        }
        if str_of(r, "name").is_empty() {
            errs.push(FieldError::invalid(
                child(path, "name"),
                "",
                "name must not be empty",
            ));
        }
        if str_of(r, "uid").is_empty() {
            errs.push(FieldError::invalid(
                child(path, "uid"),
                "",
                "uid must not be empty",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers += 1;
        }
    }
    if controllers > 1 {
        errs.push(FieldError::invalid(
            path,
            meta.get("ownerReferences").cloned().unwrap_or(Value::Null),
            "Only one reference can have Controller set to true",
        ));
    }
    errs
}

/// Checks a `LabelSelector` (`matchLabels` and `matchExpressions`).
pub fn validate_label_selector(sel: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = validate_labels(sel.get("matchLabels"), &child(path, "matchLabels"));
    let exprs = child(path, "matchExpressions");
    for (i, e) in arr_of(sel, "matchExpressions").iter().enumerate() {
        let p = index(&exprs, i);
        let values = arr_of(e, "values");
        match str_of(e, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(FieldError::invalid(
                child(&p, "operator"),
                op,
                "not a valid selector operator",
            )),
        }
        let k = str_of(e, "key");
        invalid_each(&mut errs, &child(&p, "key"), k, is_qualified_name(k));
        for (j, v) in values.iter().enumerate() {
            let s = v.as_str().unwrap_or("");
            invalid_each(
                &mut errs,
                &index(&child(&p, "values"), j),
                s,
                is_valid_label_value(s),
            );
        }
    }
    errs
}

/// Whether `labels` satisfy `selector` (a `LabelSelector`); an empty selector matches everything.
pub fn selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if get(k) != v.as_str() {
                return false;
            }
        }
    }
    for e in arr_of(selector, "matchExpressions") {
        let k = str_of(e, "key");
        let values: Vec<&str> = arr_of(e, "values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let ok = match str_of(e, "operator") {
            "In" => get(k).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(k).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(k).is_some(),
            "DoesNotExist" => get(k).is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a `LabelSelector` has neither labels nor expressions.
pub fn selector_is_empty(selector: &Value) -> bool {
    selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.is_empty())
        && arr_of(selector, "matchExpressions").is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::names::name_is_dns_subdomain;
    use serde_json::json;

    fn check(meta: Value, expected: &[&str]) {
        let got: Vec<String> = validate_object_meta(&meta, name_is_dns_subdomain, "metadata")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, expected, "for {meta}");
    }

    #[test]
    fn object_meta_messages() {
        check(json!({"name": "web"}), &[]);
        check(
            json!({}),
            &["metadata.name: Required value: name or generateName is required"],
        );
        check(json!({"generateName": "web-"}), &[]);
        check(
            json!({"name": "Web"}),
            &[
                "metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ],
        );
        check(
            json!({"name": "a", "labels": {"app": "my app"}}),
            &[
                "metadata.labels: Invalid value: \"my app\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ],
        );
        check(
            json!({"name": "a", "labels": {"/x": "y"}}),
            &["metadata.labels: Invalid value: \"/x\": prefix part must be non-empty"],
        );
        check(
            json!({"name": "a", "annotations": {"k": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT)}}),
            &["metadata.annotations: Too long: may not be more than 262144 bytes"],
        );
        check(
            json!({"name": "a", "annotations": {"Example.com/Key": "v"}}),
            &[],
        );
        check(
            json!({"name": "a", "finalizers": ["x/y", "x/y"]}),
            &["metadata.finalizers[1]: Duplicate value: \"x/y\""],
        );
    }

    #[test]
    fn selectors_validate_and_match() {
        let sel = json!({"matchExpressions": [{"key": "app", "operator": "In"}]});
        assert_eq!(
            validate_label_selector(&sel, "spec.selector")[0].to_string(),
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        );
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]});
        assert!(validate_label_selector(&sel, "s").is_empty());
        assert!(selector_matches(&sel, Some(&json!({"app": "web"}))));
        assert!(!selector_matches(
            &sel,
            Some(&json!({"app": "web", "tier": "db"}))
        ));
        assert!(!selector_matches(&sel, None));
        assert!(selector_is_empty(&json!({})));
    }
}

//! Validation of a custom object against its structural schema.
//!
//! Three passes, in kube-apiserver's order:
//!
//! 1. the OpenAPI keywords, checked as kube-openapi's schema validator does
//!    and reported as apiextensions-apiserver converts its results: a wrong
//!    JSON type is `Invalid value: "<actual type>": <path> in body must be of
//!    type <type>: "<actual type>"`, `enum` is `Unsupported value`, `required`
//!    is `Required value`, `maxLength`/`maxItems`/`maxProperties` are
//!    `Too long`/`Too many`, anything else is `Invalid value` with kube-openapi's
//!    sentence (`<path> in body should be greater than or equal to 1`). Failed
//!    `allOf`/`anyOf`/`oneOf`/`not` add kube-openapi's composite sentence on a
//!    `<nil>` field, as kube-apiserver shows it;
//! 2. `x-kubernetes-embedded-resource` objects: `apiVersion` and `kind` are
//!    required, `metadata` labels and annotations are checked;
//! 3. `x-kubernetes-list-type` `set` and `map` lists: repeated items (or
//!    repeated key tuples) are `Duplicate value`.
//!
//! Object properties are visited in key order, so the list is deterministic.

use super::{Additional, Node, child, format, index};
use crate::validation::{FieldError, FieldErrorType};
use serde_json::{Map, Value};

/// Checks `obj` (a whole custom object, already pruned and defaulted) against `schema`.
pub fn validate(schema: &Value, obj: &Value) -> Vec<FieldError> {
    let root = Node(schema);
    let mut errs = Vec::new();
    check(root, obj, "", &mut errs);
    embedded(root, obj, "", true, &mut errs);
    list_types(root, obj, "", &mut errs);
    errs
}

/// Checks an update: as with CRD validation ratcheting (on by default since
/// Kubernetes 1.30), a failure is only reported where the value differs from
/// the old object's, so objects stored before a schema tightened stay updatable.
pub fn validate_update(schema: &Value, new: &Value, old: &Value) -> Vec<FieldError> {
    validate(schema, new)
        .into_iter()
        .filter(|e| {
            // A missing required field is judged by its parent object.
            let at = match e.kind {
                FieldErrorType::Required => parent(&e.field),
                _ => Some(e.field.as_str()),
            };
            let unchanged = at
                .and_then(|p| Some((lookup(new, p)?, lookup(old, p)?)))
                .is_some_and(|(n, o)| n == o);
            !unchanged
        })
        .collect()
}

/// `spec.a` for `spec.a.b`; `""` (the root) for `spec`.
fn parent(path: &str) -> Option<&str> {
    if path.contains('<') {
        return None;
    }
    Some(path.rsplit_once('.').map_or("", |(p, _)| p))
}

/// The value at a field path such as `spec.ports[1].name` (`""` is the root).
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    if path.contains('<') {
        return None;
    }
    let mut current = value;
    for segment in path.split('.') {
        let (key, indexes) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        for i in indexes.split('[').filter(|s| !s.is_empty()) {
            let i: usize = i.strip_suffix(']')?.parse().ok()?;
            current = current.get(i)?;
        }
    }
    Some(current)
}

/// The JSON type kube-openapi infers for a decoded value.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The allowed types: `x-kubernetes-int-or-string` means integer or string.
fn types(node: Node<'_>) -> Vec<&str> {
    if node.is_int_or_string() {
        return vec!["integer", "string"];
    }
    match node.ty() {
        "" => Vec::new(),
        ty => vec![ty],
    }
}

fn integral(value: &Value) -> bool {
    value
        .as_f64()
        .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

fn type_matches(allowed: &[&str], value: &Value) -> bool {
    let actual = json_type(value);
    allowed.contains(&actual)
        || (actual == "number" && integral(value) && allowed.contains(&"integer"))
        || (actual == "integer" && allowed.contains(&"number"))
}

/// A failure kube-apiserver reports without a field (`<nil>`): the composite
/// `allOf`/`anyOf`/`oneOf`/`not` sentences.
fn composite(detail: String) -> FieldError {
    FieldError {
        kind: FieldErrorType::Invalid,
        field: "<nil>".into(),
        value: Some(Value::String(String::new())),
        detail,
    }
}

/// A bound as Go's `%v` prints a float64.
fn go_number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn check(node: Node<'_>, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let allowed = types(node);
    if value.is_null() {
        if !allowed.is_empty() && !node.nullable() {
            errs.push(type_error(path, &allowed, "null"));
        }
        check_enum(node, value, path, errs);
        return;
    }
    if !allowed.is_empty() && !type_matches(&allowed, value) {
        errs.push(type_error(path, &allowed, json_type(value)));
    }
    combinators(node, value, path, errs);
    match value {
        Value::String(s) => {
            check_string(node, s, path, errs);
            check_format(node, s, path, errs);
        }
        Value::Number(_) => check_number(node, value, path, errs),
        Value::Array(items) => check_array(node, items, path, errs),
        _ => {}
    }
    check_enum(node, value, path, errs);
    if let Value::Object(map) = value {
        check_object(node, map, path, errs);
    }
}

fn type_error(path: &str, allowed: &[&str], actual: &str) -> FieldError {
    FieldError::type_invalid(
        path,
        actual,
        format!(
            "{path} in body must be of type {}: {actual:?}",
            allowed.join(",")
        ),
    )
}

fn errors_of(node: Node<'_>, value: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check(node, value, path, &mut errs);
    errs
}

/// `anyOf`, `oneOf`, `allOf` and `not`, in kube-openapi's order.
fn combinators(node: Node<'_>, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let any = node.list("anyOf");
    if !any.is_empty() {
        let results: Vec<Vec<FieldError>> =
            any.iter().map(|s| errors_of(*s, value, path)).collect();
        if !results.iter().any(Vec::is_empty) {
            errs.push(composite(format!(
                "{path:?} must validate at least one schema (anyOf)"
            )));
            errs.extend(closest(results));
        }
    }
    let one = node.list("oneOf");
    if !one.is_empty() {
        let results: Vec<Vec<FieldError>> =
            one.iter().map(|s| errors_of(*s, value, path)).collect();
        let valid = results.iter().filter(|r| r.is_empty()).count();
        if valid != 1 {
            let found = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            errs.push(composite(format!(
                "{path:?} must validate one and only one schema (oneOf). {found}"
            )));
            if valid == 0 {
                errs.extend(closest(results));
            }
        }
    }
    let all = node.list("allOf");
    if !all.is_empty() {
        let mut valid = 0;
        for sub in &all {
            let result = errors_of(*sub, value, path);
            if result.is_empty() {
                valid += 1;
            }
            errs.extend(result);
        }
        if valid != all.len() {
            let none = if valid == 0 { ". None validated" } else { "" };
            errs.push(composite(format!(
                "{path:?} must validate all the schemas (allOf){none}"
            )));
        }
    }
    if let Some(not) = node.get("not").filter(|n| n.is_object())
        && errors_of(Node(not), value, path).is_empty()
    {
        errs.push(composite(format!(
            "{path:?} must not validate the schema (not)"
        )));
    }
}

/// The failures of the alternative that came closest (fewest failures, first on ties).
fn closest(results: Vec<Vec<FieldError>>) -> Vec<FieldError> {
    results.into_iter().min_by_key(Vec::len).unwrap_or_default()
}

fn int_keyword(node: Node<'_>, key: &str) -> Option<u64> {
    node.get(key)
        .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64)))
}

/// `maxLength`, `minLength`, `pattern`: the first failure only, as kube-openapi stops there.
fn check_string(node: Node<'_>, s: &str, path: &str, errs: &mut Vec<FieldError>) {
    let chars = s.chars().count() as u64;
    if let Some(max) = int_keyword(node, "maxLength")
        && chars > max
    {
        errs.push(FieldError::too_long(path, max as usize));
        return;
    }
    if let Some(min) = int_keyword(node, "minLength")
        && chars < min
    {
        errs.push(FieldError::invalid(
            path,
            s,
            format!("{path} in body should be at least {min} chars long"),
        ));
        return;
    }
    if let Some(pattern) = node.get("pattern").and_then(Value::as_str)
        && let Ok(re) = regex::Regex::new(pattern)
        && !re.is_match(s)
    {
        errs.push(FieldError::invalid(
            path,
            s,
            format!("{path} in body should match '{pattern}'"),
        ));
    }
}

fn check_format(node: Node<'_>, s: &str, path: &str, errs: &mut Vec<FieldError>) {
    let Some(fmt) = node.get("format").and_then(Value::as_str) else {
        return;
    };
    // Unsupported formats on string schemas are dropped by kube-apiserver.
    if node.ty() == "string" && format::supported(fmt) && !format::valid(fmt, s) {
        errs.push(FieldError::type_invalid(
            path,
            s,
            format!("{path} in body must be of type {fmt}: {s:?}"),
        ));
    }
}

/// Whether `f` is (within float error) a whole number, as go-openapi decides it.
fn whole(f: f64) -> bool {
    if !f.is_finite() {
        return false;
    }
    let g = f.round();
    f == g || (f - g).abs() / (f.abs() + g.abs()).max(f64::MIN_POSITIVE) < 1e-9
}

/// `multipleOf`, `minimum`, `maximum` (with their exclusive flags), in that order.
fn check_number(node: Node<'_>, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(data) = value.as_f64() else {
        return;
    };
    if let Some(factor) = node.get("multipleOf").and_then(Value::as_f64)
        && factor > 0.0
    {
        let multiple = match (value.as_i64(), factor.fract() == 0.0) {
            (Some(i), true) => i % (factor as i64).max(1) == 0,
            _ if factor < 1.0 => whole(1.0 / factor * data),
            _ => whole(data / factor),
        };
        if !multiple {
            errs.push(FieldError::invalid(
                path,
                value.clone(),
                format!(
                    "{path} in body should be a multiple of {}",
                    go_number(factor)
                ),
            ));
        }
    }
    if let Some(min) = node.get("minimum").and_then(Value::as_f64) {
        let exclusive = node.get("exclusiveMinimum") == Some(&Value::Bool(true));
        if (exclusive && data <= min) || data < min {
            let relation = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{path} in body should be {relation} {}", go_number(min)),
            ));
        }
    }
    if let Some(max) = node.get("maximum").and_then(Value::as_f64) {
        let exclusive = node.get("exclusiveMaximum") == Some(&Value::Bool(true));
        if (exclusive && data >= max) || data > max {
            let relation = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{path} in body should be {relation} {}", go_number(max)),
            ));
        }
    }
}

/// `Too many: <n>: must have at most <max> items` (`item` for one).
fn too_many(path: &str, actual: usize, max: u64) -> FieldError {
    let noun = if max == 1 { "item" } else { "items" };
    FieldError {
        kind: FieldErrorType::TooMany,
        field: path.into(),
        value: None,
        detail: format!("{actual}: must have at most {max} {noun}"),
    }
}

fn check_array(node: Node<'_>, items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    if let Some(item) = node.items() {
        for (i, value) in items.iter().enumerate() {
            check(item, value, &index(path, i), errs);
        }
    }
    let size = items.len();
    if let Some(min) = int_keyword(node, "minItems")
        && (size as u64) < min
    {
        errs.push(FieldError::invalid(
            path,
            size,
            format!("{path} in body should have at least {min} items"),
        ));
    }
    if let Some(max) = int_keyword(node, "maxItems")
        && size as u64 > max
    {
        errs.push(too_many(path, size, max));
    }
    if node.get("uniqueItems") == Some(&Value::Bool(true)) {
        let repeated = items
            .iter()
            .enumerate()
            .any(|(i, a)| items[..i].iter().any(|b| same(a, b)));
        if repeated {
            errs.push(FieldError::invalid(
                path,
                "",
                format!("{path} in body shouldn't contain duplicates"),
            ));
        }
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`), as Go's
/// reflection-based comparison after conversion does.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn check_enum(node: Node<'_>, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(Value::Array(allowed)) = node.get("enum") else {
        return;
    };
    if allowed.is_empty() || allowed.iter().any(|a| same(a, value)) {
        return;
    }
    let names: Vec<String> = allowed
        .iter()
        .map(|a| match a {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    errs.push(FieldError::not_supported(path, value.clone(), &names));
}

fn check_object(node: Node<'_>, map: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    let size = map.len();
    if let Some(min) = int_keyword(node, "minProperties")
        && (size as u64) < min
    {
        errs.push(FieldError::invalid(
            path,
            size,
            format!("{path} in body should have at least {min} properties"),
        ));
        return;
    }
    if let Some(max) = int_keyword(node, "maxProperties")
        && size as u64 > max
    {
        errs.push(too_many(path, size, max));
        return;
    }
    let props = node.properties();
    let declared = |key: &str| props.is_some_and(|p| p.contains_key(key));
    match node.additional() {
        Additional::Allows(false) => {
            for key in map.keys().filter(|k| !declared(k)) {
                // kube-apiserver names the object, not the key, for a forbidden property.
                let field = if path.is_empty() { "<nil>" } else { path };
                errs.push(FieldError::invalid(
                    field,
                    key.as_str(),
                    format!("{} in body is a forbidden property", child(path, key)),
                ));
            }
        }
        Additional::Schema(values) => {
            for (key, value) in map.iter().filter(|(k, _)| !declared(k)) {
                check(values, value, &child(path, key), errs);
            }
        }
        _ => {}
    }
    if let Some(props) = props {
        for (key, schema) in props {
            if let Some(value) = map.get(key) {
                check(Node(schema), value, &child(path, key), errs);
            }
        }
    }
    if let Some(Value::Array(required)) = node.get("required") {
        for key in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(key) {
                errs.push(FieldError::required(child(path, key), ""));
            }
        }
    }
}

/// The schema of an object's key: its property, else the map value schema.
fn child_schema<'a>(node: Node<'a>, key: &str) -> Option<Node<'a>> {
    node.property(key).or_else(|| node.values())
}

/// Pass 2: every `x-kubernetes-embedded-resource` object below the root.
fn embedded(node: Node<'_>, value: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    match value {
        Value::Object(map) => {
            if node.is_embedded_resource() && !root {
                check_embedded(map, path, errs);
            }
            for (key, value) in map {
                if let Some(schema) = child_schema(node, key) {
                    embedded(schema, value, &child(path, key), false, errs);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.items() {
                for (i, value) in items.iter().enumerate() {
                    embedded(item, value, &index(path, i), false, errs);
                }
            }
        }
        _ => {}
    }
}

fn check_embedded(map: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    for key in ["apiVersion", "kind"] {
        let field = child(path, key);
        match map.get(key) {
            None => errs.push(FieldError::required(field, "must not be empty")),
            Some(Value::String(s)) if s.is_empty() => {
                errs.push(FieldError::invalid(field, "", "must not be empty"));
            }
            Some(Value::String(s)) if key == "apiVersion" && s.matches('/').count() > 1 => {
                errs.push(FieldError::invalid(
                    field,
                    s.as_str(),
                    format!("unexpected GroupVersion string: {s}"),
                ));
            }
            Some(Value::String(_)) => {}
            Some(other) => errs.push(FieldError::invalid(
                field,
                other.clone(),
                "must be a string",
            )),
        }
    }
    if let Some(meta) = map.get("metadata") {
        errs.extend(crate::validation::meta::validate_template_meta(
            meta,
            &child(path, "metadata"),
        ));
    }
}

/// Pass 3: `x-kubernetes-list-type: set` and `map` lists hold no repeats.
fn list_types(node: Node<'_>, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                if let Some(schema) = child_schema(node, key) {
                    list_types(schema, value, &child(path, key), errs);
                }
            }
        }
        Value::Array(items) => {
            match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].iter().any(|seen| same(seen, item)) {
                            errs.push(duplicate(index(path, i), item));
                        }
                    }
                }
                Some("map") => check_list_map(node, items, path, errs),
                _ => {}
            }
            if let Some(item) = node.items() {
                for (i, value) in items.iter().enumerate() {
                    list_types(item, value, &index(path, i), errs);
                }
            }
        }
        _ => {}
    }
}

/// `Duplicate value: <value>` with the value printed as Go's `%#v` prints the
/// decoded JSON (`map[string]interface {}{"name":"a"}`), as kube-apiserver shows it.
fn duplicate(path: String, value: &Value) -> FieldError {
    match value {
        Value::Object(_) | Value::Array(_) => FieldError {
            kind: FieldErrorType::Duplicate,
            field: path,
            value: None,
            detail: go_value(value),
        },
        scalar => FieldError::duplicate(path, scalar.clone()),
    }
}

/// A decoded JSON value as Go's `%#v` prints it.
fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "interface {}(nil)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !(n.is_i64() || n.is_u64()) => go_number(f),
            _ => n.to_string(),
        },
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!(
            "[]interface {{}}{{{}}}",
            items.iter().map(go_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "map[string]interface {{}}{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{k:?}:{}", go_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn check_list_map(node: Node<'_>, items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    let keys: Vec<&str> = match node.get("x-kubernetes-list-map-keys") {
        Some(Value::Array(keys)) => keys.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    // Items that are not objects make the whole list invalid: only the first is reported.
    if let Some((i, item)) = items
        .iter()
        .enumerate()
        .find(|(_, item)| !item.is_null() && !item.is_object())
    {
        errs.push(FieldError::invalid(
            index(path, i),
            item.clone(),
            "must be an object for an array of list-type map",
        ));
        return;
    }
    let mut seen: Vec<Vec<Option<&Value>>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            continue;
        };
        // An absent key is a value of its own, equal only to another absent key.
        let tuple: Vec<Option<&Value>> = keys.iter().map(|k| obj.get(*k)).collect();
        let repeated = seen.iter().any(|s| {
            s.iter().zip(&tuple).all(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => same(a, b),
                (None, None) => true,
                _ => false,
            })
        });
        if repeated {
            // kube-apiserver shows the whole repeated item.
            errs.push(duplicate(index(path, i), item));
        } else {
            seen.push(tuple);
        }
    }
}

//! Strategic merge patch, applied server-side as kube-apiserver applies it.
//!
//! Maps merge key by key (`null` deletes), lists follow the field's
//! `x-kubernetes-patch-strategy`: `merge` lists of objects merge by
//! `x-kubernetes-patch-merge-key`, `merge` lists of scalars are set unions,
//! all other lists are replaced. Directives: `$patch: replace|delete` on a
//! map or list element, `$retainKeys`, `$setElementOrder/<field>` and
//! `$deleteFromPrimitiveList/<field>`. Without a schema every list is
//! replaced, which is JSON merge patch semantics plus the directives.
//!
//! List order follows kube-apiserver: `$setElementOrder` first, then the
//! patch's order, then the live object's; elements new to the list are put
//! before the live elements they are not ordered against.

use super::{PatchError, Result};
use crate::schema::SchemaNode;
use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList";

/// Decodes `body` and applies it to `current` ([`strategic_merge`]).
/// A body that is not a JSON object is 400 BadRequest.
pub fn apply_strategic_merge_patch(
    current: &Value,
    body: &[u8],
    schema: Option<SchemaNode<'_>>,
) -> Result<Value> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    if !patch.is_object() {
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            go_kind_name(&patch)
        )));
    }
    strategic_merge(current, &patch, schema)
}

/// Applies the strategic merge patch `patch` to the object `original`,
/// reading merge metadata from `schema` (the kind's definition, or `None`).
pub fn strategic_merge(
    original: &Value,
    patch: &Value,
    schema: Option<SchemaNode<'_>>,
) -> Result<Value> {
    let original = match original {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::BadRequest("Invalid JSON document".into())),
    };
    let Value::Object(patch) = patch else {
        return Err(PatchError::BadRequest("Invalid JSON document".into()));
    };
    merge_map(original, patch.clone(), schema).map(Value::Object)
}

/// Go's dynamic type of a decoded JSON value, which decides merge behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Map,
    Slice,
    Str,
    Bool,
    Int,
    Float,
    Null,
}

fn kind(value: &Value) -> Kind {
    match value {
        Value::Object(_) => Kind::Map,
        Value::Array(_) => Kind::Slice,
        Value::String(_) => Kind::Str,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_f64() => Kind::Float,
        Value::Number(_) => Kind::Int,
        Value::Null => Kind::Null,
    }
}

fn go_kind_name(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        _ => "object",
    }
}

/// The merge facts of a field: its schema node, strategy and merge key.
struct Field<'a> {
    node: Option<SchemaNode<'a>>,
    merge: bool,
    replace: bool,
    merge_key: String,
}

fn field<'a>(parent: Option<SchemaNode<'a>>, key: &str) -> Field<'a> {
    let node = parent.and_then(|p| p.child(key));
    let meta = node.map(|n| n.patch_meta()).unwrap_or_default();
    Field {
        node,
        merge: meta.merges(),
        replace: meta.replaces(),
        merge_key: meta.merge_key,
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    node: Option<SchemaNode<'_>>,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, node)?;

    for (key, patch_value) in patch {
        let (key, delete_list) = match key.strip_prefix(DELETE_PRIMITIVE_PREFIX) {
            Some(rest) => match rest.strip_prefix('/') {
                Some(field) => (field.to_string(), true),
                None => {
                    return Err(PatchError::BadRequest(
                        "Invalid patch format of primitive list".into(),
                    ));
                }
            },
            None => (key, false),
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(current) = original.remove(&key) else {
            let added = if delete_list {
                patch_value
            } else {
                without_nulls(patch_value)
            };
            original.insert(key, added);
            continue;
        };
        if kind(&current) != kind(&patch_value) {
            original.insert(key, patch_value);
            continue;
        }
        let f = field(node, &key);
        let merged = match (current, patch_value) {
            (Value::Object(cur), Value::Object(pat)) => {
                if f.replace {
                    Value::Object(pat)
                } else {
                    Value::Object(merge_map(cur, pat, f.node)?)
                }
            }
            (Value::Array(cur), Value::Array(pat)) => {
                if f.merge {
                    Value::Array(merge_slice(
                        cur,
                        pat,
                        f.node.and_then(|n| n.items()),
                        &f.merge_key,
                        delete_list,
                    )?)
                } else {
                    Value::Array(pat)
                }
            }
            (_, pat) => pat,
        };
        original.insert(key, merged);
    }
    Ok(original)
}

/// Drops `null` members from objects added wholesale (the typed decode that
/// follows a patch in kube-apiserver treats them as absent).
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// `$retainKeys`: every non-null patch key must be listed; unlisted live keys go.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = || PatchError::BadRequest("Invalid patch format of retainKeys".into());
    let Value::Array(list) = retain else {
        return Err(bad());
    };
    let listed = |k: &str| list.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_PRIMITIVE_PREFIX) || k.starts_with(SET_ORDER_PREFIX)
        {
            continue;
        }
        if !listed(k) {
            return Err(bad());
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `$setElementOrder/<field>`: merges the field's list now and orders it.
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    node: Option<SchemaNode<'_>>,
) -> Result<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER_PREFIX))
        .cloned()
        .collect();
    for directive_key in keys {
        let Some(order) = patch.remove(&directive_key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(PatchError::Internal(bad_arg_type("[]interface {}", &order)));
        };
        let key = match directive_key
            .strip_prefix(SET_ORDER_PREFIX)
            .and_then(|r| r.strip_prefix('/'))
        {
            Some(k) => k.to_string(),
            None => {
                return Err(PatchError::BadRequest(
                    "Invalid patch format of setElementOrder list".into(),
                ));
            }
        };
        let original_list = match original.get(&key) {
            Some(Value::Array(items)) => Some(items.clone()),
            Some(other) => return Err(PatchError::Internal(bad_arg_type("[]interface {}", other))),
            None => None,
        };
        let patch_list = match patch.get(&key) {
            Some(Value::Array(items)) => Some(items.clone()),
            Some(other) => return Err(PatchError::Internal(bad_arg_type("[]interface {}", other))),
            None => None,
        };
        let f = field(node, &key);
        let merge_key = f.merge_key.as_str();
        validate_against_order(patch_list.as_deref().unwrap_or_default(), &order, merge_key)?;
        let merged = match (&original_list, &patch_list) {
            (Some(cur), None) => cur.clone(),
            (None, Some(pat)) => pat.clone(),
            (Some(cur), Some(pat)) => {
                if f.merge {
                    merge_slice(
                        cur.clone(),
                        pat.clone(),
                        f.node.and_then(|n| n.items()),
                        merge_key,
                        false,
                    )?
                } else {
                    pat.clone()
                }
            }
            (None, None) => continue,
        };
        let (in_order, server_only) = partition(merged, &order, merge_key)?;
        let live = original_list.unwrap_or_default();
        let element = element_kind(&[&live, patch_list.as_deref().unwrap_or_default()])?;
        let ordered = normalize_order(in_order, server_only, &order, &live, merge_key, element)?;
        original.insert(key.clone(), Value::Array(ordered));
        patch.remove(&key);
    }
    Ok(())
}

/// The relative order of patch elements must agree with `$setElementOrder`.
fn validate_against_order(patch_list: &[Value], order: &[Value], merge_key: &str) -> Result<()> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let kept: Vec<&Value> = if merge_key.is_empty() {
        patch_list.iter().collect()
    } else {
        let mut kept = Vec::new();
        for item in patch_list {
            let Value::Object(map) = item else {
                return Err(PatchError::Internal(bad_arg_type(
                    "map[string]interface {}",
                    item,
                )));
            };
            if map.get(DIRECTIVE).and_then(Value::as_str) != Some("delete") {
                kept.push(item);
            }
        }
        kept
    };
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        if kept[p].get(DIRECTIVE).is_some() && kept[p].is_object() {
            p += 1;
            continue;
        }
        if merge_key_equal(kept[p], &order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() {
        return Err(PatchError::Internal(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ORDER_PREFIX} list:\n{}\n",
            go_fmt(&Value::Array(patch_list.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

fn merge_key_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let l = key_of(left, merge_key)?;
    let r = key_of(right, merge_key)?;
    Ok(l == r)
}

/// The merge key's value of a list element that must be an object having it.
fn key_of<'v>(item: &'v Value, merge_key: &str) -> Result<&'v Value> {
    let Value::Object(map) = item else {
        return Err(PatchError::Internal(bad_arg_type(
            "map[string]interface {}",
            item,
        )));
    };
    map.get(merge_key)
        .ok_or_else(|| no_merge_key(item, merge_key))
}

/// The common element kind of the lists; lists of lists are refused.
fn element_kind(lists: &[&[Value]]) -> Result<Kind> {
    let mut found: Option<Kind> = None;
    for list in lists {
        for item in *list {
            let k = kind(item);
            match found {
                None if k == Kind::Slice => {
                    return Err(PatchError::Unprocessable(
                        "Lists of lists are not supported".into(),
                    ));
                }
                None => found = Some(k),
                Some(prev) if prev != k => {
                    let all: Vec<Value> = lists.iter().map(|l| Value::Array(l.to_vec())).collect();
                    return Err(PatchError::Internal(format!(
                        "list element types are not identical: {}",
                        go_fmt(&Value::Array(all))
                    )));
                }
                Some(_) => {}
            }
        }
    }
    found.ok_or_else(|| PatchError::Internal("no elements in any of the given slices".into()))
}

fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: Option<SchemaNode<'_>>,
    merge_key: &str,
    delete_list: bool,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let element = element_kind(&[&original, &patch])?;
    let (original, patch, merged) = if element != Kind::Map {
        if delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for item in original.iter().chain(patch.iter()) {
            if !merged.contains(item) {
                merged.push(item.clone());
            }
        }
        (original, patch, merged)
    } else {
        if merge_key.is_empty() {
            return Err(PatchError::Internal(
                "cannot merge lists without merge key for type map".into(),
            ));
        }
        let (original, patch) = apply_list_directives(original, patch, merge_key)?;
        let merged = merge_by_key(original.clone(), &patch, items, merge_key)?;
        (original, patch, merged)
    };
    let key = if element == Kind::Map { merge_key } else { "" };
    let (in_patch, server_only) = partition(merged, &patch, key)?;
    normalize_order(in_patch, server_only, &patch, &original, key, element)
}

/// `$patch: delete|replace` elements of a merge list. Returns the live list
/// after deletions (or the replacement) and the remaining patch elements.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::new();
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let value = key_of(&item, merge_key)?.clone();
                for live in &original {
                    if !live.is_object() {
                        return Err(PatchError::Internal("value for key 0 is not a map.".into()));
                    }
                }
                original.retain(|live| live.get(merge_key) != Some(&value));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::Internal(
                    "merging lists cannot yet be specified in the patch".into(),
                ));
            }
            _ => {
                let map = item.as_object().cloned().unwrap_or_default();
                return Err(bad_patch_type(directive, &map));
            }
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// Merges each patch element into the live element with the same key, or appends it.
fn merge_by_key(
    mut original: Vec<Value>,
    patch: &[Value],
    items: Option<SchemaNode<'_>>,
    merge_key: &str,
) -> Result<Vec<Value>> {
    for item in patch {
        let value = key_of(item, merge_key)?;
        let mut found = None;
        for (i, live) in original.iter().enumerate() {
            let Value::Object(map) = live else {
                return Err(PatchError::Internal(format!(
                    "value for key {i} is not a map."
                )));
            };
            if map.get(merge_key) == Some(value) {
                found = Some(i);
                break;
            }
        }
        let Value::Object(patch_map) = item else {
            continue;
        };
        match found {
            Some(i) => {
                let live = std::mem::take(&mut original[i]);
                let live = live.as_object().cloned().unwrap_or_default();
                original[i] = Value::Object(merge_map(live, patch_map.clone(), items)?);
            }
            None => original.push(item.clone()),
        }
    }
    Ok(original)
}

/// Splits `merged` into elements present in `by` and the rest, keeping order.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::new();
    let mut rest = Vec::new();
    for item in merged {
        let hit = if merge_key.is_empty() {
            by.contains(&item)
        } else {
            let value = key_of(&item, merge_key)?;
            let mut hit = false;
            for (i, other) in by.iter().enumerate() {
                let Value::Object(map) = other else {
                    return Err(PatchError::Internal(format!(
                        "value for key {i} is not a map."
                    )));
                };
                if map.get(merge_key) == Some(value) {
                    hit = true;
                    break;
                }
            }
            hit
        };
        if hit {
            present.push(item)
        } else {
            rest.push(item)
        }
    }
    Ok((present, rest))
}

/// Position of `item` in `order`, by merge key for objects.
fn index_in(order: &[Value], item: &Value, merge_key: &str, element: Kind) -> Option<usize> {
    if element == Kind::Map {
        let wanted = item.get(merge_key);
        order.iter().position(|o| o.get(merge_key) == wanted)
    } else {
        order.iter().position(|o| o == item)
    }
}

/// Orders patch elements by `patch_order`, live-only elements by
/// `server_order`, then interleaves them (live order wins where both are known).
fn normalize_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    element: Kind,
) -> Result<Vec<Value>> {
    let patch_items = sort_by_order(patch_items, patch_order, merge_key, element)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, element)?;
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (Some(l), Some(r)) => {
                let li = index_in(server_order, l, merge_key, element);
                let ri = index_in(server_order, r, merge_key, element);
                match (li, ri) {
                    (Some(li), Some(ri)) if li < ri => out.extend(left.next()),
                    _ => out.extend(right.next()),
                }
            }
        }
    }
    Ok(out)
}

fn sort_by_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    element: Kind,
) -> Result<Vec<Value>> {
    let (mut keep, deleted): (Vec<Value>, Vec<Value>) = if element == Kind::Map {
        for item in items.iter().chain(order.iter()) {
            key_of(item, merge_key)?;
        }
        items
            .into_iter()
            .partition(|i| i.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"))
    } else {
        (items, Vec::new())
    };
    // Elements missing from `order` sort first, as kube-apiserver's comparator does.
    keep.sort_by_key(|item| index_in(order, item, merge_key, element).map_or(0, |i| i + 1));
    keep.extend(deleted);
    Ok(keep)
}

fn bad_patch_type(directive: &Value, map: &Map<String, Value>) -> PatchError {
    PatchError::Internal(format!(
        "unknown patch type: {} in map: {}",
        go_fmt(directive),
        go_fmt(&Value::Object(map.clone()))
    ))
}

fn no_merge_key(item: &Value, merge_key: &str) -> PatchError {
    PatchError::Internal(format!(
        "map: {} does not contain declared merge key: {merge_key}",
        go_fmt(item)
    ))
}

fn bad_arg_type(expected: &str, actual: &Value) -> String {
    let actual = match actual {
        Value::Object(_) => "map[string]interface {}",
        Value::Array(_) => "[]interface {}",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::Null => "nil",
    };
    format!("expected a {expected}, but received a {actual}")
}

/// A value formatted like Go's `%v` of decoded JSON (`map[a:1 b:[x y]]`).
fn go_fmt(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_fmt(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_fmt).collect::<Vec<_>>().join(" ")
        ),
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

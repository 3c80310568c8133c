//! Walking objects with their schema: field sets, comparisons, merges.
//!
//! The schema decides how each value is owned, as structured-merge-diff does:
//! an object's fields are owned one by one unless the schema marks it atomic;
//! a list is owned whole (atomic) unless it is a set (`listType: set`) or an
//! associative list (`listType: map` with key fields, or a merge key), whose
//! items are owned one by one. Empty objects and lists are leaves. Without a
//! schema (custom resources without one, unknown fields), objects are
//! granular and lists atomic.

use super::path::{Element, Path};
use super::set::FieldSet;
use crate::schema::SchemaNode;
use serde_json::{Map, Value};

/// How a value is owned.
enum Shape<'a> {
    /// Owned whole: scalars, atomic lists and maps, empty ones.
    Leaf,
    /// An object owned field by field; `member` says whether the object itself
    /// is recorded when it is added (maps of values are, structs are not).
    Fields {
        node: Option<SchemaNode<'a>>,
        member: bool,
    },
    /// A list whose items are owned one by one.
    Items {
        items: Option<SchemaNode<'a>>,
        keys: Vec<&'a str>,
    },
}

fn shape<'a>(node: Option<SchemaNode<'a>>, value: &Value) -> Shape<'a> {
    match value {
        Value::Object(map) if !map.is_empty() => match node {
            None => Shape::Fields {
                node: None,
                member: true,
            },
            Some(n) if n.map_type() == Some("atomic") => Shape::Leaf,
            Some(n) if n.is_int_or_string() => Shape::Leaf,
            Some(n) => {
                let member = n.properties().is_none();
                Shape::Fields {
                    node: Some(n),
                    member,
                }
            }
        },
        Value::Array(list) if !list.is_empty() => {
            let Some(n) = node else {
                return Shape::Leaf;
            };
            let items = n.items();
            match n.list_type() {
                Some("map") => Shape::Items {
                    items,
                    keys: n.list_map_keys(),
                },
                Some("set") => Shape::Items {
                    items,
                    keys: Vec::new(),
                },
                Some(_) => Shape::Leaf,
                None => {
                    let meta = n.patch_meta();
                    if !meta.merges() {
                        Shape::Leaf
                    } else if meta.merge_key.is_empty() {
                        Shape::Items {
                            items,
                            keys: Vec::new(),
                        }
                    } else {
                        // The merge key lives in the schema; borrow it from there.
                        match n
                            .keyword("x-kubernetes-patch-merge-key")
                            .and_then(Value::as_str)
                        {
                            Some(key) => Shape::Items {
                                items,
                                keys: vec![key],
                            },
                            None => Shape::Leaf,
                        }
                    }
                }
            }
        }
        _ => Shape::Leaf,
    }
}

fn child<'a>(node: Option<SchemaNode<'a>>, key: &str) -> Option<SchemaNode<'a>> {
    node.and_then(|n| n.child(key))
}

/// The path element naming `item` in a list with `keys` (a set when empty).
fn item_element(
    item: &Value,
    index: usize,
    keys: &[&str],
    items: Option<SchemaNode<'_>>,
) -> Element {
    if keys.is_empty() {
        return match item {
            Value::Object(_) | Value::Array(_) => Element::Index(index),
            scalar => Element::Value(scalar.to_string()),
        };
    }
    let mut key = Map::new();
    for field in keys {
        match item.get(*field) {
            Some(value) if !value.is_null() => {
                key.insert((*field).to_string(), value.clone());
            }
            _ => {
                if let Some(default) = key_default(items, field) {
                    key.insert((*field).to_string(), default);
                }
            }
        }
    }
    if key.is_empty() {
        Element::Index(index)
    } else {
        Element::Key(Value::Object(key).to_string())
    }
}

/// The value a missing key field takes: the schema's default, or for
/// `protocol` (ports), the `TCP` every Kubernetes port list defaults to.
fn key_default(items: Option<SchemaNode<'_>>, field: &str) -> Option<Value> {
    if let Some(default) = items
        .and_then(|n| n.property(field))
        .and_then(|n| n.keyword("default"))
    {
        return Some(default.clone());
    }
    (field == "protocol").then(|| Value::String("TCP".into()))
}

fn keyed<'v>(
    list: &'v [Value],
    keys: &[&str],
    items: Option<SchemaNode<'_>>,
) -> Vec<(Element, &'v Value)> {
    list.iter()
        .enumerate()
        .map(|(i, item)| (item_element(item, i, keys, items), item))
        .collect()
}

/// The fields a value sets: every leaf and every list item (an applied
/// configuration's ownership).
pub fn field_set(value: &Value, node: Option<SchemaNode<'_>>) -> FieldSet {
    let mut set = FieldSet::new();
    let mut path = Vec::new();
    leaves(value, node, &mut path, &mut set);
    set
}

fn leaves(value: &Value, node: Option<SchemaNode<'_>>, path: &mut Path, out: &mut FieldSet) {
    match (shape(node, value), value) {
        (Shape::Fields { node, .. }, Value::Object(map)) => {
            for (key, v) in map {
                path.push(Element::Field(key.clone()));
                leaves(v, child(node, key), path, out);
                path.pop();
            }
        }
        (Shape::Items { items, keys }, Value::Array(list)) => {
            for (element, item) in keyed(list, &keys, items) {
                path.push(element);
                out.insert(path.clone());
                leaves(item, items, path, out);
                path.pop();
            }
        }
        _ if !path.is_empty() => out.insert(path.clone()),
        _ => {}
    }
}

/// What changed between two versions of an object.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Paths present only in the new object.
    pub added: FieldSet,
    /// Leaves whose value changed.
    pub modified: FieldSet,
    /// Paths present only in the old object.
    pub removed: FieldSet,
}

/// Compares `old` with `new` field by field.
pub fn compare(old: &Value, new: &Value, node: Option<SchemaNode<'_>>) -> Comparison {
    let mut out = Comparison::default();
    let mut path = Vec::new();
    diff(old, new, node, &mut path, &mut out);
    out
}

fn diff(
    old: &Value,
    new: &Value,
    node: Option<SchemaNode<'_>>,
    path: &mut Path,
    out: &mut Comparison,
) {
    match (shape(node, old), shape(node, new), old, new) {
        (Shape::Fields { .. }, Shape::Fields { node, .. }, Value::Object(o), Value::Object(n)) => {
            for (key, nv) in n {
                path.push(Element::Field(key.clone()));
                match o.get(key) {
                    Some(ov) => diff(ov, nv, child(node, key), path, out),
                    None => subtree(nv, child(node, key), path, &mut out.added),
                }
                path.pop();
            }
            for (key, ov) in o {
                if !n.contains_key(key) {
                    path.push(Element::Field(key.clone()));
                    subtree(ov, child(node, key), path, &mut out.removed);
                    path.pop();
                }
            }
        }
        (Shape::Items { .. }, Shape::Items { items, keys }, Value::Array(o), Value::Array(n)) => {
            let old_items = keyed(o, &keys, items);
            let new_items = keyed(n, &keys, items);
            for (element, nv) in &new_items {
                path.push(element.clone());
                match old_items.iter().find(|(e, _)| e == element) {
                    Some((_, ov)) => diff(ov, nv, items, path, out),
                    None => subtree(nv, items, path, &mut out.added),
                }
                path.pop();
            }
            for (element, ov) in &old_items {
                if !new_items.iter().any(|(e, _)| e == element) {
                    path.push(element.clone());
                    subtree(ov, items, path, &mut out.removed);
                    path.pop();
                }
            }
        }
        (Shape::Leaf, Shape::Leaf, _, _) => {
            if old != new && !path.is_empty() {
                out.modified.insert(path.clone());
            }
        }
        // The value changed shape (e.g. an empty list became a full one).
        _ => {
            subtree(old, node, path, &mut out.removed);
            subtree(new, node, path, &mut out.added);
        }
    }
}

/// Every path of a whole value appearing or disappearing at `path`.
fn subtree(value: &Value, node: Option<SchemaNode<'_>>, path: &mut Path, out: &mut FieldSet) {
    match (shape(node, value), value) {
        (Shape::Fields { node, member }, Value::Object(map)) => {
            if member || is_item(path) {
                out.insert(path.clone());
            }
            for (key, v) in map {
                path.push(Element::Field(key.clone()));
                subtree(v, child(node, key), path, out);
                path.pop();
            }
        }
        (Shape::Items { items, keys }, Value::Array(list)) => {
            for (element, item) in keyed(list, &keys, items) {
                path.push(element);
                subtree(item, items, path, out);
                path.pop();
            }
        }
        _ if !path.is_empty() => out.insert(path.clone()),
        _ => {}
    }
}

fn is_item(path: &[Element]) -> bool {
    !matches!(path.last(), Some(Element::Field(_)) | None)
}

/// Merges an applied configuration into the live object: fields and items
/// the configuration names take its values, everything else stays. A `null`
/// in the configuration removes the field.
pub fn merge(live: &Value, config: &Value, node: Option<SchemaNode<'_>>) -> Value {
    // An empty configuration object or list merges like a full one of its
    // kind: it adds nothing and takes nothing away.
    let decider = if is_empty_container(config) {
        live
    } else {
        config
    };
    match (shape(node, decider), live, config) {
        (Shape::Fields { node, .. }, Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (key, cv) in c {
                if cv.is_null() {
                    out.remove(key);
                    continue;
                }
                let merged = match l.get(key) {
                    Some(lv) => merge(lv, cv, child(node, key)),
                    None => cv.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (Shape::Items { items, keys }, Value::Array(l), Value::Array(c)) => {
            let live_items = keyed(l, &keys, items);
            let config_items = keyed(c, &keys, items);
            let mut out: Vec<Value> = live_items
                .iter()
                .map(
                    |(element, lv)| match config_items.iter().find(|(e, _)| e == element) {
                        Some((_, cv)) => merge(lv, cv, items),
                        None => (*lv).clone(),
                    },
                )
                .collect();
            for (element, cv) in &config_items {
                if !live_items.iter().any(|(e, _)| e == element) {
                    out.push((*cv).clone());
                }
            }
            Value::Array(out)
        }
        _ => config.clone(),
    }
}

fn is_empty_container(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(list) => list.is_empty(),
        _ => false,
    }
}

/// Removes the members of `set` from `value`; objects and lists left empty
/// by a removal go too, as Go's `omitempty` would drop them.
pub fn remove(value: &mut Value, set: &FieldSet, node: Option<SchemaNode<'_>>) {
    for path in set.iter() {
        remove_path(value, path, node);
    }
}

/// Removes one path; returns whether `value` is now an empty container.
fn remove_path(value: &mut Value, path: &[Element], node: Option<SchemaNode<'_>>) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    match (shape(node, value), value, first) {
        (Shape::Fields { node, .. }, Value::Object(map), Element::Field(key)) => {
            let child_node = child(node, key);
            let gone = match map.get_mut(key) {
                Some(_) if rest.is_empty() => true,
                Some(v) => remove_path(v, rest, child_node),
                None => false,
            };
            if gone {
                map.remove(key);
            }
            gone && map.is_empty()
        }
        (Shape::Items { items, keys }, Value::Array(list), element) => {
            let Some(i) = keyed(list, &keys, items)
                .iter()
                .position(|(e, _)| e == element)
            else {
                return false;
            };
            if rest.is_empty() {
                list.remove(i);
                return list.is_empty();
            }
            // Only the item's content was owned: the item itself stays.
            remove_path(&mut list[i], rest, items);
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;

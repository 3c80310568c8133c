//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Every write records who set which fields. Creates, updates and non-apply
//! patches are `Update` operations: the writer takes the fields it added or
//! changed away from everybody else ([`record_update`]). Server-side apply
//! ([`apply`]) merges an applied configuration into the live object, removes
//! fields the manager applied last time and no longer does (unless somebody
//! else owns them), and refuses, with a 409 naming each field, to change
//! fields other managers own unless forced.
//!
//! Ownership is computed from the kind's schema ([`crate::schema`]): list
//! types and merge keys decide whether list items are owned one by one.

mod entries;
mod path;
mod set;
mod typed;

pub use entries::{Conflicts, Entry, Operation, decode, encode};
pub use path::{Element, Path, display};
pub use set::FieldSet;
pub use typed::{Comparison, compare, field_set, merge, remove};

use crate::schema::SchemaNode;
use serde_json::{Value, json};

/// Who is writing, and where.
#[derive(Clone, Debug)]
pub struct Writer<'a> {
    /// The manager's name.
    pub manager: &'a str,
    /// The object's `apiVersion`.
    pub api_version: &'a str,
    /// `status` for the status subresource, empty for the main resource.
    pub subresource: &'a str,
    /// Whether the resource has a status subresource (then the main resource
    /// does not own status, and the status subresource does not own spec).
    pub has_status: bool,
    /// The time to stamp on changed entries, RFC 3339.
    pub now: &'a str,
}

/// The manager kube-apiserver records when an existing object without
/// managed fields is first applied to.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Metadata the server sets, which nobody owns.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "selfLink",
    "generation",
    "managedFields",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

impl Writer<'_> {
    /// Whether a path is outside what this write can own.
    fn ignores(&self, path: &[Element]) -> bool {
        let field = |i: usize| match path.get(i) {
            Some(Element::Field(name)) => Some(name.as_str()),
            _ => None,
        };
        match (field(0), field(1)) {
            (Some("apiVersion" | "kind"), _) => true,
            (Some("metadata"), None) => true,
            (Some("metadata"), Some(meta)) => SERVER_METADATA.contains(&meta),
            (Some("status"), _) => self.has_status && self.subresource.is_empty(),
            (Some("spec"), _) => self.subresource == "status",
            _ => false,
        }
    }

    fn owned(&self, set: FieldSet) -> FieldSet {
        set.filtered(|p| !self.ignores(p))
    }
}

/// Records a create (`old` is `None`), update or non-apply patch by
/// `writer` into `new`'s managed fields.
///
/// The entries start from `new`'s own `managedFields` when the request set
/// them differently from `old` (a client may reset them), otherwise from
/// `old`'s.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    schema: Option<SchemaNode<'_>>,
    writer: &Writer<'_>,
) {
    let empty = json!({});
    let old = old.unwrap_or(&empty);
    let requested = new.pointer("/metadata/managedFields");
    let mut entries = if requested.is_some() && requested != old.pointer("/metadata/managedFields")
    {
        decode(new)
    } else {
        decode(old)
    };
    let changes = compare(old, new, schema);
    let taken = writer.owned(changes.added.union(&changes.modified));
    let removed = writer.owned(changes.removed);
    for entry in &mut entries {
        if !entry.is(
            writer.manager,
            Operation::Update,
            writer.api_version,
            writer.subresource,
        ) {
            entry.fields = entry.fields.difference(&taken).difference(&removed);
        }
    }
    let position = entries.iter().position(|e| {
        e.is(
            writer.manager,
            Operation::Update,
            writer.api_version,
            writer.subresource,
        )
    });
    match position {
        Some(i) => {
            let entry = &mut entries[i];
            entry.fields = entry.fields.union(&taken).difference(&removed);
            if !taken.is_empty() {
                entry.time = Some(writer.now.to_string());
            }
        }
        None if !taken.is_empty() => entries.push(Entry {
            manager: writer.manager.to_string(),
            operation: Operation::Update,
            api_version: writer.api_version.to_string(),
            time: Some(writer.now.to_string()),
            subresource: writer.subresource.to_string(),
            fields: taken,
        }),
        None => {}
    }
    encode(new, entries);
}

/// Server-side apply of `config` onto `live` by `writer`.
///
/// Returns the object to store, with its managed fields, or the conflicts
/// with other managers when `force` is false.
pub fn apply(
    live: &Value,
    config: &Value,
    schema: Option<SchemaNode<'_>>,
    writer: &Writer<'_>,
    force: bool,
) -> Result<Value, Conflicts> {
    let mut entries = decode(live);
    if entries.is_empty() && live.as_object().is_some_and(|m| !m.is_empty()) {
        let fields = writer.owned(compare(&json!({}), live, schema).added);
        entries.push(Entry {
            manager: BEFORE_FIRST_APPLY.to_string(),
            operation: Operation::Update,
            api_version: writer.api_version.to_string(),
            time: None,
            subresource: writer.subresource.to_string(),
            fields,
        });
    }
    let mine = |e: &Entry| {
        e.is(
            writer.manager,
            Operation::Apply,
            writer.api_version,
            writer.subresource,
        )
    };
    let applied = writer.owned(field_set(config, schema));
    let mut merged = merge(live, config, schema);

    // Fields applied last time and not now go, unless somebody else owns them.
    if let Some(last) = entries.iter().find(|e| mine(e)) {
        let others = entries
            .iter()
            .filter(|e| !mine(e))
            .fold(FieldSet::new(), |all, e| all.union(&e.fields));
        let kept = applied.union(&others);
        // A dropped map or item whose content is still owned stays, with that content.
        let dropped = last
            .fields
            .difference(&kept)
            .filtered(|p| !kept.iter().any(|k| k.len() > p.len() && k.starts_with(p)));
        remove(&mut merged, &dropped, schema);
    }

    let changes = compare(live, &merged, schema);
    let changed = writer.owned(changes.added.union(&changes.modified));
    let removed = writer.owned(changes.removed);
    let mut conflicts = Conflicts::default();
    for entry in entries.iter().filter(|e| !mine(e)) {
        let clash = entry.fields.intersection(&changed);
        if !clash.is_empty() {
            conflicts.add(entry, &clash);
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(conflicts);
    }
    entries.retain(|e| !mine(e));
    for entry in &mut entries {
        entry.fields = entry.fields.difference(&changed).difference(&removed);
    }
    entries.push(Entry {
        manager: writer.manager.to_string(),
        operation: Operation::Apply,
        api_version: writer.api_version.to_string(),
        time: Some(writer.now.to_string()),
        subresource: writer.subresource.to_string(),
        fields: applied,
    });
    encode(&mut merged, entries);
    Ok(merged)
}

#[cfg(test)]
mod tests;

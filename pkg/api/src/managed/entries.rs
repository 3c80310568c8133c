//! `metadata.managedFields`: who owns which fields of an object.
//!
//! Each entry is one manager's ownership for one operation: `Apply` entries
//! hold the fields a manager's last applied configuration set; `Update`
//! entries hold the fields its creates, updates and patches changed. An entry
//! is identified by manager, operation, subresource and, for updates, the API
//! version, as kube-apiserver identifies them.

use super::path::display;
use super::set::FieldSet;
use crate::{Status, StatusCause, StatusDetails, StatusReason};
use serde_json::{Map, Value, json};

/// `Apply` or `Update`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Create, update or a non-apply patch.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The manager's name (`fieldManager`).
    pub manager: String,
    /// How the fields were set.
    pub operation: Operation,
    /// The API version the fields are expressed in.
    pub api_version: String,
    /// When the entry last changed, RFC 3339.
    pub time: Option<String>,
    /// The subresource written (`status`), if not the main resource.
    pub subresource: String,
    /// The fields owned.
    pub fields: FieldSet,
}

impl Entry {
    /// Whether this entry is the one a request by `manager` with `operation`
    /// at `api_version` on `subresource` records into.
    pub fn is(
        &self,
        manager: &str,
        operation: Operation,
        api_version: &str,
        subresource: &str,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == Operation::Apply || self.api_version == api_version)
    }

    /// How conflict messages name this manager.
    fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }
}

/// Reads `metadata.managedFields` of an object. Entries that cannot be read
/// are dropped, as kube-apiserver resets unreadable managed fields.
pub fn decode(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter().filter_map(decode_entry).collect()
}

fn decode_entry(entry: &Value) -> Option<Entry> {
    let text = |key: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let operation = match entry.get("operation").and_then(Value::as_str)? {
        "Apply" => Operation::Apply,
        "Update" => Operation::Update,
        _ => return None,
    };
    let fields = match entry.get("fieldsV1") {
        Some(v1) => FieldSet::from_fields_v1(v1).ok()?,
        None => FieldSet::new(),
    };
    Some(Entry {
        manager: text("manager"),
        operation,
        api_version: text("apiVersion"),
        time: entry
            .get("time")
            .and_then(Value::as_str)
            .map(str::to_string),
        subresource: text("subresource"),
        fields,
    })
}

/// Writes `entries` into the object's `metadata.managedFields`, sorted as
/// kube-apiserver sorts them (applies first, then by time, then manager), or
/// removes the field when there are none.
pub fn encode(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| a.time.cmp(&b.time))
            .then_with(|| a.manager.cmp(&b.manager))
    });
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
        return;
    }
    let list = entries
        .iter()
        .map(|e| {
            let mut out = Map::new();
            out.insert("manager".into(), json!(e.manager));
            out.insert("operation".into(), json!(e.operation.as_str()));
            out.insert("apiVersion".into(), json!(e.api_version));
            if let Some(time) = &e.time {
                out.insert("time".into(), json!(time));
            }
            out.insert("fieldsType".into(), json!("FieldsV1"));
            out.insert("fieldsV1".into(), e.fields.to_fields_v1());
            if !e.subresource.is_empty() {
                out.insert("subresource".into(), json!(e.subresource));
            }
            Value::Object(out)
        })
        .collect();
    meta.insert("managedFields".into(), Value::Array(list));
}

/// Fields an apply would take from other managers without `force`.
#[derive(Debug, Default)]
pub struct Conflicts {
    /// (how the manager is named, the path as printed), sorted by manager.
    pub fields: Vec<(String, String)>,
}

impl Conflicts {
    pub(super) fn add(&mut self, entry: &Entry, fields: &FieldSet) {
        let manager = entry.describe();
        for path in fields.iter() {
            self.fields.push((manager.clone(), display(path)));
        }
    }

    /// Whether nothing conflicts.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The 409 Conflict kube-apiserver answers with, one cause per field.
    pub fn status(mut self) -> Status {
        self.fields.sort();
        let message = if let [(manager, path)] = self.fields.as_slice() {
            format!("Apply failed with 1 conflict: conflict with {manager}: {path}")
        } else {
            let mut lines = Vec::new();
            let mut current = None;
            for (manager, path) in &self.fields {
                if current != Some(manager) {
                    lines.push(format!("conflicts with {manager}:"));
                    current = Some(manager);
                }
                lines.push(format!("- {path}"));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                self.fields.len(),
                lines.join("\n")
            )
        };
        let causes = self
            .fields
            .into_iter()
            .map(|(manager, field)| StatusCause {
                reason: "FieldManagerConflict".into(),
                message: format!("conflict with {manager}"),
                field,
            })
            .collect();
        Status::failure(StatusReason::Conflict, message).with_details(StatusDetails {
            causes,
            ..StatusDetails::default()
        })
    }
}

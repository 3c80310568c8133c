//! Server-side printing: `meta.k8s.io/v1` `Table` responses for `kubectl get`.
//!
//! kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints
//! the columns the server chooses, so the columns and cells here follow
//! kube-apiserver's printers (`pkg/printers/internalversion`) for each
//! built-in kind, the CRD `additionalPrinterColumns` convertor for custom
//! resources, and the default `NAME`/`CREATED AT` table for the rest. Cells are
//! computed for `-o wide` too; kubectl hides columns with priority > 0.
//! Start at [`table`] and [`custom_resource_table`].

mod apps;
mod cluster;
mod core;
mod custom;
mod format;
mod pods;
#[cfg(test)]
mod tests;

pub use custom::{PrinterColumn, custom_resource_table};
pub use format::{human_duration, parse_timestamp};

use crate::resources::ResourceInfo;
use format::Clock;
use serde_json::{Map, Value, json};
use std::time::SystemTime;

/// What each row's `object` carries (the `includeObject` table option).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// `null`.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (kubectl's default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter; empty means `Metadata`.
    /// The error is the 400 message kube-apiserver sends.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "" | "Metadata" => Ok(Self::Metadata),
            "None" => Ok(Self::None),
            "Object" => Ok(Self::Object),
            other => Err(format!("unrecognized includeObject value: {other:?}")),
        }
    }
}

/// One column of a table, as `metav1.TableColumnDefinition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Col {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATED_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

impl Col {
    /// A column with no format.
    pub(crate) const fn new(
        name: &'static str,
        kind: &'static str,
        priority: u8,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            kind,
            format: "",
            priority,
            description,
        }
    }

    /// The `Name` column every table starts with.
    pub(crate) const fn name() -> Self {
        Self {
            name: "Name",
            kind: "string",
            format: "name",
            priority: 0,
            description: NAME_DOC,
        }
    }

    /// The `Age` column.
    pub(crate) const fn age() -> Self {
        Self::new("Age", "string", 0, CREATED_DOC)
    }

    /// The `Created At` column of the default table and of roles.
    pub(crate) const fn created_at() -> Self {
        Self::new("Created At", "date", 0, CREATED_DOC)
    }

    fn to_json(self) -> Value {
        json!({
            "name": self.name, "type": self.kind, "format": self.format,
            "description": self.description, "priority": self.priority,
        })
    }
}

/// The cells of one row, plus row conditions (pods report `Completed`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    pub(crate) cells: Vec<Value>,
    pub(crate) conditions: Option<Value>,
}

impl Row {
    pub(crate) fn new(cells: Vec<Value>) -> Self {
        Self {
            cells,
            conditions: None,
        }
    }
}

type Printer = fn(&Value, &Clock) -> Row;

/// The columns and row printer of a built-in kind, or `None` for the default table.
fn printer(group: &str, kind: &str) -> Option<(&'static [Col], Printer)> {
    if let Some(found) = core::printer(group, kind) {
        return Some(found);
    }
    if let Some(found) = apps::printer(group, kind) {
        return Some(found);
    }
    cluster::printer(group, kind)
}

const DEFAULT_COLUMNS: &[Col] = &[Col::name(), Col::created_at()];

fn print_default(obj: &Value, _: &Clock) -> Row {
    Row::new(vec![
        obj["metadata"]["name"].clone(),
        format::created_at(obj),
    ])
}

/// The Table for `objects` of a built-in `resource`, as kube-apiserver renders
/// it. `metadata` is left empty for the caller to fill (`resourceVersion`,
/// `continue`, `remainingItemCount`).
pub fn table(
    resource: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    now: SystemTime,
) -> Value {
    let (columns, print) =
        printer(&resource.group, &resource.kind).unwrap_or((DEFAULT_COLUMNS, print_default));
    let clock = Clock::new(now);
    let rows = objects.iter().map(|obj| (print(obj, &clock), obj));
    assemble(columns.iter().map(|c| c.to_json()).collect(), rows, include)
}

/// Builds the Table object from column definitions and printed rows.
fn assemble<'a>(
    columns: Vec<Value>,
    rows: impl Iterator<Item = (Row, &'a Value)>,
    include: IncludeObject,
) -> Value {
    let rows: Vec<Value> = rows
        .map(|(row, obj)| {
            let mut out = Map::new();
            out.insert("cells".into(), Value::Array(row.cells));
            if let Some(conditions) = row.conditions {
                out.insert("conditions".into(), conditions);
            }
            out.insert("object".into(), row_object(obj, include));
            Value::Object(out)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

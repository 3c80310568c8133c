//! Tables for custom resources, from a CRD version's `additionalPrinterColumns`.
//!
//! Each column's `jsonPath` is evaluated with the JSONPath subset CRDs use
//! (`.spec.replicas`, `.items[0]`, `.a[*].b`, `['dotted.key']`,
//! `[?(@.type=="Ready")]`); the first result becomes the cell, typed by the
//! column's `type` as the apiextensions table convertor types it, and `null`
//! when nothing matches. Without columns the table is `NAME` and `AGE`.

use super::format::{Clock, parse_timestamp};
use super::{IncludeObject, NAME_DOC, assemble};
use serde_json::{Value, json};
use std::time::SystemTime;

/// One `additionalPrinterColumns` entry of a CRD version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: String,
    /// Optional OpenAPI format, e.g. `date-time`.
    pub format: String,
    /// Human-readable description.
    pub description: String,
    /// 0 for the default view, higher for `-o wide` only.
    pub priority: i64,
    /// A simple JSONPath into each object, e.g. `.status.replicas`.
    pub json_path: String,
}

impl PrinterColumn {
    /// The columns of a CRD version's `additionalPrinterColumns` array.
    pub fn from_crd(columns: &Value) -> Vec<Self> {
        columns
            .as_array()
            .map(|cols| {
                cols.iter()
                    .map(|c| Self {
                        name: c["name"].as_str().unwrap_or_default().into(),
                        kind: c["type"].as_str().unwrap_or_default().into(),
                        format: c["format"].as_str().unwrap_or_default().into(),
                        description: c["description"].as_str().unwrap_or_default().into(),
                        priority: c["priority"].as_i64().unwrap_or(0),
                        json_path: c["jsonPath"].as_str().unwrap_or_default().into(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn age() -> Self {
        Self {
            name: "Age".into(),
            kind: "date".into(),
            format: String::new(),
            description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata".into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }
    }
}

/// The Table for custom resources whose CRD version declares `columns`
/// (an empty slice means the default `Age` column).
pub fn custom_resource_table(
    columns: &[PrinterColumn],
    objects: &[Value],
    include: IncludeObject,
    now: SystemTime,
) -> Value {
    let default = [PrinterColumn::age()];
    let columns = if columns.is_empty() {
        &default[..]
    } else {
        columns
    };
    let clock = Clock::new(now);
    let mut definitions = vec![json!({
        "name": "Name", "type": "string", "format": "name", "description": NAME_DOC, "priority": 0,
    })];
    definitions.extend(columns.iter().map(|c| {
        json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority})
    }));
    let rows = objects.iter().map(|obj| {
        let mut cells = vec![obj["metadata"]["name"].clone()];
        cells.extend(columns.iter().map(|c| cell(c, obj, &clock)));
        (super::Row::new(cells), obj)
    });
    assemble(definitions, rows, include)
}

fn cell(column: &PrinterColumn, obj: &Value, clock: &Clock) -> Value {
    let Some(value) = evaluate(&column.json_path, obj).into_iter().next() else {
        return Value::Null;
    };
    match column.kind.as_str() {
        "string" => Value::String(go_text(value)),
        "integer" => value
            .as_i64()
            .or_else(|| value.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        "number" => value.as_f64().map_or(Value::Null, Value::from),
        "boolean" => value.as_bool().map_or(Value::Null, Value::Bool),
        "date" => match value.as_str() {
            Some(s) => match parse_timestamp(s) {
                Some(_) => Value::String(clock.since(value)),
                None => Value::String("<invalid>".into()),
            },
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// A value as Go's `fmt.Fprint` prints an unstructured value (JSONPath text output).
fn go_text(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_text).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let pairs: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_text(&map[k.as_str()])))
                .collect();
            format!("map[{}]", pairs.join(" "))
        }
    }
}

/// One step of a parsed JSONPath.
#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    Filter {
        path: Vec<Step>,
        op: Option<(bool, Value)>,
    },
}

/// Every value `path` selects in `root`, in document order; empty when the
/// path is malformed or matches nothing.
pub(crate) fn evaluate<'a>(path: &str, root: &'a Value) -> Vec<&'a Value> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let Some(steps) = parse_path(path.strip_prefix('$').unwrap_or(path)) else {
        return Vec::new();
    };
    apply(&steps, vec![root])
}

fn apply<'a>(steps: &[Step], mut current: Vec<&'a Value>) -> Vec<&'a Value> {
    for step in steps {
        current = current
            .into_iter()
            .flat_map(|v| -> Vec<&'a Value> {
                match step {
                    Step::Field(name) => v.get(name.as_str()).into_iter().collect(),
                    Step::Index(i) => match v.as_array() {
                        Some(items) => {
                            let len = items.len() as i64;
                            let idx = if *i < 0 { len + i } else { *i };
                            usize::try_from(idx)
                                .ok()
                                .and_then(|i| items.get(i))
                                .into_iter()
                                .collect()
                        }
                        None => Vec::new(),
                    },
                    Step::All => match v {
                        Value::Array(items) => items.iter().collect(),
                        Value::Object(map) => map.values().collect(),
                        _ => Vec::new(),
                    },
                    Step::Filter { path, op } => match v.as_array() {
                        Some(items) => items
                            .iter()
                            .filter(|item| {
                                let found = apply(path, vec![*item]);
                                match op {
                                    None => !found.is_empty(),
                                    Some((equal, literal)) => {
                                        let hit =
                                            found.first().is_some_and(|f| literal_eq(f, literal));
                                        !found.is_empty() && hit == *equal
                                    }
                                }
                            })
                            .collect(),
                        None => Vec::new(),
                    },
                }
            })
            .collect();
    }
    current
}

fn literal_eq(found: &Value, literal: &Value) -> bool {
    match (found, literal) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => found == literal,
    }
}

fn parse_path(mut s: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    while !s.is_empty() {
        if let Some(rest) = s.strip_prefix('.') {
            if rest.starts_with('.') {
                return None; // recursive descent is not supported
            }
            if rest.starts_with('[') || rest.is_empty() {
                s = rest;
                continue;
            }
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let name = &rest[..end];
            steps.push(if name == "*" {
                Step::All
            } else {
                Step::Field(name.to_string())
            });
            s = &rest[end..];
        } else if let Some(rest) = s.strip_prefix('[') {
            let end = closing_bracket(rest)?;
            steps.push(parse_bracket(rest[..end].trim())?);
            s = &rest[end + 1..];
        } else {
            let end = s.find(['.', '[']).unwrap_or(s.len());
            steps.push(Step::Field(s[..end].to_string()));
            s = &s[end..];
        }
    }
    Some(steps)
}

/// The index of the `]` closing a bracket, skipping quoted text.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, ']') => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::All);
    }
    if let Ok(i) = inner.parse::<i64>() {
        return Some(Step::Index(i));
    }
    if let Some(key) = unquote(inner) {
        return Some(Step::Field(key));
    }
    let expr = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let (lhs, op) = match expr
        .find("==")
        .map(|i| (i, true))
        .or_else(|| expr.find("!=").map(|i| (i, false)))
    {
        Some((i, equal)) => (
            expr[..i].trim(),
            Some((equal, parse_literal(expr[i + 2..].trim())?)),
        ),
        None => (expr, None),
    };
    let path = parse_path(lhs.strip_prefix('@')?)?;
    Some(Step::Filter { path, op })
}

fn unquote(s: &str) -> Option<String> {
    let q = s.chars().next()?;
    if (q == '\'' || q == '"') && s.len() >= 2 && s.ends_with(q) {
        Some(s[1..s.len() - 1].to_string())
    } else {
        None
    }
}

fn parse_literal(s: &str) -> Option<Value> {
    if let Some(text) = unquote(s) {
        return Some(Value::String(text));
    }
    match s {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        _ => s.parse::<f64>().ok().map(Value::from),
    }
}

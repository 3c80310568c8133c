//! Which objects a list or watch returns: the namespace from the path plus
//! `labelSelector` and `fieldSelector`.

use crate::errors::{self, ApiResult};
use crate::objects;
use serde_json::Value;

/// A parsed list/watch filter.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    namespace: Option<String>,
    labels: Vec<LabelTerm>,
    fields: Vec<FieldTerm>,
}

#[derive(Clone, Debug)]
enum LabelTerm {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

#[derive(Clone, Debug)]
struct FieldTerm {
    path: String,
    value: String,
    negated: bool,
}

impl Filter {
    /// Parses the selectors of a request scoped to `namespace`.
    pub fn new(namespace: Option<&str>, label_selector: Option<&str>, field_selector: Option<&str>) -> ApiResult<Self> {
        let labels = match label_selector {
            Some(s) if !s.trim().is_empty() => parse_labels(s)?,
            _ => Vec::new(),
        };
        let fields = match field_selector {
            Some(s) if !s.trim().is_empty() => parse_fields(s)?,
            _ => Vec::new(),
        };
        Ok(Self { namespace: namespace.map(str::to_string), labels, fields })
    }

    /// Whether only the namespace restricts this filter (so counts are exact).
    pub fn is_namespace_only(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether `obj` passes.
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace {
            if objects::namespace(obj) != ns {
                return false;
            }
        }
        let labels = objects::labels(obj);
        let label = |k: &str| labels.get(k).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|term| match term {
            LabelTerm::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelTerm::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelTerm::Exists(k) => label(k).is_some(),
            LabelTerm::NotExists(k) => label(k).is_none(),
            LabelTerm::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelTerm::NotIn(k, vs) => label(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
        });
        labels_ok
            && self.fields.iter().all(|term| {
                let actual = field_value(obj, &term.path);
                (actual == term.value) != term.negated
            })
    }
}

fn field_value(obj: &Value, path: &str) -> String {
    let pointer = format!("/{}", path.replace('.', "/"));
    match obj.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn parse_labels(selector: &str) -> ApiResult<Vec<LabelTerm>> {
    let mut terms = Vec::new();
    for part in split_top_level(selector) {
        let part = part.trim();
        let bad = || errors::bad_request(format!("unable to parse requirement: found '{part}', expected: identifier"));
        let term = if let Some((k, v)) = part.split_once("!=") {
            LabelTerm::NotEquals(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once("==") {
            LabelTerm::Equals(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once('=') {
            LabelTerm::Equals(k.trim().into(), v.trim().into())
        } else if let Some(k) = part.strip_prefix('!') {
            LabelTerm::NotExists(k.trim().into())
        } else if let Some((k, set)) = part.split_once(" notin ") {
            LabelTerm::NotIn(k.trim().into(), parse_set(set).ok_or_else(bad)?)
        } else if let Some((k, set)) = part.split_once(" in ") {
            LabelTerm::In(k.trim().into(), parse_set(set).ok_or_else(bad)?)
        } else if !part.is_empty() && !part.contains(' ') {
            LabelTerm::Exists(part.into())
        } else {
            return Err(bad());
        };
        terms.push(term);
    }
    Ok(terms)
}

fn parse_set(set: &str) -> Option<Vec<String>> {
    let inner = set.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).collect())
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

fn parse_fields(selector: &str) -> ApiResult<Vec<FieldTerm>> {
    selector
        .split(',')
        .map(|part| {
            let (path, value, negated) = if let Some((k, v)) = part.split_once("!=") {
                (k, v, true)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, v, false)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, v, false)
            } else {
                return Err(errors::bad_request(format!("invalid selector: '{selector}'; can't understand '{part}'")));
            };
            Ok(FieldTerm { path: path.trim().into(), value: value.trim().into(), negated })
        })
        .collect()
}

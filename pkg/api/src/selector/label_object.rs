//! Converting a `metav1.LabelSelector` object (`matchLabels` plus
//! `matchExpressions`) into a [`Selector`], as `metav1.LabelSelectorAsSelector`.
//!
//! A missing (null) selector matches nothing; an empty one matches
//! everything. Controllers use this for Deployment, ReplicaSet, Job...
//! selectors; values keep their order and duplicates, as upstream does.

use super::Error;
use super::labels::{Operator, Requirement, Selector};
use super::names::go_quote;
use serde_json::Value;

/// Converts a JSON `metav1.LabelSelector`.
pub(crate) fn from_label_selector(object: &Value) -> Result<Selector, Error> {
    let obj = match object {
        Value::Null => return Ok(Selector::nothing()),
        Value::Object(obj) => obj,
        _ => return Err(invalid("label selector must be an object")),
    };
    let labels = match obj.get("matchLabels") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err(invalid("matchLabels must be an object")),
    };
    let expressions = match obj.get("matchExpressions") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(invalid("matchExpressions must be a list")),
    };
    if labels.is_none_or(|m| m.is_empty()) && expressions.is_empty() {
        return Ok(Selector::everything());
    }
    let mut requirements = Vec::new();
    for (key, value) in labels.into_iter().flatten() {
        let value = value
            .as_str()
            .ok_or_else(|| invalid(&format!("matchLabels[{key}] must be a string")))?;
        requirements.push(Requirement::new(
            key.clone(),
            Operator::Equals,
            vec![value.to_string()],
        )?);
    }
    for expr in expressions {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
        let op = expr
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let operator = match op {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => {
                return Err(Error::InvalidLabelSelector(format!(
                    "{} is not a valid label selector operator",
                    go_quote(other)
                )));
            }
        };
        let values = match expr.get("values") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| invalid("values must be strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("values must be a list")),
        };
        requirements.push(Requirement::new(key, operator, values)?);
    }
    Ok(Selector::from_requirements(requirements))
}

fn invalid(message: &str) -> Error {
    Error::InvalidLabelSelector(message.to_string())
}

//! Defaulting: the schema's `default`s fill absent fields.
//!
//! kube-apiserver's rules: a property that is absent (or `null` while its
//! schema is not nullable) takes a deep copy of its `default`; map values and
//! list items only ever replace such a `null`, since they cannot be absent.
//! Defaults are applied top-down, so a defaulted object gets the defaults of
//! its own properties too. Applying them twice changes nothing.

use super::Node;
use serde_json::Value;

/// Applies the defaults of `schema` to `obj` (a whole custom object, or any value at that schema).
pub fn default(schema: &Value, obj: &mut Value) {
    walk(Node(schema), obj);
}

/// Whether `value` is a null its schema does not allow (and a default may replace).
fn non_nullable_null(value: &Value, schema: Node<'_>) -> bool {
    value.is_null() && !schema.nullable()
}

fn walk(node: Node<'_>, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = node.properties() {
                for (key, prop) in props {
                    let prop = Node(prop);
                    let Some(default) = prop.default_value() else {
                        continue;
                    };
                    let fill = map.get(key).is_none_or(|v| non_nullable_null(v, prop));
                    if fill {
                        map.insert(key.clone(), default.clone());
                    }
                }
            }
            let values = node.values();
            for (key, child) in map.iter_mut() {
                if let Some(prop) = node.property(key) {
                    walk(prop, child);
                } else if let Some(values) = values {
                    if non_nullable_null(child, values)
                        && let Some(default) = values.default_value()
                    {
                        *child = default.clone();
                    }
                    walk(values, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.items() {
                for child in items.iter_mut() {
                    if non_nullable_null(child, item)
                        && let Some(default) = item.default_value()
                    {
                        *child = default.clone();
                    }
                    walk(item, child);
                }
            }
        }
        _ => {}
    }
}

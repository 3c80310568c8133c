//! The DefaultTolerationSeconds admission plugin: a new pod that does not
//! already tolerate the `not-ready` or `unreachable` NoExecute taints gets a
//! toleration for each lasting 300 seconds, so a node's short outage does not
//! evict everything at once.

use serde_json::{Value, json};

/// kube-apiserver's `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds`.
pub const SECONDS: i64 = 300;

const KEYS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// Adds the default tolerations to `pod` (a Pod object).
pub fn admit(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let existing = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = |t: &Value, field: &str| {
        t.get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    // Like kube: a toleration for the key (or any key) with NoExecute (or any
    // effect) counts, whatever its operator and value.
    let covers = |key: &str| {
        existing.iter().any(|t| {
            let (k, e) = (text(t, "key"), text(t, "effect"));
            (k.is_empty() || k == key) && (e.is_empty() || e == "NoExecute")
        })
    };
    let added: Vec<Value> = KEYS
        .iter()
        .filter(|key| !covers(key))
        .map(|key| {
            json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                   "tolerationSeconds": SECONDS})
        })
        .collect();
    if added.is_empty() {
        return;
    }
    let mut tolerations = existing;
    tolerations.extend(added);
    spec.insert("tolerations".into(), Value::Array(tolerations));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(tolerations: Value) -> Value {
        let mut pod = json!({"spec": {"containers": [], "tolerations": tolerations}});
        admit(&mut pod);
        pod["spec"]["tolerations"].clone()
    }

    #[test]
    fn pods_get_both_defaults_unless_they_tolerate_the_key_with_no_execute() {
        let both = admitted(Value::Null);
        assert_eq!(both.as_array().map(Vec::len), Some(2));
        assert_eq!(both[1]["key"], "node.kubernetes.io/unreachable");
        assert_eq!(both[1]["tolerationSeconds"], 300);
        let own = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 3});
        let one = admitted(json!([own]));
        assert_eq!(one.as_array().map(Vec::len), Some(2));
        assert_eq!(one[0]["tolerationSeconds"], 3);
        assert_eq!(one[1]["key"], "node.kubernetes.io/not-ready");
        // NoSchedule does not count; tolerating everything does.
        let no_schedule = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                 "effect": "NoSchedule"});
        assert_eq!(
            admitted(json!([no_schedule])).as_array().map(Vec::len),
            Some(3)
        );
        assert_eq!(
            admitted(json!([{"operator": "Exists"}]))
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }
}

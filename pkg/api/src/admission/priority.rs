//! The Priority admission plugin: a new pod's `priority` and
//! `preemptionPolicy` come from its `priorityClassName` (or the cluster's
//! `globalDefault` class, whose name it then gets); a pod naming a class that
//! does not exist, or setting either field to something else than its class
//! says, is refused with kube-apiserver's words.

use serde_json::{Value, json};

/// The built-in classes every cluster has, with their values and descriptions.
pub const SYSTEM_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// Sets the pod's priority from `classes` (the cluster's PriorityClasses);
/// `Err` with the reason it is forbidden.
pub fn admit(pod: &mut Value, classes: &[Value]) -> Result<(), String> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let named = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let class = match &named {
        Some(name) => Some(
            classes
                .iter()
                .find(|c| c.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
                .ok_or_else(|| format!("no PriorityClass with name {name} was found"))?,
        ),
        // The default is the lowest-valued class marked globalDefault.
        None => classes
            .iter()
            .filter(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
            .min_by_key(|c| c.get("value").and_then(Value::as_i64).unwrap_or(0)),
    };
    let priority = class
        .and_then(|c| c.get("value"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let policy = class
        .and_then(|c| c.get("preemptionPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("PreemptLowerPriority")
        .to_string();
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != priority
    {
        return Err(format!(
            "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
        ));
    }
    if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str)
        && given != policy
    {
        return Err(format!(
            "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
        ));
    }
    if named.is_none()
        && let Some(name) = class.and_then(|c| c.pointer("/metadata/name")).cloned()
    {
        spec.insert("priorityClassName".into(), name);
    }
    spec.insert("priority".into(), json!(priority));
    spec.insert("preemptionPolicy".into(), json!(policy));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, value: i64, extra: Value) -> Value {
        let mut c = json!({"metadata": {"name": name}, "value": value});
        if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
            c.extend(extra);
        }
        c
    }

    #[test]
    fn a_named_class_sets_priority_and_policy() {
        let classes = [class("batch", 100, json!({"preemptionPolicy": "Never"}))];
        let mut pod = json!({"spec": {"priorityClassName": "batch"}});
        admit(&mut pod, &classes).unwrap();
        assert_eq!(pod["spec"]["priority"], 100);
        assert_eq!(pod["spec"]["preemptionPolicy"], "Never");
        let mut missing = json!({"spec": {"priorityClassName": "gold"}});
        assert_eq!(
            admit(&mut missing, &classes).unwrap_err(),
            "no PriorityClass with name gold was found"
        );
    }

    #[test]
    fn the_global_default_applies_to_pods_without_a_class() {
        let classes = [
            class("low", 10, json!({"globalDefault": true})),
            class("high", 1000, json!({})),
        ];
        let mut pod = json!({"spec": {}});
        admit(&mut pod, &classes).unwrap();
        assert_eq!(
            (
                pod["spec"]["priority"].as_i64(),
                pod["spec"]["priorityClassName"].as_str()
            ),
            (Some(10), Some("low"))
        );
        let mut plain = json!({"spec": {}});
        admit(&mut plain, &[]).unwrap();
        assert_eq!(plain["spec"]["priority"], 0);
        assert_eq!(plain["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    }

    #[test]
    fn a_client_may_not_choose_its_own_priority() {
        let mut pod = json!({"spec": {"priority": 5}});
        assert_eq!(
            admit(&mut pod, &[]).unwrap_err(),
            "the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name"
        );
    }
}

//! A Job's `podFailurePolicy`: which rule a failed pod matches, as
//! kube-controller-manager's Job controller decides it. Rules are tried in
//! order; `onExitCodes` looks at containers that ended with a non-zero code
//! (init containers first), `onPodConditions` at the pod's conditions. The
//! first match decides: `FailJob` fails the Job (reason `PodFailurePolicy`),
//! `Ignore` keeps the failure out of the `backoffLimit` count, `FailIndex`
//! fails the pod's index, `Count` counts it as usual (as does a pod no rule
//! matches).

use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// What a failed pod's match asks of the Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fail the Job, with this message for its condition.
    FailJob(String),
    /// Do not count the failure.
    Ignore,
    /// Count the failure and give the pod's index no more tries
    /// (`backoffLimitPerIndex` Jobs; see [`crate::backoff_per_index`]).
    FailIndex,
    /// Count the failure (also when no rule matches).
    Count,
}

/// The action of the first rule `pod` (a failed pod) matches.
pub fn evaluate(policy: Option<&PodFailurePolicy>, pod: &Pod) -> Action {
    let Some(policy) = policy else {
        return Action::Count;
    };
    for (index, rule) in policy.rules.iter().enumerate() {
        let Some(what) = matched(rule, pod) else {
            continue;
        };
        return match rule.action.as_str() {
            "FailJob" => Action::FailJob(format!("{what} matching FailJob rule at index {index}")),
            "Ignore" => Action::Ignore,
            "FailIndex" => Action::FailIndex,
            _ => Action::Count,
        };
    }
    Action::Count
}

/// How the pod matches `rule`, worded for the Job's condition; `None` if it does not.
fn matched(rule: &PodFailurePolicyRule, pod: &Pod) -> Option<String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if let Some(codes) = &rule.on_exit_codes {
        let status = pod.status.as_ref()?;
        let containers = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for container in containers {
            if codes
                .container_name
                .as_ref()
                .is_some_and(|c| *c != container.name)
            {
                continue;
            }
            let Some(code) = exit_code(container).filter(|c| *c != 0) else {
                continue;
            };
            let listed = codes.values.contains(&code);
            let hit = match codes.operator.as_str() {
                "In" => listed,
                "NotIn" => !listed,
                _ => false,
            };
            if hit {
                return Some(format!(
                    "Container {} for pod {namespace}/{name} failed with exit code {code}",
                    container.name
                ));
            }
        }
        return None;
    }
    let patterns = rule.on_pod_conditions.as_deref()?;
    let conditions = pod
        .status
        .as_ref()?
        .conditions
        .as_deref()
        .unwrap_or_default();
    for pattern in patterns {
        let wanted = if pattern.status.is_empty() {
            "True"
        } else {
            pattern.status.as_str()
        };
        if conditions
            .iter()
            .any(|c| c.type_ == pattern.type_ && c.status == wanted)
        {
            return Some(format!(
                "Pod {namespace}/{name} has condition {}",
                pattern.type_
            ));
        }
    }
    None
}

fn exit_code(container: &ContainerStatus) -> Option<i32> {
    container
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": status,
        }))
        .expect("pod")
    }

    fn policy(rules: serde_json::Value) -> PodFailurePolicy {
        serde_json::from_value(json!({ "rules": rules })).expect("policy")
    }

    fn exited(code: i32) -> serde_json::Value {
        json!({"phase": "Failed", "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": code}}}]})
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let rules = policy(json!([
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [42]}},
        ]));
        assert_eq!(
            evaluate(Some(&rules), &pod(exited(42))),
            Action::FailJob("Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1".into())
        );
        assert_eq!(evaluate(Some(&rules), &pod(exited(1))), Action::Count);
        let mut disrupted = exited(42);
        disrupted["conditions"] = json!([{"type": "DisruptionTarget", "status": "True"}]);
        assert_eq!(evaluate(Some(&rules), &pod(disrupted)), Action::Ignore);
        assert_eq!(evaluate(None, &pod(exited(42))), Action::Count);
    }

    #[test]
    fn exit_code_zero_and_other_containers_never_match() {
        let rules = policy(
            json!([{"action": "FailJob", "onExitCodes": {"containerName": "side", "operator": "NotIn", "values": [1]}}]),
        );
        assert_eq!(evaluate(Some(&rules), &pod(exited(3))), Action::Count);
        let rules = policy(
            json!([{"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [1]}}]),
        );
        assert_eq!(evaluate(Some(&rules), &pod(exited(0))), Action::Count);
    }

    #[test]
    fn a_condition_match_is_worded_as_kube_words_it() {
        let rules = policy(
            json!([{"action": "FailJob", "onPodConditions": [{"type": "ConfigIssue", "status": "True"}]}]),
        );
        let p = pod(
            json!({"phase": "Failed", "conditions": [{"type": "ConfigIssue", "status": "True"}]}),
        );
        assert_eq!(
            evaluate(Some(&rules), &p),
            Action::FailJob(
                "Pod ns/p has condition ConfigIssue matching FailJob rule at index 0".into()
            )
        );
    }
}

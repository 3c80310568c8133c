//! Taints and tolerations: whether a pod's tolerations tolerate a node's
//! taints, as `k8s.io/api/core/v1` helpers (`ToleratesTaint`,
//! `GetMatchingTolerations`) decide it. The scheduler, the DaemonSet
//! controller and taint-based eviction all ask these same questions.

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Pods on it may not be scheduled (a NoSchedule taint).
pub const NO_SCHEDULE: &str = "NoSchedule";
/// Pods on it are evicted unless they tolerate it (a NoExecute taint).
pub const NO_EXECUTE: &str = "NoExecute";
/// The node's Ready condition is Unknown (its kubelet stopped reporting).
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The node's Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// Whether `toleration` tolerates `taint` (effect, key, operator and value).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref()
        && !effect.is_empty()
        && effect != taint.effect
    {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        // Exists with no key tolerates every taint.
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && toleration.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The `taints` with `effect` that none of `tolerations` tolerates.
pub fn untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effect: &str,
) -> Vec<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == effect && !tolerated(tolerations, t))
        .collect()
}

/// For each of `taints`, the first of `tolerations` that tolerates it; `None`
/// when some taint is not tolerated at all.
pub fn matching_tolerations<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> Option<Vec<&'a Toleration>> {
    taints
        .iter()
        .map(|taint| tolerations.iter().find(|t| tolerates(t, taint)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn toleration(value: serde_json::Value) -> Toleration {
        serde_json::from_value(value).expect("toleration")
    }

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            ..Default::default()
        }
    }

    #[test]
    fn tolerations_match_on_key_operator_value_and_effect() {
        let dedicated = taint("dedicated", Some("infra"), NO_SCHEDULE);
        let check = |t: serde_json::Value, want: bool| {
            assert_eq!(tolerates(&toleration(t.clone()), &dedicated), want, "{t}");
        };
        check(json!({"key": "dedicated", "value": "infra"}), true);
        check(
            json!({"key": "dedicated", "operator": "Equal", "value": "other"}),
            false,
        );
        check(json!({"key": "dedicated", "operator": "Exists"}), true);
        check(
            json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}),
            false,
        );
        check(json!({"operator": "Exists"}), true);
        check(json!({"key": "other", "operator": "Exists"}), false);
    }

    #[test]
    fn untolerated_taints_of_one_effect_and_the_first_matching_tolerations() {
        let taints = [
            taint(UNREACHABLE, None, NO_EXECUTE),
            taint(UNREACHABLE, None, NO_SCHEDULE),
        ];
        let tolerations = [
            toleration(
                json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                              "tolerationSeconds": 3}),
            ),
            toleration(json!({"operator": "Exists"})),
        ];
        assert!(untolerated(&taints, &tolerations[..1], NO_EXECUTE).is_empty());
        assert_eq!(
            untolerated(&taints, &tolerations[..1], NO_SCHEDULE).len(),
            1
        );
        let matched = matching_tolerations(&taints, &tolerations).expect("all tolerated");
        assert_eq!(matched[0].toleration_seconds, Some(3));
        assert_eq!(matched[1].toleration_seconds, None);
        assert!(matching_tolerations(&taints, &tolerations[..1]).is_none());
    }
}

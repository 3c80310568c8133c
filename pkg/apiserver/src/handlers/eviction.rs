//! `pods/<name>/eviction`: a delete that honours PodDisruptionBudgets (what
//! `kubectl drain` calls).
//!
//! As kube-apiserver's EvictionREST: a pod that is not running yet, has
//! finished or is already being deleted is deleted at once; otherwise the one
//! budget selecting it must allow a disruption, which the eviction spends by
//! decrementing `status.disruptionsAllowed` and recording the pod in
//! `status.disruptedPods` (so the disruption controller does not count it as
//! healthy while it goes) before the pod is deleted. No allowance left answers
//! 429, which `kubectl drain` retries. Evicted pods get the `DisruptionTarget`
//! condition.

use crate::api::Call;
use crate::body::Body;
use crate::codec;
use crate::errors::{self, ApiResult};
use crate::handlers::delete::{self, Options};
use crate::objects;
use http::Response;
use kite_api::selector::LabelSelector;
use kite_api::status::{StatusCause, StatusDetails};
use kite_api::{Status, StatusReason};
use kite_store::UpdateOutcome;
use serde_json::{Value, json};

/// How many pods a budget may hold in `disruptedPods` before evictions stop
/// waiting on the disruption controller (kube's `MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;

/// How often an eviction re-reads the pod and budget after losing a write race.
const RETRIES: usize = 20;

/// POST of an `Eviction` to a pod.
pub async fn evict(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let name = call.request.name.clone().unwrap_or_default();
    let eviction = codec::decode_body(call.headers, &call.body)?;
    let named = objects::name(&eviction);
    if !named.is_empty() && named != name {
        return Err(errors::bad_request(
            "name in URL does not match name in Eviction object".to_string(),
        ));
    }
    let options = delete::options_from(call, eviction.get("deleteOptions"))?;
    for _ in 0..RETRIES {
        let (pod, revision) = crate::handlers::get::read(call, &name)
            .await?
            .ok_or_else(|| errors::not_found(&call.resource, &name))?;
        if disrupts_nothing(&pod) {
            // Already terminal, pending or going: deleting it costs no availability.
            return delete_pod(call, &name, pod, revision, options).await;
        }
        let budgets = budgets_for(call, &pod).await?;
        let budget = match budgets.as_slice() {
            [] => return delete_pod(call, &name, pod, revision, options).await,
            [one] => one.clone(),
            _ => {
                return Err(Status::failure(
                    StatusReason::InternalError,
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
        };
        if !is_ready(&pod) && unhealthy_may_go(&budget.0) {
            // Not counted as healthy, so its going cannot break the budget;
            // only this version of the pod may be deleted on that ground.
            return delete_pod(call, &name, pod, revision, options.at_revision(revision)).await;
        }
        match spend_disruption(call, &name, budget, options.dry_run()).await? {
            Spent::Done => return delete_pod(call, &name, pod, revision, options).await,
            Spent::Retry => continue,
        }
    }
    Err(Status::failure(
        StatusReason::Timeout,
        "couldn't update PodDisruptionBudget due to conflicts",
    )
    .with_details(StatusDetails {
        retry_after_seconds: Some(10),
        ..StatusDetails::default()
    }))
}

/// What [`spend_disruption`] found.
enum Spent {
    /// The budget allowed the disruption and now records it.
    Done,
    /// The budget changed under us; start again from the pod.
    Retry,
}

/// Pods whose deletion the budgets ignore (kube's `canIgnorePDB`).
fn disrupts_nothing(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_some()
        || matches!(
            pod.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed" | "Pending")
        )
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// Whether a pod that is not Ready may be evicted without spending the
/// budget: always with `unhealthyPodEvictionPolicy: AlwaysAllow`, else
/// (`IfHealthyBudget`) while the budget is met.
fn unhealthy_may_go(budget: &Value) -> bool {
    if budget
        .pointer("/spec/unhealthyPodEvictionPolicy")
        .and_then(Value::as_str)
        == Some("AlwaysAllow")
    {
        return true;
    }
    let status = |field: &str| {
        budget
            .pointer(&format!("/status/{field}"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    status("currentHealthy") >= status("desiredHealthy") && status("desiredHealthy") > 0
}

/// The pod's namespace's budgets whose selector matches it, with their
/// store keys and revisions.
async fn budgets_for(call: &Call<'_>, pod: &Value) -> ApiResult<Vec<(Value, String, i64)>> {
    let Some(resource) = call
        .api
        .registry
        .get("policy", "v1", "poddisruptionbudgets")
    else {
        return Ok(Vec::new());
    };
    let prefix = objects::prefix(&resource, call.namespace());
    let page = call
        .api
        .store
        .list(&prefix, None, 0, 0)
        .await
        .map_err(errors::from_store)?;
    let empty = serde_json::Map::new();
    let labels = pod
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut matching = Vec::new();
    for kv in &page.kvs {
        let budget = objects::decode(&kv.value, kv.mod_revision).map_err(errors::internal)?;
        // A missing selector matches nothing; `{}` matches every pod.
        let Some(selector) = budget.pointer("/spec/selector").filter(|s| !s.is_null()) else {
            continue;
        };
        let Ok(selector) = LabelSelector::from_label_selector(selector) else {
            continue;
        };
        if selector.matches(labels) {
            matching.push((budget, kv.key.clone(), kv.mod_revision));
        }
    }
    Ok(matching)
}

/// Spends one of the budget's allowed disruptions on the pod `name`, or
/// answers why it cannot (kube's `checkAndDecrement`).
async fn spend_disruption(
    call: &Call<'_>,
    name: &str,
    (mut budget, key, revision): (Value, String, i64),
    dry_run: bool,
) -> ApiResult<Spent> {
    let budget_name = objects::name(&budget).to_string();
    let generation = budget
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status = |field: &str| {
        budget
            .pointer(&format!("/status/{field}"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    if status("observedGeneration") < generation {
        return Err(budget_violation(
            &format!("The disruption budget {budget_name} is still being processed by the server."),
            10,
        ));
    }
    let allowed = status("disruptionsAllowed");
    if allowed < 0 {
        return Err(budget_forbidden(
            &budget_name,
            "pdb disruptions allowed is negative",
        ));
    }
    let disrupted = budget
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len);
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(budget_forbidden(
            &budget_name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(budget_violation(
            &format!(
                "The disruption budget {budget_name} needs {} healthy pods and has {} currently",
                status("desiredHealthy"),
                status("currentHealthy")
            ),
            0,
        ));
    }
    if dry_run {
        return Ok(Spent::Done);
    }
    budget["status"]["disruptionsAllowed"] = json!(allowed - 1);
    if allowed - 1 == 0 {
        set_disruption_allowed(&mut budget, false);
    }
    let disrupted = &mut budget["status"]["disruptedPods"];
    if !disrupted.is_object() {
        *disrupted = json!({});
    }
    disrupted[name] = json!(objects::now_rfc3339());
    match call
        .api
        .store
        .update(&key, objects::encode(&budget), revision, 0)
        .await
        .map_err(errors::from_store)?
    {
        UpdateOutcome::Updated { .. } => Ok(Spent::Done),
        UpdateOutcome::Conflict { .. } => {
            tracing::debug!(budget = %budget_name, "budget changed during an eviction; retrying");
            Ok(Spent::Retry)
        }
    }
}

/// Sets the budget's `DisruptionAllowed` condition as the disruption
/// controller words it.
fn set_disruption_allowed(budget: &mut Value, allowed: bool) {
    let (status, reason) = if allowed {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let generation = budget
        .pointer("/status/observedGeneration")
        .cloned()
        .unwrap_or(json!(0));
    let conditions = &mut budget["status"]["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let Some(list) = conditions.as_array_mut() else {
        return;
    };
    if let Some(existing) = list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionAllowed"))
    {
        if existing.get("status").and_then(Value::as_str) != Some(status) {
            existing["lastTransitionTime"] = json!(objects::now_rfc3339());
        }
        existing["status"] = json!(status);
        existing["reason"] = json!(reason);
        existing["observedGeneration"] = generation;
        return;
    }
    list.push(json!({
        "type": "DisruptionAllowed",
        "status": status,
        "reason": reason,
        "message": "",
        "observedGeneration": generation,
        "lastTransitionTime": objects::now_rfc3339(),
    }));
}

/// 429 with the budget's reason, which clients retry (`kubectl drain` does).
fn budget_violation(cause: &str, retry_after: i32) -> Status {
    Status::failure(
        StatusReason::TooManyRequests,
        "Cannot evict pod as it would violate the pod's disruption budget.",
    )
    .with_details(StatusDetails {
        causes: vec![StatusCause {
            reason: "DisruptionBudget".into(),
            message: cause.into(),
            field: String::new(),
        }],
        retry_after_seconds: Some(retry_after),
        ..StatusDetails::default()
    })
}

fn budget_forbidden(budget: &str, why: &str) -> Status {
    Status::failure(
        StatusReason::Forbidden,
        format!("poddisruptionbudgets.policy \"{budget}\" is forbidden: {why}"),
    )
    .with_details(StatusDetails {
        name: budget.into(),
        group: "policy".into(),
        kind: "poddisruptionbudgets".into(),
        ..StatusDetails::default()
    })
}

/// Marks the pod with `DisruptionTarget` (unless dry-run), deletes it, and
/// answers kube's `Success` Status with 201.
async fn delete_pod(
    call: &Call<'_>,
    name: &str,
    mut pod: Value,
    revision: i64,
    options: Options,
) -> ApiResult<Response<Body>> {
    let going = pod.pointer("/metadata/deletionTimestamp").is_some();
    let mut options = options;
    if let Some(pinned) = options.pinned_revision()
        && pinned != revision
    {
        return Err(errors::conflict_with(
            &call.resource,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {pinned}, ResourceVersion in object meta: {revision}"
            ),
        ));
    }
    if !options.dry_run() && !going {
        set_disruption_target(&mut pod);
        let key = objects::key(&call.resource, call.namespace(), name);
        // A lost race only means the condition is missing; the delete below
        // still runs with the caller's preconditions.
        if let UpdateOutcome::Updated { revision } = call
            .api
            .store
            .update(&key, objects::encode(&pod), revision, 0)
            .await
            .map_err(errors::from_store)?
        {
            options = options.repinned(revision);
        }
    }
    delete::delete_one(call, name, &options).await?;
    crate::output::created_success(call)
}

fn set_disruption_target(pod: &mut Value) {
    let condition = json!({
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
        "lastProbeTime": null,
        "lastTransitionTime": objects::now_rfc3339(),
    });
    objects::replace_condition(pod, condition);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_not_running_or_going_ignore_budgets() {
        assert!(disrupts_nothing(&json!({"status": {"phase": "Pending"}})));
        assert!(disrupts_nothing(&json!({"status": {"phase": "Succeeded"}})));
        assert!(disrupts_nothing(
            &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}})
        ));
        assert!(!disrupts_nothing(&json!({"status": {"phase": "Running"}})));
    }

    #[test]
    fn unhealthy_pods_go_while_the_budget_is_met() {
        let met = json!({"status": {"currentHealthy": 2, "desiredHealthy": 2}});
        let short = json!({"status": {"currentHealthy": 1, "desiredHealthy": 2}});
        let always = json!({"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"},
                            "status": {"currentHealthy": 0, "desiredHealthy": 2}});
        assert!(unhealthy_may_go(&met));
        assert!(!unhealthy_may_go(&short));
        assert!(unhealthy_may_go(&always));
        assert!(!unhealthy_may_go(&json!({})));
    }

    #[test]
    fn the_last_allowed_disruption_flips_the_condition() {
        let mut budget = json!({"status": {"observedGeneration": 3, "conditions": [
            {"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        set_disruption_allowed(&mut budget, false);
        let condition = &budget["status"]["conditions"][0];
        assert_eq!(condition["status"], "False");
        assert_eq!(condition["reason"], "InsufficientPods");
        assert_ne!(condition["lastTransitionTime"], "2026-01-01T00:00:00Z");
        assert_eq!(
            budget["status"]["conditions"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn a_violation_is_a_retryable_429() {
        let status = budget_violation(
            "The disruption budget web needs 2 healthy pods and has 2 currently",
            0,
        );
        assert_eq!(status.code, 429);
        let details = status.details.expect("details");
        assert_eq!(details.causes[0].reason, "DisruptionBudget");
        assert_eq!(details.retry_after_seconds, Some(0));
    }
}

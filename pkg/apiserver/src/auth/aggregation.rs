//! The ClusterRole aggregation controller: keeps the `rules` of every
//! ClusterRole with an `aggregationRule` equal to the union the authorizer
//! already uses (see [`rbac::effective_rules`]), so `kubectl get clusterrole
//! admin -o yaml` shows what `admin` grants, as in Kubernetes.

use super::rbac::{self, PolicyRule};
use crate::api::Api;
use crate::objects;
use serde_json::Value;
use std::sync::Weak;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Changes arriving within this window are handled together.
const SETTLE: Duration = Duration::from_millis(50);

/// Runs until the API is dropped.
pub(crate) async fn run(api: Weak<Api>) {
    let Some(resource) = api.upgrade().and_then(|a| {
        a.registry
            .get("rbac.authorization.k8s.io", "v1", "clusterroles")
    }) else {
        return;
    };
    loop {
        let Some(strong) = api.upgrade() else { return };
        let cache = strong.cache(&resource);
        cache.wait_ready().await;
        let Ok((_, mut live)) = cache.subscribe(0) else {
            drop(strong);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        drop(strong);
        loop {
            let Some(strong) = api.upgrade() else { return };
            reconcile(&strong, &resource).await;
            drop(strong);
            match live.recv().await {
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
            tokio::time::sleep(SETTLE).await;
            while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) =
                live.try_recv()
            {}
        }
    }
}

/// Writes the aggregated rules into every aggregating ClusterRole whose stored rules differ.
async fn reconcile(api: &Api, resource: &kite_api::ResourceInfo) {
    let cache = api.cache(resource);
    let roles: Vec<Value> = cache.list("").0.iter().map(|o| o.value()).collect();
    let effective = rbac::effective_rules(&roles);
    for role in &roles {
        if role.get("aggregationRule").is_none_or(Value::is_null) {
            continue;
        }
        let name = objects::name(role);
        let Some(wanted) = effective.get(name) else {
            continue;
        };
        let stored: Vec<PolicyRule> = role
            .get("rules")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(PolicyRule::from_json).collect())
            .unwrap_or_default();
        if &stored == wanted && role.get("rules").is_some_and(Value::is_array) {
            continue;
        }
        if let Err(error) = write_rules(api, resource, name, wanted).await {
            tracing::warn!(clusterrole = name, %error, "cannot write aggregated rules");
        }
    }
}

async fn write_rules(
    api: &Api,
    resource: &kite_api::ResourceInfo,
    name: &str,
    rules: &[PolicyRule],
) -> Result<(), kite_store::Error> {
    let key = objects::key(resource, None, name);
    // A conflicting writer wins; the next change event brings us back.
    let (_, Some(kv)) = api.store.get(&key, 0).await? else {
        return Ok(());
    };
    let Ok(mut obj) = objects::decode(&kv.value, kv.mod_revision) else {
        return Ok(());
    };
    obj["rules"] = Value::Array(rules.iter().map(PolicyRule::to_json).collect());
    api.store
        .update(&key, objects::encode(&obj), kv.mod_revision, 0)
        .await?;
    Ok(())
}

//! Empties namespaces being deleted, then releases them.
//!
//! When a namespace is deleted it turns `Terminating` and keeps the
//! `kubernetes` entry in `spec.finalizers`. This task deletes every object in
//! it (through the same handlers as API requests, so finalizers on those
//! objects are honoured) and, once nothing is left, removes the finalizer via
//! `namespaces/<name>/finalize`, which completes the delete.

use crate::api::{Api, Call};
use crate::authn::UserInfo;
use crate::request::{ResourceRequest, Verb};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Value, json};
use std::sync::Arc;

const FINALIZER: &str = "kubernetes";

/// Runs the finalizer until the API is dropped.
pub async fn run(api: Arc<Api>) {
    let Some(namespaces) = api.registry.get("", "v1", "namespaces") else {
        return;
    };
    let cache = api.cache(&namespaces);
    let user = UserInfo {
        name: "system:serviceaccount:kube-system:namespace-controller".into(),
        groups: vec![
            "system:masters".into(),
            crate::authn::AUTHENTICATED_GROUP.into(),
        ],
    };
    crate::finalizer_loop::run(cache, "namespace", terminating, |name| {
        let api = api.clone();
        let user = user.clone();
        async move { finalize(&api, &user, &name).await }
    })
    .await;
}

fn terminating(ns: &Value) -> bool {
    ns.pointer("/metadata/deletionTimestamp").is_some()
        && ns
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|v| v == FINALIZER))
}

/// What one internal request addresses.
struct Target<'n> {
    resource: Arc<kite_api::ResourceInfo>,
    namespace: Option<&'n str>,
    name: Option<&'n str>,
    subresource: Option<&'n str>,
    verb: Verb,
}

fn call<'a>(
    api: &'a Api,
    user: &'a UserInfo,
    headers: &'a HeaderMap,
    target: Target<'_>,
    body: Bytes,
) -> Call<'a> {
    Call {
        api,
        request: ResourceRequest {
            group: target.resource.group.clone(),
            version: target.resource.version.clone(),
            namespace: target.namespace.map(str::to_string),
            resource: target.resource.plural.clone(),
            name: target.name.map(str::to_string),
            subresource: target.subresource.map(str::to_string),
            subpath: None,
            verb: target.verb,
        },
        resource: target.resource,
        query: "",
        headers,
        body,
        user,
        upgrade: None,
    }
}

/// Deletes what is left in `name`; returns true once the namespace is released.
async fn finalize(api: &Api, user: &UserInfo, name: &str) -> Result<bool, kite_api::Status> {
    let headers = HeaderMap::new();
    let mut remaining = 0usize;
    for resource in api.registry.all() {
        if !resource.namespaced
            || !resource.preferred
            || !resource.allows("delete")
            || !resource.allows("list")
        {
            continue;
        }
        let prefix = crate::objects::prefix(&resource, Some(name));
        let listed = api
            .store
            .list(&prefix, None, 0, 0)
            .await
            .map_err(crate::errors::from_store)?;
        if listed.kvs.is_empty() {
            continue;
        }
        remaining += listed.kvs.len();
        let c = call(
            api,
            user,
            &headers,
            Target {
                resource,
                namespace: Some(name),
                name: None,
                subresource: None,
                verb: Verb::DeleteCollection,
            },
            Bytes::new(),
        );
        crate::handlers::delete::delete_collection(&c).await?;
    }
    if remaining > 0 {
        return Ok(false);
    }
    let Some(namespaces) = api.registry.get("", "v1", "namespaces") else {
        return Ok(true);
    };
    let current = {
        let c = call(
            api,
            user,
            &headers,
            Target {
                resource: namespaces.clone(),
                namespace: None,
                name: Some(name),
                subresource: None,
                verb: Verb::Get,
            },
            Bytes::new(),
        );
        crate::handlers::get::read(&c, name).await?
    };
    let Some((ns, _)) = current else {
        return Ok(true);
    };
    let finalizers: Vec<Value> = ns
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter(|v| *v != FINALIZER).cloned().collect())
        .unwrap_or_default();
    let mut body = ns.clone();
    body["spec"]["finalizers"] = json!(finalizers);
    let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let c = call(
        api,
        user,
        &headers,
        Target {
            resource: namespaces,
            namespace: None,
            name: Some(name),
            subresource: Some("finalize"),
            verb: Verb::Update,
        },
        body,
    );
    match crate::handlers::update::update(&c, Some("finalize")).await {
        Ok(_) => Ok(true),
        Err(status) if status.code == 404 => Ok(true),
        Err(status) => Err(status),
    }
}

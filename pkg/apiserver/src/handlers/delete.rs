//! DELETE of one object or a collection, honouring finalizers and preconditions.

use crate::api::Call;
use crate::body::Body;
use crate::codec;
use crate::errors::{self, ApiResult};
use crate::filter::Filter;
use crate::handlers::update::held;
use crate::objects;
use crate::output;
use http::{Response, StatusCode};
use kite_api::ResourceInfo;
use kite_store::DeleteOutcome;
use serde_json::{Value, json};

/// `DeleteOptions` from the body and the query.
#[derive(Debug, Default)]
pub(crate) struct Options {
    uid: Option<String>,
    resource_version: Option<i64>,
    /// The finalizer `propagationPolicy` asks for (`orphan`, `foregroundDeletion`), if any.
    propagation_finalizer: Option<&'static str>,
    /// `gracePeriodSeconds`, if given.
    grace_period: Option<i64>,
    /// `dryRun=All`, in the query or the body.
    dry_run: bool,
}

/// The finalizer the garbage collector acts on for a `propagationPolicy` (or the
/// deprecated `orphanDependents`); `Background` needs none.
fn propagation_finalizer(
    policy: Option<&str>,
    orphan_dependents: Option<bool>,
) -> Option<&'static str> {
    match policy {
        Some("Orphan") => Some("orphan"),
        Some("Foreground") => Some("foregroundDeletion"),
        Some(_) => None,
        None => orphan_dependents.and_then(|orphan| orphan.then_some("orphan")),
    }
}

fn options(call: &Call<'_>) -> ApiResult<Options> {
    if call.body.iter().all(u8::is_ascii_whitespace) {
        return options_from(call, None);
    }
    let body = codec::decode_body(call.headers, &call.body)?;
    options_from(call, Some(&body))
}

/// `DeleteOptions` from `body` (a request body, or an Eviction's
/// `deleteOptions`) and the query; the body wins where both say something.
pub(crate) fn options_from(call: &Call<'_>, body: Option<&Value>) -> ApiResult<Options> {
    let query_policy = call.param("propagationPolicy");
    let query_orphan = call.param("orphanDependents").map(|v| v == "true");
    let query_grace = match call.param("gracePeriodSeconds") {
        Some(g) => Some(
            g.parse::<i64>()
                .map_err(|_| errors::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        ),
        None => None,
    };
    let body_dry_run = match body.and_then(|b| b.get("dryRun")) {
        None | Some(Value::Null) => false,
        Some(Value::Array(values)) => match values.as_slice() {
            [] => false,
            [v] if v == "All" => true,
            _ => {
                return Err(errors::bad_request(format!(
                    "Invalid dry run value: {values:?}; only \"All\" is supported"
                )));
            }
        },
        Some(other) => {
            return Err(errors::bad_request(format!(
                "Invalid dry run value: {other}; only \"All\" is supported"
            )));
        }
    };
    let dry_run = call.dry_run()? || body_dry_run;
    let Some(body) = body else {
        return Ok(Options {
            propagation_finalizer: propagation_finalizer(query_policy.as_deref(), query_orphan),
            grace_period: query_grace,
            dry_run,
            ..Options::default()
        });
    };
    let propagation_finalizer = propagation_finalizer(
        body.get("propagationPolicy")
            .and_then(Value::as_str)
            .or(query_policy.as_deref()),
        body.get("orphanDependents")
            .and_then(Value::as_bool)
            .or(query_orphan),
    );
    let preconditions = body.get("preconditions");
    let uid = preconditions
        .and_then(|p| p.get("uid"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let resource_version = match preconditions
        .and_then(|p| p.get("resourceVersion"))
        .and_then(Value::as_str)
    {
        Some(rv) => Some(
            rv.parse::<i64>()
                .map_err(|_| errors::bad_request(format!("invalid resource version {rv:?}")))?,
        ),
        None => None,
    };
    let grace_period = body
        .get("gracePeriodSeconds")
        .and_then(Value::as_i64)
        .or(query_grace);
    Ok(Options {
        uid,
        resource_version,
        propagation_finalizer,
        grace_period,
        dry_run,
    })
}

impl Options {
    /// These options, also requiring the object to be at `revision` (as an
    /// eviction does after reading the pod).
    pub(crate) fn at_revision(mut self, revision: i64) -> Self {
        self.resource_version.get_or_insert(revision);
        self
    }

    /// The resourceVersion the object must be at, if any.
    pub(crate) fn pinned_revision(&self) -> Option<i64> {
        self.resource_version
    }

    /// These options with a pinned resourceVersion moved to `revision` (the
    /// caller wrote the object since it was pinned); unpinned ones unchanged.
    pub(crate) fn repinned(mut self, revision: i64) -> Self {
        if self.resource_version.is_some() {
            self.resource_version = Some(revision);
        }
        self
    }

    /// Whether nothing is to be written.
    pub(crate) fn dry_run(&self) -> bool {
        self.dry_run
    }
}

/// The grace period a pod's deletion gets, as kube's pod strategy decides:
/// the request's, else the pod's `terminationGracePeriodSeconds` (30); none
/// for pods no kubelet runs (unscheduled) or that already finished.
fn pod_grace_period(object: &Value, requested: Option<i64>) -> i64 {
    let unscheduled = object
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    let finished = matches!(
        object.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if unscheduled || finished {
        return 0;
    }
    requested
        .or_else(|| {
            object
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

/// Kinds whose delete answers with the object rather than a `Status` (as their Kubernetes storage does).
fn returns_deleted_object(resource: &ResourceInfo) -> bool {
    crate::strategy::is_custom(resource)
        || matches!(
            (resource.group.as_str(), resource.plural.as_str()),
            (
                "",
                "pods"
                    | "services"
                    | "serviceaccounts"
                    | "namespaces"
                    | "persistentvolumes"
                    | "persistentvolumeclaims"
            ) | ("storage.k8s.io", "storageclasses")
                | ("apiextensions.k8s.io", "customresourcedefinitions")
        )
}

/// Deletes the object named in the path.
pub async fn delete(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let name = call.request.name.clone().unwrap_or_default();
    let options = options(call)?;
    let object = delete_one(call, &name, &options).await?;
    respond(call, &object)
}

fn respond(call: &Call<'_>, object: &Value) -> ApiResult<Response<Body>> {
    let still_there = object.pointer("/metadata/deletionTimestamp").is_some() && held(object);
    if returns_deleted_object(&call.resource) || still_there {
        return output::object(call, StatusCode::OK, object);
    }
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": objects::name(object),
            "group": call.resource.group,
            "kind": call.resource.plural,
            "uid": objects::meta_str(object, "uid"),
        },
    });
    Ok(codec::respond(
        StatusCode::OK,
        codec::negotiate(call.headers)?,
        &status,
    ))
}

pub(crate) async fn delete_one(call: &Call<'_>, name: &str, options: &Options) -> ApiResult<Value> {
    let key = objects::key(&call.resource, call.namespace(), name);
    loop {
        let (mut object, revision) = crate::handlers::get::read(call, name)
            .await?
            .ok_or_else(|| errors::not_found(&call.resource, name))?;
        if let Some(uid) = &options.uid {
            let actual = objects::meta_str(&object, "uid");
            if uid != actual {
                return Err(errors::conflict_with(
                    &call.resource,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                    ),
                ));
            }
        }
        if let Some(rv) = options.resource_version
            && rv != revision
        {
            return Err(errors::conflict_with(
                &call.resource,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {revision}"
                ),
            ));
        }
        crate::strategy::prepare_for_delete(&call.resource, &mut object);
        let is_pod = call.resource.group.is_empty() && call.resource.kind == "Pod";
        let grace = if is_pod {
            pod_grace_period(&object, options.grace_period)
        } else {
            0
        };
        if grace > 0 {
            // Graceful deletion: the kubelet stops the containers, then deletes
            // the pod with a grace period of 0.
            let current = object
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if current.is_some_and(|c| c <= grace) {
                return Ok(object);
            }
            let deadline =
                std::time::SystemTime::now() + std::time::Duration::from_secs(grace as u64);
            let meta = objects::metadata_mut(&mut object);
            meta.insert(
                "deletionTimestamp".into(),
                json!(objects::rfc3339(deadline)),
            );
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            if let Some(finalizer) = options.propagation_finalizer {
                let list = meta.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(list) = list.as_array_mut()
                    && !list.iter().any(|f| f == finalizer)
                {
                    list.push(json!(finalizer));
                }
            }
            if options.dry_run {
                return Ok(object);
            }
            let stored = crate::strategy::encode(&call.resource, &object);
            match call
                .api
                .store
                .update(&key, stored, revision, 0)
                .await
                .map_err(errors::from_store)?
            {
                kite_store::UpdateOutcome::Updated { revision } => {
                    objects::set_resource_version(&mut object, revision);
                    return Ok(object);
                }
                kite_store::UpdateOutcome::Conflict { .. } => continue,
            }
        }
        if let Some(finalizer) = options.propagation_finalizer
            && object.pointer("/metadata/deletionTimestamp").is_none()
        {
            // Orphan and foreground deletion are finalizers the garbage collector
            // removes once it has released or deleted the dependents.
            let meta = objects::metadata_mut(&mut object);
            let list = meta.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(list) = list.as_array_mut()
                && !list.iter().any(|f| f == finalizer)
            {
                list.push(json!(finalizer));
            }
        }
        if held(&object) {
            // Finalizers hold the object: mark it deleted and let their owners finish.
            if object.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(object);
            }
            let meta = objects::metadata_mut(&mut object);
            meta.insert("deletionTimestamp".into(), json!(objects::now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            if call.resource.kind == "Namespace" && call.resource.group.is_empty() {
                object["status"]["phase"] = json!("Terminating");
            }
            if options.dry_run {
                return Ok(object);
            }
            let stored = crate::strategy::encode(&call.resource, &object);
            match call
                .api
                .store
                .update(&key, stored, revision, 0)
                .await
                .map_err(errors::from_store)?
            {
                kite_store::UpdateOutcome::Updated { revision } => {
                    objects::set_resource_version(&mut object, revision);
                    return Ok(object);
                }
                kite_store::UpdateOutcome::Conflict { .. } => continue,
            }
        }
        if options.dry_run {
            return Ok(object);
        }
        match call
            .api
            .store
            .delete(&key, Some(revision))
            .await
            .map_err(errors::from_store)?
        {
            DeleteOutcome::Deleted { revision, .. } => {
                objects::set_resource_version(&mut object, revision);
                return Ok(object);
            }
            DeleteOutcome::NotFound { .. } => return Err(errors::not_found(&call.resource, name)),
            DeleteOutcome::Conflict { .. } => continue,
        }
    }
}

/// Deletes every object matching the selectors; answers with the list of them.
pub async fn delete_collection(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let filter = Filter::new(
        &call.resource,
        call.namespace(),
        call.param("labelSelector").as_deref(),
        call.param("fieldSelector").as_deref(),
    )?;
    let options = options(call)?;
    let prefix = objects::prefix(&call.resource, call.namespace());
    let listed = call
        .api
        .store
        .list(&prefix, None, 0, 0)
        .await
        .map_err(errors::from_store)?;
    let mut deleted = Vec::new();
    for kv in &listed.kvs {
        let obj = objects::decode(&kv.value, kv.mod_revision).map_err(errors::internal)?;
        if !filter.matches(&obj) {
            continue;
        }
        match delete_one(call, objects::name(&obj), &options).await {
            Ok(object) => deleted.push(object),
            // Gone meanwhile: someone else deleted it, which is what was asked.
            Err(status) if status.code == 404 => {}
            Err(status) => return Err(status),
        }
    }
    let list = json!({
        "kind": format!("{}List", call.resource.kind),
        "apiVersion": call.resource.api_version(),
        "metadata": {"resourceVersion": listed.revision.to_string()},
        "items": deleted,
    });
    Ok(codec::respond(
        StatusCode::OK,
        codec::negotiate(call.headers)?,
        &list,
    ))
}

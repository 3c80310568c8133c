//! POST: creating an object.

use crate::api::Call;
use crate::body::Body;
use crate::codec;
use crate::errors::{self, ApiResult};
use crate::field_manager::Ownership;
use crate::handlers::update::{check_type, validate};
use crate::objects;
use crate::output;
use crate::strategy;
use http::{Response, StatusCode};
use kite_api::{Status, StatusReason};
use serde_json::{Value, json};

/// Creates the object in the body.
pub async fn create(call: &Call<'_>) -> ApiResult<Response<Body>> {
    if call.resource.namespaced && call.request.namespace.is_none() {
        return Err(errors::no_such_resource());
    }
    let r = &call.resource;
    let mut obj = codec::decode_typed(
        call.headers,
        &call.body,
        Some((&r.group, &r.version, &r.kind)),
    )?;
    check_type(call, &obj)?;
    let warnings = crate::field_validation::check(call, &call.body, &mut obj)?;
    let ownership = Ownership::of(call, None, false)?;
    create_object(call, obj, Some(&ownership), &warnings).await
}

/// Creates `obj`, already decoded and checked; records its creator in
/// `metadata.managedFields` unless `ownership` is `None` (server-side apply
/// has recorded the applier already).
pub async fn create_object(
    call: &Call<'_>,
    mut obj: Value,
    ownership: Option<&Ownership>,
    warnings: &[String],
) -> ApiResult<Response<Body>> {
    let namespace = call.namespace();
    if let Some(ns) = namespace {
        let body_ns = objects::namespace(&obj);
        if !body_ns.is_empty() && body_ns != ns {
            return Err(errors::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    if objects::name(&obj).is_empty() {
        let generate = objects::meta_str(&obj, "generateName").to_string();
        if !generate.is_empty() {
            let name = format!("{generate}{}", objects::name_suffix());
            objects::metadata_mut(&mut obj).insert("name".into(), json!(name));
        }
    }
    strategy::prepare_for_create(&call.resource, &mut obj, namespace);
    if call.resource.group == "certificates.k8s.io"
        && call.resource.kind == "CertificateSigningRequest"
    {
        crate::csr::record_requester(&mut obj, call.user);
    }
    if let Some(ownership) = ownership {
        ownership.record_update(None, &mut obj);
    }
    let name = objects::name(&obj).to_string();
    if let Some(ns) = namespace {
        admit_namespace(call, ns, &name).await?;
    }
    crate::admission::admit_create(call, &mut obj).await?;
    validate(call, &obj, None)?;
    crate::admission::admit_quota(call, &obj, None, call.dry_run()?).await?;
    if call.dry_run()? {
        return Ok(crate::field_validation::add_warnings(
            output::object(call, StatusCode::CREATED, &obj)?,
            warnings,
        ));
    }
    let key = objects::key(&call.resource, namespace, &name);
    let is_service = call.resource.group.is_empty() && call.resource.kind == "Service";
    let _allocation = if is_service {
        let guard = call.api.allocator.lock.lock().await;
        let prefix = objects::resource_prefix(&call.resource);
        call.api
            .allocator
            .allocate(&*call.api.store, &prefix, &mut obj)
            .await?;
        Some(guard)
    } else {
        None
    };
    let stored = strategy::encode(&call.resource, &obj);
    match call.api.store.create(&key, stored, 0).await {
        Ok(revision) => {
            objects::set_resource_version(&mut obj, revision);
            Ok(crate::field_validation::add_warnings(
                output::object(call, StatusCode::CREATED, &obj)?,
                warnings,
            ))
        }
        Err(kite_store::Error::KeyExists { .. }) => {
            Err(errors::already_exists(&call.resource, &name))
        }
        Err(other) => Err(errors::from_store(other)),
    }
}

/// Whether a namespace is being deleted.
fn terminating(ns: &Value) -> bool {
    ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
        || ns.pointer("/metadata/deletionTimestamp").is_some()
}

/// NamespaceLifecycle admission: content may only be created in an active namespace.
/// An active namespace in the watch cache is taken as is (upstream's plugin
/// reads its informer); anything else is checked against the store, so a
/// namespace created a moment ago is not refused.
pub async fn admit_namespace(call: &Call<'_>, namespace: &str, name: &str) -> ApiResult<()> {
    if let Some(resource) = call.api.registry.get("", "v1", "namespaces") {
        let key = crate::objects::key(&resource, None, namespace);
        let active = call.api.cache(&resource).get(&key).is_some_and(|ns| {
            serde_json::from_slice::<Value>(&ns.json).is_ok_and(|ns| !terminating(&ns))
        });
        if active {
            return Ok(());
        }
    }
    let Some(ns) = crate::admission::get(call, "namespaces", namespace, namespace).await? else {
        return Err(kite_api::Status::not_found("", "namespaces", namespace));
    };
    if terminating(&ns) {
        return Err(Status::failure(
            StatusReason::Forbidden,
            format!(
                "{} {name:?} is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                call.resource.group_resource(),
            ),
        ));
    }
    Ok(())
}

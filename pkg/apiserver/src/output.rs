//! Shapes responses into what the client negotiated: the object itself,
//! a `Table` for kubectl, or `PartialObjectMetadata`.

use crate::api::Call;
use crate::body::Body;
use crate::codec::{self, Output};
use crate::errors::ApiResult;
use http::{Response, StatusCode};
use kite_api::ResourceInfo;
use kite_api::table::IncludeObject;
use serde_json::{Value, json};

/// A response carrying one object.
pub fn object(call: &Call<'_>, code: StatusCode, obj: &Value) -> ApiResult<Response<Body>> {
    let output = codec::negotiate(call.headers)?;
    let value = match output {
        Output::Json | Output::Yaml => obj.clone(),
        Output::PartialMetadata => partial(obj),
        Output::Table => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            table(call, std::slice::from_ref(obj), rv)?
        }
    };
    Ok(codec::respond(code, output, &value))
}

/// `PartialObjectMetadata` of an object.
pub fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A `Table` of objects with the resource's columns, objects included as the call asks.
pub fn table(call: &Call<'_>, objects: &[Value], resource_version: Value) -> ApiResult<Value> {
    let include = match call.param("includeObject") {
        Some(v) if !v.is_empty() => IncludeObject::parse(&v).map_err(crate::errors::bad_request)?,
        _ => IncludeObject::Metadata,
    };
    if crate::strategy::is_custom(&call.resource) {
        let columns = call.api.printer_columns(&call.resource);
        let mut table = kite_api::table::custom_resource_table(
            &columns,
            objects,
            include,
            std::time::SystemTime::now(),
        );
        table["metadata"] = json!({"resourceVersion": resource_version});
        return Ok(table);
    }
    Ok(table_of(&call.resource, objects, include, resource_version))
}

/// A `Table` of objects of `resource` with kube-apiserver's columns.
pub fn table_of(
    resource: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    resource_version: Value,
) -> Value {
    let mut table =
        kite_api::table::table(resource, objects, include, std::time::SystemTime::now());
    table["metadata"] = json!({"resourceVersion": resource_version});
    table
}

/// The `Success` Status with code 201 that kube-apiserver answers a create of
/// an action subresource with (`pods/binding`, `pods/eviction`).
pub fn created_success(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": 201,
    });
    Ok(codec::respond(
        StatusCode::CREATED,
        codec::negotiate(call.headers)?,
        &status,
    ))
}

//! Shapes responses into what the client negotiated: the object itself,
//! a `Table` for kubectl, or `PartialObjectMetadata`.

use crate::api::Call;
use crate::body::Body;
use crate::codec::{self, Output};
use crate::errors::ApiResult;
use http::{Response, StatusCode};
use serde_json::{Value, json};

/// A response carrying one object.
pub fn object(call: &Call<'_>, code: StatusCode, obj: &Value) -> ApiResult<Response<Body>> {
    let output = codec::negotiate(call.headers)?;
    let value = match output {
        Output::Json | Output::Yaml => obj.clone(),
        Output::PartialMetadata => partial(obj),
        Output::Table => {
            let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""));
            table(call, std::slice::from_ref(obj), rv)
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
pub fn table(call: &Call<'_>, objects: &[Value], resource_version: Value) -> Value {
    let include = call.param("includeObject").unwrap_or_else(|| "Metadata".into());
    let mut table = table_of(objects, resource_version);
    if let Some(rows) = table.get_mut("rows").and_then(Value::as_array_mut) {
        for (row, obj) in rows.iter_mut().zip(objects) {
            row["object"] = match include.as_str() {
                "None" => Value::Null,
                "Object" => obj.clone(),
                _ => partial(obj),
            };
        }
    }
    table
}

/// A `Table` of objects with the resource's columns and their metadata as row objects.
pub fn table_of(objects: &[Value], resource_version: Value) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let cells = vec![
                obj.pointer("/metadata/name").cloned().unwrap_or(json!("")),
                obj.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null),
            ];
            json!({"cells": cells, "object": partial(obj)})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0},
            {"name": "Created At", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0},
        ],
        "rows": rows,
    })
}

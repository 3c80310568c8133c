//! The Swagger 2.0 document in protobuf, as gnostic's `openapi.v2.Document`.
//!
//! kubectl up to 1.28 asks `/openapi/v2` for
//! `application/com.github.proto-openapi.spec.v2@v1.0+protobuf` before
//! applying or validating, and gives up when the server cannot answer in
//! protobuf. This module re-encodes the JSON document of [`super::build_v2`]
//! field by field into that message. Values gnostic keeps as `Any` (vendor
//! extensions, defaults, enums, examples) travel as YAML text; JSON is YAML.

use serde_json::{Map, Value};

/// The media type answered with (and accepted).
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The older spelling kubectl asks for; `@` is not a valid media type
/// character, so answers never carry it.
pub const V2_PROTOBUF_DEPRECATED: &str =
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// Encodes a Swagger 2.0 JSON document as an `openapi.v2.Document`.
pub fn encode_v2(doc: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    string(&mut out, 1, str_of(doc, "swagger"));
    if let Some(info) = doc.get("info") {
        message(&mut out, 2, |b| {
            string(b, 1, str_of(info, "title"));
            string(b, 2, str_of(info, "version"));
            string(b, 3, str_of(info, "description"));
        });
    }
    strings(&mut out, 6, doc.get("consumes"));
    strings(&mut out, 7, doc.get("produces"));
    if let Some(Value::Object(paths)) = doc.get("paths") {
        message(&mut out, 8, |b| {
            for (path, item) in paths {
                message(b, 2, |named| {
                    string(named, 1, path);
                    message(named, 2, |p| path_item(p, item));
                });
            }
        });
    }
    if let Some(Value::Object(definitions)) = doc.get("definitions") {
        message(&mut out, 9, |b| named_schemas(b, definitions));
    }
    vendor_extensions(&mut out, 16, doc);
    out
}

fn path_item(out: &mut Vec<u8>, item: &Value) {
    for (field, method) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        if let Some(op) = item.get(method) {
            message(out, field, |b| operation(b, op));
        }
    }
    parameters(out, 9, item.get("parameters"));
    vendor_extensions(out, 10, item);
}

fn operation(out: &mut Vec<u8>, op: &Value) {
    strings(out, 1, op.get("tags"));
    string(out, 2, str_of(op, "summary"));
    string(out, 3, str_of(op, "description"));
    string(out, 5, str_of(op, "operationId"));
    strings(out, 6, op.get("produces"));
    strings(out, 7, op.get("consumes"));
    parameters(out, 8, op.get("parameters"));
    if let Some(Value::Object(responses)) = op.get("responses") {
        message(out, 9, |b| {
            for (code, response) in responses {
                message(b, 1, |named| {
                    string(named, 1, code);
                    // ResponseValue.response → Response
                    message(named, 2, |value| {
                        message(value, 1, |r| {
                            string(r, 1, str_of(response, "description"));
                            if let Some(schema) = response.get("schema") {
                                // SchemaItem.schema
                                message(r, 2, |item| message(item, 1, |s| schema_of(s, schema)));
                            }
                        });
                    });
                });
            }
        });
    }
    strings(out, 10, op.get("schemes"));
    vendor_extensions(out, 13, op);
}

/// `ParametersItem.parameter` for each parameter (or a `$ref` as `json_reference`).
fn parameters(out: &mut Vec<u8>, field: u32, list: Option<&Value>) {
    let Some(Value::Array(list)) = list else {
        return;
    };
    for param in list {
        message(out, field, |item| {
            if let Some(reference) = param.get("$ref").and_then(Value::as_str) {
                message(item, 2, |r| string(r, 1, reference));
                return;
            }
            message(item, 1, |p| parameter(p, param));
        });
    }
}

fn parameter(out: &mut Vec<u8>, param: &Value) {
    let location = str_of(param, "in");
    if location == "body" {
        message(out, 1, |b| {
            string(b, 1, str_of(param, "description"));
            string(b, 2, str_of(param, "name"));
            string(b, 3, location);
            boolean(b, 4, bool_of(param, "required"));
            if let Some(schema) = param.get("schema") {
                message(b, 5, |s| schema_of(s, schema));
            }
            vendor_extensions(b, 6, param);
        });
        return;
    }
    // NonBodyParameter: header 1, formData 2, query 3, path 4; the sub-schemas
    // share their first fields and differ after `name`.
    let (choice, has_allow_empty) = match location {
        "header" => (1, false),
        "formData" => (2, true),
        "path" => (4, false),
        _ => (3, true),
    };
    message(out, 2, |non_body| {
        message(non_body, choice, |b| {
            boolean(b, 1, bool_of(param, "required"));
            string(b, 2, location);
            string(b, 3, str_of(param, "description"));
            string(b, 4, str_of(param, "name"));
            let base = if has_allow_empty {
                boolean(b, 5, bool_of(param, "allowEmptyValue"));
                6
            } else {
                5
            };
            string(b, base, str_of(param, "type"));
            string(b, base + 1, str_of(param, "format"));
            boolean(b, base + 14, bool_of(param, "uniqueItems"));
        });
    });
}

fn named_schemas(out: &mut Vec<u8>, schemas: &Map<String, Value>) {
    for (name, schema) in schemas {
        message(out, 1, |named| {
            string(named, 1, name);
            message(named, 2, |s| schema_of(s, schema));
        });
    }
}

fn schema_of(out: &mut Vec<u8>, schema: &Value) {
    string(out, 1, str_of(schema, "$ref"));
    string(out, 2, str_of(schema, "format"));
    string(out, 3, str_of(schema, "title"));
    string(out, 4, str_of(schema, "description"));
    if let Some(default) = schema.get("default") {
        message(out, 5, |b| any(b, default));
    }
    for (field, key) in [(6, "multipleOf"), (7, "maximum"), (9, "minimum")] {
        if let Some(n) = schema.get(key).and_then(Value::as_f64) {
            double(out, field, n);
        }
    }
    boolean(out, 8, bool_of(schema, "exclusiveMaximum"));
    boolean(out, 10, bool_of(schema, "exclusiveMinimum"));
    for (field, key) in [
        (11, "maxLength"),
        (12, "minLength"),
        (14, "maxItems"),
        (15, "minItems"),
        (17, "maxProperties"),
        (18, "minProperties"),
    ] {
        if let Some(n) = schema.get(key).and_then(Value::as_i64) {
            int64(out, field, n);
        }
    }
    string(out, 13, str_of(schema, "pattern"));
    boolean(out, 16, bool_of(schema, "uniqueItems"));
    strings(out, 19, schema.get("required"));
    if let Some(Value::Array(values)) = schema.get("enum") {
        for value in values {
            message(out, 20, |b| any(b, value));
        }
    }
    match schema.get("additionalProperties") {
        Some(Value::Bool(allowed)) => message(out, 21, |b| {
            key(b, 2, 0);
            varint(b, u64::from(*allowed));
        }),
        Some(inner @ Value::Object(_)) => {
            message(out, 21, |b| message(b, 1, |s| schema_of(s, inner)))
        }
        _ => {}
    }
    match schema.get("type") {
        Some(Value::String(ty)) => message(out, 22, |b| string(b, 1, ty)),
        Some(types @ Value::Array(_)) => message(out, 22, |b| strings(b, 1, Some(types))),
        _ => {}
    }
    match schema.get("items") {
        Some(items @ Value::Object(_)) => {
            message(out, 23, |b| message(b, 1, |s| schema_of(s, items)))
        }
        Some(Value::Array(list)) => message(out, 23, |b| {
            for items in list {
                message(b, 1, |s| schema_of(s, items));
            }
        }),
        _ => {}
    }
    if let Some(Value::Array(all)) = schema.get("allOf") {
        for inner in all {
            message(out, 24, |s| schema_of(s, inner));
        }
    }
    if let Some(Value::Object(properties)) = schema.get("properties") {
        message(out, 25, |b| named_schemas(b, properties));
    }
    string(out, 26, str_of(schema, "discriminator"));
    boolean(out, 27, bool_of(schema, "readOnly"));
    if let Some(example) = schema.get("example") {
        message(out, 30, |b| any(b, example));
    }
    vendor_extensions(out, 31, schema);
}

/// Every `x-` key of an object, as `NamedAny`s.
fn vendor_extensions(out: &mut Vec<u8>, field: u32, object: &Value) {
    let Some(map) = object.as_object() else {
        return;
    };
    for (name, value) in map.iter().filter(|(k, _)| k.starts_with("x-")) {
        message(out, field, |named| {
            string(named, 1, name);
            message(named, 2, |b| any(b, value));
        });
    }
}

/// gnostic's `Any`: the value as YAML text (field 2).
fn any(out: &mut Vec<u8>, value: &Value) {
    string(out, 2, &value.to_string());
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn bool_of(value: &Value, key: &str) -> bool {
    value.get(key).and_then(Value::as_bool).unwrap_or(false)
}

// The wire format: proto3 leaves default values (empty, zero, false) out.

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        key(out, field, 2);
        varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
}

fn strings(out: &mut Vec<u8>, field: u32, list: Option<&Value>) {
    if let Some(Value::Array(list)) = list {
        for s in list.iter().filter_map(Value::as_str) {
            key(out, field, 2);
            varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

fn boolean(out: &mut Vec<u8>, field: u32, b: bool) {
    if b {
        key(out, field, 0);
        varint(out, 1);
    }
}

fn int64(out: &mut Vec<u8>, field: u32, n: i64) {
    if n != 0 {
        key(out, field, 0);
        varint(out, n as u64);
    }
}

fn double(out: &mut Vec<u8>, field: u32, n: f64) {
    if n != 0.0 {
        key(out, field, 1);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

/// A nested message, always written (an empty message still marks presence).
fn message(out: &mut Vec<u8>, field: u32, fill: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    fill(&mut inner);
    key(out, field, 2);
    varint(out, inner.len() as u64);
    out.extend_from_slice(&inner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_document_encodes_its_definitions_and_extensions() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "definitions": {"io.k8s.api.core.v1.ConfigMap": {
                "type": "object",
                "properties": {"data": {"type": "object", "additionalProperties": {"type": "string"}}},
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "ConfigMap", "version": "v1"}]
            }}
        });
        let bytes = encode_v2(&doc);
        // swagger = "2.0" comes first: key 0x0a, length 3.
        assert_eq!(&bytes[..5], b"\x0a\x032.0");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("io.k8s.api.core.v1.ConfigMap"));
        assert!(text.contains("x-kubernetes-group-version-kind"));
        assert!(text.contains(r#"[{"group":"","kind":"ConfigMap","version":"v1"}]"#));
    }

    #[test]
    fn varints_use_seven_bits_per_byte() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }
}

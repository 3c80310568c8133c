//! Request bodies in and responses out: JSON or YAML bodies, and the Accept
//! header's choice between a plain object, a `Table`, partial object
//! metadata, or YAML.

use crate::body::{self, Body};
use crate::errors::ApiResult;
use http::{HeaderMap, Response, StatusCode, header};
use kite_api::{Status, StatusReason};
use serde_json::Value;

/// Largest request body kube-apiserver accepts (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// What the client wants back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The object(s) as JSON.
    Json,
    /// The object(s) as YAML.
    Yaml,
    /// A `meta.k8s.io` `Table` (kubectl get).
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    PartialMetadata,
}

/// Picks the response form from the Accept header; 406 when nothing offered is supported.
pub fn negotiate(headers: &HeaderMap) -> ApiResult<Output> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Output::Json);
    };
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    for range in accept.split(',') {
        let mut params = range.split(';').map(str::trim);
        let media = params.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<String> = params.map(|p| p.replace(' ', "")).collect();
        let param = |key: &str| {
            params.iter().find_map(|p| {
                p.strip_prefix(key)
                    .and_then(|v| v.strip_prefix('='))
                    .map(str::to_string)
            })
        };
        match media.as_str() {
            "application/json" | "*/*" | "application/*" => {
                match (param("as").as_deref(), param("g").as_deref()) {
                    (Some("Table"), Some("meta.k8s.io")) => return Ok(Output::Table),
                    (
                        Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                        Some("meta.k8s.io"),
                    ) => {
                        return Ok(Output::PartialMetadata);
                    }
                    (None, _) => return Ok(Output::Json),
                    // A representation we do not produce: try the next range.
                    _ => {}
                }
            }
            "application/yaml" => return Ok(Output::Yaml),
            _ => {}
        }
    }
    Err(Status::failure(
        StatusReason::NotAcceptable,
        "only the following media types are accepted: application/json, application/yaml",
    ))
}

/// Decodes a JSON, YAML or protobuf request body into a JSON value.
pub fn decode_body(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<Value> {
    decode_typed(headers, bytes, None)
}

/// Like [`decode_body`], checking a protobuf body's kind against `expected` (group, version, kind).
pub fn decode_typed(
    headers: &HeaderMap,
    bytes: &[u8],
    expected: Option<(&str, &str, &str)>,
) -> ApiResult<Value> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "" | "*/*" => serde_json::from_slice(bytes).map_err(|e| {
            crate::errors::bad_request(format!("the body of the request was not valid JSON: {e}"))
        }),
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                crate::errors::bad_request("the YAML body of the request is not UTF-8")
            })?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| {
                let message = e.to_string();
                let first = message.lines().next().unwrap_or("").to_string();
                crate::errors::bad_request(format!(
                    "the body of the request was not valid YAML: {first}"
                ))
            })
        }
        kite_api::protobuf::CONTENT_TYPE => kite_api::protobuf::decode(bytes, expected)
            .map_err(|e| crate::errors::bad_request(e.to_string())),
        other => Err(Status::failure(
            StatusReason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format ({other}) - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
            ),
        )),
    }
}

/// A response carrying `value` in the negotiated form (`Json` or `Yaml`).
pub fn respond(code: StatusCode, output: Output, value: &Value) -> Response<Body> {
    if output == Output::Yaml
        && let Ok(text) = serde_saphyr::to_string(value)
    {
        let mut response = body::text(code, text);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/yaml"),
        );
        return response;
    }
    body::json(code, serde_json::to_vec(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> ApiResult<Output> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().expect("header"));
        negotiate(&headers)
    }

    #[test]
    fn kubectl_get_asks_for_tables_with_json_fallback() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(accept(kubectl), Ok(Output::Table));
        assert_eq!(accept("application/json, */*"), Ok(Output::Json));
        assert_eq!(
            accept("application/vnd.kubernetes.protobuf, application/json"),
            Ok(Output::Json)
        );
        assert_eq!(
            accept("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"),
            Ok(Output::PartialMetadata)
        );
        assert_eq!(accept("application/yaml"), Ok(Output::Yaml));
        assert_eq!(
            accept("application/vnd.kubernetes.protobuf").map_err(|s| s.code),
            Err(406)
        );
    }

    #[test]
    fn bodies_decode_from_json_and_yaml_and_reject_protobuf() {
        let mut headers = HeaderMap::new();
        assert_eq!(decode_body(&headers, br#"{"a":1}"#).expect("json")["a"], 1);
        assert_eq!(
            decode_body(&headers, b"{nope").map_err(|s| s.code),
            Err(400)
        );
        headers.insert(
            header::CONTENT_TYPE,
            "application/yaml".parse().expect("ct"),
        );
        assert_eq!(decode_body(&headers, b"a: 1\n").expect("yaml")["a"], 1);
        headers.insert(
            header::CONTENT_TYPE,
            "application/vnd.kubernetes.protobuf".parse().expect("ct"),
        );
        assert_eq!(decode_body(&headers, b"x").map_err(|s| s.code), Err(400));
        headers.insert(
            header::CONTENT_TYPE,
            "application/cbor".parse().expect("ct"),
        );
        assert_eq!(decode_body(&headers, b"x").map_err(|s| s.code), Err(415));
    }
}

//! `/openapi/v2` and `/openapi/v3`: the API's schemas for `kubectl explain`
//! and client-side tools, built from the served resources and rebuilt when
//! they change (custom resources).

use crate::body::{self, Body};
use crate::registry::Registry;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode, header};
use kite_api::openapi::{
    CustomResource, OpenApiV3, V2_PROTOBUF, V2_PROTOBUF_DEPRECATED, build_v2, encode_v2,
};
use kite_api::{Status, StatusReason};
use std::sync::{Arc, RwLock};

/// The documents for one registry generation.
struct Built {
    generation: u64,
    v2: Bytes,
    v2_protobuf: Bytes,
    v3: Arc<OpenApiV3>,
    v3_index: Bytes,
}

/// Lazily built, cached OpenAPI documents.
#[derive(Default)]
pub struct OpenApi {
    built: RwLock<Option<Arc<Built>>>,
}

impl std::fmt::Debug for OpenApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenApi").finish_non_exhaustive()
    }
}

impl OpenApi {
    fn current(&self, registry: &Registry, custom: &[CustomResource]) -> Arc<Built> {
        let generation = registry.generation();
        if let Some(built) = self
            .built
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            && built.generation == generation
        {
            return built.clone();
        }
        let builtin: Vec<kite_api::ResourceInfo> = registry
            .all()
            .iter()
            .filter(|r| !r.definition.is_empty())
            .map(|r| (**r).clone())
            .collect();
        let v2_doc = build_v2(&builtin, custom);
        let v2 = Bytes::from(serde_json::to_vec(&v2_doc).unwrap_or_default());
        let v2_protobuf = Bytes::from(encode_v2(&v2_doc));
        let v3 = Arc::new(OpenApiV3::build(&builtin, custom));
        let v3_index = Bytes::from(serde_json::to_vec(&v3.index()).unwrap_or_default());
        let built = Arc::new(Built {
            generation,
            v2,
            v2_protobuf,
            v3,
            v3_index,
        });
        *self.built.write().unwrap_or_else(|e| e.into_inner()) = Some(built.clone());
        built
    }

    /// Answers `/openapi/...`; `None` when the path is not an OpenAPI path.
    pub fn answer(
        &self,
        registry: &Registry,
        custom: &[CustomResource],
        path: &str,
        headers: &HeaderMap,
    ) -> Option<Response<Body>> {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if path == "/openapi/v2" {
            // kubectl up to 1.28 asks for protobuf first (with JSON as a fallback).
            let protobuf = accept.contains(V2_PROTOBUF) || accept.contains(V2_PROTOBUF_DEPRECATED);
            if !protobuf
                && !accept.is_empty()
                && !accept.contains("json")
                && !accept.contains("*/*")
            {
                return Some(body::status(&Status::failure(
                    StatusReason::NotAcceptable,
                    format!(
                        "only application/json and {V2_PROTOBUF} are supported for /openapi/v2"
                    ),
                )));
            }
            let built = self.current(registry, custom);
            if protobuf {
                let mut response = body::json(StatusCode::OK, built.v2_protobuf.clone());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(V2_PROTOBUF),
                );
                return Some(response);
            }
            return Some(body::json(StatusCode::OK, built.v2.clone()));
        }
        if path == "/openapi/v3" || path == "/openapi/v3/" {
            let built = self.current(registry, custom);
            return Some(body::json(StatusCode::OK, built.v3_index.clone()));
        }
        let key = path.strip_prefix("/openapi/v3/")?;
        let built = self.current(registry, custom);
        let Some(doc) = built.v3.document(key) else {
            return Some(body::status(&Status::failure(
                StatusReason::NotFound,
                "the server could not find the requested resource",
            )));
        };
        let mut response = body::json(StatusCode::OK, Bytes::from((*doc).clone()));
        if let Some(hash) = built.v3.hash(key)
            && let Ok(etag) = format!("\"{hash}\"").parse()
        {
            response.headers_mut().insert(header::ETAG, etag);
        }
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("public, immutable"),
        );
        Some(response)
    }
}

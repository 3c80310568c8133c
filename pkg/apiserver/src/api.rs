//! The resource API: shared state and dispatch of `/api` and `/apis` requests
//! to discovery or to the verb handlers in `handlers/`.

use crate::authn::UserInfo;
use crate::body::{self, Body};
use crate::codec;
use crate::discovery;
use crate::errors::{self, ApiResult};
use crate::handlers;
use crate::objects;
use crate::registry::Registry;
use crate::request::{self, ApiPath, ResourceRequest, Verb};
use crate::watch_cache::WatchCache;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use kite_api::ResourceInfo;
use kite_store::Backend;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Shared state of the resource API.
pub struct Api {
    /// The served resources.
    pub registry: Arc<Registry>,
    /// The datastore.
    pub store: Arc<dyn Backend>,
    caches: RwLock<HashMap<String, Arc<WatchCache>>>,
    /// `host:port` clients should use, for `/api`'s `serverAddressByClientCIDRs`.
    pub server_address: String,
    /// Authentication and authorization.
    pub auth: Arc<crate::auth::Auth>,
    /// ClusterIP and NodePort allocation.
    pub allocator: crate::allocator::Allocator,
    /// The OpenAPI documents.
    pub openapi: crate::openapi::OpenApi,
    /// Request, datastore and cache metrics for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    custom: RwLock<Vec<crate::crd::ServedVersion>>,
    /// The client for the kubelets' API (`pods/log`, `exec`, ...).
    pub kubelet: Option<Arc<crate::kubelet_proxy::KubeletClient>>,
    /// Node and pod usage scraped from the kubelets, for `metrics.k8s.io`.
    pub resource_metrics: Arc<crate::resource_metrics::Samples>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("server_address", &self.server_address)
            .finish_non_exhaustive()
    }
}

/// One decoded resource request with everything handlers need.
pub struct Call<'a> {
    /// The API state.
    pub api: &'a Api,
    /// The resource addressed.
    pub resource: Arc<ResourceInfo>,
    /// The decoded path.
    pub request: ResourceRequest,
    /// The raw query string.
    pub query: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The request body (empty for reads).
    pub body: Bytes,
    /// Who is calling.
    pub user: &'a UserInfo,
    /// The connection's upgrade, for the subresources that switch protocols
    /// (`pods/exec`, `attach`, `portforward`); `None` in-process.
    pub upgrade: Option<&'a crate::kubelet_proxy::UpgradeSlot>,
}

impl<'a> Call<'a> {
    /// A copy of this call sharing everything but the body (which is cheap to clone).
    pub fn shallow(&self) -> Call<'a> {
        Call {
            api: self.api,
            resource: self.resource.clone(),
            request: self.request.clone(),
            query: self.query,
            headers: self.headers,
            body: self.body.clone(),
            user: self.user,
            upgrade: self.upgrade,
        }
    }

    /// A query parameter, percent-decoded.
    pub fn param(&self, key: &str) -> Option<String> {
        request::query_param(self.query, key)
    }

    /// Whether `dryRun=All` was asked for.
    pub fn dry_run(&self) -> ApiResult<bool> {
        let values: Vec<String> = request::query_params(self.query)
            .filter(|(k, _)| k == "dryRun")
            .map(|(_, v)| v)
            .collect();
        match values.as_slice() {
            [] => Ok(false),
            [v] if v == "All" => Ok(true),
            [v] if v.is_empty() => Ok(false),
            other => Err(errors::bad_request(format!(
                "Invalid dry run value: {:?}; only \"All\" is supported",
                other.join(",")
            ))),
        }
    }

    /// The namespace from the path (namespaced resources only).
    pub fn namespace(&self) -> Option<&str> {
        self.request
            .namespace
            .as_deref()
            .filter(|_| self.resource.namespaced)
    }

    /// The watch cache of this call's resource.
    pub fn cache(&self) -> Arc<WatchCache> {
        self.api.cache(&self.resource)
    }
}

impl Api {
    /// The API over `store`, serving `registry`.
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<dyn Backend>,
        server_address: String,
        auth: Arc<crate::auth::Auth>,
    ) -> Self {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let store: Arc<dyn Backend> =
            Arc::new(crate::metrics::Metered::new(store, metrics.clone()));
        Self {
            registry,
            store,
            metrics,
            caches: RwLock::new(HashMap::new()),
            server_address,
            auth,
            allocator: crate::allocator::Allocator::default(),
            openapi: crate::openapi::OpenApi::default(),
            custom: RwLock::new(Vec::new()),
            kubelet: None,
            resource_metrics: Arc::default(),
        }
    }

    /// Reaches kubelets with `client`.
    pub fn with_kubelet_client(
        mut self,
        client: Option<crate::kubelet_proxy::KubeletClient>,
    ) -> Self {
        self.kubelet = client.map(Arc::new);
        self
    }

    /// Allocates Service addresses from `network`.
    pub fn with_service_network(mut self, network: crate::allocator::ServiceNetwork) -> Self {
        self.allocator.network = network;
        self
    }

    /// Starts the watch caches of every registered resource.
    pub fn start_caches(&self) {
        // The metrics API stores nothing, so there is nothing to cache.
        for resource in self.registry.all() {
            if resource.group != crate::resource_metrics::GROUP {
                self.cache(&resource);
            }
        }
    }

    /// The watch cache of a resource, started on first use.
    pub fn cache(&self, resource: &ResourceInfo) -> Arc<WatchCache> {
        let prefix = objects::resource_prefix(resource);
        if let Some(cache) = self
            .caches
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&prefix)
        {
            return cache.clone();
        }
        let mut caches = self.caches.write().unwrap_or_else(|e| e.into_inner());
        caches
            .entry(prefix.clone())
            .or_insert_with(|| {
                // Shared storage is filtered (field selectors) as its stored kind.
                let (group, kind) =
                    match kite_api::conversion::storage(&resource.group, &resource.plural) {
                        Some(storage) => (storage.group, storage.kind),
                        None => (resource.group.as_str(), resource.kind.as_str()),
                    };
                WatchCache::start(self.store.clone(), prefix, group, kind)
            })
            .clone()
    }

    /// Schemas of the served custom resources, for OpenAPI.
    pub fn custom_resources(&self) -> Vec<kite_api::openapi::CustomResource> {
        self.custom
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|v| v.resource.clone())
            .collect()
    }

    /// The `additionalPrinterColumns` of a custom resource's version, from its CRD.
    pub fn printer_columns(&self, resource: &ResourceInfo) -> Vec<kite_api::table::PrinterColumn> {
        let custom = self.custom.read().unwrap_or_else(|e| e.into_inner());
        custom
            .iter()
            .find(|c| {
                let info = &c.resource.info;
                info.group == resource.group
                    && info.version == resource.version
                    && info.plural == resource.plural
            })
            .map(|c| kite_api::table::PrinterColumn::from_crd(&c.columns))
            .unwrap_or_default()
    }

    /// Replaces the served custom resources (see [`crate::crd::sync`]).
    pub fn set_custom_resources(&self, resources: Vec<crate::crd::ServedVersion>) {
        *self.custom.write().unwrap_or_else(|e| e.into_inner()) = resources;
    }

    /// Every watch cache, by key prefix (for metrics).
    pub fn caches(&self) -> Vec<(String, Arc<WatchCache>)> {
        let caches = self.caches.read().unwrap_or_else(|e| e.into_inner());
        caches.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Answers a request under `/api` or `/apis`; `None` if the path is not one.
    pub async fn handle<B>(&self, request: Request<B>, user: &UserInfo) -> Option<Response<Body>>
    where
        B: http_body::Body + Send,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = request.uri().path().to_string();
        let is_api = path == "/api"
            || path.starts_with("/api/")
            || path == "/apis"
            || path.starts_with("/apis/");
        if !is_api && !path.starts_with("/openapi/") {
            return None;
        }
        let query = request.uri().query().unwrap_or("").to_string();
        let method = request.method().clone();
        let parsed = request::parse(&method, &path, &query);
        if !matches!(parsed, Some(ApiPath::Resource(_)))
            && let Err(status) = self.authorize_path(user, &method, &path).await
        {
            return Some(body::status(&status));
        }
        if path.starts_with("/openapi/") {
            return self.openapi.answer(
                &self.registry,
                &self.custom_resources(),
                &path,
                request.headers(),
            );
        }
        let Some(parsed) = parsed else {
            return Some(body::status(&errors::no_such_resource()));
        };
        let (mut parts, raw_body) = request.into_parts();
        let upgrade: crate::kubelet_proxy::UpgradeSlot =
            std::sync::Mutex::new(parts.extensions.remove::<hyper::upgrade::OnUpgrade>());
        let response = match parsed {
            ApiPath::Resource(resource_request) => {
                let started = std::time::Instant::now();
                let labels = self.request_labels(&resource_request, &query, &parts.headers);
                let response = match read_body(raw_body).await {
                    Ok(body) => {
                        self.resource(
                            resource_request,
                            &query,
                            &parts.headers,
                            body,
                            user,
                            &upgrade,
                        )
                        .await
                    }
                    Err(status) => Err(status),
                };
                let code = match &response {
                    Ok(r) => r.status().as_u16(),
                    Err(status) => status.code,
                };
                let elapsed = (labels.verb != "WATCH").then(|| started.elapsed());
                self.metrics.request(labels, code, elapsed);
                response
            }
            other if method == Method::GET || method == Method::HEAD => {
                self.discovery(other, &parts.headers)
            }
            _ => Err(kite_api::Status::failure(
                kite_api::StatusReason::MethodNotAllowed,
                format!(
                    "the server does not allow this method on the requested resource ({method})"
                ),
            )),
        };
        Some(response.unwrap_or_else(|status| body::status(&status)))
    }

    /// Authorizes a request for a non-resource path (discovery, OpenAPI, `/metrics`).
    pub async fn authorize_path(
        &self,
        user: &UserInfo,
        method: &Method,
        path: &str,
    ) -> ApiResult<()> {
        let verb = match *method {
            Method::GET | Method::HEAD => "get".to_string(),
            ref other => other.as_str().to_ascii_lowercase(),
        };
        let attributes = crate::auth::Attributes {
            user,
            verb: &verb,
            resource_request: false,
            group: "",
            resource: "",
            subresource: "",
            namespace: "",
            name: "",
            path,
        };
        match self.auth.authorize(&attributes).await {
            crate::auth::Decision::Allow => Ok(()),
            crate::auth::Decision::Deny(reason) => {
                Err(crate::auth::forbidden(&attributes, &reason))
            }
        }
    }

    /// The `/metrics` text: requests and datastore calls so far, and the caches now.
    pub fn metrics_text(&self) -> String {
        let samples: Vec<crate::metrics::CacheSample> = self
            .caches()
            .into_iter()
            .map(|(prefix, cache)| crate::metrics::CacheSample {
                resource: resource_of_prefix(&prefix),
                objects: cache.len(),
                watchers: cache.watchers(),
                capacity: crate::watch_cache::HISTORY,
            })
            .collect();
        self.metrics.render(&samples)
    }

    fn request_labels(
        &self,
        request: &ResourceRequest,
        query: &str,
        headers: &HeaderMap,
    ) -> crate::metrics::RequestLabels {
        let apply = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/apply-patch"));
        let verb = match request.verb {
            Verb::Get => "GET",
            Verb::List => "LIST",
            Verb::Watch => "WATCH",
            Verb::Create => "POST",
            Verb::Update => "PUT",
            Verb::Patch if apply => "APPLY",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
            Verb::DeleteCollection => "DELETECOLLECTION",
        };
        let scope = if request.name.is_some() {
            "resource"
        } else if request.namespace.is_some() {
            "namespace"
        } else {
            "cluster"
        };
        let dry_run = request::query_param(query, "dryRun").is_some_and(|v| v == "All");
        crate::metrics::RequestLabels {
            verb,
            group: request.group.clone(),
            version: request.version.clone(),
            resource: request.resource.clone(),
            subresource: request.subresource.clone().unwrap_or_default(),
            scope,
            dry_run: if dry_run { "All" } else { "" },
        }
    }

    fn discovery(&self, path: ApiPath, headers: &HeaderMap) -> ApiResult<Response<Body>> {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let aggregated = discovery::wants_aggregated(accept);
        let doc = match (&path, aggregated) {
            (ApiPath::LegacyRoot, Some(version)) | (ApiPath::GroupsRoot, Some(version)) => {
                let doc =
                    discovery::aggregated(&self.registry, path == ApiPath::LegacyRoot, version);
                let mut response =
                    body::json(StatusCode::OK, serde_json::to_vec(&doc).unwrap_or_default());
                if let Ok(value) = discovery::aggregated_media_type(version).parse() {
                    response.headers_mut().insert(header::CONTENT_TYPE, value);
                }
                response
                    .headers_mut()
                    .insert(header::VARY, header::HeaderValue::from_static("Accept"));
                return Ok(response);
            }
            (ApiPath::LegacyRoot, None) => discovery::legacy_versions(&self.server_address),
            (ApiPath::GroupsRoot, None) => discovery::group_list(&self.registry),
            (ApiPath::Group(name), _) => {
                discovery::group(&self.registry, name).ok_or_else(errors::no_such_resource)?
            }
            (ApiPath::GroupVersion { group, version }, _) => {
                discovery::resource_list(&self.registry, group, version)
                    .ok_or_else(errors::no_such_resource)?
            }
            (ApiPath::Resource(_), _) => return Err(errors::no_such_resource()),
        };
        Ok(body::json(
            StatusCode::OK,
            serde_json::to_vec(&doc).unwrap_or_default(),
        ))
    }

    async fn resource(
        &self,
        request: ResourceRequest,
        query: &str,
        headers: &HeaderMap,
        body: Bytes,
        user: &UserInfo,
        upgrade: &crate::kubelet_proxy::UpgradeSlot,
    ) -> ApiResult<Response<Body>> {
        let resource = self
            .registry
            .get(&request.group, &request.version, &request.resource)
            .ok_or_else(errors::no_such_resource)?;
        if request.namespace.is_some() && !resource.namespaced {
            return Err(errors::no_such_resource());
        }
        let attributes = crate::auth::Attributes {
            user,
            verb: request.verb.as_str(),
            resource_request: true,
            group: &request.group,
            resource: &request.resource,
            subresource: request.subresource.as_deref().unwrap_or(""),
            namespace: request.namespace.as_deref().unwrap_or(""),
            name: request.name.as_deref().unwrap_or(""),
            path: "",
        };
        if let crate::auth::Decision::Deny(reason) = self.auth.authorize(&attributes).await {
            return Err(crate::auth::forbidden(&attributes, &reason));
        }
        // A WebSocket exec, attach or port-forward is a GET that acts like a
        // POST: as kube-apiserver 1.31+ does, it needs `create` too.
        let connect = matches!(
            request.subresource.as_deref(),
            Some("exec" | "attach" | "portforward")
        );
        if connect && request.verb == Verb::Get {
            let create = crate::auth::Attributes {
                verb: "create",
                ..attributes
            };
            if let crate::auth::Decision::Deny(reason) = self.auth.authorize(&create).await {
                return Err(crate::auth::forbidden(&create, &reason));
            }
        }
        // Creates go to the collection; updates and patches to one object.
        let misplaced = match request.verb {
            Verb::Create => request.name.is_some() && request.subresource.is_none(),
            Verb::Update | Verb::Patch => request.name.is_none(),
            _ => false,
        };
        if misplaced {
            return Err(kite_api::Status::failure(
                kite_api::StatusReason::MethodNotAllowed,
                "the server does not allow this method on the requested resource",
            ));
        }
        let call = Call {
            api: self,
            resource,
            request,
            query,
            headers,
            body,
            user,
            upgrade: Some(upgrade),
        };
        if let Some(sub) = call.request.subresource.clone() {
            return handlers::subresource(&call, &sub).await;
        }
        let verb = call.request.verb;
        if !call.resource.allows(verb.as_str()) {
            return Err(errors::method_not_allowed(&call.resource, verb.as_str()));
        }
        if let Some(r) = crate::auth::reviews::handle(&call).await {
            return r;
        }
        if let Some(r) = crate::resource_metrics::handle(&call).await {
            return r;
        }
        let terminating = call.resource.custom.as_ref().is_some_and(|c| c.terminating);
        if verb == Verb::Create && terminating {
            return Err(kite_api::Status::failure(
                kite_api::StatusReason::MethodNotAllowed,
                "create not allowed while custom resource definition is terminating",
            ));
        }
        let is_crd = call.resource.group == "apiextensions.k8s.io"
            && call.resource.plural == "customresourcedefinitions";
        let response = match verb {
            Verb::Get => handlers::get::get(&call).await,
            Verb::List => handlers::list::list(&call).await,
            Verb::Watch => handlers::watch::watch(&call).await,
            Verb::Create => handlers::create::create(&call).await,
            Verb::Update => handlers::update::update(&call, None).await,
            Verb::Patch => handlers::patch::patch(&call, None).await,
            Verb::Delete => handlers::delete::delete(&call).await,
            Verb::DeleteCollection => handlers::delete::delete_collection(&call).await,
        };
        let wrote = !matches!(verb, Verb::Get | Verb::List | Verb::Watch);
        if is_crd && wrote && response.is_ok() && !call.dry_run().unwrap_or(true) {
            crate::crd::sync(self).await;
        }
        response
    }
}

async fn read_body<B>(body: B) -> ApiResult<Bytes>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match http_body_util::Limited::new(body, codec::MAX_BODY)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error)
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(kite_api::Status::failure(
                kite_api::StatusReason::RequestEntityTooLarge,
                "Request entity too large: limit is 3145728",
            ))
        }
        Err(error) => Err(errors::bad_request(format!(
            "cannot read the request body: {error}"
        ))),
    }
}

/// `pods` or `deployments.apps` for a cache prefix such as `/registry/apps/deployments/`.
fn resource_of_prefix(prefix: &str) -> String {
    let mut parts = prefix.trim_matches('/').split('/').skip(1);
    match (parts.next(), parts.next()) {
        (Some("core"), Some(plural)) => plural.to_string(),
        (Some(group), Some(plural)) => format!("{plural}.{group}"),
        _ => prefix.to_string(),
    }
}

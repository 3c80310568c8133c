//! Maps a request path to its handler, enforcing authentication first.
//!
//! Only the public-info endpoints (health, `/version`, `/cacerts`) answer
//! anonymous callers, mirroring kube-apiserver's `system:public-info-viewer`
//! role; every other path needs an authenticated user or gets a 401 `Status`.

use crate::authn::UserInfo;
use crate::body::{self, Body};
use crate::health::{Endpoint, Health};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use kite_api::{Status, StatusReason, VersionInfo};
use std::sync::Arc;

/// Shared state behind every request.
#[derive(Debug)]
pub struct Router {
    auth: Arc<crate::auth::Auth>,
    api: Option<Arc<crate::api::Api>>,
    health: Arc<Health>,
    version_json: Bytes,
    server_ca_pem: Bytes,
    in_flight: crate::inflight::InFlight,
}

impl Router {
    /// A router answering with the given health checks, version and server CA.
    pub fn new(health: Arc<Health>, version: &VersionInfo, server_ca_pem: Bytes) -> Self {
        Self {
            auth: Arc::new(crate::auth::Auth::default()),
            api: None,
            health,
            version_json: serde_json::to_vec_pretty(version)
                .unwrap_or_default()
                .into(),
            server_ca_pem,
            in_flight: crate::inflight::InFlight::new(crate::inflight::Limits::default()),
        }
    }

    /// Refuses requests beyond `limits` with 429 (see [`crate::inflight`]).
    pub fn with_in_flight_limits(mut self, limits: crate::inflight::Limits) -> Self {
        self.in_flight = crate::inflight::InFlight::new(limits);
        self
    }

    /// Authenticates and authorizes requests with `auth`.
    pub fn with_auth(mut self, auth: Arc<crate::auth::Auth>) -> Self {
        self.auth = auth;
        self
    }

    /// Serves the resource API from `api` under `/api` and `/apis`.
    pub fn with_api(mut self, api: Arc<crate::api::Api>) -> Self {
        self.api = Some(api);
        self
    }

    /// Answers one request; `tls_user` is who the connection's client certificate names.
    pub async fn handle<B>(
        &self,
        request: Request<B>,
        tls_user: Option<Arc<UserInfo>>,
    ) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let head = request.method() == Method::HEAD;
        let mut response = self.respond(request, tls_user).await;
        if head {
            // A HEAD answer has the GET's headers and no body (HTTP/2 peers
            // treat body bytes after a HEAD as a protocol error).
            *response.body_mut() = body::full(Bytes::new());
        }
        response
    }

    async fn respond<B>(
        &self,
        request: Request<B>,
        tls_user: Option<Arc<UserInfo>>,
    ) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = request.uri().path();
        let query = request.uri().query().unwrap_or("");
        let read_only = matches!(*request.method(), Method::GET | Method::HEAD);

        if read_only {
            if let Some((endpoint, single)) = Endpoint::parse(path) {
                return self.health.answer(endpoint, single, query).await;
            }
            match path {
                "/version" | "/version/" => {
                    return body::json(StatusCode::OK, self.version_json.clone());
                }
                "/cacerts" => {
                    let mut response = body::text(StatusCode::OK, "");
                    *response.body_mut() = body::full(self.server_ca_pem.clone());
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("application/x-pem-file"),
                    );
                    return response;
                }
                _ => {}
            }
        }

        let Some(user) = self.auth.authenticate(request.headers(), tls_user).await else {
            return body::status(&Status::unauthorized());
        };
        let user = match self.auth.impersonate(request.headers(), user).await {
            Ok(user) => user,
            Err(status) => return body::status(&status),
        };
        let user = &*user;
        let privileged = user.groups.iter().any(|g| g == "system:masters");
        let _slot = match self
            .in_flight
            .admit(request.method(), path, query, privileged)
        {
            crate::inflight::Admit::Go(slot) => slot,
            crate::inflight::Admit::Refuse => return too_many_requests(),
        };
        if path == "/metrics"
            && read_only
            && let Some(api) = &self.api
        {
            if let Err(status) = api.authorize_path(user, request.method(), path).await {
                return body::status(&status);
            }
            let mut response = body::text(StatusCode::OK, "");
            *response.body_mut() = body::full(Bytes::from(api.metrics_text()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return response;
        }
        if let Some(api) = &self.api
            && let Some(response) = api.handle(request, user).await
        {
            return response;
        }
        tracing::debug!(user = %user.name, "no handler for path");
        body::status(&Status::failure(
            StatusReason::NotFound,
            "the server could not find the requested resource",
        ))
    }
}

/// kube-apiserver's answer when every in-flight slot is taken.
fn too_many_requests() -> Response<Body> {
    let status = Status::failure(
        StatusReason::TooManyRequests,
        "Too many requests, please try again later.",
    )
    .with_details(kite_api::status::StatusDetails {
        retry_after_seconds: Some(1),
        ..Default::default()
    });
    body::status(&status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn router() -> Router {
        Router::new(
            Arc::new(Health::new(vec![])),
            &VersionInfo::new("test", "now"),
            Bytes::from_static(b"-----BEGIN CERTIFICATE-----\n"),
        )
    }

    fn get(path: &str) -> Request<http_body_util::Empty<Bytes>> {
        Request::get(path)
            .body(http_body_util::Empty::new())
            .expect("request")
    }

    async fn json_of(response: Response<Body>) -> serde_json::Value {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn anonymous_callers_get_401_status_on_api_paths() {
        let response = router().handle(get("/api"), None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let status = json_of(response).await;
        assert_eq!(status["reason"], "Unauthorized");
        assert_eq!(status["code"], 401);
    }

    #[tokio::test]
    async fn anonymous_callers_may_read_version_and_health() {
        let router = router();
        let response = router.handle(get("/version"), None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(json_of(response).await["gitVersion"], "v1.33.0+kite");
        assert_eq!(
            router.handle(get("/readyz"), None).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            router.handle(get("/cacerts"), None).await.status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn writes_to_public_paths_still_need_credentials() {
        let request = Request::post("/version")
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request");
        let response = router().handle(request, None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn authenticated_callers_get_404_status_for_unknown_paths() {
        let user = UserInfo {
            name: "system:admin".into(),
            groups: vec!["system:masters".into()],
        };
        let response = router().handle(get("/nope"), Some(Arc::new(user))).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(json_of(response).await["reason"], "NotFound");
    }
}

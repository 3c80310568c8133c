//! The API as a `tower::Service`, for components running inside `kite server`.
//!
//! The scheduler and controllers talk to the apiserver through the same
//! Kubernetes API every other client uses (so they could run in an agent over
//! HTTPS unchanged), but inside the server process there is no reason to pay for
//! TCP and TLS: [`InProcess`] hands each request straight to [`Router::handle`]
//! under a fixed identity, and `kube::Client::new(service, namespace)` wraps it.
//! Authorization still runs, so the identity decides what the component may do.

use crate::authn::{AUTHENTICATED_GROUP, UserInfo};
use crate::body::Body;
use crate::router::Router;
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A cloneable service answering requests through the router as one user.
#[derive(Clone, Debug)]
pub struct InProcess {
    router: Arc<Router>,
    user: Arc<UserInfo>,
}

impl InProcess {
    /// A service calling `router` as `user` in `groups` (plus `system:authenticated`).
    pub fn new(router: Arc<Router>, user: &str, groups: &[&str]) -> Self {
        let mut groups: Vec<String> = groups.iter().map(|g| (*g).to_string()).collect();
        groups.push(AUTHENTICATED_GROUP.to_string());
        Self {
            router,
            user: Arc::new(UserInfo {
                name: user.to_string(),
                groups,
            }),
        }
    }

    /// Who requests through this service are made as.
    pub fn user(&self) -> &UserInfo {
        &self.user
    }
}

impl<B> tower::Service<Request<B>> for InProcess
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router has no capacity limit of its own: every request is a task.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let router = self.router.clone();
        let user = self.user.clone();
        Box::pin(async move { Ok(router.handle(request, Some(user)).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Health;
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use kite_api::VersionInfo;
    use tower::ServiceExt;

    #[tokio::test]
    async fn requests_reach_the_router_as_the_fixed_user() {
        let router = Arc::new(Router::new(
            Arc::new(Health::new(vec![])),
            &VersionInfo::new("test", "now"),
            Bytes::from_static(b"ca"),
        ));
        let service = InProcess::new(router, "system:kube-scheduler", &["system:masters"]);
        assert_eq!(service.user().name, "system:kube-scheduler");
        assert!(
            service
                .user()
                .groups
                .iter()
                .any(|g| g == AUTHENTICATED_GROUP)
        );
        let request = Request::get("/version")
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request");
        let response = service.oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), http::StatusCode::OK);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert!(body.starts_with(b"{"));
    }
}

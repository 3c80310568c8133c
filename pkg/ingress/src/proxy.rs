//! The HTTP server on ports 80 and 443 and the forwarding to endpoints.
//!
//! Clients speak HTTP/1.1 or HTTP/2 (prior knowledge in the clear, ALPN over
//! TLS); endpoints get HTTP/1.1 over keep-alive connections from the server
//! thread's [`Pool`], tried in the order [`crate::attempts`] gives.
//! Upgrades (WebSocket) are answered with the endpoint's 101 and the two
//! connections are then spliced byte for byte.

use crate::attempts::{self, Attempt, Attempts};
use crate::backends::Backends;
use crate::h1::upstream::Upstreams;
use crate::pool::{ConnectError, Pool, PooledBody, RequestBody, Sender};
use crate::routes::Table;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// The routing table and endpoints, swapped whole on every sync.
#[derive(Default)]
pub struct State {
    table: RwLock<Arc<Table>>,
    backends: RwLock<Arc<Backends>>,
}

impl State {
    /// Replaces the routes and their endpoints.
    pub fn set(&self, table: Table, backends: Backends) {
        let backends = Arc::new(backends);
        {
            let mut current = self
                .backends
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            backends.carry_cursors_from(&current);
            *current = backends;
        }
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
    }

    fn snapshot(&self) -> (Arc<Table>, Arc<Backends>) {
        (
            self.table
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            self.backends
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// The forwarding half: routes, endpoints and the connections to them.
#[derive(Clone)]
pub struct Proxy {
    state: Arc<State>,
    pool: Arc<Pool>,
    upstreams: Arc<Upstreams>,
}

impl Proxy {
    /// A proxy over `state` with pools of its own.
    pub fn new(state: Arc<State>) -> Self {
        Self {
            state,
            pool: Arc::default(),
            upstreams: Arc::default(),
        }
    }

    /// The general server's pool of connections to endpoints.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The HTTP/1.1 path's pool of connections to endpoints.
    pub fn upstreams(&self) -> &Arc<Upstreams> {
        &self.upstreams
    }

    /// The current routes and endpoints.
    pub(crate) fn snapshot(&self) -> (Arc<Table>, Arc<Backends>) {
        self.state.snapshot()
    }

    /// Serves plain HTTP on `listener` until the future is dropped.
    pub async fn serve_http(self, listener: TcpListener) {
        loop {
            let (stream, peer) = accept(&listener).await;
            let proxy = self.clone();
            tokio::spawn(crate::h1::serve(proxy, stream, peer));
        }
    }

    /// Serves HTTPS on `listener` with `tls` until the future is dropped.
    pub async fn serve_https(self, listener: TcpListener, tls: Arc<rustls::ServerConfig>) {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let (stream, peer) = accept(&listener).await;
            let proxy = self.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let handshake =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await;
                match handshake {
                    Ok(Ok(stream)) => {
                        proxy
                            .serve_connection(TokioIo::new(stream), peer, "https")
                            .await
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "ingress: TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(%peer, "ingress: TLS handshake timed out"),
                }
            });
        }
    }

    /// Serves one connection with hyper: HTTP/1 and HTTP/2, every request
    /// shape (the plain-HTTP path hands over what it does not take).
    pub(crate) async fn serve_connection<I>(
        &self,
        io: TokioIo<I>,
        peer: SocketAddr,
        scheme: &'static str,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let proxy = self.clone();
        let service = hyper::service::service_fn(move |request| {
            let proxy = proxy.clone();
            async move { Ok::<_, std::convert::Infallible>(proxy.handle(request, peer, scheme).await) }
        });
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        if let Err(error) = builder.serve_connection_with_upgrades(io, service).await {
            tracing::debug!(%peer, %error, "ingress: connection ended with an error");
        }
    }

    /// Routes and forwards one request.
    pub async fn handle(
        &self,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        scheme: &'static str,
    ) -> Response<ResponseBody> {
        let host = host_of(&request);
        let host_name = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
        let (backend, order) = match attempts::route(self, host_name, request.uri().path()) {
            Ok(routed) => routed,
            Err(refusal) => return error_page(refusal.status, &refusal.message),
        };

        let upgrade = upgrade_protocol(&request);
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        if let Some(protocol) = upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol);
        }
        set_forwarded(&mut headers, host, peer, scheme);
        let uri = origin_form(parts.uri);
        let bodyless = body.is_end_stream();
        // What sending it once more takes (see the module's comment).
        let spare = (bodyless && idempotent(&parts.method))
            .then(|| (parts.method.clone(), uri.clone(), headers.clone()));
        let body = if bodyless {
            Either::Right(Empty::new())
        } else {
            Either::Left(body)
        };
        let mut outgoing = Some(outgoing(parts.method, uri, headers, body));

        let mut last_error: Option<ConnectError> = None;
        let mut attempts = Attempts::new(order, spare.is_some());
        while let Some(Attempt { endpoint, pooled }) = attempts.current() {
            let Some(request) = outgoing.take() else {
                break;
            };
            let idle = if pooled {
                self.pool.idle(endpoint).await
            } else {
                None
            };
            let reused = idle.is_some();
            let mut sender = match idle {
                Some(sender) => sender,
                None => match Pool::connect(endpoint).await {
                    Ok(sender) => sender,
                    Err(error) => {
                        tracing::debug!(%endpoint, %error, "ingress: endpoint refused; trying the next");
                        last_error = Some(error);
                        outgoing = Some(request);
                        attempts.refused();
                        continue;
                    }
                },
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    return self.respond(response, endpoint, sender, client_upgrade);
                }
                Err(mut error) => {
                    if let Some(request) = error.take_message() {
                        tracing::debug!(%endpoint, error = %error.error(), "ingress: connection closed before sending");
                        outgoing = Some(request);
                        attempts.closed_before_sending(reused);
                        continue;
                    }
                    let error = error.into_error();
                    match &spare {
                        Some((method, uri, headers)) if attempts.failed(reused) => {
                            tracing::debug!(%endpoint, %error, "ingress: endpoint failed; retrying once");
                            outgoing = Some(outgoing_again(method, uri, headers));
                        }
                        _ => {
                            tracing::debug!(%endpoint, %error, "ingress: endpoint failed");
                            return error_page(StatusCode::BAD_GATEWAY, "the backend failed");
                        }
                    }
                }
            }
        }
        if let Some(error) = last_error {
            tracing::debug!(%error, service = %backend.service, "ingress: every endpoint refused");
        }
        error_page(
            StatusCode::BAD_GATEWAY,
            "no endpoint accepted the connection",
        )
    }

    /// The endpoint's response for the client; a 101 splices the connections.
    fn respond(
        &self,
        mut response: Response<Incoming>,
        endpoint: SocketAddr,
        sender: Sender,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ResponseBody> {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return error_page(
                    StatusCode::BAD_GATEWAY,
                    "the backend switched protocols unasked",
                );
            };
            let backend_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                let (Ok(client), Ok(backend)) = (client_upgrade.await, backend_upgrade.await)
                else {
                    tracing::debug!("ingress: an upgrade did not complete");
                    return;
                };
                let mut client = TokioIo::new(client);
                let mut backend = TokioIo::new(backend);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
            });
            // The connection is the WebSocket's now, never the pool's.
            return response.map(|body| Either::Left(PooledBody::unpooled(body)));
        }
        strip_hop_by_hop(response.headers_mut());
        let pool = self.pool.clone();
        response.map(|body| Either::Left(PooledBody::new(body, pool, endpoint, sender)))
    }
}

/// The host a request is for: its URI's authority (HTTP/2, absolute form)
/// or its Host header.
fn host_of<B>(request: &Request<B>) -> Option<HeaderValue> {
    match request.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => request.headers().get(header::HOST).cloned(),
    }
}

/// `uri` as an HTTP/1.1 request line to an origin server wants it: the path
/// and query alone.
fn origin_form(uri: Uri) -> Uri {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return uri;
    }
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}

fn outgoing(
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: RequestBody,
) -> Request<RequestBody> {
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    request
}

/// A second copy of a request without a body.
fn outgoing_again(method: &Method, uri: &Uri, headers: &HeaderMap) -> Request<RequestBody> {
    outgoing(
        method.clone(),
        uri.clone(),
        headers.clone(),
        Either::Right(Empty::new()),
    )
}

/// The next connection on `listener`, with Nagle off; failed accepts (out of
/// file descriptors, a connection reset in the backlog) are waited out.
async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(error) => {
                tracing::debug!(%error, "ingress: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Methods a repeated request does no harm with (RFC 9110, 9.2.2).
fn idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// The protocol a request asks to upgrade to (HTTP/1.1 `Connection: upgrade`).
fn upgrade_protocol<B>(request: &Request<B>) -> Option<HeaderValue> {
    if request.version() != Version::HTTP_11 {
        return None;
    }
    let asks = request
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| request.headers().get(header::UPGRADE).cloned())
        .flatten()
}

/// Headers for one connection only (RFC 9110 §7.6.1), and those the
/// `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::try_from(token.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::TRAILER,
    ] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
}

/// The client's address, scheme and host for the endpoint. Values the client
/// sent are replaced, not trusted: nothing sits in front of kite's ingress.
fn set_forwarded(
    headers: &mut HeaderMap,
    host: Option<HeaderValue>,
    peer: SocketAddr,
    scheme: &'static str,
) {
    if let Ok(value) = HeaderValue::try_from(peer.ip().to_canonical().to_string()) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), value.clone());
        headers.insert(HeaderName::from_static("x-real-ip"), value);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(scheme),
    );
    if let Some(value) = host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), value.clone());
        headers.insert(header::HOST, value);
    }
}

/// The text of kite's error page for `status`.
pub(crate) fn page_text(status: StatusCode, message: &str) -> String {
    format!(
        "{} {}: {message}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}

fn error_page(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let body = page_text(status, message);
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// What the server answers with: an endpoint's body streamed through, or
/// kite's own error page.
pub type ResponseBody = Either<PooledBody, Full<Bytes>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::ACCEPT));
    }

    #[test]
    fn forwarded_headers_replace_what_the_client_sent() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        set_forwarded(
            &mut headers,
            Some(HeaderValue::from_static("a.example:8080")),
            "[::ffff:192.0.2.7]:5555".parse().unwrap(),
            "https",
        );
        assert_eq!(headers["x-forwarded-for"], "192.0.2.7");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "a.example:8080");
        assert_eq!(headers[header::HOST], "a.example:8080");
    }

    #[test]
    fn only_http1_requests_naming_upgrade_are_upgrades() {
        let request = Request::builder()
            .header(header::CONNECTION, "keep-alive, Upgrade")
            .header(header::UPGRADE, "websocket")
            .body(())
            .unwrap();
        assert_eq!(upgrade_protocol(&request).unwrap(), "websocket");
        let request = Request::builder()
            .header(header::UPGRADE, "websocket")
            .body(())
            .unwrap();
        assert!(upgrade_protocol(&request).is_none());
    }

    mod end_to_end {
        use super::super::*;
        use crate::backends::Backends;
        use crate::routes::Table;
        use http_body_util::{BodyExt, Full};
        use hyper_util::client::legacy::Client;
        use hyper_util::client::legacy::connect::HttpConnector;
        use serde_json::json;

        /// A backend answering with the body it read and the X-Forwarded-For it saw.
        async fn backend() -> SocketAddr {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    tokio::spawn(async move {
                        let service =
                            hyper::service::service_fn(|request: Request<Incoming>| async move {
                                let xff = request.headers().get("x-forwarded-for").cloned();
                                let body = request.into_body().collect().await?.to_bytes();
                                let text = format!(
                                    "{} {}",
                                    xff.and_then(|v| v.to_str().ok().map(str::to_string))
                                        .unwrap_or_default(),
                                    String::from_utf8_lossy(&body)
                                );
                                Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(text))))
                            });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            addr
        }

        fn refused() -> SocketAddr {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        }

        fn slice(
            service: &str,
            name: &str,
            port: u16,
        ) -> Arc<k8s_openapi::api::discovery::v1::EndpointSlice> {
            Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "default",
                                 "labels": {"kubernetes.io/service-name": service}},
                    "addressType": "IPv4",
                    "ports": [{"name": "http", "port": port}],
                    "endpoints": [{"addresses": ["127.0.0.1"]}],
                }))
                .unwrap(),
            )
        }

        fn service(name: &str) -> Arc<k8s_openapi::api::core::v1::Service> {
            Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"ports": [{"name": "http", "port": 80}]},
                }))
                .unwrap(),
            )
        }

        async fn proxy(backend: SocketAddr) -> SocketAddr {
            let rule = |host: &str, svc: &str| {
                json!({"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}})
            };
            let ingress = Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"name": "a", "namespace": "default"},
                    "spec": {"ingressClassName": "kite", "rules": [
                        rule("live", "live"), rule("dead", "dead"), rule("empty", "empty")]},
                }))
                .unwrap(),
            );
            let table = Table::build(&[ingress], false);
            let backends = Backends::build(
                &table.backends(),
                &[service("live"), service("dead"), service("empty")],
                &[
                    slice("live", "live-refused", refused().port()),
                    slice("live", "live-ok", backend.port()),
                    slice("dead", "dead", refused().port()),
                ],
            );
            let state = Arc::new(State::default());
            state.set(table, backends);
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(Proxy::new(state).serve_http(listener));
            addr
        }

        async fn send(
            client: &Client<HttpConnector, Full<Bytes>>,
            proxy: SocketAddr,
            host: &str,
        ) -> (StatusCode, String) {
            let request = Request::post(format!("http://{proxy}/x"))
                .header(header::HOST, host)
                .header("x-forwarded-for", "6.6.6.6")
                .body(Full::new(Bytes::from_static(b"payload")))
                .unwrap();
            let response = client.request(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }

        #[tokio::test]
        async fn refused_endpoints_are_skipped_with_the_body_intact_and_errors_have_pages() {
            tokio::time::timeout(Duration::from_secs(20), async {
                let proxy = proxy(backend().await).await;
                let client = Client::builder(TokioExecutor::new()).build_http();
                // Round-robin starts every other request at the refusing endpoint.
                for _ in 0..4 {
                    assert_eq!(
                        send(&client, proxy, "live").await,
                        (StatusCode::OK, "127.0.0.1 payload".to_string())
                    );
                }
                assert_eq!(
                    send(&client, proxy, "dead").await.0,
                    StatusCode::BAD_GATEWAY
                );
                assert_eq!(
                    send(&client, proxy, "empty").await.0,
                    StatusCode::SERVICE_UNAVAILABLE
                );
                assert_eq!(
                    send(&client, proxy, "nobody").await.0,
                    StatusCode::NOT_FOUND
                );
            })
            .await
            .unwrap();
        }
    }
}

//! The kubelet API's HTTPS listener: TLS with client certificates required
//! (signed by the cluster's client CA: the apiserver's kubelet client
//! certificate), HTTP/1.1 with upgrades (exec, attach and port-forward
//! switch protocols on the same connection), and the path router.
//!
//! Authorization is by name until the kubelet asks the apiserver
//! (SubjectAccessReview, as kubelets with webhook authorization do): only the
//! apiserver's kubelet client certificate and `system:masters` may call it,
//! which a certificate of the client CA alone would not guarantee.

use super::query::Query;
use super::{Backend, BackendError, ContainerRef, logs};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Every response body the kubelet API produces.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// The CN of the apiserver's client certificate for kubelets.
pub const APISERVER_CLIENT: &str = "kube-apiserver-kubelet-client";

/// Who a client certificate names: its CN and organizations (groups).
fn caller(der: &[u8]) -> Option<(String, Vec<String>)> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((name, groups))
}

/// Whether a caller may use the kubelet API.
pub fn allowed(name: &str, groups: &[String]) -> bool {
    name == APISERVER_CLIENT || groups.iter().any(|g| g == "system:masters")
}

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS configuration of the kubelet API: `cert_pem` (leaf first) and
/// `key_pem` serve, and clients must present a certificate `client_ca_pem` signed.
pub fn tls_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> Result<rustls::ServerConfig, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("kubelet serving certificate: {e}"))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("kubelet serving key: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca_pem) {
        let ca = ca.map_err(|e| format!("client CA: {e}"))?;
        roots.add(ca).map_err(|e| format!("client CA: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("client CA: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("kubelet serving certificate and key: {e}"))?;
    // Upgrades need HTTP/1.1; the apiserver is the only client.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves the kubelet API on `listener` until the future is dropped.
pub async fn serve(listener: TcpListener, tls: rustls::ServerConfig, backend: Arc<dyn Backend>) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "kubelet API: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let backend = backend.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "kubelet API: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let (user, groups) = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| caller(leaf))
                .unwrap_or_default();
            let permitted = allowed(&user, &groups);
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let backend = backend.clone();
                let user = user.clone();
                async move {
                    if !permitted {
                        let verb = request.method().as_str().to_ascii_lowercase();
                        let message = format!(
                            "Forbidden (user={user}, verb={verb}, resource=nodes, subresource=proxy)"
                        );
                        return Ok::<_, std::convert::Infallible>(text(
                            StatusCode::FORBIDDEN,
                            message,
                        ));
                    }
                    Ok(route(backend, request).await)
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "kubelet API: connection ended with an error");
            }
        });
    }
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed()
}

/// A plain-text response, as the kubelet writes its errors.
pub fn text(code: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut text = text.into();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let mut response = Response::new(full(text));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A JSON response.
pub fn json(value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The response for a backend error.
pub fn error(error: &BackendError) -> Response<Body> {
    let code = match error {
        BackendError::NotFound(_) => StatusCode::NOT_FOUND,
        BackendError::BadRequest(_) => StatusCode::BAD_REQUEST,
        BackendError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    text(code, error.to_string())
}

async fn route(backend: Arc<dyn Backend>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let query = Query::parse(request.uri().query().unwrap_or(""));
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(super::query::decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    let stream = method == Method::GET || method == Method::POST;
    match segments.as_slice() {
        ["healthz"] if read => text(StatusCode::OK, "ok"),
        ["pods"] | ["pods", ""] if read => json(&backend.pods()),
        ["stats", "summary"] if read => json(&backend.stats_summary().await),
        ["metrics"] if read => {
            let mut response = text(StatusCode::OK, backend.metrics());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        ["containerLogs", namespace, pod, container] if read => {
            let target = ContainerRef {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                container: container.to_string(),
            };
            container_logs(&*backend, &target, &query)
        }
        ["exec", namespace, pod, container] if stream => {
            let target = ContainerRef {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                container: container.to_string(),
            };
            super::remotecommand::serve(backend, request, target, &query, true)
        }
        ["attach", namespace, pod, container] if stream => {
            let target = ContainerRef {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                container: container.to_string(),
            };
            super::remotecommand::serve(backend, request, target, &query, false)
        }
        ["run", namespace, pod, container] if method == Method::POST => {
            let target = ContainerRef {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                container: container.to_string(),
            };
            super::run::serve(backend, target, &query).await
        }
        ["portForward", namespace, pod] if stream => {
            super::portforward::serve(backend, request, namespace, pod, &query)
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

fn container_logs(backend: &dyn Backend, target: &ContainerRef, query: &Query) -> Response<Body> {
    let options = match logs::LogOptions::parse(query) {
        Ok(options) => options,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let source = match backend.log(target, options.previous) {
        Ok(source) => source,
        Err(e) => return error(&e),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(logs::stream(source, options, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item.map(Frame::data), rx))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_apiserver_and_masters_may_call() {
        assert!(allowed(APISERVER_CLIENT, &[]));
        assert!(allowed("admin", &["system:masters".to_string()]));
        assert!(!allowed("system:node:n1", &["system:nodes".to_string()]));
        assert!(!allowed("", &[]));
    }

    #[test]
    fn callers_are_read_from_certificates() {
        let ca = rcgen_like_cert();
        assert_eq!(caller(&ca).map(|(n, _)| n), Some("kite-test".to_string()));
        assert!(caller(b"not a certificate").is_none());
    }

    /// A self-signed certificate with CN `kite-test` (DER, from a fixed PEM).
    fn rcgen_like_cert() -> Vec<u8> {
        let pem = include_str!("testdata/cn-kite-test.pem");
        CertificateDer::from_pem_slice(pem.as_bytes())
            .map(|c| c.to_vec())
            .unwrap()
    }
}

//! `/portForward/{namespace}/{pod}`: Kubernetes' port-forward protocol.
//! Over SPDY/3.1 (`portforward.k8s.io`), and over a WebSocket tunnel that
//! carries the same SPDY bytes (`SPDY/3.1+portforward.k8s.io`, kubectl 1.31
//! on). Each forwarded connection is a pair of client streams sharing a
//! `requestID`: `streamType: data` carries the bytes, `streamType: error`
//! gets the message when the pod's port cannot be reached.

use super::http::{Body, text};
use super::query::Query;
use super::remotecommand::{no_protocol, offered_stream_protocols, spdy_accept};
use super::{Backend, spdy, websocket};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The SPDY subprotocol of port-forward.
pub const PROTOCOL: &str = "portforward.k8s.io";

/// Answers a port-forward request: the upgrade, then the session.
pub fn serve(
    backend: Arc<dyn Backend>,
    mut request: Request<Incoming>,
    namespace: &str,
    pod: &str,
    _query: &Query,
) -> Response<Body> {
    let headers = request.headers().clone();
    let upgrade = hyper::upgrade::on(&mut request);
    let (namespace, pod) = (namespace.to_string(), pod.to_string());
    if websocket::is_upgrade(&headers) {
        let offered = websocket::offered(&headers);
        let Some(protocol) = websocket::negotiate(&offered, &[websocket::TUNNEL_PROTOCOL]) else {
            return no_protocol(&offered, &[websocket::TUNNEL_PROTOCOL]);
        };
        let Some(response) = websocket::accept(&headers, protocol) else {
            return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
        };
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else {
                return;
            };
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            run(backend, websocket::tunnel(ws), namespace, pod).await;
        });
        return response;
    }
    if super::remotecommand::is_spdy(&headers) {
        let offered = offered_stream_protocols(&headers);
        let Some(protocol) = websocket::negotiate(&offered, &[PROTOCOL]) else {
            return no_protocol(&offered, &[PROTOCOL]);
        };
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else {
                return;
            };
            run(backend, TokioIo::new(upgraded), namespace, pod).await;
        });
        return spdy_accept(protocol);
    }
    text(StatusCode::BAD_REQUEST, "Upgrade request required")
}

/// Pairs the client's streams by request and forwards each pair.
async fn run<T>(backend: Arc<dyn Backend>, io: T, namespace: String, pod: String)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut session = spdy::Session::server(io);
    let mut pending: HashMap<String, (Option<spdy::Stream>, Option<spdy::Stream>)> = HashMap::new();
    while let Some(stream) = session.streams.recv().await {
        let request = stream.header("requestid").unwrap_or("").to_string();
        let entry = pending.entry(request.clone()).or_default();
        match stream.header("streamtype") {
            Some("data") => entry.0 = Some(stream),
            Some("error") => entry.1 = Some(stream),
            _ => continue,
        }
        if entry.0.is_some()
            && entry.1.is_some()
            && let Some((Some(data), Some(error))) = pending.remove(&request)
        {
            tokio::spawn(forward(
                backend.clone(),
                namespace.clone(),
                pod.clone(),
                data,
                error,
            ));
        }
    }
    session.close().await;
}

async fn forward(
    backend: Arc<dyn Backend>,
    namespace: String,
    pod: String,
    data: spdy::Stream,
    mut error: spdy::Stream,
) {
    let port = data
        .header("port")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p > 0);
    let Some(port) = port else {
        let message = format!(
            "invalid port header {:?}",
            data.header("port").unwrap_or("")
        );
        let _ = error.writer.write_all(message.as_bytes()).await;
        let _ = error.writer.shutdown().await;
        return;
    };
    let connection = match backend.port_forward(&namespace, &pod, port).await {
        Ok(connection) => connection,
        Err(e) => {
            let message = format!("error forwarding port {port} to pod {pod}: {e}");
            let _ = error.writer.write_all(message.as_bytes()).await;
            let _ = error.writer.shutdown().await;
            let mut writer = data.writer;
            let _ = writer.shutdown().await;
            return;
        }
    };
    let (mut from_pod, mut to_pod) = tokio::io::split(connection);
    let spdy::Stream {
        mut reader,
        mut writer,
        ..
    } = data;
    let upstream = async {
        let _ = tokio::io::copy(&mut reader, &mut to_pod).await;
        let _ = to_pod.shutdown().await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut from_pod, &mut writer).await;
        let _ = writer.shutdown().await;
    };
    tokio::join!(upstream, downstream);
    let _ = error.writer.shutdown().await;
}

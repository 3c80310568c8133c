//! The HTTP/1.1 path for plain-HTTP clients, shaped like nginx's proxy: one
//! task per client connection reads a whole request into its buffer, sends
//! it to an endpoint connection it holds for the exchange, and relays the
//! response back, bytes as they came, framing and all.
//!
//! The general server (hyper, in [`crate::proxy`]) costs a task hand-off,
//! header maps and body channels per request, which made the ingress use a
//! third more CPU per request than nginx. Anything this path does not take
//! (see [`head`]: HTTP/1.0, HTTP/2, upgrades, `Expect`, request bodies over
//! [`MAX_REQUEST`], malformed heads) hands the connection, with the bytes
//! read so far, to the general server for the rest of its life.
//!
//! Routing, endpoint order and retries come from [`crate::attempts`], as
//! for the general server; forwarded headers and error pages are its too.

pub mod framing;
pub mod head;
pub mod rewind;
pub mod upstream;

use crate::attempts::{self, Attempt, Attempts};
use crate::proxy::{Proxy, page_text};
use bytes::{Buf, BytesMut};
use framing::{ChunkedEnd, Framing};
use head::{Parsed, ParsedResponse, Request};
use http::StatusCode;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use upstream::Upstream;

/// Read buffer of a client connection.
const BUFFER: usize = 8 * 1024;
/// Largest request (head and body) held whole; larger ones go to the
/// general server, which streams bodies.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Largest response head read from an endpoint.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Serves one plain-HTTP client connection.
pub async fn serve(proxy: Proxy, mut client: TcpStream, peer: SocketAddr) {
    let mut buffer = BytesMut::with_capacity(BUFFER);
    let mut out = Vec::with_capacity(BUFFER);
    let mut scratch = Vec::with_capacity(1024);
    loop {
        let (request, total) = loop {
            if !buffer.is_empty() {
                match head::parse_request(&buffer, peer.ip(), "http", &mut scratch) {
                    Parsed::Request(request) => match whole(&request, &buffer) {
                        Whole::Complete(total) => break (request, total),
                        Whole::Incomplete => scratch = request.upstream,
                        Whole::Invalid => return hand_over(proxy, client, buffer, peer).await,
                    },
                    Parsed::Other => return hand_over(proxy, client, buffer, peer).await,
                    Parsed::Partial => {}
                }
                if buffer.len() >= MAX_REQUEST {
                    return hand_over(proxy, client, buffer, peer).await;
                }
            }
            if buffer.capacity() - buffer.len() < 1024 {
                buffer.reserve(BUFFER);
            }
            match client.read_buf(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let open = exchange(&proxy, &mut client, &request, &buffer[..total], &mut out).await;
        buffer.advance(total);
        scratch = request.upstream;
        if !open || request.close {
            return;
        }
    }
}

/// The general server takes the connection from here.
async fn hand_over(proxy: Proxy, client: TcpStream, read: BytesMut, peer: SocketAddr) {
    let io = rewind::Rewind::new(read.freeze(), client);
    proxy.serve_connection(TokioIo::new(io), peer, "http").await;
}

/// Whether a request's body is all in the buffer.
enum Whole {
    /// It is; the request with its body is this long.
    Complete(usize),
    /// More is to come.
    Incomplete,
    /// The body's chunked coding is broken (the general server refuses it).
    Invalid,
}

fn whole(request: &Request, buffer: &[u8]) -> Whole {
    let body = &buffer[request.length..];
    let length = match request.body {
        Framing::Empty => Some(0),
        Framing::Length(n) => usize::try_from(n).ok().filter(|&n| n <= body.len()),
        Framing::Chunked => {
            let mut end = ChunkedEnd::default();
            match end.feed(body) {
                Ok(length) => end.is_done().then_some(length),
                Err(_) => return Whole::Invalid,
            }
        }
        Framing::UntilClose => return Whole::Invalid,
    };
    match length {
        Some(length) => Whole::Complete(request.length + length),
        None => Whole::Incomplete,
    }
}

/// How relaying a response went.
enum Relayed {
    /// Whole: whether the endpoint connection and the client's stay open.
    Done { reusable: bool, client_open: bool },
    /// Nothing came back from the endpoint; the client has seen nothing.
    NoResponse(std::io::Error),
    /// The endpoint's answer was not HTTP; the client has seen nothing.
    Invalid,
    /// Failed after the client saw part of the response.
    Broken,
}

/// Routes and forwards one request (`raw`: its bytes as the client sent
/// them); false if the client's connection must close.
async fn exchange(
    proxy: &Proxy,
    client: &mut TcpStream,
    request: &Request,
    raw: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    let host = std::str::from_utf8(&raw[request.host.clone()]).unwrap_or("");
    let path = std::str::from_utf8(&raw[request.path.clone()]).unwrap_or("/");
    let (backend, order) = match attempts::route(proxy, host, path) {
        Ok(routed) => routed,
        Err(refusal) => return page(client, refusal.status, &refusal.message, out).await,
    };
    let body = &raw[request.length..];
    let upstreams = proxy.upstreams();
    let retryable = request.idempotent && request.body == Framing::Empty;
    let mut attempts = Attempts::new(order, retryable);
    while let Some(Attempt { endpoint, pooled }) = attempts.current() {
        let idle = if pooled {
            upstreams.idle(endpoint).await
        } else {
            None
        };
        let reused = idle.is_some();
        let mut upstream = match idle {
            Some(upstream) => upstream,
            None => match Upstream::connect(endpoint).await {
                Ok(upstream) => upstream,
                Err(error) => {
                    tracing::debug!(%endpoint, %error, "ingress: endpoint refused; trying the next");
                    attempts.refused();
                    continue;
                }
            },
        };
        match relay(&mut upstream, client, request, body, out).await {
            Relayed::Done {
                reusable,
                client_open,
            } => {
                if reusable {
                    upstreams.put(endpoint, upstream);
                }
                return client_open;
            }
            Relayed::NoResponse(error) if attempts.failed(reused) => {
                tracing::debug!(%endpoint, %error, "ingress: endpoint failed; retrying once");
            }
            Relayed::NoResponse(error) => {
                tracing::debug!(%endpoint, %error, "ingress: endpoint failed");
                return page(client, StatusCode::BAD_GATEWAY, "the backend failed", out).await;
            }
            Relayed::Invalid => {
                tracing::debug!(%endpoint, "ingress: endpoint answered with something not HTTP");
                return page(client, StatusCode::BAD_GATEWAY, "the backend failed", out).await;
            }
            Relayed::Broken => return false,
        }
    }
    tracing::debug!(service = %backend.service, "ingress: every endpoint refused");
    page(
        client,
        StatusCode::BAD_GATEWAY,
        "no endpoint accepted the connection",
        out,
    )
    .await
}

/// Sends the request on `upstream` and relays the response to `client`.
async fn relay(
    upstream: &mut Upstream,
    client: &mut TcpStream,
    request: &Request,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Relayed {
    let sent = if body.is_empty() {
        upstream.stream.write_all(&request.upstream).await
    } else {
        out.clear();
        out.extend_from_slice(&request.upstream);
        out.extend_from_slice(body);
        upstream.stream.write_all(out).await
    };
    if let Err(error) = sent {
        return Relayed::NoResponse(error);
    }
    upstream.buffer.clear();
    let mut told_client = false;
    loop {
        // The head, informational responses passed on before the final one.
        let response = loop {
            if !upstream.buffer.is_empty() {
                out.clear();
                match head::parse_response(&upstream.buffer, request.head, request.close, out) {
                    ParsedResponse::Response(response) => break response,
                    ParsedResponse::Invalid => return broken_or(told_client, Relayed::Invalid),
                    ParsedResponse::Partial if upstream.buffer.len() > MAX_RESPONSE_HEAD => {
                        return broken_or(told_client, Relayed::Invalid);
                    }
                    ParsedResponse::Partial => {}
                }
            }
            match upstream.stream.read_buf(&mut upstream.buffer).await {
                Ok(0) if upstream.buffer.is_empty() && !told_client => {
                    return Relayed::NoResponse(std::io::ErrorKind::UnexpectedEof.into());
                }
                Err(error) if upstream.buffer.is_empty() && !told_client => {
                    return Relayed::NoResponse(error);
                }
                Ok(0) | Err(_) => return broken_or(told_client, Relayed::Invalid),
                Ok(_) => {}
            }
        };
        upstream.buffer.advance(response.length);
        if (100..200).contains(&response.status) {
            if client.write_all(out).await.is_err() {
                return Relayed::Broken;
            }
            told_client = true;
            continue;
        }
        let client_open = !request.close && response.body != Framing::UntilClose;
        let whole = relay_body(upstream, client, response.body, out).await;
        return match whole {
            Ok(()) => Relayed::Done {
                // Bytes past the response are a broken endpoint's.
                reusable: response.reusable && upstream.buffer.is_empty(),
                client_open,
            },
            Err(()) => Relayed::Broken,
        };
    }
}

fn broken_or(told_client: bool, otherwise: Relayed) -> Relayed {
    if told_client {
        Relayed::Broken
    } else {
        otherwise
    }
}

/// Writes the response head in `out` and the body that follows it in
/// `upstream`'s buffer (and on its socket) to `client`.
async fn relay_body(
    upstream: &mut Upstream,
    client: &mut TcpStream,
    framing: Framing,
    out: &mut Vec<u8>,
) -> Result<(), ()> {
    let mut left = match framing {
        Framing::Empty => 0,
        Framing::Length(n) => n,
        Framing::Chunked | Framing::UntilClose => u64::MAX,
    };
    let mut chunked = ChunkedEnd::default();
    // The head goes out with whatever of the body came with it.
    let mut first = true;
    loop {
        let available = &upstream.buffer[..];
        let take = match framing {
            Framing::Empty => 0,
            Framing::Length(_) => {
                usize::try_from(left).map_or(available.len(), |l| l.min(available.len()))
            }
            Framing::Chunked => chunked.feed(available).map_err(|_| ())?,
            Framing::UntilClose => available.len(),
        };
        let done = match framing {
            Framing::Empty => true,
            Framing::Length(_) => {
                left -= take as u64;
                left == 0
            }
            Framing::Chunked => chunked.is_done(),
            Framing::UntilClose => false,
        };
        let written = if first {
            out.extend_from_slice(&upstream.buffer[..take]);
            first = false;
            client.write_all(out).await
        } else {
            client.write_all(&upstream.buffer[..take]).await
        };
        written.map_err(|_| ())?;
        upstream.buffer.advance(take);
        if done {
            return Ok(());
        }
        if upstream.buffer.capacity() - upstream.buffer.len() < 4096 {
            upstream.buffer.reserve(16 * 1024);
        }
        match upstream.stream.read_buf(&mut upstream.buffer).await {
            Ok(0) if framing == Framing::UntilClose => return Ok(()),
            Ok(0) | Err(_) => return Err(()),
            Ok(_) => {}
        }
    }
}

/// Answers with one of kite's error pages; false if the client's
/// connection must close (it cannot: the request was read whole).
async fn page(
    client: &mut TcpStream,
    status: StatusCode,
    message: &str,
    out: &mut Vec<u8>,
) -> bool {
    let text = page_text(status, message);
    out.clear();
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            text.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(text.as_bytes());
    client.write_all(out).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::Backends;
    use crate::proxy::State;
    use crate::routes::Table;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::net::TcpListener;

    /// Answers, by path, with responses framed every way there is; counts
    /// the connections it accepts.
    async fn endpoint() -> (SocketAddr, Arc<AtomicUsize>) {
        crate::testing::counting_endpoint(|mut stream| async move {
            let mut buffer = Vec::new();
            loop {
                let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                    let mut chunk = [0u8; 4096];
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                    continue;
                };
                let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                buffer.drain(..end + 4);
                if head
                    .to_ascii_lowercase()
                    .contains("transfer-encoding: chunked")
                {
                    // The test's chunked bodies have no trailers.
                    while !buffer.windows(5).any(|w| w == b"0\r\n\r\n") {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let at = buffer.windows(5).position(|w| w == b"0\r\n\r\n").unwrap();
                    buffer.drain(..at + 5);
                }
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                let parts: Vec<Vec<u8>> = match path.as_str() {
                    "/chunked" => vec![
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel".to_vec(),
                        b"lo\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n".to_vec(),
                    ],
                    "/close" => {
                        vec![b"HTTP/1.1 200 OK\r\n\r\nuntil".to_vec(), b" close".to_vec()]
                    }
                    "/hints" => vec![
                        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n".to_vec(),
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal".to_vec(),
                    ],
                    "/big" => {
                        let mut big =
                            b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n".to_vec();
                        big.extend(std::iter::repeat_n(b'x', 1 << 20));
                        vec![big]
                    }
                    _ => {
                        let forwarded = head
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(": ")?;
                                name.eq_ignore_ascii_case("x-forwarded-for")
                                    .then_some(value)
                            })
                            .unwrap_or("")
                            .to_string();
                        let body = format!("ok {forwarded}");
                        let length = if head.starts_with("HEAD") {
                            0
                        } else {
                            body.len()
                        };
                        let mut response =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                        if length > 0 {
                            response.push_str(&body);
                        }
                        vec![response.into_bytes()]
                    }
                };
                for part in parts {
                    if stream.write_all(&part).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if path == "/close" {
                    return;
                }
            }
        })
        .await
    }

    /// A plain-HTTP ingress routing host `t` to `endpoint`.
    async fn ingress(endpoint: SocketAddr) -> SocketAddr {
        let ingress = Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "a", "namespace": "default"},
                "spec": {"ingressClassName": "kite", "rules": [{"host": "t", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]},
            }))
            .unwrap(),
        );
        let service = Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "s", "namespace": "default"},
                "spec": {"ports": [{"name": "http", "port": 80}]},
            }))
            .unwrap(),
        );
        let slice = Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "s", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "s"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": endpoint.port()}],
                "endpoints": [{"addresses": ["127.0.0.1"]}],
            }))
            .unwrap(),
        );
        let table = Table::build(&[ingress], false);
        let backends = Backends::build(&table.backends(), &[service], &[slice]);
        let state = Arc::new(State::default());
        state.set(table, backends);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(Proxy::new(state).serve_http(listener));
        addr
    }

    async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(20), future)
            .await
            .expect("timed out")
    }

    #[tokio::test]
    async fn responses_of_every_framing_reach_a_keep_alive_client_whole() {
        within(async {
            let (endpoint, accepted) = endpoint().await;
            let ingress = ingress(endpoint).await;
            let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
            let get = |method: &'static str, path: &'static str| {
                let client = client.clone();
                async move {
                    let request = http::Request::builder()
                        .method(method)
                        .uri(format!("http://{ingress}{path}"))
                        .header("host", "t")
                        .body(Empty::new())
                        .unwrap();
                    let response = client.request(request).await.unwrap();
                    let status = response.status();
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    (status, body)
                }
            };
            for _ in 0..3 {
                assert_eq!(get("GET", "/").await.1, "ok 127.0.0.1");
            }
            // One client connection, one endpoint connection.
            assert_eq!(accepted.load(Ordering::SeqCst), 1);
            assert_eq!(get("HEAD", "/").await.1, "");
            assert_eq!(get("GET", "/chunked").await.1, "hello world");
            assert_eq!(get("GET", "/hints").await.1, "final");
            assert_eq!(get("GET", "/close").await.1, "until close");
            let (status, big) = get("GET", "/big").await;
            assert_eq!((status, big.len()), (StatusCode::OK, 1 << 20));
            assert_eq!(get("GET", "/").await.1, "ok 127.0.0.1");
            let (status, _) = {
                let request = http::Request::get(format!("http://{ingress}/"))
                    .header("host", "nobody")
                    .body(Empty::new())
                    .unwrap();
                let response = client.request(request).await.unwrap();
                (response.status(), ())
            };
            assert_eq!(status, StatusCode::NOT_FOUND);
        })
        .await;
    }

    async fn read_until(stream: &mut TcpStream, text: &str) -> String {
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains(text) {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8(seen).unwrap()
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_in_order() {
        within(async {
            let (endpoint, _) = endpoint().await;
            let ingress = ingress(endpoint).await;
            let mut stream = TcpStream::connect(ingress).await.unwrap();
            stream
                .write_all(
                    b"GET /hints HTTP/1.1\r\nHost: t\r\n\r\n\
                      POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
                      GET /chunked HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                )
                .await
                .unwrap();
            let mut all = String::new();
            stream.read_to_string(&mut all).await.unwrap();
            let hints = all.find("103 Early Hints").unwrap();
            let first = all.find("final").unwrap();
            let second = all.find("ok 127.0.0.1").unwrap();
            let third = all.find("0\r\nX-Trailer: 1\r\n\r\n").unwrap();
            assert!(hints < first && first < second && second < third, "{all}");
            assert!(all.contains("Connection: close\r\n"), "{all}");
        })
        .await;
    }

    #[tokio::test]
    async fn other_requests_are_served_by_the_general_server() {
        within(async {
            let (endpoint, _) = endpoint().await;
            let ingress = ingress(endpoint).await;
            // A plain request first, then HTTP/1.0 on the same connection.
            let mut stream = TcpStream::connect(ingress).await.unwrap();
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            read_until(&mut stream, "ok 127.0.0.1").await;
            stream
                .write_all(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let mut rest = String::new();
            stream.read_to_string(&mut rest).await.unwrap();
            assert!(rest.starts_with("HTTP/1.0 200 OK\r\n"), "{rest}");
            assert!(rest.ends_with("ok 127.0.0.1"), "{rest}");
            // Broken heads get the general server's 400.
            let mut stream = TcpStream::connect(ingress).await.unwrap();
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost t\r\n\r\n")
                .await
                .unwrap();
            assert!(
                read_until(&mut stream, "\r\n")
                    .await
                    .starts_with("HTTP/1.1 400")
            );
        })
        .await;
    }
}

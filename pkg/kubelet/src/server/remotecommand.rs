//! `/exec` and `/attach`: Kubernetes' remote command protocol over either
//! transport kubectl speaks. WebSocket (kubectl 1.30 on) carries the streams
//! as channels of one connection; SPDY/3.1 (older kubectl) as one SPDY
//! stream each, named by its `streamType` header (`error`, `stdin`,
//! `stdout`, `stderr`, `resize`). Either way the session ends with the
//! outcome on the error stream: from v4 on a `Status` (`Success`, or
//! `NonZeroExitCode` with the code in an `ExitCode` cause), before v4 the
//! error text alone.

use super::http::{Body, full, text};
use super::pipe::{Out, PacketReader, PacketWriter};
use super::query::Query;
use super::{Backend, ContainerRef, StreamIo, TerminalSize, spdy, websocket};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The SPDY subprotocols (`X-Stream-Protocol-Version`), newest first.
pub const SPDY_PROTOCOLS: [&str; 4] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// How long a SPDY client has to open the streams it asked for.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The `X-Stream-Protocol-Version` header.
pub const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";

/// What the request asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The command (exec only).
    pub command: Vec<String>,
    /// Streams requested.
    pub stdin: bool,
    /// Standard output requested.
    pub stdout: bool,
    /// Standard error requested (never with a tty).
    pub stderr: bool,
    /// A terminal.
    pub tty: bool,
}

impl Options {
    /// Reads the kubelet's parameters (`input`, `output`, `error`, `tty`,
    /// `command`), accepting the apiserver's spelling (`stdin`, ...) too.
    pub fn parse(query: &Query) -> Self {
        let tty = query.flag("tty");
        Self {
            command: query.all("command"),
            stdin: query.flag("input") || query.flag("stdin"),
            stdout: query.flag("output") || query.flag("stdout"),
            stderr: (query.flag("error") || query.flag("stderr")) && !tty,
            tty,
        }
    }
}

/// Whether the request asks for a SPDY/3.1 upgrade.
pub fn is_spdy(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"))
}

/// The stream protocols a SPDY client offers, in its order.
pub fn offered_stream_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(STREAM_PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The 101 answer to a SPDY upgrade with `protocol`.
pub fn spdy_accept(protocol: &str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("SPDY/3.1"),
    );
    if let Ok(value) = protocol.parse() {
        h.insert(STREAM_PROTOCOL_HEADER, value);
    }
    response
}

/// kube's answer when no offered protocol is served.
pub fn no_protocol(offered: &[String], supported: &[&str]) -> Response<Body> {
    text(
        StatusCode::FORBIDDEN,
        format!(
            "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {supported:?}"
        ),
    )
}

/// Answers an exec (`exec`) or attach request: the upgrade, then the session.
pub fn serve(
    backend: Arc<dyn Backend>,
    mut request: Request<Incoming>,
    target: ContainerRef,
    query: &Query,
    exec: bool,
) -> Response<Body> {
    let options = Options::parse(query);
    if !options.stdin && !options.stdout && !options.stderr {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 of stdin, stdout, stderr",
        );
    }
    if exec && options.command.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        );
    }
    let headers = request.headers().clone();
    let upgrade = hyper::upgrade::on(&mut request);
    if websocket::is_upgrade(&headers) {
        let offered = websocket::offered(&headers);
        let Some(protocol) = websocket::negotiate(&offered, &websocket::CHANNEL_PROTOCOLS) else {
            return no_protocol(&offered, &websocket::CHANNEL_PROTOCOLS);
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
            run_websocket(backend, ws, protocol, target, options, exec).await;
        });
        return response;
    }
    if is_spdy(&headers) {
        let offered = offered_stream_protocols(&headers);
        let Some(protocol) = websocket::negotiate(&offered, &SPDY_PROTOCOLS) else {
            return no_protocol(&offered, &SPDY_PROTOCOLS);
        };
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else {
                return;
            };
            run_spdy(
                backend,
                TokioIo::new(upgraded),
                protocol,
                target,
                options,
                exec,
            )
            .await;
        });
        return spdy_accept(protocol);
    }
    text(StatusCode::BAD_REQUEST, "Upgrade request required")
}

/// The streams of one session, whatever carries them.
struct Session {
    stdin: Option<PacketReader>,
    stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    resize: Option<PacketReader>,
    error: Box<dyn AsyncWrite + Send + Unpin>,
    /// v4 and later report a `Status`; older protocols the error text.
    status_json: bool,
}

async fn run_websocket<S>(
    backend: Arc<dyn Backend>,
    ws: WebSocketStream<S>,
    protocol: &'static str,
    target: ContainerRef,
    options: Options,
    exec: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut readable = Vec::new();
    if options.stdin {
        readable.push(0);
    }
    if options.tty {
        readable.push(4);
    }
    let v5 = protocol == "v5.channel.k8s.io";
    let (mut readers, out) = websocket::channels(ws, &readable, v5);
    // An empty message on the first writable channel tells the client the
    // streams are ready, as the kubelet does.
    let first = if options.stdout {
        1
    } else if options.stderr {
        2
    } else {
        3
    };
    let _ = out
        .send(Out::Data {
            id: first,
            data: Bytes::new(),
            fin: false,
        })
        .await;
    let writer = |id: u32| -> Box<dyn AsyncWrite + Send + Unpin> {
        Box::new(PacketWriter::new(out.clone(), id))
    };
    let session = Session {
        stdin: readers.remove(&0),
        stdout: options.stdout.then(|| writer(1)),
        stderr: options.stderr.then(|| writer(2)),
        resize: readers.remove(&4),
        error: writer(3),
        status_json: matches!(protocol, "v5.channel.k8s.io" | "v4.channel.k8s.io"),
    };
    run(backend, target, options, session, exec).await;
    let _ = out.send(Out::Close).await;
}

async fn run_spdy<T>(
    backend: Arc<dyn Backend>,
    io: T,
    protocol: &'static str,
    target: ContainerRef,
    options: Options,
    exec: bool,
) where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut session = spdy::Session::server(io);
    let wants_resize =
        options.tty && protocol != "v2.channel.k8s.io" && protocol != "channel.k8s.io";
    let (mut error, mut stdin, mut stdout, mut stderr, mut resize) = (None, None, None, None, None);
    let complete = |e: &Option<_>, i: &Option<_>, o: &Option<_>, r: &Option<_>, z: &Option<_>| {
        e.is_some()
            && (i.is_some() || !options.stdin)
            && (o.is_some() || !options.stdout)
            && (r.is_some() || !options.stderr)
            && (z.is_some() || !wants_resize)
    };
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    while !complete(&error, &stdin, &stdout, &stderr, &resize) {
        let stream = match tokio::time::timeout_at(deadline, session.streams.recv()).await {
            Ok(Some(stream)) => stream,
            Ok(None) => return,
            Err(_) => {
                tracing::debug!(pod = %target.pod, "exec: timed out waiting for client streams");
                session.close().await;
                return;
            }
        };
        match stream.header("streamtype").unwrap_or("") {
            "error" => error = Some(stream),
            "stdin" => stdin = Some(stream),
            "stdout" => stdout = Some(stream),
            "stderr" => stderr = Some(stream),
            "resize" => resize = Some(stream),
            other => tracing::debug!(stream_type = other, "exec: unexpected stream"),
        }
    }
    let Some(error) = error else {
        return;
    };
    let boxed = |s: spdy::Stream| -> Box<dyn AsyncWrite + Send + Unpin> { Box::new(s.writer) };
    let run_session = Session {
        stdin: stdin.map(|s| s.reader),
        stdout: stdout.map(boxed),
        stderr: stderr.map(boxed),
        resize: resize.map(|s| s.reader),
        error: boxed(error),
        status_json: protocol == "v4.channel.k8s.io",
    };
    run(backend, target, options, run_session, exec).await;
    session.close().await;
}

async fn run(
    backend: Arc<dyn Backend>,
    target: ContainerRef,
    options: Options,
    session: Session,
    exec: bool,
) {
    let Session {
        stdin,
        stdout,
        stderr,
        resize,
        mut error,
        status_json,
    } = session;
    let resize = resize.map(|reader| {
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(read_resizes(reader, tx));
        rx
    });
    let io = StreamIo {
        stdin: stdin.map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
        stdout,
        stderr,
        tty: options.tty,
        resize,
    };
    let outcome = if exec {
        backend
            .exec(target, options.command.clone(), io)
            .await
            .map(Some)
    } else {
        backend.attach(target, io).await
    };
    let status = match outcome {
        Ok(None | Some(0)) => json!({"metadata": {}, "status": "Success"}),
        Ok(Some(code)) => exit_status(code, &options.command),
        Err(e) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("error executing command in container: {e}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": e.to_string()}]},
            "code": 500,
        }),
    };
    let bytes = if status_json {
        serde_json::to_vec(&status).unwrap_or_default()
    } else {
        status["message"]
            .as_str()
            .map(|m| m.as_bytes().to_vec())
            .unwrap_or_default()
    };
    if !bytes.is_empty() {
        let _ = error.write_all(&bytes).await;
    }
    let _ = error.shutdown().await;
}

/// The `Status` of a command that exited with `code` (not 0).
pub fn exit_status(code: i32, command: &[String]) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// Terminal sizes from the resize stream: JSON objects one after another.
async fn read_resizes(mut reader: PacketReader, tx: mpsc::Sender<TerminalSize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let (sizes, used) = parse_sizes(&buf);
        buf.drain(..used);
        for size in sizes {
            if tx.send(size).await.is_err() {
                return;
            }
        }
        if buf.len() > 64 * 1024 {
            buf.clear();
        }
    }
}

/// The complete sizes at the front of `buf` and how many bytes they took.
pub fn parse_sizes(buf: &[u8]) -> (Vec<TerminalSize>, usize) {
    let mut sizes = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(buf).into_iter::<TerminalSize>();
    let mut used = 0;
    loop {
        match stream.next() {
            Some(Ok(size)) => {
                sizes.push(size);
                used = stream.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => break,
            // Garbage: drop what was read so far and go on.
            Some(Err(_)) => {
                used = buf.len();
                break;
            }
            None => {
                used = buf.len();
                break;
            }
        }
    }
    (sizes, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_follow_the_kubelet_parameters() {
        let o = Options::parse(&Query::parse(
            "command=sh&command=-c&command=exit+3&input=1&output=1&error=1",
        ));
        assert_eq!(o.command, ["sh", "-c", "exit 3"]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        let o = Options::parse(&Query::parse("stdin=true&stdout=true&stderr=true&tty=true"));
        assert!(o.tty && !o.stderr, "a terminal has no separate stderr");
    }

    #[test]
    fn exit_codes_travel_as_an_exit_code_cause() {
        let status = exit_status(3, &["sh".into(), "-c".into(), "exit 3".into()]);
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
    }

    #[test]
    fn resize_messages_parse_across_chunks() {
        let (sizes, used) = parse_sizes(b"{\"Width\":80,\"Height\":24}\n{\"Width\":1");
        assert_eq!(
            sizes,
            [TerminalSize {
                width: 80,
                height: 24
            }]
        );
        assert_eq!(used, 24);
        let (sizes, _) = parse_sizes(b"{\"Width\":100,\"Height\":40}");
        assert_eq!(
            sizes,
            [TerminalSize {
                width: 100,
                height: 40
            }]
        );
    }

    #[test]
    fn spdy_protocols_are_read_from_every_header() {
        let mut headers = HeaderMap::new();
        headers.append(STREAM_PROTOCOL_HEADER, "v4.channel.k8s.io".parse().unwrap());
        headers.append(
            STREAM_PROTOCOL_HEADER,
            "v3.channel.k8s.io, channel.k8s.io".parse().unwrap(),
        );
        headers.insert(header::UPGRADE, "SPDY/3.1".parse().unwrap());
        assert!(is_spdy(&headers));
        let offered = offered_stream_protocols(&headers);
        assert_eq!(
            websocket::negotiate(&offered, &SPDY_PROTOCOLS),
            Some("v4.channel.k8s.io")
        );
    }
}

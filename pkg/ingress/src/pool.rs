//! Keep-alive HTTP/1.1 connections to endpoints: one pool per server thread.
//!
//! A request takes an idle connection to its endpoint, the most recently
//! used first (its socket is the warmest), or opens a new one. The
//! connection is idle again once the endpoint's response body has been read
//! to its end; a response the client abandons halfway closes it instead.
//! hyper's connection-level client is used directly: it has no per-request
//! task, box or pool key to hash, and it hands back a request it could not
//! send, so the next attempt needs no copy of it.

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long a new connection to an endpoint may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle connections older than this are closed (endpoints commonly close
/// theirs after 60–90 s; closing first avoids reusing one they just shut).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// Idle connections kept per endpoint; more are closed.
const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// What requests to endpoints carry: the client's body streamed through,
/// or none when the client sent none.
pub type RequestBody = Either<Incoming, Empty<Bytes>>;

/// The sending half of a connection to an endpoint.
pub type Sender = SendRequest<RequestBody>;

struct Idle {
    sender: Sender,
    since: Instant,
}

/// Idle connections by endpoint.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The endpoint refused or could not be reached.
    #[error("cannot connect: {0}")]
    Io(#[from] std::io::Error),
    /// The endpoint did not accept in [`CONNECT_TIMEOUT`].
    #[error("connect timed out")]
    Timeout,
    /// The HTTP connection could not be set up.
    #[error("cannot start HTTP: {0}")]
    Http(#[from] hyper::Error),
}

impl Pool {
    /// An idle connection to `endpoint` that can take a request now.
    pub async fn idle(&self, endpoint: SocketAddr) -> Option<Sender> {
        loop {
            let Idle { mut sender, since } = self.lock().get_mut(&endpoint)?.pop()?;
            if sender.is_closed() || since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            // Read to its end, a response leaves its connection ready as soon
            // as the connection's task has run; only a closed one fails.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// A new connection to `endpoint`, its I/O driven by a task of its own.
    pub async fn connect(endpoint: SocketAddr) -> Result<Sender, ConnectError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint))
            .await
            .map_err(|_| ConnectError::Timeout)??;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%endpoint, %error, "ingress: endpoint connection failed");
            }
        });
        Ok(sender)
    }

    /// Keeps `sender` for the next request to `endpoint`.
    pub fn put(&self, endpoint: SocketAddr, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        let list = idle.entry(endpoint).or_default();
        if list.len() < MAX_IDLE_PER_ENDPOINT {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Closes connections idle too long or closed by their endpoint, and
    /// forgets endpoints with none left.
    pub fn prune(&self) {
        self.lock().retain(|_, list| {
            list.retain(|idle| !idle.sender.is_closed() && idle.since.elapsed() <= IDLE_TIMEOUT);
            !list.is_empty()
        });
    }

    /// Idle connections held (all endpoints).
    pub fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An endpoint's response body; its connection goes back to the pool once
/// the body has been read to its end.
pub struct PooledBody {
    body: Incoming,
    home: Option<(Arc<Pool>, SocketAddr, Sender)>,
}

impl PooledBody {
    /// `body`, returning `sender` to `pool` when done.
    pub fn new(body: Incoming, pool: Arc<Pool>, endpoint: SocketAddr, sender: Sender) -> Self {
        Self {
            body,
            home: Some((pool, endpoint, sender)),
        }
    }

    /// `body` of a connection that is not to be reused (an upgrade's).
    pub fn unpooled(body: Incoming) -> Self {
        Self { body, home: None }
    }

    fn release(&mut self) {
        if let Some((pool, endpoint, sender)) = self.home.take() {
            pool.put(endpoint, sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.home = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // An empty body (HEAD, 204, 304) is never polled; a half-read one
        // leaves its connection mid-response, not reusable.
        if self.body.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use http_body_util::{BodyExt, Full};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An endpoint answering `/big` with 1 MiB and anything else with "ok",
    /// counting the connections it accepted.
    async fn endpoint() -> (SocketAddr, Arc<AtomicUsize>) {
        crate::testing::counting_endpoint(|stream| async move {
            let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                let body = if request.uri().path() == "/big" {
                    Bytes::from(vec![b'x'; 1 << 20])
                } else {
                    Bytes::from_static(b"ok")
                };
                Ok::<_, hyper::Error>(http::Response::new(Full::new(body)))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        })
        .await
    }

    async fn get(pool: &Arc<Pool>, endpoint: SocketAddr, path: &str) -> PooledBody {
        let mut sender = match pool.idle(endpoint).await {
            Some(sender) => sender,
            None => Pool::connect(endpoint).await.unwrap(),
        };
        let request = Request::get(path)
            .header(http::header::HOST, "x")
            .body(Either::Right(Empty::new()))
            .unwrap();
        let response = sender
            .try_send_request(request)
            .await
            .map_err(|e| e.into_error())
            .unwrap();
        PooledBody::new(response.into_body(), pool.clone(), endpoint, sender)
    }

    #[tokio::test]
    async fn connections_are_reused_once_their_response_was_read_to_the_end() {
        let (endpoint, accepted) = endpoint().await;
        let pool = Arc::new(Pool::default());
        for _ in 0..5 {
            let body = get(&pool, endpoint, "/").await.collect().await.unwrap();
            assert_eq!(body.to_bytes(), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);

        // Abandoned halfway, a response leaves its connection unusable.
        let mut big = get(&pool, endpoint, "/big").await;
        assert!(big.frame().await.unwrap().is_ok());
        drop(big);
        assert_eq!(pool.idle_count(), 0);
        let body = get(&pool, endpoint, "/").await.collect().await.unwrap();
        assert_eq!(body.to_bytes(), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn closed_and_old_connections_are_not_handed_out() {
        let (endpoint, _) = endpoint().await;
        let pool = Arc::new(Pool::default());
        let sender = Pool::connect(endpoint).await.unwrap();
        pool.put(endpoint, sender);
        pool.lock().get_mut(&endpoint).unwrap()[0].since -= IDLE_TIMEOUT * 2;
        assert!(pool.idle(endpoint).await.is_none());

        let refused = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(matches!(
            Pool::connect(refused).await,
            Err(ConnectError::Io(_))
        ));

        let sender = Pool::connect(endpoint).await.unwrap();
        pool.put(endpoint, sender);
        pool.prune();
        assert_eq!(pool.idle_count(), 1);
        pool.lock().get_mut(&endpoint).unwrap()[0].since -= IDLE_TIMEOUT * 2;
        pool.prune();
        assert_eq!(pool.idle_count(), 0);
    }
}

//! Keep-alive connections to endpoints for the HTTP/1.1 path: one pool per
//! server thread, each connection with its read buffer.
//!
//! An idle connection is checked before reuse without a system call when
//! nothing has arrived on it since its last response (the usual case); if
//! something has, it is read: the endpoint closed it, or sent bytes no
//! request asked for, and either way it is dropped.

use crate::pool::{CONNECT_TIMEOUT, ConnectError};
use bytes::BytesMut;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use tokio::net::TcpStream;

/// Idle connections kept per endpoint; more are closed.
const MAX_IDLE_PER_ENDPOINT: usize = 256;
/// Read buffer of a connection.
const BUFFER: usize = 16 * 1024;

/// A connection to an endpoint.
pub struct Upstream {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read and not yet relayed.
    pub buffer: BytesMut,
}

impl Upstream {
    /// A new connection to `endpoint`.
    pub async fn connect(endpoint: SocketAddr) -> Result<Self, ConnectError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint))
            .await
            .map_err(|_| ConnectError::Timeout)??;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buffer: BytesMut::with_capacity(BUFFER),
        })
    }

    /// Whether the endpoint may still be waiting for a request on it.
    async fn usable(&mut self) -> bool {
        std::future::poll_fn(|cx| {
            Poll::Ready(match self.stream.poll_read_ready(cx) {
                // Nothing arrived since the last response.
                Poll::Pending => true,
                Poll::Ready(Err(_)) => false,
                Poll::Ready(Ok(())) => {
                    let mut byte = [0u8; 1];
                    matches!(self.stream.try_read(&mut byte),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                }
            })
        })
        .await
    }
}

/// Idle connections by endpoint, aged in ticks of [`Upstreams::prune`].
#[derive(Default)]
pub struct Upstreams {
    idle: Mutex<HashMap<SocketAddr, Vec<(Upstream, u64)>>>,
    tick: AtomicU64,
}

impl Upstreams {
    /// An idle connection to `endpoint`, the most recently used first.
    pub async fn idle(&self, endpoint: SocketAddr) -> Option<Upstream> {
        let now = self.tick.load(Ordering::Relaxed);
        loop {
            let (mut upstream, since) = self.lock().get_mut(&endpoint)?.pop()?;
            if now.saturating_sub(since) < 2 && upstream.usable().await {
                return Some(upstream);
            }
        }
    }

    /// Keeps `upstream`, its response relayed whole, for the next request.
    pub fn put(&self, endpoint: SocketAddr, upstream: Upstream) {
        let now = self.tick.load(Ordering::Relaxed);
        let mut idle = self.lock();
        let list = idle.entry(endpoint).or_default();
        if list.len() < MAX_IDLE_PER_ENDPOINT {
            list.push((upstream, now));
        }
    }

    /// Advances the clock one tick and closes connections idle for two
    /// (called every half idle timeout: they live one to two halves).
    pub fn prune(&self) {
        let now = self.tick.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().retain(|_, list| {
            list.retain(|(_, since)| now.saturating_sub(*since) < 2);
            !list.is_empty()
        });
    }

    /// Idle connections held (all endpoints).
    pub fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Vec<(Upstream, u64)>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

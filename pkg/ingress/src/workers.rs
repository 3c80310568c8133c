//! The server threads, shaped like nginx's worker processes: one per core,
//! each a single-threaded runtime with its own listening sockets and its own
//! pool of connections to endpoints.
//!
//! The sockets of one port share it with `SO_REUSEPORT`, so the kernel
//! spreads new connections across the threads. A request is then read,
//! forwarded and answered on the thread that accepted its connection. On
//! one multi-threaded runtime each request crossed threads twice (client
//! connection → pooled endpoint connection → back), and those wake-ups cost
//! more than the proxying itself.

use crate::pool::IDLE_TIMEOUT;
use crate::proxy::{Proxy, State};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

/// Pending connections a socket holds before the kernel refuses more.
const BACKLOG: u32 = 1024;

/// How many server threads to run: one per core this process may use.
pub fn count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `count` listening sockets on `address` that share its connections.
/// Fails as a plain bind would when another program holds the port.
/// Must be called inside a Tokio runtime; the sockets may move to others.
pub fn bind(address: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    (0..count.max(1))
        .map(|_| {
            let socket = if address.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket.set_nodelay(true)?;
            socket.bind(address)?;
            socket.listen(BACKLOG)?.into_std()
        })
        .collect()
}

/// The running server threads; dropping this stops them (their open
/// connections are closed).
pub struct Workers {
    _stop: Vec<oneshot::Sender<()>>,
}

/// Starts one thread per pair of sockets: the `i`th thread serves `http[i]`
/// and `https[i]`, whichever exist. HTTPS is served only with `tls`.
pub fn start(
    state: &Arc<State>,
    tls: Option<Arc<rustls::ServerConfig>>,
    http: Vec<std::net::TcpListener>,
    https: Vec<std::net::TcpListener>,
) -> Workers {
    let mut http = http.into_iter();
    let mut https = https.into_iter().filter(|_| tls.is_some());
    let mut stop = Vec::new();
    for index in 0.. {
        let (plain, secure) = (http.next(), https.next());
        if plain.is_none() && secure.is_none() {
            break;
        }
        let (stopper, stopped) = oneshot::channel();
        let (state, tls) = (state.clone(), tls.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("kite-ingress-{index}"))
            .spawn(move || serve(state, tls, plain, secure, stopped));
        match spawned {
            Ok(_) => stop.push(stopper),
            Err(error) => tracing::error!(%error, "ingress: cannot start a server thread"),
        }
    }
    Workers { _stop: stop }
}

/// One server thread: its sockets on its own runtime until told to stop.
fn serve(
    state: Arc<State>,
    tls: Option<Arc<rustls::ServerConfig>>,
    http: Option<std::net::TcpListener>,
    https: Option<std::net::TcpListener>,
    stopped: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "ingress: cannot start a server thread's runtime");
            return;
        }
    };
    runtime.block_on(async move {
        // Each thread its own client, so endpoint connections stay on it.
        let proxy = Proxy::new(state);
        let plain = {
            let proxy = proxy.clone();
            async move {
                if let Some(listener) = http.and_then(adopt) {
                    proxy.serve_http(listener).await;
                }
            }
        };
        let secure = {
            let proxy = proxy.clone();
            async move {
                if let (Some(listener), Some(tls)) = (https.and_then(adopt), tls) {
                    proxy.serve_https(listener, tls).await;
                }
            }
        };
        let (pool, upstreams) = (proxy.pool().clone(), proxy.upstreams().clone());
        let pruning = async move {
            let mut every = tokio::time::interval(IDLE_TIMEOUT / 2);
            every.tick().await;
            loop {
                every.tick().await;
                pool.prune();
                upstreams.prune();
            }
        };
        tokio::select! {
            _ = stopped => {}
            _ = pruning => {}
            _ = async { tokio::join!(plain, secure) } => {}
        }
    });
}

/// `listener` registered with this thread's runtime.
fn adopt(listener: std::net::TcpListener) -> Option<TcpListener> {
    TcpListener::from_std(listener)
        .inspect_err(|error| tracing::error!(%error, "ingress: cannot serve a listening socket"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    #[tokio::test]
    async fn sockets_share_a_port_and_every_thread_answers_until_stopped() {
        let mut sockets = bind("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let address = sockets[0].local_addr().unwrap();
        sockets.extend(bind(address, 2).unwrap());
        assert_eq!(sockets.len(), 3);
        // A program without SO_REUSEPORT cannot take the port.
        assert!(std::net::TcpListener::bind(address).is_err());

        let state = Arc::new(State::default());
        let last = sockets.pop().unwrap();
        let workers = start(&state, None, sockets, Vec::new());
        drop(last);
        // No rule matches: each connection gets the proxy's 404, from
        // whichever thread the kernel picked.
        let ask = move || {
            let mut stream = std::net::TcpStream::connect(address)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            io::Result::Ok(answer)
        };
        for _ in 0..8 {
            let answer = tokio::task::spawn_blocking(ask).await.unwrap().unwrap();
            assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        }
        drop(workers);
        let refused = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if tokio::task::spawn_blocking(ask).await.unwrap().is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            refused.is_ok(),
            "the threads kept serving after being stopped"
        );
    }
}

//! TCP connections from inside a pod's network namespace (probes,
//! port-forward): a short-lived thread enters the namespace, connects, and
//! hands the socket back; a socket stays in the namespace it was made in,
//! whatever thread uses it later.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connects to `addr` from inside the network namespace pinned at `netns`
/// (`None`: the node's own), within `timeout`.
pub async fn connect(
    netns: Option<&Path>,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<tokio::net::TcpStream> {
    let netns: Option<PathBuf> = netns.map(Path::to_path_buf);
    let stream =
        tokio::task::spawn_blocking(move || connect_blocking(netns.as_deref(), addr, timeout))
            .await
            .map_err(io::Error::other)??;
    stream.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(stream)
}

fn connect_blocking(
    netns: Option<&Path>,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let Some(netns) = netns else {
        return TcpStream::connect_timeout(&addr, timeout);
    };
    let file = std::fs::File::open(netns)?;
    // A thread of its own: setns changes only the calling thread, which then
    // exits instead of going back to the blocking pool in the pod's namespace.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)?;
                TcpStream::connect_timeout(&addr, timeout)
            })
            .join()
            .map_err(|_| io::Error::other("connect thread panicked"))?
    })
}

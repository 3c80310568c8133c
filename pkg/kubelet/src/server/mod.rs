//! The kubelet API on :10250: what the apiserver reaches for `pods/log`,
//! `pods/exec`, `pods/attach`, `pods/portforward` and `nodes/proxy`.
//!
//! The HTTP side and the streaming protocols live here; what a request does to
//! a pod is the [`Backend`]'s job (the kubelet implements it over the runtime).

pub mod http;
pub mod logs;
pub mod pipe;
pub mod portforward;
pub mod query;
pub mod remotecommand;
pub mod run;
pub mod spdy;
pub mod websocket;

pub use http::{serve, tls_config};

use futures::future::BoxFuture;
use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncWrite};

/// A container of a pod, as the kubelet API's paths name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRef {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
}

/// A terminal size change (the `resize` stream's JSON: `{"Width":80,"Height":24}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// The streams of one exec or attach session; absent ones were not requested.
pub struct StreamIo {
    /// What the client types.
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// The process's standard output (with a tty: everything it prints).
    pub stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// The process's standard error (never with a tty).
    pub stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Whether the client asked for a terminal.
    pub tty: bool,
    /// Terminal size changes, with a tty.
    pub resize: Option<tokio::sync::mpsc::Receiver<TerminalSize>>,
}

/// Errors the backend reports; the server turns them into kube `Status` bodies.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No such pod or container (404).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be served in the pod's current state (400), e.g. a
    /// container that is not running.
    #[error("{0}")]
    BadRequest(String),
    /// Anything else (500).
    #[error("{0}")]
    Internal(String),
}

/// Where a container's log is and whether more may come.
pub struct LogSource {
    /// The CRI-format log file (`<RFC3339Nano> <stdout|stderr> <F|P> <text>` lines).
    pub path: PathBuf,
    /// Earlier, rotated files of the same log, oldest first.
    pub rotated: Vec<PathBuf>,
    /// Becomes `false` once the container has exited (ends `follow`).
    pub running: tokio::sync::watch::Receiver<bool>,
}

/// A connected byte stream (a port-forward connection inside a pod).
pub type Connection = Box<dyn AsyncReadWrite>;

/// `AsyncRead + AsyncWrite` in one object-safe trait.
pub trait AsyncReadWrite: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncReadWrite for T {}

/// What the kubelet does for the API's requests.
pub trait Backend: Send + Sync + 'static {
    /// Runs `command` in the container with `io`; resolves to its exit code.
    fn exec(
        &self,
        target: ContainerRef,
        command: Vec<String>,
        io: StreamIo,
    ) -> BoxFuture<'static, Result<i32, BackendError>>;

    /// Attaches `io` to the container's main process until it exits or the
    /// client goes; resolves to the exit code when the container exited.
    fn attach(
        &self,
        target: ContainerRef,
        io: StreamIo,
    ) -> BoxFuture<'static, Result<Option<i32>, BackendError>>;

    /// Opens a TCP connection to `port` on the pod's loopback (inside its
    /// network namespace).
    fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<Connection, BackendError>>;

    /// The log of the container, or of its previous instance with `previous`.
    fn log(&self, target: &ContainerRef, previous: bool) -> Result<LogSource, BackendError>;

    /// The pods this node runs, as a `v1` `PodList` (the `/pods` endpoint).
    fn pods(&self) -> serde_json::Value;

    /// `/stats/summary` (a kubelet `stats/v1alpha1` `Summary`).
    fn stats_summary(&self) -> BoxFuture<'static, serde_json::Value>;

    /// `/metrics`, in the Prometheus text format.
    fn metrics(&self) -> String;
}

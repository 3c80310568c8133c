//! kite's node agent, as the kubelet is Kubernetes': it registers the Node,
//! renews its Lease, runs the pods bound to it through [`kite_runtime`]'s
//! containers and reports their status, and serves the kubelet API
//! ([`server`]: logs, exec, attach, port-forward) that the apiserver proxies.
//!
//! Start at [`run`]. Module map: [`node`] (registration, status, lease),
//! [`pods`] (one worker per pod: sandbox, volumes, containers, restarts,
//! termination), [`static_pods`] (pods from manifest files) and [`mirror`]
//! (their mirror pods in the API), [`status`] (the pod status Kubernetes
//! reports), [`container`] (a pod's container as a runtime spec), [`env`] and
//! [`volumes`] (what a container sees), [`probes`], [`images`] (tarballs
//! imported at start), [`image_gc`] (removing unused images when the disk
//! fills up), [`args`] (settings given as `--kubelet-arg`), [`layout`] (where
//! things live on disk), [`netns`] (connections inside a pod's network
//! namespace), [`api_backend`] (what the kubelet API does to pods), [`tty`]
//! (exec with a terminal), [`stats`] (`/stats/summary`) and [`metrics`]
//! (`/metrics`).

// Tests may unwrap; library code may not (checked by the non-test clippy pass).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api_backend;
pub mod args;
pub mod container;
pub mod env;
pub mod image_gc;
pub mod images;
pub mod layout;
pub mod metrics;
pub mod mirror;
pub mod netns;
pub mod node;
pub mod pods;
pub mod probes;
pub mod server;
pub mod state;
pub mod static_pods;
pub mod stats;
pub mod status;
pub mod tty;
pub mod volumes;

use std::net::IpAddr;
use std::path::PathBuf;

/// What the kubelet needs.
#[derive(Clone)]
pub struct Config {
    /// Client for the API (in-process inside `kite server`).
    pub client: kube::Client,
    /// This node's name.
    pub node_name: String,
    /// This node's address (`InternalIP`).
    pub node_ip: IpAddr,
    /// The container runtime over the image store at `<data-dir>/agent`.
    pub runtime: kite_runtime::Runtime,
    /// Pulls images from registries (mirrors and credentials of `registries.yaml`).
    pub puller: kite_runtime::pull::Puller,
    /// The pod network (`None`: pods get loopback only).
    pub network: Option<std::sync::Arc<kite_network::PodNetwork>>,
    /// `<data-dir>/agent`.
    pub root: PathBuf,
    /// Whether this node runs the control plane (`node-role.kubernetes.io/control-plane`).
    pub control_plane: bool,
    /// The cluster DNS server pods get in `resolv.conf`.
    pub cluster_dns: Option<IpAddr>,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// The node's resolv.conf: its search domains follow the cluster's in
    /// pods, and dnsPolicy Default pods get its nameservers.
    pub resolv_conf: PathBuf,
    /// The port of the kubelet API, published in the Node's `daemonEndpoints`.
    pub port: u16,
    /// The kite version, for `nodeInfo`.
    pub version: String,
    /// When unused images are removed.
    pub image_gc: image_gc::Policy,
    /// The most processes a pod may have (`pod-max-pids`; `None`: no limit).
    pub pod_max_pids: Option<i64>,
}

/// Errors of the kubelet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("api: {0}")]
    Api(#[from] kube::Error),
    /// The runtime failed.
    #[error("{0}")]
    Runtime(#[from] kite_runtime::container::Error),
    /// A file operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Anything else, worded for the user.
    #[error("{0}")]
    Other(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kubelet API's bound listener and TLS configuration (see [`server::tls_config`]).
pub struct ApiListener {
    /// Bound to the port published as the Node's `daemonEndpoints.kubeletEndpoint`.
    pub listener: tokio::net::TcpListener,
    /// Serving certificate, and the client CA callers' certificates must chain to.
    pub tls: rustls::ServerConfig,
}

/// Runs the kubelet until the future is dropped: imports new image tarballs,
/// registers the node, keeps its lease and status fresh, runs its pods, and
/// serves the kubelet API on `api`.
pub async fn run(config: Config, api: Option<ApiListener>) {
    let layout = layout::Layout::new(&config.root);
    let store = config.runtime.store().clone();
    let images_dir = layout.images_dir();
    match tokio::task::spawn_blocking(move || images::import_new(&store, &images_dir)).await {
        Ok(Ok(imported)) if imported > 0 => tracing::info!(imported, "imported image tarballs"),
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::warn!(%error, "importing image tarballs"),
        Err(error) => tracing::warn!(%error, "importing image tarballs"),
    }
    let registry = pods::Registry::default();
    let pods = pods::Manager::with_registry(config.clone(), registry.clone());
    let backend = std::sync::Arc::new(api_backend::KubeletBackend::new(
        registry,
        config.runtime.clone(),
        config.node_name.clone(),
        config.root.clone(),
    ));
    let serve = async move {
        match api {
            Some(api) => server::serve(api.listener, api.tls, backend).await,
            None => std::future::pending().await,
        }
    };
    tokio::join!(
        node::run(config.clone()),
        pods.run(),
        image_gc::run(config.clone()),
        serve
    );
}

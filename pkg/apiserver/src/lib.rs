//! kite's Kubernetes API server.
//!
//! [`Server`] takes a bound listener, the serving certificate and the client CA
//! from [`Config`], terminates TLS (HTTP/1.1 and HTTP/2 on one port),
//! authenticates each connection by its client certificate and routes requests.
//! Start at [`serve`] for the connection loop, [`router`] for the paths and
//! [`api`] for the resource API (`/api`, `/apis`), whose verbs live in
//! [`handlers`] and whose per-kind rules live in [`strategy`].

pub mod admission;
pub mod allocator;
pub mod api;
pub mod auth;
pub mod authn;
pub mod body;
pub mod bootstrap;
pub mod codec;
pub mod crd;
pub mod csr;
pub mod discovery;
pub mod errors;
pub mod field_manager;
pub mod field_validation;
pub mod filter;
pub mod finalizer_loop;
pub mod handlers;
pub mod health;
pub mod in_process;
pub mod inflight;
pub mod kubelet_proxy;
pub mod metrics;
pub mod namespace_finalizer;
pub mod objects;
pub mod openapi;
pub mod output;
pub mod registry;
pub mod request;
pub mod resource_metrics;
pub mod router;
pub mod serve;
pub mod strategy;
pub mod tls;
pub mod watch_cache;

pub use api::Api;
pub use authn::UserInfo;
pub use bootstrap::ApiEndpoint;
pub use health::{HealthCheck, HealthProbe};
pub use in_process::InProcess;
pub use serve::{Config, Server};

/// Errors that stop the API server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The serving certificate, key or client CA could not be loaded.
    #[error("invalid TLS material: {0}")]
    Tls(String),
    /// The datastore failed while creating the system objects.
    #[error("datastore: {0}")]
    Store(String),
    /// Accepting connections failed.
    #[error("listener failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

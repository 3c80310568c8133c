//! What kite's control-plane components share for talking to the API: the
//! pieces client-go gives kube-scheduler and kube-controller-manager.
//!
//! Components reach the apiserver only through a `kube::Client` (in-process in
//! `kite server`, over HTTPS elsewhere). On top of it this crate provides
//! [`leader`] election through a Lease, [`informer`]s (a watch-fed cache that
//! calls handlers after every change), a deduplicating work [`queue`] and an
//! [`events`] recorder writing `core/v1` Events as Kubernetes components do.

pub mod events;
pub mod informer;
pub mod leader;
pub mod queue;

pub use events::Recorder;
pub use informer::{Change, Informer};
pub use leader::LeaderElector;
pub use queue::WorkQueue;

/// `namespace/name` (or `name` for cluster-scoped objects), the key caches and queues use.
pub fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
        _ => meta.name.clone().unwrap_or_default(),
    }
}

/// Splits a key from [`key_of`] into namespace (empty if cluster-scoped) and name.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

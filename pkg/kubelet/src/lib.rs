//! kite's node agent, as the kubelet is Kubernetes': it registers the Node,
//! renews its Lease, runs the pods bound to it through [`kite_runtime`]'s
//! containers and reports their status, and serves the kubelet API
//! ([`server`]: logs, exec, attach, port-forward) that the apiserver proxies.

// Tests may unwrap; library code may not (checked by the non-test clippy pass).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod server;

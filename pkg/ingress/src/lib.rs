//! kite's Ingress controller (Traefik's place in k3s, in process): serves
//! `networking.k8s.io/v1` Ingresses of class `kite` (the default class) on the
//! node's ports 80 and 443.
//!
//! Start at [`run`]. Module map: [`routes`] (Ingresses → a routing table:
//! pure, precedence rules), [`backends`] (Service ports → ready endpoints,
//! round-robin), [`attempts`] (which endpoint a request tries next), [`pool`] (keep-alive connections to endpoints), [`tls`] (certificates by SNI from Secrets), [`proxy`] (the
//! general HTTP/1.1 + HTTP/2 server and forwarding), [`h1`] (the lean
//! path plain HTTP/1.1 requests take), [`status`] (the node address in
//! `status.loadBalancer`), [`class`] (the `kite` IngressClass), [`workers`]
//! (one server thread per core, as nginx runs its workers).
//!
//! Every change to Ingresses, classes, Services, slices or Secrets rebuilds
//! the table, endpoints and certificates (batched), and swaps them in whole.

// Tests may unwrap; library code may not (checked by the non-test clippy pass).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod attempts;
pub mod backends;
pub mod class;
pub mod h1;
pub mod pool;
pub mod proxy;
pub mod routes;
pub mod status;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod workers;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kite_client::Informer;
use kube::api::Api;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Changes closer together than this become one rebuild.
const BATCH: Duration = Duration::from_millis(20);

/// What the controller needs.
#[derive(Clone)]
pub struct Config {
    /// Client for the API.
    pub client: kube::Client,
    /// The address written to `status.loadBalancer` of served Ingresses.
    pub node_ip: IpAddr,
    /// The certificate for TLS names no Ingress covers.
    pub default_certificate: Arc<rustls::sign::CertifiedKey>,
}

/// Bound listening sockets, from [`workers::bind`]: one per server thread.
/// Either list may be empty (its port was taken).
#[derive(Default)]
pub struct Listeners {
    /// Plain HTTP (port 80).
    pub http: Vec<std::net::TcpListener>,
    /// HTTPS (port 443).
    pub https: Vec<std::net::TcpListener>,
}

/// Runs the controller and its servers until the future is dropped.
pub async fn run(config: Config, listeners: Listeners) {
    let ingresses: Informer<Ingress> = Informer::new(Api::all(config.client.clone()));
    let classes: Informer<IngressClass> = Informer::new(Api::all(config.client.clone()));
    let services: Informer<Service> = Informer::new(Api::all(config.client.clone()));
    let slices: Informer<EndpointSlice> = Informer::new(Api::all(config.client.clone()));
    // Only certificates: other Secrets are neither needed nor kept in memory.
    let secrets: Informer<Secret> = Informer::with_config(
        Api::all(config.client.clone()),
        kube::runtime::watcher::Config::default().fields("type=kubernetes.io/tls"),
    );
    let changed = Arc::new(Notify::new());
    {
        let c = changed.clone();
        ingresses.on_change(move |_| c.notify_one());
        let c = changed.clone();
        classes.on_change(move |_| c.notify_one());
        let c = changed.clone();
        services.on_change(move |_| c.notify_one());
        let c = changed.clone();
        slices.on_change(move |_| c.notify_one());
        let c = changed.clone();
        secrets.on_change(move |_| c.notify_one());
    }

    let state = Arc::new(proxy::State::default());
    let resolver = Arc::new(tls::Resolver::new(config.default_certificate.clone()));
    let tls = match tls::server_config(resolver.clone()) {
        Ok(tls) => Some(Arc::new(tls)),
        Err(error) => {
            tracing::error!(%error, "ingress: no TLS settings; HTTPS is off");
            None
        }
    };
    // Stopped when this future is dropped.
    let _workers = workers::start(&state, tls, listeners.http, listeners.https);

    let class = async {
        loop {
            match class::ensure(&config.client).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, "cannot create the kite IngressClass; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    };

    let sync = {
        let (ingresses, classes, services, slices, secrets) = (
            ingresses.clone(),
            classes.clone(),
            services.clone(),
            slices.clone(),
            secrets.clone(),
        );
        let client = config.client.clone();
        async move {
            ingresses.wait_synced().await;
            classes.wait_synced().await;
            services.wait_synced().await;
            slices.wait_synced().await;
            secrets.wait_synced().await;
            loop {
                let default_class = class::is_default(&classes.list());
                let all = ingresses.list();
                let table = routes::Table::build(&all, default_class);
                let backends =
                    backends::Backends::build(&table.backends(), &services.list(), &slices.list());
                state.set(table, backends);
                resolver.set(tls::Certificates::build(&all, default_class, |ns, name| {
                    secrets.get(&format!("{ns}/{name}"))
                }));
                for ingress in &all {
                    let served = routes::serves(ingress, default_class);
                    let shown = status::is_current(ingress, config.node_ip);
                    // Served and not showing the node address, or showing it
                    // though no longer served.
                    if served == shown {
                        continue;
                    }
                    let ip = served.then_some(config.node_ip);
                    if let Err(error) = status::publish(&client, ingress, ip).await {
                        tracing::warn!(%error, ingress = ?ingress.metadata.name, "cannot set the ingress address");
                    }
                }
                changed.notified().await;
                tokio::time::sleep(BATCH).await;
            }
        }
    };
    tokio::join!(
        ingresses.run(),
        classes.run(),
        services.run(),
        slices.run(),
        secrets.run(),
        class,
        sync,
    );
}

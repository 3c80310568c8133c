//! kite's cluster DNS (CoreDNS's `kubernetes` plugin, in process): answers
//! `cluster.local` from Services and EndpointSlices as the Kubernetes DNS
//! specification describes, and forwards every other name to the node's
//! resolvers.
//!
//! Start at [`run`]. Module map: [`wire`] (the DNS message format),
//! [`zone`] (API objects → records, and lookups over them: pure functions),
//! [`forward`] (upstream resolvers and their cache), [`server`] (UDP and
//! TCP serving), [`publish`] (the `kube-system/kube-dns` Service and its
//! EndpointSlice, which make the ClusterIP reach this server through the
//! service proxy).

// Tests may unwrap; library code may not (checked by the non-test clippy pass).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod forward;
pub mod publish;
pub mod server;
pub mod wire;
pub mod zone;

pub use server::Server;
pub use zone::Zone;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kite_client::Informer;
use kube::api::Api;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Notify;

/// Changes closer together than this become one zone rebuild.
const BATCH: Duration = Duration::from_millis(20);

/// What the DNS server needs.
#[derive(Clone)]
pub struct Config {
    /// Client for the API.
    pub client: kube::Client,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// The `kube-dns` ClusterIP (`--cluster-dns`).
    pub cluster_dns: IpAddr,
    /// This node's name (for the EndpointSlice).
    pub node_name: String,
    /// Upstream resolvers for names outside the cluster.
    pub upstreams: Vec<SocketAddr>,
    /// Who may query (pods' and nodes' addresses; loopback always may);
    /// `None` answers anyone.
    pub clients: Option<Vec<ipnet::IpNet>>,
}

/// Bound sockets the server answers on (same address and port).
pub struct Listeners {
    /// The UDP socket.
    pub udp: UdpSocket,
    /// The TCP listener.
    pub tcp: TcpListener,
}

/// Runs the DNS server until the future is dropped.
pub async fn run(config: Config, listeners: Listeners) {
    let listen = match listeners.udp.local_addr() {
        Ok(addr) => addr,
        Err(error) => {
            tracing::error!(%error, "the DNS socket has no address");
            return;
        }
    };
    let services: Informer<Service> = Informer::new(Api::all(config.client.clone()));
    let slices: Informer<EndpointSlice> = Informer::new(Api::all(config.client.clone()));
    let changed = Arc::new(Notify::new());
    {
        let changed = changed.clone();
        services.on_change(move |_| changed.notify_one());
    }
    {
        let changed = changed.clone();
        slices.on_change(move |_| changed.notify_one());
    }
    let empty: [Arc<Service>; 0] = [];
    let no_slices: [Arc<EndpointSlice>; 0] = [];
    let server = Server::with_clients(
        Zone::build(
            &config.domain,
            Some(config.cluster_dns),
            &empty,
            &no_slices,
            0,
        ),
        forward::Forwarder::new(config.upstreams.clone()),
        config.clients.clone(),
    );
    tracing::info!(%listen, upstreams = ?config.upstreams, "cluster DNS listening");
    let sync = {
        let (services, slices, server) = (services.clone(), slices.clone(), server.clone());
        let config = config.clone();
        async move {
            services.wait_synced().await;
            slices.wait_synced().await;
            let mut serial: u32 = 1;
            loop {
                let zone = Zone::build(
                    &config.domain,
                    Some(config.cluster_dns),
                    &services.list(),
                    &slices.list(),
                    serial,
                );
                server.set_zone(zone);
                serial = serial.wrapping_add(1);
                changed.notified().await;
                tokio::time::sleep(BATCH).await;
            }
        }
    };
    let publish = async {
        loop {
            match publish::ensure(
                &config.client,
                config.cluster_dns,
                listen,
                &config.node_name,
            )
            .await
            {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, "cannot publish the kube-dns Service; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    };
    tokio::join!(
        services.run(),
        slices.run(),
        sync,
        publish,
        server.serve(listeners.udp, listeners.tcp)
    );
}

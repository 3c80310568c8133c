//! The connection loop: accept TCP, finish the TLS handshake, read the
//! client certificate once per connection, then serve HTTP/1.1 or HTTP/2
//! (chosen by ALPN) until shutdown, draining open connections under a timeout.

use crate::authn::UserInfo;
use crate::health::{Health, HealthCheck};
use crate::router::Router;
use crate::{Result, tls};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use kite_api::VersionInfo;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the API server needs, ready to use.
pub struct Config {
    /// The bound HTTPS listener.
    pub listener: TcpListener,
    /// PEM chain of the serving certificate (leaf first).
    pub serving_cert_pem: Vec<u8>,
    /// PEM private key of the serving certificate.
    pub serving_key_pem: Vec<u8>,
    /// PEM of the CA that signs client certificates.
    pub client_ca_pem: Vec<u8>,
    /// PEM of the server CA, published at `/cacerts` for joining agents.
    pub server_ca_pem: Vec<u8>,
    /// Health checks of the components behind the API (e.g. the store).
    pub checks: Vec<HealthCheck>,
    /// The version document served at `/version`.
    pub version: VersionInfo,
    /// The datastore.
    pub store: Arc<dyn kite_store::Backend>,
    /// Where pods and other nodes reach this API server.
    pub endpoint: crate::bootstrap::ApiEndpoint,
    /// Token authentication: the service-account key, the node join token.
    pub auth: crate::auth::AuthConfig,
    /// Service ClusterIP and NodePort ranges.
    pub service_network: crate::allocator::ServiceNetwork,
    /// How to reach kubelets (`pods/log`, `exec`, `attach`, `portforward`).
    pub kubelet_client: Option<crate::kubelet_proxy::KubeletClientConfig>,
    /// Requests served at once before 429 (see [`crate::inflight`]).
    pub in_flight: crate::inflight::Limits,
}

/// How often the watch caches drop the events the store has compacted.
const CACHE_TRIM_INTERVAL: Duration = Duration::from_secs(30);

/// Keeps the watch caches' history no longer than the store's, so memory
/// follows compaction (watch starts also check, see `handlers::watch`).
async fn forget_compacted(api: Arc<crate::api::Api>) {
    let mut tick = tokio::time::interval(CACHE_TRIM_INTERVAL);
    loop {
        tick.tick().await;
        if let Ok(revision) = api.store.compact_revision().await {
            for (_, cache) in api.caches() {
                cache.forget_compacted(revision);
            }
        }
    }
}

/// A configured API server, ready to [`Server::run`].
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    health: Arc<Health>,
    router: Arc<Router>,
}

impl Server {
    /// Validates the TLS material, creates the system objects and builds the server.
    pub async fn new(config: Config) -> Result<Self> {
        let tls = tls::server_config(
            &config.serving_cert_pem,
            &config.serving_key_pem,
            &config.client_ca_pem,
        )?;
        let health = Arc::new(Health::new(config.checks));
        let registry = Arc::new(crate::registry::Registry::new(
            kite_api::resources::builtin(),
        ));
        crate::bootstrap::ensure(&*config.store, &registry, &config.endpoint)
            .await
            .map_err(|e| crate::Error::Store(e.to_string()))?;
        let server_address =
            std::net::SocketAddr::new(config.endpoint.address, config.endpoint.port).to_string();
        crate::auth::policy::ensure(&*config.store, &registry)
            .await
            .map_err(|e| crate::Error::Store(e.to_string()))?;
        let auth = Arc::new(
            crate::auth::Auth::new(config.auth).map_err(|e| crate::Error::Tls(e.to_string()))?,
        );
        let kubelet = config
            .kubelet_client
            .as_ref()
            .map(crate::kubelet_proxy::KubeletClient::new)
            .transpose()?;
        let api = Arc::new(
            crate::api::Api::new(registry, config.store.clone(), server_address, auth.clone())
                .with_service_network(config.service_network)
                .with_kubelet_client(kubelet),
        );
        api.start_caches();
        crate::crd::sync(&api).await;
        auth.attach(&api);
        tokio::spawn(crate::namespace_finalizer::run(api.clone()));
        tokio::spawn(crate::crd::run(api.clone()));
        tokio::spawn(forget_compacted(api.clone()));
        tokio::spawn(crate::resource_metrics::scrape::run(api.clone()));
        let router = Router::new(
            health.clone(),
            &config.version,
            Bytes::from(config.server_ca_pem),
        )
        .with_auth(auth)
        .with_api(api)
        .with_in_flight_limits(config.in_flight);
        Ok(Self {
            listener: config.listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            health,
            router: Arc::new(router),
        })
    }

    /// The health checks behind `/healthz`, `/livez` and `/readyz`.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// A service reaching this server's API in-process as `user` in `groups`,
    /// for the components that run inside `kite server` (see [`crate::InProcess`]).
    pub fn in_process(&self, user: &str, groups: &[&str]) -> crate::InProcess {
        crate::InProcess::new(self.router.clone(), user, groups)
    }

    /// Serves until `shutdown` resolves, then drains open connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let graceful = GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // EMFILE and friends are transient: back off instead of exiting.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let router = self.router.clone();
            let builder = builder.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let user = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| UserInfo::from_client_cert(leaf))
                    .map(Arc::new);
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let router = router.clone();
                    let user = user.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            router.handle(request, user.clone()).await,
                        )
                    }
                });
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                if let Err(error) = watcher.watch(connection.into_owned()).await {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            });
        }

        self.health.begin_shutdown();
        drop(self.listener);
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::info!("open connections did not finish in time; closing them");
        }
        Ok(())
    }
}

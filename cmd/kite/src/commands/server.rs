//! `kite server`: a whole single-node cluster in this process.
//!
//! Resolves the flags into each component's config, creates or reuses the
//! PKI and the datastore, writes the admin kubeconfig, then serves the API
//! until SIGTERM or SIGINT.

use crate::cli::ServerArgs;
use crate::logging;
use crate::paths::{self, DataDir};
use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use kite_store::Backend;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Runs the server until a termination signal arrives.
pub fn run(args: ServerArgs) -> Result<()> {
    logging::init(args.common.log_format, args.common.verbosity);
    let settings = Settings::resolve(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kite")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(settings))
}

/// The server's flags after checks that involve more than one flag.
struct Settings {
    args: ServerArgs,
    data: DataDir,
    node_name: String,
    node_ip: IpAddr,
    database: PathBuf,
    kubeconfig: PathBuf,
    /// The node's resolv.conf (`--resolv-conf`, or the one found).
    resolv_conf: PathBuf,
}

impl Settings {
    fn resolve(args: ServerArgs) -> Result<Self> {
        if !args.service_cidr.contains(&args.cluster_dns) {
            bail!(
                "--cluster-dns {} is not inside --service-cidr {}",
                args.cluster_dns,
                args.service_cidr
            );
        }
        if overlaps(&args.cluster_cidr, &args.service_cidr) {
            bail!(
                "--cluster-cidr {} overlaps --service-cidr {}",
                args.cluster_cidr,
                args.service_cidr
            );
        }
        let data = DataDir::new(paths::data_dir(args.common.data_dir.as_deref()));
        let database = datastore_path(&args.datastore_endpoint, &data)?;
        let node_name = match &args.node.node_name {
            Some(name) => name.clone(),
            None => hostname()?,
        };
        let node_ip = args.node.node_ip.unwrap_or_else(default_route_ip);
        let resolv_conf = match &args.node.resolv_conf {
            Some(path) if !path.is_file() => {
                bail!("--resolv-conf {}: no such file", path.display())
            }
            Some(path) => path.clone(),
            None => host_resolv_conf(),
        };
        let kubeconfig = args
            .write_kubeconfig
            .clone()
            .unwrap_or_else(paths::default_kubeconfig);
        Ok(Self {
            args,
            data,
            node_name,
            node_ip,
            database,
            kubeconfig,
            resolv_conf,
        })
    }

    fn pki_config(&self) -> kite_pki::PkiConfig {
        let mut config = kite_pki::PkiConfig::new(self.data.tls());
        config.cluster_domain = self.args.cluster_domain.clone();
        config.service_ip = first_address(&self.args.service_cidr);
        config.add_san(&self.node_name);
        if let Ok(host) = hostname() {
            config.add_san(&host);
        }
        config.ips.push(self.node_ip);
        if let Some(ip) = self.args.advertise_address {
            config.ips.push(ip);
        }
        for san in &self.args.tls_san {
            config.add_san(san);
        }
        config
    }
}

/// The datastore's compaction schedule from the flags.
fn store_config(args: &crate::cli::ServerArgs) -> kite_store::Config {
    let interval = args.datastore_compaction_interval;
    kite_store::Config {
        compaction_interval: (!interval.is_zero()).then_some(interval),
        compaction_window: i64::from(args.datastore_compaction_retain),
        ..kite_store::Config::default()
    }
}

async fn serve(settings: Settings) -> Result<()> {
    let started = Instant::now();
    let args = &settings.args;
    std::fs::create_dir_all(settings.data.server()).with_context(|| {
        format!(
            "--data-dir: cannot create {}",
            settings.data.server().display()
        )
    })?;

    let pki =
        std::sync::Arc::new(kite_pki::Pki::ensure(&settings.pki_config()).context("certificates")?);
    let token = kite_pki::ensure_token(
        &settings.data.server(),
        &pki.paths().server_ca_cert,
        args.token.as_deref(),
    )
    .context("join token")?;
    tracing::debug!(elapsed = ?started.elapsed(), "certificates ready");

    if let Some(dir) = settings.database.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the datastore folder {}", dir.display()))?;
    }
    let store: Arc<dyn Backend> = Arc::new(
        kite_store::SqliteBackend::open(&settings.database, store_config(args))
            .with_context(|| format!("datastore {}", settings.database.display()))?,
    );
    tracing::debug!(elapsed = ?started.elapsed(), "datastore open");

    let address = SocketAddr::new(args.bind_address, args.https_listen_port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("--https-listen-port: cannot listen on {address}"))?;

    let server_url = format!("https://127.0.0.1:{}", args.https_listen_port);
    for path in [&settings.kubeconfig, &settings.data.admin_kubeconfig()] {
        kite_pki::write_kubeconfig(
            path,
            args.write_kubeconfig_mode,
            &server_url,
            pki.server_ca_pem(),
            pki.admin_cert_pem(),
            pki.admin_key_pem(),
        )
        .with_context(|| format!("--write-kubeconfig: cannot write {}", path.display()))?;
    }

    // The apiserver reaches kubelets with a client certificate of the client
    // CA, named as kube-apiserver's conventionally is.
    let (kubelet_client_cert, kubelet_client_key) = pki
        .issue_client_cert(KUBELET_CLIENT_CN, &["system:masters"], CERT_DAYS)
        .context("kubelet client certificate")?;
    let version = kite_api::VersionInfo::new(env!("KITE_GIT_COMMIT"), env!("KITE_BUILD_DATE"));
    let server = kite_apiserver::Server::new(kite_apiserver::Config {
        listener,
        serving_cert_pem: pki.serving_cert_chain_pem().as_bytes().to_vec(),
        serving_key_pem: pki.serving_key_pem().as_bytes().to_vec(),
        client_ca_pem: pki.client_ca_pem().as_bytes().to_vec(),
        server_ca_pem: pki.server_ca_pem().as_bytes().to_vec(),
        checks: vec![store_check(store.clone())],
        version,
        store: store.clone(),
        endpoint: kite_apiserver::ApiEndpoint {
            service_ip: first_address(&args.service_cidr),
            address: args.advertise_address.unwrap_or(settings.node_ip),
            port: args.https_listen_port,
        },
        auth: kite_apiserver::auth::AuthConfig {
            service_account_key_pem: Some(
                pki.service_account().private_key_pem().as_bytes().to_vec(),
            ),
            node_token: Some(token.clone()),
            ..Default::default()
        },
        service_network: kite_apiserver::allocator::ServiceNetwork {
            cidr: args.service_cidr,
            node_port_first: args.service_node_port_range.first,
            node_port_last: args.service_node_port_range.last,
        },
        in_flight: kite_apiserver::inflight::Limits {
            reads: args.max_requests_inflight,
            mutating: args.max_mutating_requests_inflight,
        },
        kubelet_client: Some(kite_apiserver::kubelet_proxy::KubeletClientConfig {
            cert_pem: kubelet_client_cert.into_bytes(),
            key_pem: kubelet_client_key.into_bytes(),
            ca_pem: pki.server_ca_pem().as_bytes().to_vec(),
        }),
    })
    .await
    .context("API server")?;

    let control_plane = crate::control_plane::spawn(
        &server,
        crate::control_plane::ControlPlane {
            scheduler: !args.disable_scheduler,
            controllers: !args.disable_controller_manager,
            node_name: settings.node_name.clone(),
            server_ca_pem: pki.server_ca_pem().to_string(),
            certificate_signer: Some(pki.clone()),
            cluster_cidr: args.cluster_cidr,
            service_lb: !args.disable.contains(&crate::cli::Component::Servicelb),
            node_monitor_grace_period: args.node_monitor_grace_period,
            local_storage: (!args.disable.contains(&crate::cli::Component::LocalStorage))
                .then(|| settings.data.storage()),
        },
    );

    let dns = if args.disable.contains(&crate::cli::Component::Dns) {
        None
    } else {
        spawn_dns(&server, &settings).await
    };

    let mut agent = Vec::new();
    if !args.disable_agent {
        let api = kubelet_listener(&pki, &settings).await?;
        agent = spawn_agent(&server, &settings, api).context("node agent")?;
        if !args.disable.contains(&crate::cli::Component::Ingress) {
            agent.push(("ingress", spawn_ingress(&server, &pki, &settings).await?));
        }
    }

    tracing::info!(
        %address,
        node = %settings.node_name,
        kubeconfig = %settings.kubeconfig.display(),
        data_dir = %settings.data.server().parent().unwrap_or(&settings.data.server()).display(),
        startup = ?started.elapsed(),
        "kite is up and running"
    );
    tracing::debug!(token_file = %settings.data.token().display(), len = token.len(), "join token ready");

    let tasks: Vec<(&str, tokio::task::JoinHandle<()>)> = control_plane
        .into_iter()
        .chain(agent)
        .chain(dns.map(|task| ("cluster-dns", task)))
        .collect();
    for (name, task) in &tasks {
        server.health().add_task(name, task.abort_handle());
    }

    server.run(shutdown_signal()).await.context("API server")?;
    for (_, task) in tasks {
        task.abort();
    }
    tracing::info!("kite stopped");
    Ok(())
}

/// Starts the node's components: the kubelet (its containers outlive kite; a
/// restarted kite adopts them), the service proxy and network policy
/// enforcement. Each is named for `/readyz?verbose`.
fn spawn_agent(
    server: &kite_apiserver::Server,
    settings: &Settings,
    api: kite_kubelet::ApiListener,
) -> Result<Vec<(&'static str, tokio::task::JoinHandle<()>)>> {
    let kubelet_args = kite_kubelet::args::KubeletArgs::parse(&settings.args.node.kubelet_args)
        .map_err(anyhow::Error::msg)?;
    let root = settings.data.agent();
    let store = kite_runtime::Store::open(&root)
        .with_context(|| format!("cannot open the image store in {}", root.display()))?;
    let binary = std::env::current_exe().context("cannot find the kite binary")?;
    let runtime =
        kite_runtime::Runtime::new(store, kite_runtime::RuntimeConfig::for_binary(binary));
    let registries = kite_runtime::registries::Registries::load(&settings.args.private_registry)
        .context("--private-registry")?;
    let puller = kite_runtime::pull::Puller::new(registries);
    let network = match settings.args.cluster_cidr {
        ipnet::IpNet::V4(cluster_cidr) => Some(std::sync::Arc::new(kite_network::PodNetwork::new(
            kite_network::Config {
                root: root.join("network"),
                cluster_cidr,
                node_ip: settings.node_ip,
            },
        ))),
        ipnet::IpNet::V6(_) => {
            tracing::warn!(
                "IPv6-only cluster CIDRs have no pod network yet; pods get loopback only"
            );
            None
        }
    };
    // Full rights until the Node authorizer exists (k3s's kubelet gets
    // system:nodes, limited to its own node's objects by that authorizer).
    let client = kube::Client::new(
        server.in_process(
            &format!("system:node:{}", settings.node_name),
            &["system:masters", "system:nodes"],
        ),
        "default",
    );
    let config = kite_kubelet::Config {
        client,
        node_name: settings.node_name.clone(),
        node_ip: settings.node_ip,
        runtime,
        puller,
        network,
        root,
        control_plane: true,
        cluster_dns: Some(settings.args.cluster_dns),
        cluster_domain: settings.args.cluster_domain.clone(),
        resolv_conf: settings.resolv_conf.clone(),
        port: settings.args.node.kubelet_port,
        version: env!("CARGO_PKG_VERSION").to_string(),
        image_gc: kubelet_args.image_gc,
        pod_max_pids: kubelet_args.pod_max_pids,
    };
    let proxy = (!settings.args.disable_kube_proxy).then(|| kite_proxy::Config {
        client: config.client.clone(),
        node_name: settings.node_name.clone(),
        cluster_cidr: match settings.args.cluster_cidr {
            ipnet::IpNet::V4(cidr) => Some(cidr),
            ipnet::IpNet::V6(_) => None,
        },
    });
    let network_policy = !settings
        .args
        .disable
        .contains(&crate::cli::Component::NetworkPolicy);
    let policy = network_policy.then(|| kite_proxy::policy::Config {
        client: config.client.clone(),
        node_name: settings.node_name.clone(),
        dns_port: (!settings.args.disable.contains(&crate::cli::Component::Dns))
            .then_some(DNS_PORT),
    });
    let mut tasks = vec![(
        "kubelet",
        tokio::spawn(kite_kubelet::run(config, Some(api))),
    )];
    if let Some(proxy) = proxy {
        tasks.push(("kube-proxy", tokio::spawn(kite_proxy::run(proxy))));
    }
    match policy {
        Some(policy) => tasks.push((
            "network-policy",
            tokio::spawn(kite_proxy::policy::run(policy)),
        )),
        None => {
            // Rules of an earlier run with policies on must not linger.
            if let Err(error) = kite_proxy::policy::remove() {
                tracing::warn!(%error, "cannot remove the network policy table");
            }
        }
    }
    Ok(tasks)
}

/// The port the cluster DNS listens on at the node address; the `kube-dns`
/// Service maps port 53 to it (a dedicated port keeps clear of resolvers the
/// node may already run on port 53).
const DNS_PORT: u16 = 10053;

/// Binds the cluster DNS on the node address and starts it. A port already
/// taken (another kite in this network namespace, another DNS server) leaves
/// the cluster without DNS but running, with a warning.
async fn spawn_dns(
    server: &kite_apiserver::Server,
    settings: &Settings,
) -> Option<tokio::task::JoinHandle<()>> {
    let address = SocketAddr::new(settings.node_ip, DNS_PORT);
    let bound = async {
        let udp = tokio::net::UdpSocket::bind(address).await?;
        let tcp = tokio::net::TcpListener::bind(address).await?;
        std::io::Result::Ok((udp, tcp))
    };
    let (udp, tcp) = match bound.await {
        Ok(sockets) => sockets,
        Err(error) => {
            tracing::warn!(%address, %error, "cluster DNS: cannot listen; pods get no cluster DNS (--disable coredns silences this)");
            return None;
        }
    };
    let exclude = [settings.args.cluster_dns, settings.node_ip];
    let upstreams = kite_dns::forward::upstreams_from_resolv_conf(
        &std::fs::read_to_string(&settings.resolv_conf).unwrap_or_default(),
        &exclude,
    );
    if upstreams.is_empty() {
        tracing::warn!(
            resolv_conf = %settings.resolv_conf.display(),
            "no usable nameserver: names outside the cluster will fail (--resolv-conf names another file)"
        );
    }
    let client = kube::Client::new(
        server.in_process("system:kite-dns", &["system:masters"]),
        "default",
    );
    let config = kite_dns::Config {
        client,
        domain: settings.args.cluster_domain.clone(),
        cluster_dns: settings.args.cluster_dns,
        node_name: settings.node_name.clone(),
        upstreams,
        // Pods (the cluster range) and this node; not the node's network.
        clients: Some(vec![
            settings.args.cluster_cidr,
            ipnet::IpNet::from(settings.node_ip),
        ]),
    };
    Some(tokio::spawn(kite_dns::run(
        config,
        kite_dns::Listeners { udp, tcp },
    )))
}

/// The ports the Ingress controller serves HTTP and HTTPS on.
const INGRESS_PORTS: (u16, u16) = (80, 443);

/// Binds the Ingress controller's ports on the node address and starts it,
/// with a default certificate for the node's name from the cluster PKI. A
/// port already taken leaves that half off, with a warning.
async fn spawn_ingress(
    server: &kite_apiserver::Server,
    pki: &kite_pki::Pki,
    settings: &Settings,
) -> Result<tokio::task::JoinHandle<()>> {
    let threads = kite_ingress::workers::count();
    let bind = |port: u16| {
        let address = SocketAddr::new(settings.node_ip, port);
        kite_ingress::workers::bind(address, threads).unwrap_or_else(|error| {
            tracing::warn!(%address, %error, "ingress: cannot listen (--disable traefik silences this)");
            Vec::new()
        })
    };
    let listeners = kite_ingress::Listeners {
        http: bind(INGRESS_PORTS.0),
        https: bind(INGRESS_PORTS.1),
    };
    let names = vec![settings.node_name.clone()];
    let (cert, key) = pki
        .issue_serving_cert(&settings.node_name, &names, &[settings.node_ip], CERT_DAYS)
        .context("ingress default certificate")?;
    let chain = format!("{cert}{}", pki.server_ca_pem());
    let default_certificate =
        kite_ingress::tls::certified_key(chain.as_bytes(), key.as_bytes(), "ingress default")
            .context("ingress default certificate")?;
    let client = kube::Client::new(
        server.in_process("system:kite-ingress", &["system:masters"]),
        "default",
    );
    let config = kite_ingress::Config {
        client,
        node_ip: settings.node_ip,
        default_certificate,
    };
    tracing::info!(ip = %settings.node_ip, threads, "ingress controller listening on ports 80 and 443");
    Ok(tokio::spawn(kite_ingress::run(config, listeners)))
}

/// The CN of the apiserver's client certificate for kubelets (kubeadm's name).
const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";
/// Validity of the certificates issued at each start.
const CERT_DAYS: u32 = 365;

/// Binds the kubelet API port (all addresses, as the kubelet's `--address`
/// defaults) with a serving certificate for the node's name and address.
async fn kubelet_listener(
    pki: &kite_pki::Pki,
    settings: &Settings,
) -> Result<kite_kubelet::ApiListener> {
    let port = settings.args.node.kubelet_port;
    let names = vec![settings.node_name.clone(), "localhost".to_string()];
    let ips = vec![settings.node_ip, IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)];
    let (cert, key) = pki
        .issue_serving_cert(&settings.node_name, &names, &ips, CERT_DAYS)
        .context("kubelet serving certificate")?;
    let chain = format!("{cert}{}", pki.server_ca_pem());
    let tls = kite_kubelet::server::tls_config(
        chain.as_bytes(),
        key.as_bytes(),
        pki.client_ca_pem().as_bytes(),
    )
    .map_err(anyhow::Error::msg)?;
    let address = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), port);
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        // No IPv6 in this namespace: IPv4 only.
        Err(_) => tokio::net::TcpListener::bind(SocketAddr::new(
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            port,
        ))
        .await
        .with_context(|| format!("--kubelet-port: cannot listen on port {port}"))?,
    };
    Ok(kite_kubelet::ApiListener { listener, tls })
}

/// The `etcd` readiness check, named as kube-apiserver names its datastore check.
fn store_check(store: Arc<dyn Backend>) -> kite_apiserver::HealthCheck {
    kite_apiserver::HealthCheck {
        name: "etcd".to_string(),
        probe: Arc::new(move || {
            let store = store.clone();
            Box::pin(async move {
                store
                    .current_revision()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        }),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop kite with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }
}

/// The SQLite file `--datastore-endpoint` names (empty means the data dir's own).
fn datastore_path(endpoint: &str, data: &DataDir) -> Result<PathBuf> {
    if endpoint.is_empty() {
        return Ok(data.database());
    }
    if let Some(path) = endpoint.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            bail!(
                "--datastore-endpoint: {endpoint:?} names no file; use sqlite:///path/to/state.db"
            );
        }
        return Ok(PathBuf::from(path));
    }
    let scheme = endpoint.split("://").next().unwrap_or(endpoint);
    bail!(
        "--datastore-endpoint: {scheme:?} datastores are not supported yet; leave it empty for the embedded SQLite or use sqlite:///path"
    )
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first usable address of a CIDR: the `kubernetes` Service's ClusterIP.
fn first_address(net: &IpNet) -> IpAddr {
    net.hosts().next().unwrap_or(net.network())
}

fn hostname() -> Result<String> {
    let name = nix::unistd::gethostname().context("cannot read the hostname; set --node-name")?;
    let name = name.to_string_lossy().to_lowercase();
    if name.is_empty() {
        bail!("the hostname is empty; set --node-name");
    }
    Ok(name)
}

/// The resolv.conf the node's resolvers are read from: /etc/resolv.conf,
/// unless it names only loopback stubs (systemd-resolved's 127.0.0.53, which
/// pods cannot reach) and systemd-resolved's own list names real ones, as
/// k3s chooses.
fn host_resolv_conf() -> PathBuf {
    const HOST: &str = "/etc/resolv.conf";
    const RESOLVED: &str = "/run/systemd/resolve/resolv.conf";
    let usable = |path: &str| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        !kite_dns::forward::upstreams_from_resolv_conf(&text, &[]).is_empty()
    };
    if !usable(HOST) && usable(RESOLVED) {
        PathBuf::from(RESOLVED)
    } else {
        PathBuf::from(HOST)
    }
}

/// The source address of the default route, found without sending a packet
/// (connecting a UDP socket only consults the routing table).
fn default_route_ip() -> IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            socket.connect("192.0.2.1:53")?;
            socket.local_addr()
        })
        .map(|addr| addr.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datastore_endpoints_are_sqlite_paths_or_rejected() {
        let data = DataDir::new(PathBuf::from("/d"));
        assert_eq!(
            datastore_path("", &data).expect("empty"),
            PathBuf::from("/d/server/db/state.db")
        );
        assert_eq!(
            datastore_path("sqlite:///tmp/x.db?_journal=WAL", &data).expect("sqlite"),
            PathBuf::from("/tmp/x.db")
        );
        let error = datastore_path("postgres://u@h/db", &data)
            .expect_err("postgres")
            .to_string();
        assert!(
            error.starts_with("--datastore-endpoint: \"postgres\""),
            "{error}"
        );
    }

    #[test]
    fn the_first_service_address_is_the_api_service() {
        let net: IpNet = "10.43.0.0/16".parse().expect("cidr");
        assert_eq!(
            first_address(&net),
            "10.43.0.1".parse::<IpAddr>().expect("ip")
        );
        assert!(overlaps(&"10.0.0.0/8".parse().expect("a"), &net));
        assert!(!overlaps(&"10.42.0.0/16".parse().expect("a"), &net));
    }
}

//! The scheduler and controllers inside `kite server`: each reaches the API
//! in-process under its own identity and runs only while this server holds its
//! leader-election Lease, so several servers share one active set.

use kite_client::leader::{self, LeaderElector};
use std::sync::Arc;

/// Which control-plane components to run and what they need.
pub struct ControlPlane {
    /// Run the scheduler (`--disable-scheduler` turns it off).
    pub scheduler: bool,
    /// Run the controllers (`--disable-controller-manager` turns them off).
    pub controllers: bool,
    /// This node's name, for lease identities and event sources.
    pub node_name: String,
    /// The server CA, published as `kube-root-ca.crt` in every namespace.
    pub server_ca_pem: String,
    /// The CAs that sign approved CertificateSigningRequests.
    pub certificate_signer: Option<std::sync::Arc<kite_pki::Pki>>,
    /// `--cluster-cidr`, cut into the nodes' pod CIDRs.
    pub cluster_cidr: ipnet::IpNet,
    /// Run ServiceLB (`--disable servicelb` turns it off).
    pub service_lb: bool,
    /// `--node-monitor-grace-period`.
    pub node_monitor_grace_period: std::time::Duration,
    /// `<data-dir>/storage` for the local-path provisioner; `None` when
    /// `--disable local-storage` turns it off.
    pub local_storage: Option<std::path::PathBuf>,
}

/// The API as a `kube::Client` for a component running as `user`.
fn client(server: &kite_apiserver::Server, user: &str) -> kube::Client {
    // system:masters like kube-controller-manager's and kube-scheduler's
    // effective rights; their RBAC roles are not bootstrapped yet.
    kube::Client::new(server.in_process(user, &["system:masters"]), "default")
}

/// Starts the enabled components as background tasks, each with its name in
/// `/readyz?verbose`.
pub fn spawn(
    server: &kite_apiserver::Server,
    plan: ControlPlane,
) -> Vec<(&'static str, tokio::task::JoinHandle<()>)> {
    let mut tasks = Vec::new();
    let identity = Arc::new(leader::identity(&plan.node_name));
    if plan.scheduler {
        let client = client(server, "system:kube-scheduler");
        let scheduler = kite_scheduler::Scheduler::new(kite_scheduler::Config {
            client: client.clone(),
            scheduler_name: "default-scheduler".to_string(),
            host: plan.node_name.clone(),
        });
        let elector = LeaderElector::new(
            client,
            leader::Config::new("kube-system", "kube-scheduler", &identity),
        );
        tasks.push((
            "kube-scheduler",
            tokio::spawn(elector.run(move || scheduler.clone().run())),
        ));
    }
    if plan.controllers {
        let client = client(server, "system:kube-controller-manager");
        let config = kite_controllers::Config {
            client: client.clone(),
            root_ca_pem: plan.server_ca_pem.clone(),
            host: plan.node_name.clone(),
            cluster_cidr: Some(plan.cluster_cidr),
            service_lb: plan.service_lb,
            node_monitor_grace_period: plan.node_monitor_grace_period,
            local_storage: plan.local_storage.clone(),
            certificate_signer: plan.certificate_signer.clone(),
        };
        let elector = LeaderElector::new(
            client,
            leader::Config::new("kube-system", "kube-controller-manager", &identity),
        );
        tasks.push((
            "kube-controller-manager",
            tokio::spawn(elector.run(move || kite_controllers::run(config.clone()))),
        ));
    }
    tasks
}

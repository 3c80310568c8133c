//! kite's workload controllers, as kube-controller-manager runs them.
//!
//! Start at [`run`]: it creates the informers the controllers share, then runs
//! each controller, one module per controller: [`serviceaccount`] (the `default`
//! ServiceAccount and `kube-root-ca.crt` in every namespace), [`replicaset`],
//! [`deployment`], [`statefulset`], [`cronjob`] (schedules in [`cron`]),
//! [`daemonset`] (with [`history`] for ControllerRevisions), [`job`] (with
//! [`ttl`] after finishing), [`endpointslice`] and [`endpoints`] (what
//! Services select), node IPAM ([`nodeipam`]: each node's pod CIDR), node
//! health and taint-based eviction ([`node_lifecycle`]), PodDisruptionBudget
//! status ([`disruption`], what evictions spend), the autoscaler ([`hpa`]),
//! persistent [`volume`]s (the PV binder and the local-path provisioner),
//! [`certificates`] (approving and signing CSRs) and the
//! garbage collector [`gc`]. Each controller keeps a work
//! queue of object keys fed by informer handlers and a `reconcile` that reads
//! the informers' caches and writes through the API, like kube-runtime
//! controllers: reconciles are idempotent and may requeue themselves.

pub mod backoff_per_index;
pub mod certificates;
pub mod cron;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod gc;
pub mod history;
pub mod hpa;
pub mod job;
pub mod node_lifecycle;
pub mod nodeipam;
mod nodes;
pub mod pod_failure_policy;
pub mod replicaset;
pub mod resourcequota;
pub mod serviceaccount;
pub mod servicelb;
pub mod statefulset;
pub mod ttl;
mod util;
pub mod volume;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::storage::v1::StorageClass;
use kite_client::{Informer, WorkQueue};
use kube::api::Api;
use std::future::Future;
use std::time::Duration;

/// What the controllers need.
#[derive(Clone)]
pub struct Config {
    /// Client for the API (in-process inside `kite server`).
    pub client: kube::Client,
    /// PEM of the CA that signs the apiserver's certificate, published in
    /// every namespace's `kube-root-ca.crt` ConfigMap.
    pub root_ca_pem: String,
    /// Host name reported in events.
    pub host: String,
    /// The cluster's pod range, cut into each node's `spec.podCIDR`
    /// (`None`: nodes get no pod CIDR from kite).
    pub cluster_cidr: Option<ipnet::IpNet>,
    /// Whether LoadBalancer Services get the node addresses ([`servicelb`]).
    pub service_lb: bool,
    /// The CAs that sign approved CertificateSigningRequests (`None`: no
    /// signer runs, approved requests wait).
    pub certificate_signer: Option<std::sync::Arc<kite_pki::Pki>>,
    /// How long a kubelet may go without renewing its Lease before its node's
    /// conditions turn Unknown (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    /// Where the local-path provisioner makes volume directories
    /// (`<data-dir>/storage`); `None` (`--disable local-storage`) runs no
    /// provisioner and makes no `local-path` class.
    pub local_storage: Option<std::path::PathBuf>,
}

/// Errors a reconcile can end with; the key is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("api: {0}")]
    Api(#[from] kube::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs every controller until the future is dropped.
pub async fn run(config: Config) {
    let client = config.client.clone();
    let pods = Informer::new(Api::<Pod>::all(client.clone()));
    let replicasets = Informer::new(Api::<ReplicaSet>::all(client.clone()));
    let deployments = Informer::new(Api::<Deployment>::all(client.clone()));
    let services = Informer::new(Api::<Service>::all(client.clone()));
    let slices = Informer::new(Api::<EndpointSlice>::all(client.clone()));
    let endpoints = Informer::new(Api::<Endpoints>::all(client.clone()));
    let jobs = Informer::new(Api::<Job>::all(client.clone()));
    let cronjobs = Informer::new(Api::<CronJob>::all(client.clone()));
    let nodes = Informer::new(Api::<Node>::all(client.clone()));
    let daemonsets = Informer::new(Api::<DaemonSet>::all(client.clone()));
    let revisions = Informer::new(Api::<ControllerRevision>::all(client.clone()));
    let statefulsets = Informer::new(Api::<StatefulSet>::all(client.clone()));
    let claims = Informer::new(Api::<PersistentVolumeClaim>::all(client.clone()));
    let volumes = Informer::new(Api::<PersistentVolume>::all(client.clone()));
    let classes = Informer::new(Api::<StorageClass>::all(client.clone()));
    let leases = Informer::new(Api::namespaced(
        client.clone(),
        node_lifecycle::LEASE_NAMESPACE,
    ));

    let sa = serviceaccount::Controller::new(&config);
    let rs = replicaset::Controller::new(&config, replicasets.clone(), pods.clone());
    let deploy = deployment::Controller::new(&config, deployments.clone(), replicasets.clone());
    let eps =
        endpointslice::Controller::new(&config, services.clone(), pods.clone(), slices.clone());
    let ep = endpoints::Controller::new(&config, services.clone(), pods.clone(), endpoints.clone());
    let job = job::Controller::new(&config, jobs.clone(), pods.clone());
    let ttl = ttl::Controller::new(&config, jobs.clone());
    let ds = daemonset::Controller::new(
        &config,
        daemonsets.clone(),
        pods.clone(),
        nodes.clone(),
        revisions.clone(),
    );
    let sts = statefulset::Controller::new(
        &config,
        statefulsets.clone(),
        pods.clone(),
        revisions.clone(),
    );
    let cj = cronjob::Controller::new(&config, cronjobs.clone(), jobs.clone());
    let gc = gc::GarbageCollector::new(&config);
    let ipam = nodeipam::Controller::new(&config, nodes.clone());
    let lb = config
        .service_lb
        .then(|| servicelb::Controller::new(&config, services.clone(), nodes.clone()));
    let lifecycle =
        node_lifecycle::Controller::new(&config, nodes.clone(), pods.clone(), leases.clone());
    let quota = resourcequota::Controller::new(&config, pods.clone(), services.clone());
    let autoscaler = hpa::Controller::new(&config, pods.clone());
    let requests = Informer::new(Api::<
        k8s_openapi::api::certificates::v1::CertificateSigningRequest,
    >::all(client.clone()));
    let approver = certificates::approver::Controller::new(&config, requests.clone());
    let signer = config
        .certificate_signer
        .clone()
        .map(|pki| certificates::signer::Controller::new(&config, pki, requests.clone()));
    let disruption = disruption::Controller::new(
        &config,
        disruption::Sources {
            pods: pods.clone(),
            replicasets: replicasets.clone(),
            deployments: deployments.clone(),
            statefulsets: statefulsets.clone(),
        },
    );
    let binder = volume::binder::Controller::new(
        &config,
        claims.clone(),
        volumes.clone(),
        classes.clone(),
        nodes.clone(),
    );
    let protection =
        volume::protection::Controller::new(&config, claims.clone(), volumes.clone(), pods.clone());
    let local_path = config.local_storage.clone().map(|root| {
        volume::local_path::Provisioner::new(
            &config,
            root,
            claims.clone(),
            volumes.clone(),
            classes.clone(),
        )
    });

    // Each on the heap: together, inline, they overflow a worker thread's stack.
    tokio::join!(
        Box::pin(pods.run()),
        Box::pin(replicasets.run()),
        Box::pin(deployments.run()),
        Box::pin(services.run()),
        Box::pin(slices.run()),
        Box::pin(endpoints.run()),
        Box::pin(jobs.run()),
        Box::pin(cronjobs.run()),
        Box::pin(nodes.run()),
        Box::pin(daemonsets.run()),
        Box::pin(revisions.run()),
        Box::pin(statefulsets.run()),
        Box::pin(leases.run()),
        Box::pin(claims.run()),
        Box::pin(volumes.run()),
        Box::pin(classes.run()),
        Box::pin(sa.run()),
        Box::pin(rs.run()),
        Box::pin(deploy.run()),
        Box::pin(eps.run()),
        Box::pin(ep.run()),
        Box::pin(job.run()),
        Box::pin(ttl.run()),
        Box::pin(cj.run()),
        Box::pin(ds.run()),
        Box::pin(sts.run()),
        Box::pin(gc.run()),
        Box::pin(lifecycle.run()),
        Box::pin(quota.run()),
        Box::pin(disruption.run()),
        Box::pin(autoscaler.run()),
        Box::pin(requests.run()),
        Box::pin(approver.run()),
        Box::pin(async move {
            if let Some(signer) = signer {
                signer.run().await;
            }
        }),
        Box::pin(binder.run()),
        Box::pin(protection.run()),
        Box::pin(async move {
            match local_path {
                Some(local_path) => local_path.run().await,
                None => volume::local_path::remove_class(client.clone()).await,
            }
        }),
        Box::pin(async move {
            if let Some(ipam) = ipam {
                ipam.run().await;
            }
        }),
        Box::pin(async move {
            if let Some(lb) = lb {
                lb.run().await;
            }
        }),
    );
}

/// Takes keys from `queue` one at a time and reconciles them; a reconcile asks
/// for a later look by returning a delay, and failures retry with back-off.
async fn work<F, Fut>(name: &'static str, queue: WorkQueue, reconcile: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Option<Duration>>>,
{
    let mut failures: std::collections::HashMap<String, u32> = Default::default();
    loop {
        let key = queue.next().await;
        match reconcile(key.clone()).await {
            Ok(later) => {
                failures.remove(&key);
                if let Some(delay) = later {
                    queue.add_after(&key, delay);
                }
            }
            Err(error) => {
                let count = failures.entry(key.clone()).or_default();
                *count = count.saturating_add(1);
                let delay =
                    Duration::from_millis(5 << (*count).min(12)).min(Duration::from_secs(60));
                tracing::warn!(controller = name, %key, %error, "reconcile failed; retrying");
                queue.add_after(&key, delay);
            }
        }
        queue.done(&key);
    }
}

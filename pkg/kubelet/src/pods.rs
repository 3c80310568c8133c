//! The pods bound to this node: a watch on them (field selector
//! `spec.nodeName`) and the static pods of the manifest directory
//! ([`crate::static_pods`], mirrored by [`crate::mirror`]) feed one worker task per pod, which drives the pod to
//! what its spec asks (sandbox, volumes, init containers in order, sidecars,
//! app containers with restarts and back-off, probes) and reports its status;
//! when the pod is deleted the worker stops the containers within the grace
//! period (preStop hooks, SIGTERM, SIGKILL), cleans up and removes the object.
//!
//! A restarted kite finds the containers it started in each pod's
//! `state.json` and the runtime's bundles, so running containers are adopted,
//! not restarted.

use crate::Config;
use crate::env::{self, NodeFacts};
use crate::layout::Layout;
use crate::mirror::Mirrors;
use crate::probes;
use crate::state::{ContainerRecord, PodState};
use crate::static_pods::{self, Source};
use crate::status::{self, ContainerView, Instance, PodView};
use crate::volumes::{self, TokenCache};
use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kite_client::events::{NORMAL, WARNING};
use kite_client::{Change, Informer, Recorder};
use kite_runtime::Reference;
use kite_runtime::container::MonitorSettings;
use kite_runtime::sandbox::{Sandbox, SandboxOptions};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use rand::Rng;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// How often the manifest directory is read again (kube: every 20 s).
const STATIC_POLL: Duration = Duration::from_secs(2);
/// How often mirror pods are checked without a change to wake the check.
const MIRROR_RESYNC: Duration = Duration::from_secs(10);
/// Back-off before restarting a crashed container: 10 s doubling to 5 minutes.
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long resets its back-off.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How often API-backed volumes (configMap, secret, projected) are refreshed.
const VOLUME_REFRESH: Duration = Duration::from_secs(5);

/// What the kubelet API needs to find a pod's containers.
#[derive(Clone, Debug, Default)]
pub struct PodEntry {
    /// The containers started so far.
    pub state: PodState,
    /// The pod's sandbox.
    pub sandbox: Sandbox,
    /// The pod as last seen.
    pub pod: Option<Arc<Pod>>,
}

/// The pods this kubelet runs, shared with the kubelet API.
#[derive(Clone, Default)]
pub struct Registry {
    pods: Arc<Mutex<HashMap<String, Arc<Mutex<PodEntry>>>>>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Registry {
    /// What the pod workers record for `/metrics`.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The entry of the pod `namespace/name`. Right after a pod is recreated
    /// under the same name both may be here: the one not being deleted, and
    /// then the newest, is the one the name means now.
    pub fn find(&self, namespace: &str, name: &str) -> Option<PodEntry> {
        let pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        pods.values()
            .filter_map(|entry| {
                let entry = entry.lock().unwrap_or_else(PoisonError::into_inner);
                // Before its first container starts, only the pod object names it.
                let named = |pod: &Pod| {
                    pod.metadata.namespace.as_deref() == Some(namespace)
                        && pod.metadata.name.as_deref() == Some(name)
                };
                let matches = (entry.state.namespace == namespace && entry.state.name == name)
                    || entry.pod.as_deref().is_some_and(named);
                matches.then(|| entry.clone())
            })
            .max_by_key(|entry| {
                let pod = entry.pod.as_deref();
                let live = pod.is_some_and(|p| p.metadata.deletion_timestamp.is_none());
                let created = pod.and_then(|p| p.metadata.creation_timestamp.clone());
                (live, created.map(|t| t.0))
            })
    }

    /// Every pod's entry.
    pub fn all(&self) -> Vec<PodEntry> {
        let pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        pods.values()
            .map(|e| e.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .collect()
    }

    fn entry(&self, uid: &str) -> Arc<Mutex<PodEntry>> {
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        pods.entry(uid.to_string()).or_default().clone()
    }

    fn remove(&self, uid: &str) {
        self.pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(uid);
    }
}

struct Shared {
    config: Config,
    layout: Layout,
    recorder: Recorder,
    registry: Registry,
    facts: NodeFacts,
    workers: Mutex<HashMap<String, watch::Sender<Option<Arc<Pod>>>>>,
    /// The static pods the manifest directory holds now.
    statics: Mutex<Vec<Arc<Pod>>>,
    /// Static pod UID to the UID of its up-to-date mirror pod (where its status goes).
    mirrors: Mutex<HashMap<String, String>>,
    /// Wakes the mirror pass (a mirror pod changed in the API).
    mirror_changed: Notify,
}

/// Runs the pods bound to this node.
pub struct Manager {
    shared: Arc<Shared>,
}

impl Manager {
    /// A manager for `config`'s node.
    pub fn new(config: Config) -> Self {
        Self::with_registry(config, Registry::default())
    }

    /// A manager sharing `registry` with the kubelet API.
    pub fn with_registry(config: Config, registry: Registry) -> Self {
        let cap = crate::node::Capacity::read(&config.root);
        let facts = NodeFacts {
            host_ip: config.node_ip.to_string(),
            pod_ip: None,
            cpu_millis: cap.cpus * 1000,
            memory_bytes: (cap.memory - (100 << 20)).max(0),
            ephemeral_bytes: cap.ephemeral_storage / 10 * 9,
        };
        let recorder = Recorder::new(config.client.clone(), "kubelet", &config.node_name);
        Self {
            shared: Arc::new(Shared {
                layout: Layout::new(&config.root),
                config,
                recorder,
                registry,
                facts,
                workers: Mutex::new(HashMap::new()),
                statics: Mutex::new(Vec::new()),
                mirrors: Mutex::new(HashMap::new()),
                mirror_changed: Notify::new(),
            }),
        }
    }

    /// Watches this node's pods and its manifest directory and runs a worker
    /// for each pod until dropped.
    pub async fn run(self) {
        let manifests = self.shared.layout.pod_manifests_dir();
        if let Err(error) = std::fs::create_dir_all(&manifests) {
            tracing::warn!(%error, dir = %manifests.display(), "cannot create the static pod directory");
        }
        let mut source = Source::new(manifests, &self.shared.config.node_name);
        // Static pods first: they run whether or not the API answers, and the
        // clean-up below must know them.
        let mut pending = Vec::new();
        let changes = source.poll();
        apply_static(&self.shared, changes, source.pods(), &mut pending);
        let api: Api<Pod> = Api::all(self.shared.config.client.clone());
        let config = kube::runtime::watcher::Config::default()
            .fields(&format!("spec.nodeName={}", self.shared.config.node_name));
        let informer = Informer::with_config(api, config);
        let shared = self.shared.clone();
        informer.on_change(move |change| {
            let pod = change.object().clone();
            // A mirror only shows a static pod, which runs from its file.
            if static_pods::is_mirror(&pod) {
                shared.mirror_changed.notify_one();
                return;
            }
            let Some(uid) = pod.metadata.uid.clone() else {
                return;
            };
            let deleted = matches!(change, Change::Deleted(_));
            dispatch(&shared, &uid, if deleted { None } else { Some(pod) });
        });
        let cleanup = {
            let informer = informer.clone();
            let shared = self.shared.clone();
            async move {
                informer.wait_synced().await;
                let known: HashSet<String> = informer
                    .list()
                    .iter()
                    .filter_map(|p| p.metadata.uid.clone())
                    .collect();
                remove_orphans(&shared, &known).await;
                if let Some(network) = &shared.config.network {
                    // The node's pod CIDR may still be on its way.
                    for _ in 0..100 {
                        if network.is_configured().await {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    // Pods that arrived since the list above are kept too.
                    let mut keep: HashSet<String> = informer
                        .list()
                        .iter()
                        .filter_map(|p| p.metadata.uid.clone())
                        .collect();
                    keep.extend(
                        shared
                            .workers
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .keys()
                            .cloned(),
                    );
                    if let Err(error) = network.release_all_but(&keep).await {
                        tracing::warn!(%error, "cannot release the addresses of deleted pods");
                    }
                }
            }
        };
        let statics = {
            let shared = self.shared.clone();
            async move {
                loop {
                    tokio::time::sleep(STATIC_POLL).await;
                    let polled = tokio::task::spawn_blocking(move || {
                        let changes = source.poll();
                        (source, changes)
                    })
                    .await;
                    let Ok((polled, changes)) = polled else {
                        return;
                    };
                    source = polled;
                    let changed = !changes.added.is_empty() || !changes.removed.is_empty();
                    apply_static(&shared, changes, source.pods(), &mut pending);
                    if changed {
                        shared.mirror_changed.notify_one();
                    }
                }
            }
        };
        let mirrors = {
            let shared = self.shared.clone();
            let informer = informer.clone();
            async move {
                informer.wait_synced().await;
                let mut mirrors =
                    Mirrors::new(shared.config.client.clone(), &shared.config.node_name);
                loop {
                    let wanted = shared
                        .statics
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    let mirrored = mirrors.reconcile(&wanted, &informer.list()).await;
                    *shared
                        .mirrors
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = mirrored;
                    tokio::select! {
                        () = tokio::time::sleep(MIRROR_RESYNC) => {}
                        () = shared.mirror_changed.notified() => {
                            // Let a burst of watch events settle into the cache.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        };
        tokio::join!(informer.run(), cleanup, statics, mirrors);
    }
}

/// Feeds the static pod changes of one poll to the workers. A pod whose
/// previous version (same name, other UID) still runs waits in `pending`
/// until that one has stopped, as kube's pod workers do.
fn apply_static(
    shared: &Arc<Shared>,
    changes: static_pods::Changes,
    wanted: Vec<Arc<Pod>>,
    pending: &mut Vec<Arc<Pod>>,
) {
    *shared
        .statics
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = wanted;
    for pod in changes.removed {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        pending.retain(|p| p.metadata.uid.as_deref() != Some(&uid));
        tracing::info!(pod = %static_pods::full_name(&pod), "static pod manifest removed or changed; stopping the pod");
        let running = shared
            .workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&uid);
        if running {
            dispatch(shared, &uid, Some(Arc::new(static_pods::terminating(&pod))));
        }
    }
    pending.extend(changes.added);
    pending.retain(|pod| {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let name = static_pods::full_name(pod);
        let previous_runs = shared
            .workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(other, tx)| {
                other != &uid
                    && tx
                        .borrow()
                        .as_deref()
                        .is_some_and(|p| static_pods::full_name(p) == name)
            });
        if previous_runs {
            return true;
        }
        tracing::info!(pod = %name, %uid, "starting static pod");
        dispatch(shared, &uid, Some(pod.clone()));
        false
    });
}

fn dispatch(shared: &Arc<Shared>, uid: &str, pod: Option<Arc<Pod>>) {
    let mut workers = shared
        .workers
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(tx) = workers.get(uid) {
        let _ = tx.send(pod);
        return;
    }
    let Some(pod) = pod else {
        return;
    };
    let (tx, rx) = watch::channel(Some(pod));
    workers.insert(uid.to_string(), tx);
    let worker = Worker::new(shared.clone(), uid, rx);
    tokio::spawn(worker.run());
}

/// Pods on disk the API no longer has (deleted while kite was down): stop and remove them.
async fn remove_orphans(shared: &Arc<Shared>, known: &HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(shared.layout.pods_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let uid = entry.file_name().to_string_lossy().into_owned();
        if known.contains(&uid) {
            continue;
        }
        let running = shared
            .workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&uid);
        if running {
            continue;
        }
        tracing::info!(%uid, "removing the containers of a pod that no longer exists");
        let (_tx, rx) = watch::channel(None);
        let mut worker = Worker::new(shared.clone(), &uid, rx);
        worker.teardown(None, Duration::from_secs(2)).await;
    }
}

struct Backoff {
    delay: Duration,
    until: Instant,
}

struct Worker {
    shared: Arc<Shared>,
    uid: String,
    rx: watch::Receiver<Option<Arc<Pod>>>,
    entry: Arc<Mutex<PodEntry>>,
    wake: Arc<Notify>,
    probes: HashMap<String, (probes::Shared, Vec<tokio::task::JoinHandle<()>>)>,
    backoff: HashMap<String, Backoff>,
    /// Container ID whose exit the back-off already counted.
    counted_exit: HashSet<String>,
    waiting: HashMap<String, (String, String)>,
    /// Failed starts (image, config, runtime errors) wait before the next try.
    retry_at: HashMap<String, (Instant, Duration)>,
    tokens: TokenCache,
    volumes: Option<HashMap<String, PathBuf>>,
    volumes_at: Option<Instant>,
    reported: Option<Value>,
    /// The UID of the API object `reported` went to (a static pod's mirror changes).
    reported_to: Option<String>,
    start_time: String,
    events_sent: HashSet<String>,
    /// The pod's address on the pod network, once it has one.
    pod_ip: Option<std::net::Ipv4Addr>,
    /// When this kubelet first saw the pod (the start of `pod_start_duration`).
    first_seen: Instant,
    /// Whether its start was counted (or need not be: running before a restart of kite).
    start_counted: Option<bool>,
    /// Whether the pod's cgroup has its `pod-max-pids` limit.
    pids_limited: bool,
}

impl Worker {
    fn new(shared: Arc<Shared>, uid: &str, rx: watch::Receiver<Option<Arc<Pod>>>) -> Self {
        let entry = shared.registry.entry(uid);
        let state_path = shared.layout.pod_dir(uid).join("state.json");
        {
            let mut e = entry.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(state) = PodState::load(&state_path) {
                e.state = state;
            }
            e.state.uid = uid.to_string();
            e.sandbox = Sandbox::at(&shared.config.runtime.sandbox_dir(&sandbox_id(uid)));
        }
        Self {
            shared,
            uid: uid.to_string(),
            rx,
            entry,
            wake: Arc::new(Notify::new()),
            probes: HashMap::new(),
            backoff: HashMap::new(),
            counted_exit: HashSet::new(),
            waiting: HashMap::new(),
            retry_at: HashMap::new(),
            tokens: TokenCache::default(),
            volumes: None,
            volumes_at: None,
            reported: None,
            reported_to: None,
            start_time: Timestamp::now().to_string(),
            events_sent: HashSet::new(),
            pod_ip: None,
            first_seen: Instant::now(),
            start_counted: None,
            pids_limited: false,
        }
    }

    fn state(&self) -> PodState {
        self.entry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .state
            .clone()
    }

    fn sandbox(&self) -> Sandbox {
        self.entry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sandbox
            .clone()
    }

    fn save_state(&self, state: PodState) {
        let path = self.shared.layout.pod_dir(&self.uid).join("state.json");
        if let Err(error) = state.save(&path) {
            tracing::warn!(%error, uid = %self.uid, "cannot save pod state");
        }
        self.entry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .state = state;
    }

    async fn run(mut self) {
        loop {
            let pod = self.rx.borrow_and_update().clone();
            let Some(pod) = pod else {
                self.teardown(None, Duration::from_secs(2)).await;
                break;
            };
            self.entry
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pod = Some(pod.clone());
            if pod.metadata.deletion_timestamp.is_some() {
                let grace = pod
                    .metadata
                    .deletion_grace_period_seconds
                    .or_else(|| {
                        pod.spec
                            .as_ref()
                            .and_then(|s| s.termination_grace_period_seconds)
                    })
                    .unwrap_or(30);
                self.teardown(Some(&pod), Duration::from_secs(grace.max(0) as u64))
                    .await;
                break;
            }
            let next = self.sync(&pod).await;
            let exit = self.any_exit();
            tokio::select! {
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                () = tokio::time::sleep(next) => {}
                () = self.wake.notified() => {}
                () = exit => {}
            }
        }
        self.shared
            .workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.uid);
        self.shared.registry.remove(&self.uid);
    }

    fn reference(&self, pod: &Pod, container: Option<&str>) -> ObjectReference {
        let field_path = container.map(|name| {
            let spec = pod.spec.as_ref();
            let init = spec
                .and_then(|s| s.init_containers.as_ref())
                .is_some_and(|l| l.iter().any(|c| c.name == name));
            if init {
                format!("spec.initContainers{{{name}}}")
            } else {
                format!("spec.containers{{{name}}}")
            }
        });
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            field_path,
        }
    }

    fn event(&self, pod: &Pod, container: Option<&str>, type_: &str, reason: &str, message: &str) {
        self.shared
            .recorder
            .publish(self.reference(pod, container), type_, reason, message);
    }

    fn pod_label(pod: &Pod) -> String {
        format!(
            "{}_{}({})",
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.uid.as_deref().unwrap_or_default()
        )
    }

    /// One pass towards the spec; returns when to look again.
    async fn sync(&mut self, pod: &Pod) -> Duration {
        if let Some(start) = pod.status.as_ref().and_then(|s| s.start_time.as_ref()) {
            self.start_time = start.0.to_string();
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("");
        if matches!(phase, "Succeeded" | "Failed") && self.reported.is_none() {
            // Finished before a restart of kite: nothing more to run.
            self.report(pod).await;
            return Duration::from_secs(60);
        }
        if let Err(message) = self.ensure_sandbox(pod).await {
            self.event(
                pod,
                None,
                WARNING,
                "FailedCreatePodSandBox",
                &format!("Failed to create pod sandbox: {message}"),
            );
            self.report(pod).await;
            return Duration::from_secs(5);
        }
        if self
            .volumes_at
            .is_none_or(|t| t.elapsed() >= VOLUME_REFRESH)
        {
            let dir = self.shared.layout.pod_dir(&self.uid).join("volumes");
            let ctx = volumes::Context {
                client: &self.shared.config.client,
                dir,
                node: &self.pod_facts(pod),
            };
            match volumes::setup(&ctx, pod, &mut self.tokens).await {
                Ok(paths) => {
                    self.volumes = Some(paths);
                    self.volumes_at = Some(Instant::now());
                }
                Err(error) => {
                    self.event(pod, None, WARNING, "FailedMount", &error.to_string());
                    if self.volumes.is_none() {
                        self.report(pod).await;
                        return Duration::from_secs(2);
                    }
                }
            }
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let mut init_done = true;
        for c in spec.init_containers.iter().flatten() {
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            if !self.sync_container(pod, c, sidecar, true).await {
                init_done = false;
                break;
            }
        }
        if init_done {
            for c in &spec.containers {
                self.sync_container(pod, c, false, false).await;
            }
        }
        self.report(pod).await;
        if self.any_running() {
            // Exits wake the worker at once (`any_exit`); this pass only
            // refreshes volumes and catches what no event reports.
            VOLUME_REFRESH
        } else {
            Duration::from_secs(2)
        }
    }

    fn any_running(&self) -> bool {
        let runtime = &self.shared.config.runtime;
        self.state()
            .containers
            .iter()
            .any(|c| runtime.exited(&c.id).is_none())
    }

    /// Completes when any of the pod's running containers exits.
    fn any_exit(&self) -> impl std::future::Future<Output = ()> + use<> {
        let runtime = self.shared.config.runtime.clone();
        let running: Vec<String> = self
            .state()
            .containers
            .iter()
            .filter(|c| runtime.exited(&c.id).is_none())
            .map(|c| c.id.clone())
            .collect();
        async move {
            let waits = running.iter().map(|id| Box::pin(runtime.wait_exited(id)));
            if running.is_empty() {
                std::future::pending::<()>().await;
            }
            futures::future::select_all(waits).await;
        }
    }

    fn pod_facts(&self, pod: &Pod) -> NodeFacts {
        let mut facts = self.shared.facts.clone();
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
        {
            facts.pod_ip = Some(facts.host_ip.clone());
        } else if let Some(ip) = self.pod_ip {
            facts.pod_ip = Some(ip.to_string());
        }
        facts
    }

    async fn ensure_sandbox(&mut self, pod: &Pod) -> Result<(), String> {
        let runtime = self.shared.config.runtime.clone();
        let id = sandbox_id(&self.uid);
        let spec = pod.spec.clone().unwrap_or_default();
        let options = SandboxOptions {
            hostname: crate::container::pod_hostname(pod),
            host_network: spec.host_network.unwrap_or(false),
            host_ipc: spec.host_ipc.unwrap_or(false),
        };
        if !self.sandbox().exists() {
            let sandbox =
                tokio::task::spawn_blocking(move || runtime.create_sandbox(&id, &options))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            self.entry
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .sandbox = sandbox;
        }
        if let Some(limit) = self.shared.config.pod_max_pids
            && !self.pids_limited
        {
            let cgroup =
                crate::container::pod_cgroup(self.shared.config.runtime.cgroup_parent(), pod);
            let set = tokio::task::spawn_blocking(move || {
                kite_runtime::cgroup::set_pids_limit(
                    std::path::Path::new("/sys/fs/cgroup"),
                    &cgroup,
                    limit,
                )
            })
            .await
            .map_err(|e| e.to_string())?;
            set.map_err(|e| format!("setting the pod's pids limit: {e}"))?;
            self.pids_limited = true;
        }
        if !spec.host_network.unwrap_or(false) && self.pod_ip.is_none() {
            self.pod_ip = self.attach_network().await?;
        }
        self.write_etc_files(pod)
            .map_err(|e| format!("writing /etc files: {e}"))
    }

    /// The pod's address on the pod network (`None` without one).
    async fn attach_network(&self) -> Result<Option<std::net::Ipv4Addr>, String> {
        let Some(network) = self.shared.config.network.clone() else {
            return Ok(None);
        };
        crate::node::ensure_network(&self.shared.config).await?;
        let Some(netns) = self.sandbox().network else {
            return Err("the pod sandbox has no network namespace".into());
        };
        network
            .attach(&self.uid, &netns)
            .await
            .map(Some)
            .map_err(|e| format!("failed to set up the pod network: {e}"))
    }

    fn write_etc_files(&self, pod: &Pod) -> std::io::Result<()> {
        let dir = self.shared.layout.etc_dir(&self.uid);
        std::fs::create_dir_all(&dir)?;
        let spec = pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let hostname = crate::container::pod_hostname(pod);
        let config = &self.shared.config;
        let hosts = if host_network {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            let mut hosts = String::from(
                "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
            );
            let fqdn = match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => format!(
                    "{hostname}.{sub}.{}.svc.{}\t{hostname}",
                    pod.metadata.namespace.as_deref().unwrap_or("default"),
                    config.cluster_domain
                ),
                None => hostname.clone(),
            };
            // Without a pod network the pod answers on loopback.
            let own = self
                .pod_ip
                .map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string());
            hosts.push_str(&format!("{own}\t{fqdn}\n"));
            for alias in spec.host_aliases.iter().flatten() {
                hosts.push_str(&format!(
                    "\n# Entries added by HostAliases.\n{}\t{}\n",
                    alias.ip,
                    alias.hostnames.clone().unwrap_or_default().join("\t")
                ));
            }
            hosts
        };
        write_if_changed(&dir.join("hosts"), hosts.as_bytes())?;
        write_if_changed(&dir.join("hostname"), format!("{hostname}\n").as_bytes())?;
        write_if_changed(&dir.join("resolv.conf"), self.resolv_conf(pod).as_bytes())
    }

    fn resolv_conf(&self, pod: &Pod) -> String {
        let spec = pod.spec.clone().unwrap_or_default();
        let host = std::fs::read_to_string(&self.shared.config.resolv_conf).unwrap_or_default();
        let host_servers: Vec<String> = host
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver"))
            .map(|s| s.trim().to_string())
            .collect();
        let host_search: Vec<String> = host
            .lines()
            .filter_map(|l| l.strip_prefix("search"))
            .flat_map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect();
        let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
        let host_network = spec.host_network.unwrap_or(false);
        let cluster = matches!(
            (policy, host_network),
            ("ClusterFirst", false) | ("ClusterFirstWithHostNet", _)
        );
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let domain = &self.shared.config.cluster_domain;
        let (mut servers, mut search, mut options) =
            match (policy, cluster, self.shared.config.cluster_dns) {
                ("None", _, _) => (Vec::new(), Vec::new(), Vec::new()),
                (_, true, Some(dns)) => {
                    let mut search = vec![
                        format!("{ns}.svc.{domain}"),
                        format!("svc.{domain}"),
                        domain.clone(),
                    ];
                    search.extend(host_search);
                    (vec![dns.to_string()], search, vec!["ndots:5".to_string()])
                }
                _ => (host_servers, host_search, Vec::new()),
            };
        if let Some(dns) = &spec.dns_config {
            servers.extend(dns.nameservers.clone().unwrap_or_default());
            search.extend(dns.searches.clone().unwrap_or_default());
            for o in dns.options.iter().flatten() {
                let name = o.name.clone().unwrap_or_default();
                options
                    .retain(|existing: &String| existing.split(':').next() != Some(name.as_str()));
                options.push(match &o.value {
                    Some(v) => format!("{name}:{v}"),
                    None => name,
                });
            }
        }
        // As the kubelet does: duplicates go, and resolvers read no more
        // than 3 nameservers and 32 search domains.
        let mut seen = std::collections::HashSet::new();
        search.retain(|domain| seen.insert(domain.clone()));
        search.truncate(32);
        let mut seen = std::collections::HashSet::new();
        servers.retain(|server| seen.insert(server.clone()));
        servers.truncate(3);
        let mut out = String::new();
        if !search.is_empty() {
            out.push_str(&format!("search {}\n", search.join(" ")));
        }
        for s in servers {
            out.push_str(&format!("nameserver {s}\n"));
        }
        if !options.is_empty() {
            out.push_str(&format!("options {}\n", options.join(" ")));
        }
        out
    }

    /// Drives one container; returns whether it is "done" for the purpose of
    /// the next init container (completed, or started for a sidecar).
    async fn sync_container(
        &mut self,
        pod: &Pod,
        c: &Container,
        sidecar: bool,
        init: bool,
    ) -> bool {
        let runtime = self.shared.config.runtime.clone();
        let policy = if sidecar {
            "Always".to_string()
        } else if init {
            // Init containers restart on failure unless the pod never restarts.
            match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
                Some("Never") => "Never".into(),
                _ => "OnFailure".into(),
            }
        } else {
            pod.spec
                .as_ref()
                .and_then(|s| s.restart_policy.clone())
                .unwrap_or_else(|| "Always".into())
        };
        let state = self.state();
        let current = state.current(&c.name).cloned();
        let Some(record) = current else {
            if self
                .retry_at
                .get(&c.name)
                .is_none_or(|(at, _)| Instant::now() >= *at)
            {
                self.start(pod, c, 0).await;
            }
            return sidecar && self.state().current(&c.name).is_some();
        };
        match runtime.exited(&record.id) {
            None => {
                if !self.probes.contains_key(&record.id) {
                    // Adopted after a restart of kite: its probes start over.
                    self.start_probes(pod, c, &record.id);
                }
                // Running: a failed liveness or startup probe restarts it.
                if let Some((probe, _)) = self.probes.get(&record.id)
                    && let Some(why) = probe.get().failed
                    && !self.events_sent.contains(&format!("killed:{}", record.id))
                {
                    self.events_sent.insert(format!("killed:{}", record.id));
                    self.event(
                        pod,
                        Some(&c.name),
                        NORMAL,
                        "Killing",
                        &format!("Container {} {why}, will be restarted", c.name),
                    );
                    let grace = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                        .unwrap_or(30);
                    let id = record.id.clone();
                    let rt = runtime.clone();
                    tokio::spawn(async move {
                        stop_container(&rt, &id, Duration::from_secs(grace.max(0) as u64)).await;
                    });
                }
                if sidecar {
                    return self
                        .probes
                        .get(&record.id)
                        .is_none_or(|(p, _)| p.get().started);
                }
                false
            }
            Some(exited) => {
                self.stop_probes(&record.id);
                let restart = match policy.as_str() {
                    "Always" => true,
                    "OnFailure" => exited.exit_code != 0,
                    _ => false,
                };
                if !restart {
                    return exited.exit_code == 0;
                }
                let now = Instant::now();
                if !self.counted_exit.contains(&record.id) {
                    self.counted_exit.insert(record.id.clone());
                    let ran = parse_time(&exited.finished_at)
                        .zip(parse_time(&exited.started_at))
                        .map(|(f, s)| f.duration_since(s).unwrap_or_default())
                        .unwrap_or_default();
                    let backoff = self.backoff.entry(c.name.clone()).or_insert(Backoff {
                        delay: Duration::ZERO,
                        until: now,
                    });
                    if ran >= BACKOFF_RESET {
                        backoff.delay = Duration::ZERO;
                    }
                    // The first restart is immediate, then 10 s doubling.
                    backoff.until = now + backoff.delay;
                    backoff.delay = if backoff.delay.is_zero() {
                        BACKOFF_START
                    } else {
                        (backoff.delay * 2).min(BACKOFF_MAX)
                    };
                }
                let until = self.backoff.get(&c.name).map_or(now, |b| b.until);
                if until > now {
                    let shown = self
                        .backoff
                        .get(&c.name)
                        .map_or(BACKOFF_START, |b| b.delay / 2)
                        .max(BACKOFF_START);
                    let message = format!(
                        "back-off {}s restarting failed container={} pod={}",
                        shown.as_secs(),
                        c.name,
                        Self::pod_label(pod)
                    );
                    let first = self
                        .waiting
                        .get(&c.name)
                        .is_none_or(|(reason, _)| reason != "CrashLoopBackOff");
                    if first {
                        self.event(
                            pod,
                            Some(&c.name),
                            WARNING,
                            "BackOff",
                            &format!(
                                "Back-off restarting failed container {} in pod {}",
                                c.name,
                                Self::pod_label(pod)
                            ),
                        );
                    }
                    self.waiting
                        .insert(c.name.clone(), ("CrashLoopBackOff".into(), message));
                    return false;
                }
                if self.retry_at.get(&c.name).is_none_or(|(at, _)| now >= *at) {
                    self.start(pod, c, record.attempt + 1).await;
                }
                false
            }
        }
    }

    fn stop_probes(&mut self, id: &str) {
        if let Some((_, tasks)) = self.probes.remove(id) {
            for task in tasks {
                task.abort();
            }
        }
    }

    /// Starts instance `attempt` of container `c`; records why not in
    /// `waiting` and when to try again (2 s doubling to a minute).
    async fn start(&mut self, pod: &Pod, c: &Container, attempt: i32) {
        self.try_start(pod, c, attempt).await;
        if self.waiting.contains_key(&c.name) {
            let delay = self
                .retry_at
                .get(&c.name)
                .map_or(Duration::from_secs(2), |(_, d)| {
                    (*d * 2).min(Duration::from_secs(60))
                });
            self.retry_at
                .insert(c.name.clone(), (Instant::now() + delay, delay));
        } else {
            self.retry_at.remove(&c.name);
        }
    }

    async fn try_start(&mut self, pod: &Pod, c: &Container, attempt: i32) {
        let config = self.shared.config.clone();
        let runtime = config.runtime.clone();
        let image_text = c.image.clone().unwrap_or_default();
        let reference = match Reference::parse(&image_text) {
            Ok(r) => r,
            Err(e) => {
                let message = format!(
                    "Failed to apply default image tag {image_text:?}: couldn't parse image name {image_text:?}: {e}"
                );
                self.fail_once(pod, c, "InspectFailed", &message);
                self.waiting
                    .insert(c.name.clone(), ("InvalidImageName".into(), message));
                return;
            }
        };
        let Some(image) = self
            .ensure_image(pod, c, &reference, &image_text, attempt)
            .await
        else {
            return;
        };
        let facts = self.pod_facts(pod);
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut sources = env::Sources::new(config.client.clone(), &namespace);
        let env = match env::resolve(&mut sources, pod, c, &facts).await {
            Ok(env) => env,
            Err(message) => {
                self.fail_once(pod, c, "Failed", &format!("Error: {message}"));
                self.waiting.insert(
                    c.name.clone(),
                    ("CreateContainerConfigError".into(), message),
                );
                return;
            }
        };
        let layout = &self.shared.layout;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let termination_file = layout.termination_file(&self.uid, &c.name, attempt);
        if let Some(parent) = termination_file.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if std::fs::write(&termination_file, b"").is_ok() {
            use std::os::unix::fs::PermissionsExt;
            let _ =
                std::fs::set_permissions(&termination_file, std::fs::Permissions::from_mode(0o666));
        }
        let log = layout.log_file(&namespace, &name, &self.uid, &c.name, attempt);
        let sandbox = self.sandbox();
        let volumes = self.volumes.clone().unwrap_or_default();
        let etc_dir = layout.etc_dir(&self.uid);
        let seccomp_root = layout.seccomp_dir();
        let spec = crate::container::spec(&crate::container::Inputs {
            pod,
            container: c,
            env: &env,
            volumes: &volumes,
            etc_dir: &etc_dir,
            termination_file: &termination_file,
            sandbox: &sandbox,
            cgroup_parent: crate::container::pod_cgroup(runtime.cgroup_parent(), pod),
            seccomp_root: &seccomp_root,
        });
        let spec = match spec {
            Ok(spec) => spec,
            Err(message) => {
                self.fail_once(pod, c, "Failed", &format!("Error: {message}"));
                self.waiting.insert(
                    c.name.clone(),
                    ("CreateContainerConfigError".into(), message),
                );
                return;
            }
        };
        let id = new_container_id();
        let settings = MonitorSettings {
            stdin: c.stdin.unwrap_or(false),
            rotation: kite_runtime::crilog::Rotation::default(),
        };
        let started = {
            let runtime = runtime.clone();
            let id = id.clone();
            let reference = reference.clone();
            let log = log.clone();
            tokio::task::spawn_blocking(move || {
                runtime.start_monitored(&id, &reference, &spec, &log, settings)
            })
            .await
        };
        let started = match started {
            Ok(Ok(started)) => started,
            Ok(Err(e)) => {
                // The container's name says more to the user than its random ID.
                let message = e.to_string().replace(&id, &c.name);
                self.fail_once(pod, c, "Failed", &format!("Error: {message}"));
                self.waiting
                    .insert(c.name.clone(), ("CreateContainerError".into(), message));
                return;
            }
            Err(e) => {
                self.waiting.insert(
                    c.name.clone(),
                    ("CreateContainerError".into(), e.to_string()),
                );
                return;
            }
        };
        self.waiting.remove(&c.name);
        let record = ContainerRecord {
            name: c.name.clone(),
            id: id.clone(),
            attempt,
            image: image_text.clone(),
            image_name: image.name.clone(),
            image_id: format!(
                "{}/{}@{}",
                reference.registry(),
                reference.repository(),
                image.digest
            ),
            log,
            termination_file,
        };
        let mut state = self.state();
        state.namespace = namespace;
        state.name = name;
        // Keep the current and the previous instance of each container.
        let mut stale = Vec::new();
        state.containers.retain(|r| {
            let keep = r.name != c.name || r.attempt + 1 >= attempt;
            if !keep {
                stale.push(r.id.clone());
            }
            keep
        });
        state.containers.push(record);
        self.save_state(state);
        for old in stale {
            let runtime = runtime.clone();
            tokio::task::spawn_blocking(move || runtime.delete(&old, true));
        }
        self.event(
            pod,
            Some(&c.name),
            NORMAL,
            "Created",
            &format!("Created container: {}", c.name),
        );
        self.event(
            pod,
            Some(&c.name),
            NORMAL,
            "Started",
            &format!("Started container {}", c.name),
        );
        tracing::debug!(pod = %Self::pod_label(pod), container = %c.name, pid = started.pid, "container started");
        self.start_probes(pod, c, &id);
        if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.clone()) {
            let target = self.probe_target(pod, c, &id);
            if let Err(message) = probes::run(&hook.into(), &target, Duration::from_secs(30)).await
            {
                tracing::debug!(%message, "postStart hook failed");
                self.event(
                    pod,
                    Some(&c.name),
                    WARNING,
                    "FailedPostStartHook",
                    "PostStartHook failed",
                );
                stop_container(&runtime, &id, Duration::from_secs(2)).await;
            }
        }
    }

    /// The image of container `c`, pulled if the pull policy asks for it;
    /// `None` (with the container's waiting reason set) when it cannot be had.
    ///
    /// An image already in the store is used as is, whatever the policy: kite
    /// nodes are often air-gapped, and `busybox:latest` imported from a tarball
    /// must not wait for a registry that cannot be reached.
    async fn ensure_image(
        &mut self,
        pod: &Pod,
        c: &Container,
        reference: &Reference,
        image_text: &str,
        attempt: i32,
    ) -> Option<kite_runtime::Image> {
        let runtime = self.shared.config.runtime.clone();
        if let Ok(image) = runtime.store().get(reference) {
            let key = format!("pulled:{}:{attempt}", c.name);
            if self.events_sent.insert(key) {
                self.event(
                    pod,
                    Some(&c.name),
                    NORMAL,
                    "Pulled",
                    &format!("Container image {image_text:?} already present on machine"),
                );
            }
            return Some(image);
        }
        let policy = c.image_pull_policy.as_deref().unwrap_or("IfNotPresent");
        if policy == "Never" {
            let message =
                format!("Container image {image_text:?} is not present with pull policy of Never");
            self.fail_once(pod, c, "ErrImageNeverPull", &message);
            self.waiting
                .insert(c.name.clone(), ("ErrImageNeverPull".into(), message));
            return None;
        }
        let repeated = self
            .waiting
            .get(&c.name)
            .is_some_and(|(r, _)| r == "ErrImagePull" || r == "ImagePullBackOff");
        if repeated
            && self
                .retry_at
                .get(&c.name)
                .is_some_and(|(at, _)| Instant::now() < *at)
        {
            return None;
        }
        if repeated {
            self.event(
                pod,
                Some(&c.name),
                NORMAL,
                "BackOff",
                &format!("Back-off pulling image {image_text:?}"),
            );
        }
        let secrets = self.pull_secrets(pod).await;
        self.event(
            pod,
            Some(&c.name),
            NORMAL,
            "Pulling",
            &format!("Pulling image {image_text:?}"),
        );
        let started = Instant::now();
        let pulled = self
            .shared
            .config
            .puller
            .pull(runtime.store(), reference, &secrets, &|digest, size| {
                tracing::debug!(digest, size, "fetched blob");
            })
            .await;
        match pulled {
            Ok(image) => {
                let took = go_duration(started.elapsed());
                self.event(
                    pod,
                    Some(&c.name),
                    NORMAL,
                    "Pulled",
                    &format!(
                        "Successfully pulled image {image_text:?} in {took} ({took} including waiting). Image size: {} bytes.",
                        image.size
                    ),
                );
                self.waiting.remove(&c.name);
                Some(image)
            }
            Err(error) => {
                let message = error.to_string();
                self.event(
                    pod,
                    Some(&c.name),
                    WARNING,
                    "Failed",
                    &format!("Failed to pull image {image_text:?}: {message}"),
                );
                self.event(pod, Some(&c.name), WARNING, "Failed", "Error: ErrImagePull");
                let waiting = if repeated {
                    (
                        "ImagePullBackOff".to_string(),
                        format!("Back-off pulling image {image_text:?}: ErrImagePull: {message}"),
                    )
                } else {
                    ("ErrImagePull".to_string(), message)
                };
                self.waiting.insert(c.name.clone(), waiting);
                None
            }
        }
    }

    /// The registry credentials of the pod's `imagePullSecrets`.
    async fn pull_secrets(&mut self, pod: &Pod) -> Vec<kite_runtime::pull::Credential> {
        let names: Vec<String> = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .into_iter()
            .flatten()
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Vec::new();
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.shared.config.client.clone(), namespace);
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            let secret = match api.get_opt(&name).await {
                Ok(Some(secret)) => secret,
                _ => {
                    missing.push(name);
                    continue;
                }
            };
            let data = secret.data.unwrap_or_default();
            let doc = data
                .get(".dockerconfigjson")
                .or_else(|| data.get(".dockercfg"));
            match doc.map(|d| kite_runtime::pull::credentials_from_docker_config(&d.0)) {
                Some(Ok(credentials)) => out.extend(credentials),
                Some(Err(error)) => {
                    tracing::warn!(%error, secret = %name, "unusable image pull secret");
                    missing.push(name);
                }
                None => missing.push(name),
            }
        }
        if !missing.is_empty() {
            let message = format!(
                "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                missing.join(", ")
            );
            let key = format!("secrets:{message}");
            if self.events_sent.insert(key) {
                self.event(
                    pod,
                    None,
                    WARNING,
                    "FailedToRetrieveImagePullSecret",
                    &message,
                );
            }
        }
        out
    }

    /// A warning event recorded once per container and reason.
    fn fail_once(&mut self, pod: &Pod, c: &Container, reason: &str, message: &str) {
        let key = format!("fail:{}:{reason}:{message}", c.name);
        if self.events_sent.insert(key) {
            self.event(pod, Some(&c.name), WARNING, reason, message);
        }
    }

    fn probe_target(&self, pod: &Pod, c: &Container, id: &str) -> probes::Target {
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        probes::Target {
            runtime: self.shared.config.runtime.clone(),
            container_id: id.to_string(),
            container: c.clone(),
            netns: if host_network {
                None
            } else {
                self.sandbox().network
            },
            pod_ip: if host_network {
                self.shared.config.node_ip
            } else {
                self.pod_ip
                    .map_or(std::net::IpAddr::from([127, 0, 0, 1]), std::net::IpAddr::V4)
            },
        }
    }

    fn start_probes(&mut self, pod: &Pod, c: &Container, id: &str) {
        let target = self.probe_target(pod, c, id);
        let recorder = self.shared.recorder.clone();
        let reference = self.reference(pod, Some(&c.name));
        let report: probes::Reporter = Arc::new(move |message: String| {
            recorder.publish(reference.clone(), WARNING, "Unhealthy", &message);
        });
        let (shared, tasks) = probes::start(target, self.wake.clone(), report);
        self.probes.insert(id.to_string(), (shared, tasks));
    }

    fn view(&self, pod: &Pod) -> PodView {
        let runtime = &self.shared.config.runtime;
        let state = self.state();
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let container_view = |c: &Container, sidecar: bool, init: bool| {
            let current = state.current(&c.name).map(|record| {
                let started = runtime.started(&record.id);
                Instance {
                    record: record.clone(),
                    started_at: started.map(|s| s.started_at).unwrap_or_default(),
                    exited: runtime.exited(&record.id),
                }
            });
            let previous = state
                .previous(&c.name)
                .and_then(|r| runtime.exited(&r.id).map(|e| (r.clone(), e)));
            let probe = current
                .as_ref()
                .and_then(|i| self.probes.get(&i.record.id))
                .map(|(p, _)| p.get());
            let will_restart = current
                .as_ref()
                .and_then(|i| i.exited.as_ref())
                .is_some_and(|e| {
                    let effective = if sidecar {
                        "Always"
                    } else if init {
                        if policy == "Never" {
                            "Never"
                        } else {
                            "OnFailure"
                        }
                    } else {
                        policy.as_str()
                    };
                    match effective {
                        "Always" => true,
                        "OnFailure" => e.exit_code != 0,
                        _ => false,
                    }
                });
            let termination_message = current.as_ref().and_then(|i| {
                i.exited.as_ref()?;
                let text = std::fs::read(&i.record.termination_file)
                    .map(|b| String::from_utf8_lossy(&b[..b.len().min(4096)]).into_owned())
                    .unwrap_or_default();
                let fallback =
                    c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
                if text.is_empty()
                    && fallback
                    && i.exited.as_ref().is_some_and(|e| e.exit_code != 0)
                {
                    Some(log_tail(&i.record.log, 80, 2048))
                } else {
                    Some(text)
                }
            });
            ContainerView {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                waiting: self.waiting.get(&c.name).cloned(),
                ready: probe.as_ref().is_some_and(|p| p.ready),
                started: probe.as_ref().is_some_and(|p| p.started),
                will_restart,
                termination_message,
                sidecar,
                current,
                previous,
            }
        };
        let host_network = spec.host_network.unwrap_or(false);
        PodView {
            init: spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| container_view(c, c.restart_policy.as_deref() == Some("Always"), true))
                .collect(),
            app: spec
                .containers
                .iter()
                .map(|c| container_view(c, false, false))
                .collect(),
            sandbox_ready: self.sandbox().exists(),
            host_ip: self.shared.config.node_ip.to_string(),
            pod_ips: if host_network {
                vec![self.shared.config.node_ip.to_string()]
            } else {
                self.pod_ip.iter().map(ToString::to_string).collect()
            },
            start_time: self.start_time.clone(),
            restart_policy: policy,
            terminated: false,
        }
    }

    async fn report(&mut self, pod: &Pod) {
        let view = self.view(pod);
        let now = Timestamp::now().to_string();
        let status = status::pod_status(pod, &view, &now);
        self.count_start(pod, &status);
        self.patch_status(pod, status).await;
    }

    /// Records the pod start duration the first time the pod is running,
    /// unless it already ran when this worker began (kite restarted).
    fn count_start(&mut self, pod: &Pod, status: &Value) {
        let phase = |p: Option<&str>| p == Some("Running");
        let counted = *self
            .start_counted
            .get_or_insert_with(|| phase(pod.status.as_ref().and_then(|s| s.phase.as_deref())));
        if !counted && phase(status.get("phase").and_then(Value::as_str)) {
            self.shared
                .registry
                .metrics()
                .pod_started(self.first_seen.elapsed());
            self.start_counted = Some(true);
        }
    }

    async fn patch_status(&mut self, pod: &Pod, status: Value) {
        // A static pod's status goes to its mirror, once there is one.
        let target = if static_pods::is_static(pod) {
            let mirrors = self
                .shared
                .mirrors
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match mirrors.get(&self.uid) {
                Some(mirror) => mirror.clone(),
                None => return,
            }
        } else {
            self.uid.clone()
        };
        // Only a change is worth a write (times of unchanged conditions are kept).
        if self.reported.as_ref() == Some(&status) && self.reported_to.as_ref() == Some(&target) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(
            self.shared.config.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        // A merge patch replaces the lists (conditions, container statuses) whole.
        let patch = json!({"status": status});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                self.reported = Some(status);
                self.reported_to = Some(target);
            }
            Err(error) => tracing::debug!(%error, pod = %name, "cannot update pod status"),
        }
    }

    /// Stops every container (preStop hooks, SIGTERM, SIGKILL after `grace`),
    /// removes them, the sandbox and the pod's files, then the pod object.
    async fn teardown(&mut self, pod: Option<&Pod>, grace: Duration) {
        let runtime = self.shared.config.runtime.clone();
        let state = self.state();
        let deadline = Instant::now() + grace;
        let mut stops = Vec::new();
        for record in &state.containers {
            if runtime.exited(&record.id).is_some() {
                continue;
            }
            let container = pod.and_then(|p| {
                p.spec.as_ref().and_then(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                        .find(|c| c.name == record.name)
                        .cloned()
                })
            });
            if let Some(pod) = pod {
                self.event(
                    pod,
                    Some(&record.name),
                    NORMAL,
                    "Killing",
                    &format!("Stopping container {}", record.name),
                );
            }
            let pre_stop = container
                .as_ref()
                .and_then(|c| c.lifecycle.as_ref()?.pre_stop.clone());
            let target = match (pod, &container) {
                (Some(pod), Some(c)) => Some(self.probe_target(pod, c, &record.id)),
                _ => None,
            };
            let runtime = runtime.clone();
            let id = record.id.clone();
            stops.push(tokio::spawn(async move {
                if let (Some(hook), Some(target)) = (pre_stop, target) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if let Err(message) = probes::run(&hook.into(), &target, left).await {
                        tracing::debug!(%message, "preStop hook failed");
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                stop_container(&runtime, &id, left).await;
            }));
        }
        for stop in stops {
            let _ = stop.await;
        }
        for id in state
            .containers
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>()
        {
            self.stop_probes(&id);
        }
        if let Some(pod) = pod {
            let mut view = self.view(pod);
            view.terminated = true;
            let status = status::pod_status(pod, &view, &Timestamp::now().to_string());
            self.patch_status(pod, status).await;
        }
        let ids: Vec<String> = state.containers.iter().map(|r| r.id.clone()).collect();
        let uid = self.uid.clone();
        let layout = self.shared.layout.clone();
        let logs = layout.pod_logs_dir(&state.namespace, &state.name, &uid);
        if let Some(network) = &self.shared.config.network
            && let Err(error) = network.detach(&self.uid).await
        {
            tracing::warn!(%error, uid = %self.uid, "cannot remove the pod's network");
        }
        let cleanup = tokio::task::spawn_blocking(move || {
            for id in ids {
                if let Err(error) = runtime.delete(&id, true) {
                    tracing::warn!(%error, "cannot delete container");
                }
            }
            if let Err(error) = runtime.remove_sandbox(&sandbox_id(&uid)) {
                tracing::warn!(%error, "cannot remove pod sandbox");
            }
            // The pod's cgroup, in every hierarchy (the QoS level ones stay, like the kubelet's).
            let parent = runtime.cgroup_parent().join("kubepods");
            let cgroup = format!("pod{}", uid.replace('-', "_"));
            for qos in ["", "burstable", "besteffort"] {
                let path = parent.join(qos).join(&cgroup);
                for dir in kite_runtime::cgroup::container_dirs(
                    std::path::Path::new("/sys/fs/cgroup"),
                    &path,
                ) {
                    let _ = std::fs::remove_dir(&dir);
                }
            }
            let dir = layout.pod_dir(&uid);
            volumes::teardown(&dir.join("volumes"));
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_dir_all(&logs);
        });
        let _ = cleanup.await;
        // A static pod is not in the API (its mirror is the mirror pass's business).
        if let Some(pod) = pod.filter(|p| !static_pods::is_static(p)) {
            let api: Api<Pod> = Api::namespaced(
                self.shared.config.client.clone(),
                pod.metadata.namespace.as_deref().unwrap_or("default"),
            );
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(error) => tracing::warn!(%error, pod = %name, "cannot remove the pod object"),
            }
        }
    }
}

/// SIGTERM, then SIGKILL to every process once `grace` is over; returns once it exited.
async fn stop_container(runtime: &kite_runtime::Runtime, id: &str, grace: Duration) {
    let deadline = Instant::now() + grace;
    let signal = |signal: &'static str, all: bool| {
        let runtime = runtime.clone();
        let id = id.to_string();
        async move {
            match tokio::task::spawn_blocking(move || runtime.kill(&id, signal, all)).await {
                Ok(Err(error)) => tracing::debug!(%error, signal, "cannot signal container"),
                Err(error) => tracing::debug!(%error, signal, "cannot signal container"),
                Ok(Ok(())) => {}
            }
        }
    };
    signal("TERM", false).await;
    while runtime.exited(id).is_none() {
        if Instant::now() >= deadline {
            signal("KILL", true).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let give_up = Instant::now() + Duration::from_secs(5);
    while runtime.exited(id).is_none() && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sandbox ID of the pod with `uid` (a valid runtime ID).
fn sandbox_id(uid: &str) -> String {
    format!("pod-{uid}")
}

fn new_container_id() -> String {
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

fn write_if_changed(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(data) {
        return Ok(());
    }
    std::fs::write(path, data)
}

fn parse_time(text: &str) -> Option<std::time::SystemTime> {
    let ts: Timestamp = text.parse().ok()?;
    let nanos = ts.as_nanosecond();
    let nanos = u64::try_from(nanos).ok()?;
    Some(std::time::UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// The last lines of a CRI log (at most `lines` lines and `bytes` bytes), as
/// `FallbackToLogsOnError` reports them.
fn log_tail(path: &std::path::Path, lines: usize, bytes: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let content: Vec<&str> = text
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .collect();
    let start = content.len().saturating_sub(lines);
    let mut out = content[start..].join("\n");
    if out.len() > bytes {
        let cut = out.len() - bytes;
        let cut = (cut..out.len())
            .find(|i| out.is_char_boundary(*i))
            .unwrap_or(out.len());
        out = out[cut..].to_string();
    }
    out
}

/// A duration as Go's `time.Duration` prints it (`520ms`, `1.234s`, `2m3.5s`).
fn go_duration(d: Duration) -> String {
    let millis = d.as_millis();
    if millis < 1000 {
        return format!("{}ms", millis.max(1));
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        let text = format!("{secs:.3}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        return format!("{text}s");
    }
    let minutes = (secs / 60.0).floor();
    let rest = format!("{:.3}", secs - minutes * 60.0);
    let rest = rest.trim_end_matches('0').trim_end_matches('.');
    format!("{minutes}m{rest}s")
}

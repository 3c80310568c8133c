//! The Node object: registered at start with the machine's capacity,
//! addresses, labels and `nodeInfo`; its status (conditions, allocatable)
//! refreshed every minute and whenever a condition changes; and its Lease in
//! `kube-node-lease` renewed every 10 seconds, which is what the node
//! lifecycle controller watches.

use crate::Config;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::time::Duration;

/// How often the lease is renewed.
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// The lease duration the node lifecycle controller is told.
const LEASE_SECONDS: i32 = 40;
/// How often the status is posted when nothing changed.
const STATUS_REFRESH: Duration = Duration::from_secs(60);

/// The machine's resources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capacity {
    /// CPUs.
    pub cpus: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Size of the file system holding the data directory, in bytes.
    pub ephemeral_storage: i64,
    /// Available bytes on that file system.
    pub ephemeral_available: i64,
    /// Available memory in bytes.
    pub memory_available: i64,
}

impl Capacity {
    /// Reads the machine's resources (the data directory's file system for storage).
    pub fn read(root: &std::path::Path) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |name: &str| {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<i64>()
                        .ok()
                })
                .map_or(0, |kb| kb * 1024)
        };
        let (total, avail) = nix::sys::statvfs::statvfs(root)
            .map(|s| {
                let frag = s.fragment_size() as i64;
                (s.blocks() as i64 * frag, s.blocks_available() as i64 * frag)
            })
            .unwrap_or((0, 0));
        Self {
            cpus,
            memory: field("MemTotal:"),
            ephemeral_storage: total,
            ephemeral_available: avail,
            memory_available: field("MemAvailable:"),
        }
    }
}

/// The Node's status as this kubelet reports it.
pub fn status(config: &Config, cap: &Capacity, ready: bool) -> Value {
    let now = Timestamp::now().to_string();
    let capacity = json!({
        "cpu": cap.cpus.to_string(),
        "memory": format!("{}Ki", cap.memory / 1024),
        "ephemeral-storage": format!("{}Ki", cap.ephemeral_storage / 1024),
        "pods": "110",
        "hugepages-2Mi": "0",
        "hugepages-1Gi": "0",
    });
    // Like the kubelet's defaults: 100Mi memory and 10% of storage held back for eviction.
    let allocatable = json!({
        "cpu": cap.cpus.to_string(),
        "memory": format!("{}Ki", (cap.memory - (100 << 20)).max(0) / 1024),
        "ephemeral-storage": (cap.ephemeral_storage / 10 * 9).to_string(),
        "pods": "110",
        "hugepages-2Mi": "0",
        "hugepages-1Gi": "0",
    });
    let condition = |type_: &str, status: bool, reason: &str, message: &str| {
        json!({
            "type": type_,
            "status": if status { "True" } else { "False" },
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        })
    };
    let memory_pressure = cap.memory > 0 && cap.memory_available < (100 << 20);
    let disk_pressure =
        cap.ephemeral_storage > 0 && cap.ephemeral_available < cap.ephemeral_storage / 10;
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".to_string());
    let machine_id = std::fs::read_to_string("/etc/machine-id")
        .unwrap_or_default()
        .trim()
        .to_string();
    json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": [
            condition("MemoryPressure", memory_pressure,
                if memory_pressure { "KubeletHasInsufficientMemory" } else { "KubeletHasSufficientMemory" },
                if memory_pressure { "kubelet has insufficient memory available" } else { "kubelet has sufficient memory available" }),
            condition("DiskPressure", disk_pressure,
                if disk_pressure { "KubeletHasDiskPressure" } else { "KubeletHasNoDiskPressure" },
                if disk_pressure { "kubelet has disk pressure" } else { "kubelet has no disk pressure" }),
            condition("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", ready,
                if ready { "KubeletReady" } else { "KubeletNotReady" },
                if ready { "kubelet is posting ready status" } else { "container runtime is starting" }),
        ],
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip.to_string()},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.port}},
        "images": images(config),
        "nodeInfo": {
            "machineID": machine_id,
            "systemUUID": machine_id,
            "bootID": std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim(),
            "kernelVersion": kernel,
            "osImage": os_image,
            "containerRuntimeVersion": format!("kite://{}", config.version),
            "kubeletVersion": format!("v1.33.0+kite-{}", config.version),
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": arch(),
        },
    })
}

/// The most images `status.images` lists (the kubelet's `--node-status-max-images`).
const MAX_IMAGES: usize = 50;

/// The images in the store, largest first, named by tag and by digest as
/// the kubelet reports them (the scheduler's image locality reads them).
fn images(config: &Config) -> Value {
    let mut images = config.runtime.store().list().unwrap_or_default();
    images.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
    images.truncate(MAX_IMAGES);
    Value::Array(
        images
            .iter()
            .map(|image| {
                let repository = match image.name.rsplit_once(':') {
                    Some((repo, tag)) if !tag.contains('/') => repo,
                    _ => image.name.as_str(),
                };
                json!({
                    "names": [format!("{repository}@{}", image.digest), image.name],
                    "sizeBytes": image.size,
                })
            })
            .collect(),
    )
}

/// The architecture as Go (and so Kubernetes) names it.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn labels(config: &Config) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": config.node_name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch(),
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch(),
        "node.kubernetes.io/instance-type": "kite",
    });
    if config.control_plane {
        labels["node-role.kubernetes.io/control-plane"] = json!("true");
    }
    labels
}

/// Registers the node (or takes over an existing one of the same name).
pub async fn register(config: &Config) -> Result<Node, kube::Error> {
    let api: Api<Node> = Api::all(config.client.clone());
    let body: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": config.node_name, "labels": labels(config)},
    }))
    .map_err(kube::Error::SerdeError)?;
    match api.create(&PostParams::default(), &body).await {
        Ok(node) => Ok(node),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({"metadata": {"labels": labels(config)}});
            api.patch(
                &config.node_name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        }
        Err(e) => Err(e),
    }
}

/// Posts the node status.
pub async fn post_status(config: &Config, cap: &Capacity) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(config.client.clone());
    let patch = json!({"status": status(config, cap, true)});
    api.patch_status(
        &config.node_name,
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
}

/// Creates or renews the node's Lease.
pub async fn renew_lease(config: &Config, node_uid: &str) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(config.client.clone(), "kube-node-lease");
    let now = Timestamp::now().to_string();
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": config.node_name,
            "namespace": "kube-node-lease",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Node", "name": config.node_name, "uid": node_uid,
            }],
        },
        "spec": {
            "holderIdentity": config.node_name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now,
        },
    }))
    .map_err(kube::Error::SerdeError)?;
    match api.get_opt(&config.node_name).await? {
        None => api.create(&PostParams::default(), &lease).await.map(drop),
        Some(_) => {
            let patch = json!({"spec": {"holderIdentity": config.node_name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now}});
            api.patch(
                &config.node_name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map(drop)
        }
    }
}

/// Sets up the pod network once the node has its pod CIDR (the node IPAM
/// controller gives it one); `Err` says why pods cannot get an address yet.
pub async fn ensure_network(config: &Config) -> Result<(), String> {
    let Some(network) = &config.network else {
        return Ok(());
    };
    if network.is_configured().await {
        return Ok(());
    }
    let api: Api<Node> = Api::all(config.client.clone());
    let node = api
        .get(&config.node_name)
        .await
        .map_err(|e| format!("network is not ready: cannot read node: {e}"))?;
    let cidr = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .filter(|c| !c.is_empty())
        .ok_or("network is not ready: the node has no pod CIDR yet")?;
    let cidr: ipnet::Ipv4Net = cidr
        .parse()
        .map_err(|e| format!("network is not ready: pod CIDR {cidr:?}: {e}"))?;
    network
        .configure(cidr)
        .await
        .map_err(|e| format!("network is not ready: {e}"))
}

/// Registers the node, then keeps its status and lease fresh; retries on errors.
pub async fn run(config: Config) {
    let node = loop {
        match register(&config).await {
            Ok(node) => break node,
            Err(error) => {
                tracing::warn!(%error, "cannot register node; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let uid = node.metadata.uid.clone().unwrap_or_default();
    tracing::info!(node = %config.node_name, "node registered");
    let mut last_status: Option<(Capacity, std::time::Instant)> = None;
    // Pods wait for the network: set it up as soon as the pod CIDR is known
    // (pods also try on their own, should this give up first).
    let network_config = config.clone();
    tokio::spawn(async move {
        for _ in 0..100 {
            match ensure_network(&network_config).await {
                Ok(()) => break,
                Err(reason) => tracing::debug!(%reason, "waiting for the pod CIDR"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    loop {
        let cap = Capacity::read(&config.root);
        let pressure = |c: &Capacity| {
            (
                c.memory_available < (100 << 20),
                c.ephemeral_available < c.ephemeral_storage / 10,
            )
        };
        let due = match &last_status {
            None => true,
            Some((previous, at)) => {
                at.elapsed() >= STATUS_REFRESH || pressure(previous) != pressure(&cap)
            }
        };
        if due {
            match post_status(&config, &cap).await {
                Ok(()) => last_status = Some((cap, std::time::Instant::now())),
                Err(error) => tracing::warn!(%error, "cannot post node status"),
            }
        }
        if let Err(error) = renew_lease(&config, &uid).await {
            tracing::warn!(%error, "cannot renew node lease");
        }
        tokio::time::sleep(LEASE_RENEW).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_read_from_the_machine() {
        let cap = Capacity::read(std::path::Path::new("/"));
        assert!(cap.cpus >= 1);
        assert!(cap.memory > 0);
        assert!(cap.ephemeral_storage > 0);
    }
}

//! A pod's container as the runtime runs it: command and arguments with
//! `$(VAR)` expanded, environment, security context (user, groups,
//! capabilities, privileged, read-only root, no-new-privileges), resource
//! limits as cgroup settings, and the mounts (volumes with `subPath`, the
//! generated `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` and the
//! termination message file).

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use kite_api::validation::quantity::Quantity;
use kite_runtime::sandbox::Sandbox;
use kite_runtime::{ContainerSpec, Limits, Mount};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Everything [`spec`] needs besides the pod.
pub struct Inputs<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The container.
    pub container: &'a Container,
    /// Its resolved environment (see [`crate::env`]).
    pub env: &'a [(String, String)],
    /// Host path of each volume (see [`crate::volumes`]).
    pub volumes: &'a HashMap<String, PathBuf>,
    /// The pod's generated /etc files.
    pub etc_dir: &'a Path,
    /// The host file mounted at `terminationMessagePath`.
    pub termination_file: &'a Path,
    /// The pod's sandbox.
    pub sandbox: &'a Sandbox,
    /// The pod's cgroup.
    pub cgroup_parent: PathBuf,
    /// Where `Localhost` seccomp profiles are (`<data-dir>/agent/seccomp`).
    pub seccomp_root: &'a Path,
}

/// The runtime spec of the container, or why it cannot be made.
pub fn spec(inputs: &Inputs<'_>) -> Result<ContainerSpec, String> {
    let pod = inputs.pod;
    let c = inputs.container;
    let pod_spec = pod.spec.clone().unwrap_or_default();
    let known: HashMap<&str, &str> = inputs
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let expand = |list: &Option<Vec<String>>| {
        list.as_ref().map(|l| {
            l.iter()
                .map(|s| crate::env::expand(s, &known))
                .collect::<Vec<_>>()
        })
    };
    let pod_sc = pod_spec.security_context.clone().unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let run_as_user = sc.run_as_user.or(pod_sc.run_as_user);
    let run_as_group = sc.run_as_group.or(pod_sc.run_as_group);
    let user = match (run_as_user, run_as_group) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => Some(format!("0:{g}")),
        (None, None) => None,
    };
    if sc.run_as_non_root.or(pod_sc.run_as_non_root) == Some(true) && run_as_user == Some(0) {
        return Err(format!(
            "container's runAsUser breaks non-root policy (pod: \"{}_{}({})\", container: {})",
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.uid.as_deref().unwrap_or_default(),
            c.name
        ));
    }
    let mut additional_gids: Vec<u32> = pod_sc
        .supplemental_groups
        .iter()
        .flatten()
        .filter_map(|g| u32::try_from(*g).ok())
        .collect();
    if let Some(g) = pod_sc.fs_group.and_then(|g| u32::try_from(g).ok()) {
        additional_gids.push(g);
    }
    let capabilities = sc.capabilities.clone().unwrap_or_default();
    let seccomp = seccomp_profile(
        sc.seccomp_profile
            .as_ref()
            .or(pod_sc.seccomp_profile.as_ref()),
        inputs.seccomp_root,
    )?;

    let mut mounts = Vec::new();
    let mut mounted = std::collections::HashSet::new();
    for vm in c.volume_mounts.iter().flatten() {
        let Some(source) = inputs.volumes.get(&vm.name) else {
            return Err(format!(
                "volume {:?} is mounted by container {:?} but not defined in the pod",
                vm.name, c.name
            ));
        };
        let sub = match (&vm.sub_path, &vm.sub_path_expr) {
            (Some(p), _) if !p.is_empty() => Some(p.clone()),
            (_, Some(e)) if !e.is_empty() => Some(crate::env::expand(e, &known)),
            _ => None,
        };
        let source = match sub {
            Some(sub) => {
                if sub.split('/').any(|part| part == "..") || sub.starts_with('/') {
                    return Err(format!(
                        "invalid subPath {sub:?}: must be a relative path without '..'"
                    ));
                }
                let path = source.join(&sub);
                if std::fs::symlink_metadata(&path).is_err() {
                    std::fs::create_dir_all(&path).map_err(|e| {
                        format!("failed to create subPath directory {}: {e}", path.display())
                    })?;
                }
                path
            }
            None => source.clone(),
        };
        mounted.insert(vm.mount_path.clone());
        mounts.push(Mount {
            source,
            destination: vm.mount_path.clone(),
            readonly: vm.read_only.unwrap_or(false),
        });
    }
    for (file, target) in [
        ("hosts", "/etc/hosts"),
        ("hostname", "/etc/hostname"),
        ("resolv.conf", "/etc/resolv.conf"),
    ] {
        if !mounted.contains(target) {
            mounts.push(Mount {
                source: inputs.etc_dir.join(file),
                destination: target.to_string(),
                readonly: false,
            });
        }
    }
    let termination_path = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".to_string());
    if !termination_path.is_empty() && !mounted.contains(&termination_path) {
        mounts.push(Mount {
            source: inputs.termination_file.to_path_buf(),
            destination: termination_path,
            readonly: false,
        });
    }

    Ok(ContainerSpec {
        command: expand(&c.command),
        args: expand(&c.args),
        env: inputs.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd: c.working_dir.clone().filter(|w| !w.is_empty()),
        user,
        hostname: Some(pod_hostname(pod)),
        limits: limits(c.resources.as_ref()),
        host_network: pod_spec.host_network.unwrap_or(false),
        join: inputs.sandbox.join(),
        mounts,
        additional_gids,
        capabilities_add: capabilities.add.unwrap_or_default(),
        capabilities_drop: capabilities.drop.unwrap_or_default(),
        privileged: sc.privileged.unwrap_or(false),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        no_new_privileges: sc.allow_privilege_escalation == Some(false),
        seccomp,
        cgroup_parent: Some(inputs.cgroup_parent.clone()),
    })
}

/// The container's seccomp profile from its (else the pod's) `seccompProfile`:
/// unset is `Unconfined`, as the kubelet's default is.
fn seccomp_profile(
    wanted: Option<&k8s_openapi::api::core::v1::SeccompProfile>,
    root: &Path,
) -> Result<kite_runtime::seccomp::Profile, String> {
    use kite_runtime::seccomp::{self, Profile};
    let Some(wanted) = wanted else {
        return Ok(Profile::Unconfined);
    };
    match wanted.type_.as_str() {
        "RuntimeDefault" => Ok(Profile::RuntimeDefault),
        "Unconfined" => Ok(Profile::Unconfined),
        "Localhost" => {
            let name = wanted.localhost_profile.as_deref().unwrap_or_default();
            let relative = Path::new(name);
            if name.is_empty()
                || relative.is_absolute()
                || relative
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(format!(
                    "invalid localhostProfile {name:?}: must be a relative path under the kubelet's seccomp directory"
                ));
            }
            seccomp::read_localhost(&root.join(relative))
        }
        other => Err(format!("unknown seccomp profile type {other:?}")),
    }
}

/// The pod's host name: `spec.hostname`, else its name (truncated to 63 characters).
pub fn pod_hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    let mut name: String = name.chars().take(63).collect();
    while name.ends_with(['-', '.']) {
        name.pop();
    }
    name
}

fn quantity(
    resources: Option<&ResourceRequirements>,
    limits: bool,
    name: &str,
) -> Option<Quantity> {
    let list = resources.and_then(|r| {
        if limits {
            r.limits.as_ref()
        } else {
            r.requests.as_ref()
        }
    })?;
    Quantity::parse(&list.get(name)?.0).ok()
}

/// cgroup settings from the container's requests and limits, as the kubelet
/// computes them: CPU shares from the request (limit if no request), quota
/// from the limit over a 100 ms period, memory limit in bytes.
pub fn limits(resources: Option<&ResourceRequirements>) -> Limits {
    let cpu_request =
        quantity(resources, false, "cpu").or_else(|| quantity(resources, true, "cpu"));
    let cpu_limit = quantity(resources, true, "cpu");
    let memory = quantity(resources, true, "memory").map(|q| q.value());
    let shares = cpu_request
        .map(|q| (q.milli_value() * 1024 / 1000).max(2) as u64)
        .unwrap_or(2);
    let quota = cpu_limit.map(|q| (q.milli_value() * 100_000 / 1000).max(1000));
    Limits {
        memory,
        pids: None,
        cpu_quota: quota,
        cpu_period: quota.map(|_| 100_000),
        cpu_shares: Some(shares),
    }
}

/// The pod's QoS class: Guaranteed, Burstable or BestEffort.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = &pod.spec else {
        return "BestEffort";
    };
    let containers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let r = c.resources.as_ref();
        for name in ["cpu", "memory"] {
            let request = quantity(r, false, name);
            let limit = quantity(r, true, name);
            if request.is_some() || limit.is_some() {
                any = true;
            }
            match (request, limit) {
                (_, None) => guaranteed = false,
                (Some(req), Some(lim)) if req.nanos() != lim.nanos() => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The pod's cgroup below the runtime's parent, as the kubelet nests it:
/// `kubepods/pod<uid>` for Guaranteed pods, `kubepods/<qos>/pod<uid>` otherwise.
pub fn pod_cgroup(runtime_parent: &Path, pod: &Pod) -> PathBuf {
    let uid = pod
        .metadata
        .uid
        .as_deref()
        .unwrap_or_default()
        .replace('-', "_");
    let base = runtime_parent.join("kubepods");
    match qos_class(pod) {
        "Guaranteed" => base.join(format!("pod{uid}")),
        "Burstable" => base.join("burstable").join(format!("pod{uid}")),
        _ => base.join("besteffort").join(format!("pod{uid}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "1-2"},
            "spec": {"containers": containers},
        }))
        .unwrap()
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&pod(serde_json::json!([{"name": "a"}]))),
            "BestEffort"
        );
        let g = serde_json::json!([{"name": "a", "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}}]);
        assert_eq!(qos_class(&pod(g)), "Guaranteed");
        let b = serde_json::json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]);
        assert_eq!(qos_class(&pod(b.clone())), "Burstable");
        assert_eq!(
            pod_cgroup(Path::new("/k"), &pod(b)),
            PathBuf::from("/k/kubepods/burstable/pod1_2")
        );
    }

    #[test]
    fn limits_become_cgroup_settings() {
        let r: ResourceRequirements = serde_json::from_value(serde_json::json!({
            "limits": {"cpu": "500m", "memory": "16Mi"}, "requests": {"cpu": "250m"}}))
        .unwrap();
        let l = limits(Some(&r));
        assert_eq!(l.memory, Some(16 << 20));
        assert_eq!(l.cpu_quota, Some(50_000));
        assert_eq!(l.cpu_period, Some(100_000));
        assert_eq!(l.cpu_shares, Some(256));
        assert_eq!(limits(None).cpu_shares, Some(2));
    }

    #[test]
    fn spec_expands_commands_and_mounts_volumes() {
        let p = pod(serde_json::json!([{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "echo $(GREETING)"],
            "volumeMounts": [{"name": "data", "mountPath": "/data", "subPath": "x"}],
            "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": false,
                                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}]));
        let dir = tempfile::tempdir().unwrap();
        let volumes = HashMap::from([("data".to_string(), dir.path().join("vol"))]);
        let env = vec![("GREETING".to_string(), "hi".to_string())];
        let sandbox = Sandbox::default();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let spec = spec(&Inputs {
            pod: &p,
            container: c,
            env: &env,
            volumes: &volumes,
            etc_dir: Path::new("/etc-dir"),
            termination_file: Path::new("/term"),
            sandbox: &sandbox,
            cgroup_parent: PathBuf::from("/k"),
            seccomp_root: Path::new("/seccomp"),
        })
        .unwrap();
        assert_eq!(spec.command.unwrap(), ["sh", "-c", "echo hi"]);
        assert_eq!(spec.env, ["GREETING=hi"]);
        assert_eq!(spec.user.as_deref(), Some("1000"));
        assert!(spec.no_new_privileges);
        assert_eq!(spec.capabilities_drop, ["ALL"]);
        assert_eq!(spec.mounts[0].source, dir.path().join("vol/x"));
        assert!(
            dir.path().join("vol/x").is_dir(),
            "subPath directory created"
        );
        let targets: Vec<&str> = spec.mounts.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(
            targets,
            [
                "/data",
                "/etc/hosts",
                "/etc/hostname",
                "/etc/resolv.conf",
                "/dev/termination-log"
            ]
        );
        assert_eq!(spec.hostname.as_deref(), Some("web"));
    }
}

//! Building a container's OCI runtime spec (`config.json`) from the image
//! config and the caller's overrides.
//!
//! The defaults follow what container runtimes commonly give a container:
//! new mount, PID, IPC, UTS and network namespaces; `/proc`, `/sys` (read
//! only), a tmpfs `/dev` with `pts`, `shm` and `mqueue`; Docker's default
//! capability set; masked and read-only kernel paths; all devices denied in
//! the device cgroup except the standard ones the runtime adds.

use serde::Deserialize;
use serde_json::{Value, json};
use std::path::Path;

/// Errors building a spec.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image config blob is not valid JSON of the expected shape.
    #[error("image config: {0}")]
    Config(#[source] serde_json::Error),
    /// The user is not numeric and not in the image's /etc/passwd.
    #[error("user {0:?}: not a number and not found in the image's /etc/passwd")]
    UnknownUser(String),
    /// There is nothing to run.
    #[error("no command: the image has no Entrypoint or Cmd and none was given")]
    NoCommand,
    /// The spec does not parse as an OCI runtime spec (a bug in kite).
    #[error("generated runtime spec is invalid: {0}")]
    Invalid(#[source] serde_json::Error),
}

/// The parts of an image config a container starts from.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// `KEY=value` pairs.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// The entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `uid[:gid]` or a name.
    #[serde(default)]
    pub user: Option<String>,
}

impl ImageConfig {
    /// Parses the `config` part of an image config blob.
    pub fn from_blob(bytes: &[u8]) -> Result<Self, Error> {
        #[derive(Deserialize)]
        struct Outer {
            #[serde(default)]
            config: Option<ImageConfig>,
        }
        let outer: Outer = serde_json::from_slice(bytes).map_err(Error::Config)?;
        Ok(outer.config.unwrap_or_default())
    }
}

/// Resource limits of a container (absent means unlimited).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Maximum number of processes.
    pub pids: Option<i64>,
    /// CPU quota in microseconds per `cpu_period`.
    pub cpu_quota: Option<i64>,
    /// CPU period in microseconds (default 100000).
    pub cpu_period: Option<u64>,
    /// Relative CPU weight (v1 shares, 2-262144).
    pub cpu_shares: Option<u64>,
}

/// What the caller wants of a container, on top of the image.
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    /// Replaces the image's Entrypoint (and then its Cmd), like Kubernetes `command`.
    pub command: Option<Vec<String>>,
    /// Replaces the image's Cmd, like Kubernetes `args`.
    pub args: Option<Vec<String>>,
    /// Extra `KEY=value` pairs, overriding the image's.
    pub env: Vec<String>,
    /// Working directory (default: the image's, else `/`).
    pub cwd: Option<String>,
    /// `uid[:gid]` or a user name (default: the image's, else root).
    pub user: Option<String>,
    /// Host name (default: the container ID).
    pub hostname: Option<String>,
    /// Resource limits.
    pub limits: Limits,
    /// Share the host's network namespace instead of getting a new one.
    pub host_network: bool,
    /// Namespaces to join instead of creating new ones (a pod's sandbox).
    pub join: JoinNamespaces,
    /// Bind mounts on top of the image (volumes, /etc/hosts, ...), in order.
    pub mounts: Vec<Mount>,
    /// Groups the process also belongs to.
    pub additional_gids: Vec<u32>,
    /// Capabilities added to and dropped from the default set (`NET_ADMIN`,
    /// with or without the `CAP_` prefix; `ALL` in `drop` empties the set first).
    pub capabilities_add: Vec<String>,
    /// See `capabilities_add`.
    pub capabilities_drop: Vec<String>,
    /// Every capability, every device, no masked kernel paths.
    pub privileged: bool,
    /// The rootfs is mounted read-only.
    pub readonly_rootfs: bool,
    /// `no_new_privs`: setuid binaries and file capabilities grant nothing.
    pub no_new_privileges: bool,
    /// The seccomp filter (none for privileged containers, as Kubernetes runs them).
    pub seccomp: crate::seccomp::Profile,
    /// The cgroup parent for this container, instead of the runtime's own
    /// (relative to each hierarchy's root, like `cgroupsPath`).
    pub cgroup_parent: Option<std::path::PathBuf>,
}

/// Existing namespaces (paths such as a bind-mounted `/proc/<pid>/ns/net`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinNamespaces {
    /// Network namespace.
    pub network: Option<std::path::PathBuf>,
    /// IPC namespace.
    pub ipc: Option<std::path::PathBuf>,
    /// UTS namespace (the host name is then the namespace's).
    pub uts: Option<std::path::PathBuf>,
    /// PID namespace (a pod with `shareProcessNamespace`).
    pub pid: Option<std::path::PathBuf>,
}

/// A bind mount into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Host path (a file or a directory).
    pub source: std::path::PathBuf,
    /// Path inside the container.
    pub destination: String,
    /// Mounted read-only.
    pub readonly: bool,
}

const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Builds the runtime spec for container `id` whose rootfs is `rootfs`
/// (already mounted; its /etc/passwd resolves user names).
pub fn build(
    id: &str,
    image: &ImageConfig,
    wanted: &ContainerSpec,
    rootfs: &Path,
    cgroups_path: &Path,
) -> Result<Value, Error> {
    let args: Vec<String> = match (&wanted.command, &wanted.args) {
        (Some(command), args) => command
            .iter()
            .chain(args.iter().flatten())
            .cloned()
            .collect(),
        (None, Some(args)) => image
            .entrypoint
            .iter()
            .flatten()
            .chain(args)
            .cloned()
            .collect(),
        (None, None) => image
            .entrypoint
            .iter()
            .flatten()
            .chain(image.cmd.iter().flatten())
            .cloned()
            .collect(),
    };
    if args.is_empty() {
        return Err(Error::NoCommand);
    }
    let env = merge_env(image.env.as_deref().unwrap_or_default(), &wanted.env);
    let cwd = wanted
        .cwd
        .clone()
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    let user = wanted
        .user
        .clone()
        .or_else(|| image.user.clone())
        .unwrap_or_default();
    let (uid, gid) = resolve_user(&user, rootfs)?;
    let caps = capabilities(wanted);
    let join = &wanted.join;
    let namespace = |kind: &str, path: &Option<std::path::PathBuf>| match path {
        Some(path) => json!({"type": kind, "path": path}),
        None => json!({"type": kind}),
    };
    let mut namespaces = vec![
        namespace("pid", &join.pid),
        namespace("ipc", &join.ipc),
        namespace("uts", &join.uts),
        json!({"type": "mount"}),
    ];
    if !wanted.host_network {
        namespaces.push(namespace("network", &join.network));
    }
    let mut resources = json!({
        "devices": [{"allow": wanted.privileged, "access": "rwm"}],
    });
    let limits = &wanted.limits;
    if let Some(memory) = limits.memory {
        resources["memory"] = json!({"limit": memory});
    }
    if let Some(pids) = limits.pids {
        resources["pids"] = json!({"limit": pids});
    }
    if limits.cpu_quota.is_some() || limits.cpu_shares.is_some() {
        let mut cpu = json!({});
        if let Some(quota) = limits.cpu_quota {
            cpu["quota"] = json!(quota);
            cpu["period"] = json!(limits.cpu_period.unwrap_or(100_000));
        }
        if let Some(shares) = limits.cpu_shares {
            cpu["shares"] = json!(shares);
        }
        resources["cpu"] = cpu;
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid, "additionalGids": wanted.additional_gids},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
        },
        "root": {"path": rootfs, "readonly": wanted.readonly_rootfs},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": cgroups_path,
            "resources": resources,
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    });
    // Left out unless set: libcontainer loads a seccomp filter before it
    // drops capabilities only when the field is absent, and a filter loaded
    // after, without no_new_privs, is refused by the kernel.
    if wanted.no_new_privileges {
        spec["process"]["noNewPrivileges"] = json!(true);
    }
    if !wanted.privileged
        && crate::seccomp::SUPPORTED
        && let Some(seccomp) = wanted.seccomp.to_spec()
    {
        spec["linux"]["seccomp"] = seccomp;
    }
    // A joined UTS namespace already has its host name (the sandbox set it).
    if join.uts.is_none() {
        spec["hostname"] = json!(wanted.hostname.clone().unwrap_or_else(|| id.to_string()));
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for mount in &wanted.mounts {
            let mut options = vec!["rbind", "rprivate"];
            if mount.readonly {
                options.push("ro");
            }
            mounts.push(json!({
                "destination": mount.destination,
                "type": "bind",
                "source": mount.source,
                "options": options,
            }));
        }
    }
    if wanted.privileged {
        spec["linux"]["maskedPaths"] = json!([]);
        spec["linux"]["readonlyPaths"] = json!([]);
        if let Some(sys) = spec["mounts"]
            .as_array_mut()
            .and_then(|m| m.iter_mut().find(|m| m["destination"] == "/sys"))
        {
            sys["options"] = json!(["nosuid", "noexec", "nodev"]);
        }
    }
    // Check the shape against the OCI types before anyone runs it.
    serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone()).map_err(Error::Invalid)?;
    Ok(spec)
}

/// Every capability Linux has (what `privileged` grants).
const ALL_CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
];

/// The container's capability set: the default one (or all when privileged),
/// minus `drop`, plus `add`, as Kubernetes spells them (`NET_ADMIN` or `CAP_NET_ADMIN`).
fn capabilities(wanted: &ContainerSpec) -> Vec<String> {
    let canonical = |c: &str| {
        let upper = c.to_ascii_uppercase();
        if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        }
    };
    let base = if wanted.privileged {
        ALL_CAPABILITIES
    } else {
        CAPABILITIES
    };
    let drop: Vec<String> = wanted
        .capabilities_drop
        .iter()
        .map(|c| canonical(c))
        .collect();
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "CAP_ALL") {
        Vec::new()
    } else {
        base.iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    for add in &wanted.capabilities_add {
        let add = canonical(add);
        if add == "CAP_ALL" {
            caps = ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        } else if !caps.contains(&add) && ALL_CAPABILITIES.contains(&add.as_str()) {
            caps.push(add);
        }
    }
    caps
}

/// The image's environment with `overrides` replacing variables of the same name.
fn merge_env(image: &[String], overrides: &[String]) -> Vec<String> {
    let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
    let mut out: Vec<String> = Vec::new();
    for kv in image.iter().chain(overrides) {
        let k = key(kv);
        if let Some(slot) = out.iter_mut().find(|existing| key(existing) == k) {
            slot.clone_from(kv);
        } else {
            out.push(kv.clone());
        }
    }
    if !out.iter().any(|kv| key(kv) == "PATH") {
        out.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        );
    }
    out
}

/// `uid[:gid]`, with names looked up in the rootfs's /etc/passwd and /etc/group.
fn resolve_user(user: &str, rootfs: &Path) -> Result<(u32, u32), Error> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let (uid, primary_gid) = match u.parse::<u32>() {
        Ok(uid) => (
            uid,
            lookup(&passwd, |f| f.get(2) == Some(&u)).and_then(|f| f.get(3)?.parse().ok()),
        ),
        Err(_) => {
            let fields = lookup(&passwd, |f| f.first() == Some(&u))
                .ok_or_else(|| Error::UnknownUser(user.to_string()))?;
            let uid = fields.get(2).and_then(|v| v.parse().ok());
            let gid = fields.get(3).and_then(|v| v.parse().ok());
            (
                uid.ok_or_else(|| Error::UnknownUser(user.to_string()))?,
                gid,
            )
        }
    };
    let gid = match g {
        None => primary_gid.unwrap_or(uid),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
                lookup(&group, |f| f.first() == Some(&g))
                    .and_then(|f| f.get(2)?.parse().ok())
                    .ok_or_else(|| Error::UnknownUser(user.to_string()))?
            }
        },
    };
    Ok((uid, gid))
}

fn lookup(file: &str, matches: impl Fn(&[&str]) -> bool) -> Option<Vec<&str>> {
    file.lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| matches(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig::from_blob(
            br#"{"config":{"Env":["PATH=/bin","A=1"],"Cmd":["sh"],"WorkingDir":"/srv"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_image_config_supplies_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let spec = build(
            "c1",
            &image(),
            &ContainerSpec::default(),
            dir.path(),
            Path::new("/kite/c1"),
        )
        .unwrap();
        assert_eq!(spec["process"]["args"], json!(["sh"]));
        assert_eq!(spec["process"]["env"], json!(["PATH=/bin", "A=1"]));
        assert_eq!(spec["process"]["cwd"], "/srv");
        assert_eq!(spec["hostname"], "c1");
        assert_eq!(spec["linux"]["cgroupsPath"], "/kite/c1");
        let ns: Vec<_> = spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "network"]);
    }

    #[test]
    fn overrides_replace_command_env_user_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "nobody:x:65534:65533::/:/bin/false\n",
        )
        .unwrap();
        let wanted = ContainerSpec {
            command: Some(vec!["echo".into(), "hi".into()]),
            env: vec!["A=2".into()],
            user: Some("nobody".into()),
            limits: Limits {
                memory: Some(16 << 20),
                pids: Some(20),
                cpu_quota: Some(50_000),
                ..Limits::default()
            },
            host_network: true,
            ..ContainerSpec::default()
        };
        let spec = build("c2", &image(), &wanted, dir.path(), Path::new("/k/c2")).unwrap();
        assert_eq!(spec["process"]["args"], json!(["echo", "hi"]));
        assert_eq!(spec["process"]["env"], json!(["PATH=/bin", "A=2"]));
        assert_eq!(
            spec["process"]["user"],
            json!({"uid": 65534, "gid": 65533, "additionalGids": []})
        );
        assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 16 << 20);
        assert_eq!(spec["linux"]["resources"]["pids"]["limit"], 20);
        assert_eq!(spec["linux"]["resources"]["cpu"]["period"], 100_000);
        assert!(
            !spec["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "network")
        );
    }

    #[test]
    fn unknown_users_and_missing_commands_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let wanted = ContainerSpec {
            user: Some("ghost".into()),
            ..ContainerSpec::default()
        };
        let err = build("c", &image(), &wanted, dir.path(), Path::new("/k")).unwrap_err();
        assert!(matches!(err, Error::UnknownUser(_)));
        let err = build(
            "c",
            &ImageConfig::default(),
            &ContainerSpec::default(),
            dir.path(),
            Path::new("/k"),
        )
        .unwrap_err();
        assert!(matches!(err, Error::NoCommand));
    }
}

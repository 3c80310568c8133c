//! A pod's volumes on the node: each becomes a host directory (or file) that
//! containers bind-mount.
//!
//! emptyDir (a directory, or a tmpfs with `medium: Memory`), hostPath (with
//! its type checks), configMap, secret, downwardAPI and projected volumes
//! (service-account tokens from the TokenRequest API, `kube-root-ca.crt`...),
//! and persistentVolumeClaims bound to hostPath or local volumes. ConfigMap,
//! secret, downward-API and projected contents are written as the kubelet's
//! atomic writer does, so that updates appear all at once: the files live in
//! a timestamped directory that the `..data` symlink points to, and each
//! visible name is a symlink through `..data`.

use crate::env;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    ConfigMap, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret, ServiceAccount,
    Volume,
};
use kube::api::{Api, PostParams};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a volume could not be set up (the kubelet's `FailedMount` event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeError {
    /// The volume's name.
    pub volume: String,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for VolumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MountVolume.SetUp failed for volume \"{}\" : {}",
            self.volume, self.message
        )
    }
}

/// Service-account tokens issued for a pod, refreshed before they expire.
#[derive(Default)]
pub struct TokenCache {
    tokens: HashMap<(String, String), (String, Instant, Duration)>,
}

/// What setting up volumes needs.
pub struct Context<'a> {
    /// API client.
    pub client: &'a kube::Client,
    /// Where the pod's volumes go (`pods/<uid>/volumes`).
    pub dir: PathBuf,
    /// Node facts for downward-API resource fields.
    pub node: &'a env::NodeFacts,
}

/// Sets up (or refreshes) every volume of `pod`; returns each volume's host path.
pub async fn setup(
    ctx: &Context<'_>,
    pod: &Pod,
    tokens: &mut TokenCache,
) -> Result<HashMap<String, PathBuf>, VolumeError> {
    let mut paths = HashMap::new();
    let Some(spec) = &pod.spec else {
        return Ok(paths);
    };
    let fs_group = spec
        .security_context
        .as_ref()
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok());
    for volume in spec.volumes.iter().flatten() {
        let fail = |message: String| VolumeError {
            volume: volume.name.clone(),
            message,
        };
        let path = setup_one(ctx, pod, volume, fs_group, tokens)
            .await
            .map_err(fail)?;
        paths.insert(volume.name.clone(), path);
    }
    Ok(paths)
}

async fn setup_one(
    ctx: &Context<'_>,
    pod: &Pod,
    volume: &Volume,
    fs_group: Option<u32>,
    tokens: &mut TokenCache,
) -> Result<PathBuf, String> {
    let dir = ctx.dir.join(&volume.name);
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    if let Some(host) = &volume.host_path {
        check_host_path(&host.path, host.type_.as_deref().unwrap_or(""))?;
        return Ok(PathBuf::from(&host.path));
    }
    if let Some(empty) = &volume.empty_dir {
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        if empty.medium.as_deref() == Some("Memory") && !is_mount_point(&dir) {
            let size = empty
                .size_limit
                .as_ref()
                .and_then(|q| kite_api::validation::quantity::Quantity::parse(&q.0).ok())
                .map(|q| q.value());
            let options = match size {
                Some(bytes) if bytes > 0 => format!("mode=1777,size={bytes}"),
                _ => "mode=1777".to_string(),
            };
            nix::mount::mount(
                Some("tmpfs"),
                &dir,
                Some("tmpfs"),
                nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                Some(options.as_str()),
            )
            .map_err(|e| format!("mount tmpfs on {}: {e}", dir.display()))?;
        } else {
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o777));
        }
        if let Some(gid) = fs_group {
            let _ = nix::unistd::chown(&dir, None, Some(nix::unistd::Gid::from_raw(gid)));
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o2777));
        }
        return Ok(dir);
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        return claim_path(ctx.client, namespace, &claim.claim_name).await;
    }
    let mut payload = Payload::default();
    if let Some(cm) = &volume.config_map {
        let mode = cm.default_mode.unwrap_or(0o644);
        let found = get::<ConfigMap>(ctx.client, namespace, &cm.name).await?;
        match found {
            Some(found) => add_config_map(&mut payload, &found, cm.items.as_deref(), mode)
                .map_err(|key| format!("configmap references non-existent config key: {key}"))?,
            None if cm.optional.unwrap_or(false) => {}
            None => return Err(format!("configmap \"{}\" not found", cm.name)),
        }
    } else if let Some(secret) = &volume.secret {
        let name = secret.secret_name.clone().unwrap_or_default();
        let mode = secret.default_mode.unwrap_or(0o644);
        match get::<Secret>(ctx.client, namespace, &name).await? {
            Some(found) => add_secret(&mut payload, &found, secret.items.as_deref(), mode)
                .map_err(|key| format!("secret references non-existent secret key: {key}"))?,
            None if secret.optional.unwrap_or(false) => {}
            None => return Err(format!("secret \"{name}\" not found")),
        }
    } else if let Some(downward) = &volume.downward_api {
        let mode = downward.default_mode.unwrap_or(0o644);
        for item in downward.items.iter().flatten() {
            let value = downward_value(pod, item, ctx.node)?;
            payload.add(&item.path, value.into_bytes(), item.mode.unwrap_or(mode));
        }
    } else if let Some(projected) = &volume.projected {
        let mode = projected.default_mode.unwrap_or(0o644);
        for source in projected.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                match get::<ConfigMap>(ctx.client, namespace, &cm.name).await? {
                    Some(found) => add_config_map(&mut payload, &found, cm.items.as_deref(), mode)
                        .map_err(|key| {
                            format!("configmap references non-existent config key: {key}")
                        })?,
                    None if cm.optional.unwrap_or(false) => {}
                    None => return Err(format!("configmap \"{}\" not found", cm.name)),
                }
            }
            if let Some(secret) = &source.secret {
                match get::<Secret>(ctx.client, namespace, &secret.name).await? {
                    Some(found) => add_secret(&mut payload, &found, secret.items.as_deref(), mode)
                        .map_err(|key| {
                            format!("secret references non-existent secret key: {key}")
                        })?,
                    None if secret.optional.unwrap_or(false) => {}
                    None => return Err(format!("secret \"{}\" not found", secret.name)),
                }
            }
            if let Some(downward) = &source.downward_api {
                for item in downward.items.iter().flatten() {
                    let value = downward_value(pod, item, ctx.node)?;
                    payload.add(&item.path, value.into_bytes(), item.mode.unwrap_or(mode));
                }
            }
            if let Some(token) = &source.service_account_token {
                let value = service_account_token(
                    ctx.client,
                    pod,
                    &volume.name,
                    token.audience.as_deref(),
                    token.expiration_seconds.unwrap_or(3600),
                    &token.path,
                    tokens,
                )
                .await?;
                // Tokens are readable by the pod's user only, as the kubelet writes them.
                payload.add(&token.path, value.into_bytes(), 0o600.min(mode));
            }
        }
    } else {
        return Err("this volume type is not supported by kite yet".to_string());
    }
    write_atomically(&dir, &payload, fs_group)
        .map_err(|e| format!("writing {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Unmounts what [`setup`] mounted (memory-backed emptyDirs) under `dir`.
pub fn teardown(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if is_mount_point(&path) {
            let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

async fn get<K>(client: &kube::Client, namespace: &str, name: &str) -> Result<Option<K>, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())
}

/// Files to write into a volume: relative path → (bytes, mode).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Payload {
    files: BTreeMap<String, (Vec<u8>, i32)>,
}

impl Payload {
    /// Adds (or replaces) one file.
    pub fn add(&mut self, path: &str, data: Vec<u8>, mode: i32) {
        self.files.insert(path.to_string(), (data, mode));
    }
}

fn add_items(
    payload: &mut Payload,
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    mode: i32,
) -> Result<(), String> {
    match items {
        None => {
            for (k, v) in data {
                payload.add(&k, v, mode);
            }
        }
        Some(items) => {
            for item in items {
                let value = data.get(&item.key).ok_or_else(|| item.key.clone())?;
                payload.add(&item.path, value.clone(), item.mode.unwrap_or(mode));
            }
        }
    }
    Ok(())
}

fn add_config_map(
    payload: &mut Payload,
    cm: &ConfigMap,
    items: Option<&[KeyToPath]>,
    mode: i32,
) -> Result<(), String> {
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        data.insert(k.clone(), v.0.clone());
    }
    add_items(payload, data, items, mode)
}

fn add_secret(
    payload: &mut Payload,
    secret: &Secret,
    items: Option<&[KeyToPath]>,
    mode: i32,
) -> Result<(), String> {
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    add_items(payload, data, items, mode)
}

fn downward_value(
    pod: &Pod,
    item: &k8s_openapi::api::core::v1::DownwardAPIVolumeFile,
    node: &env::NodeFacts,
) -> Result<String, String> {
    if let Some(field) = &item.field_ref {
        return env::field_value(pod, &field.field_path, node);
    }
    if let Some(resource) = &item.resource_field_ref {
        let name = resource.container_name.as_deref().unwrap_or_default();
        let container = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .find(|c| c.name == name)
            .ok_or_else(|| format!("container {name:?} not found for {}", item.path))?;
        return env::resource_value(
            container,
            &resource.resource,
            resource.divisor.as_ref(),
            node,
        );
    }
    Ok(String::new())
}

async fn service_account_token(
    client: &kube::Client,
    pod: &Pod,
    volume: &str,
    audience: Option<&str>,
    expiration: i64,
    path: &str,
    cache: &mut TokenCache,
) -> Result<String, String> {
    let key = (volume.to_string(), path.to_string());
    if let Some((token, issued, ttl)) = cache.tokens.get(&key) {
        // Refreshed at 80% of its lifetime, as the kubelet's token manager does.
        if issued.elapsed() < ttl.mul_f64(0.8) {
            return Ok(token.clone());
        }
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_string());
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": audience.map(|a| vec![a]).unwrap_or_default(),
            "expirationSeconds": expiration,
            "boundObjectRef": {
                "apiVersion": "v1", "kind": "Pod",
                "name": pod.metadata.name, "uid": pod.metadata.uid,
            },
        },
    }))
    .map_err(|e| e.to_string())?;
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let issued: TokenRequest = api
        .create_subresource("token", &account, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("failed to fetch token: {e}"))?;
    let token = issued.status.map(|s| s.token).unwrap_or_default();
    cache.tokens.insert(
        key,
        (
            token.clone(),
            Instant::now(),
            Duration::from_secs(u64::try_from(expiration).unwrap_or(3600)),
        ),
    );
    Ok(token)
}

async fn claim_path(
    client: &kube::Client,
    namespace: &str,
    claim: &str,
) -> Result<PathBuf, String> {
    let pvc = get::<PersistentVolumeClaim>(client, namespace, claim)
        .await?
        .ok_or_else(|| format!("persistentvolumeclaim \"{claim}\" not found"))?;
    // Like the kubelet, wait for the binder to finish: a claim pointing at
    // a volume is not enough until its phase says Bound.
    let phase = pvc
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let volume = pvc.spec.and_then(|s| s.volume_name).unwrap_or_default();
    if phase != "Bound" || volume.is_empty() {
        return Err(format!(
            "PVC {namespace}/{claim} has non-bound phase ({phase:?}) or empty pvc.Spec.VolumeName ({volume:?})"
        ));
    }
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get_opt(&volume)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("persistentvolume \"{volume}\" not found"))?;
    let spec = pv.spec.unwrap_or_default();
    let path = spec
        .host_path
        .map(|h| h.path)
        .or(spec.local.map(|l| l.path))
        .ok_or_else(|| {
            format!("persistentvolume \"{volume}\" is neither hostPath nor local, which kite cannot mount")
        })?;
    fs::create_dir_all(&path).map_err(|e| format!("{path}: {e}"))?;
    Ok(PathBuf::from(path))
}

/// Checks (and for the `...OrCreate` types, creates) a hostPath as its type asks.
pub fn check_host_path(path: &str, kind: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let meta = fs::metadata(path);
    let failed = |what: &str| Err(format!("hostPath type check failed: {path} is not {what}"));
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                fs::create_dir_all(path).map_err(|e| format!("{path}: {e}"))?;
                let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o755));
                return Ok(());
            }
            if meta.is_ok_and(|m| m.is_dir()) {
                Ok(())
            } else {
                failed("a directory")
            }
        }
        "Directory" => {
            if meta.is_ok_and(|m| m.is_dir()) {
                Ok(())
            } else {
                failed("a directory")
            }
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = Path::new(path).parent() {
                    fs::create_dir_all(parent).map_err(|e| format!("{path}: {e}"))?;
                }
                fs::File::create(path).map_err(|e| format!("{path}: {e}"))?;
                let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o644));
                return Ok(());
            }
            if meta.is_ok_and(|m| m.is_file()) {
                Ok(())
            } else {
                failed("a file")
            }
        }
        "File" => {
            if meta.is_ok_and(|m| m.is_file()) {
                Ok(())
            } else {
                failed("a file")
            }
        }
        "Socket" => {
            if meta.is_ok_and(|m| m.file_type().is_socket()) {
                Ok(())
            } else {
                failed("a socket file")
            }
        }
        "CharDevice" => {
            if meta.is_ok_and(|m| m.file_type().is_char_device()) {
                Ok(())
            } else {
                failed("a character device")
            }
        }
        "BlockDevice" => {
            if meta.is_ok_and(|m| m.file_type().is_block_device()) {
                Ok(())
            } else {
                failed("a block device")
            }
        }
        other => Err(format!("hostPath type {other:?} is not supported")),
    }
}

/// Writes `payload` into `dir` atomically (see the module documentation);
/// does nothing when the contents are already there.
pub fn write_atomically(dir: &Path, payload: &Payload, fs_group: Option<u32>) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let data_link = dir.join("..data");
    let current = fs::read_link(&data_link).ok();
    if let Some(current) = &current
        && same_contents(&dir.join(current), payload)
    {
        return Ok(());
    }
    let stamp = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!("..{}_{:09}", now.as_secs(), now.subsec_nanos())
    };
    let new_dir = dir.join(&stamp);
    fs::create_dir(&new_dir)?;
    let _ = fs::set_permissions(&new_dir, fs::Permissions::from_mode(0o755));
    for (path, (data, mode)) in &payload.files {
        let file = new_dir.join(path);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&file, data)?;
        fs::set_permissions(&file, fs::Permissions::from_mode(*mode as u32 & 0o7777))?;
        if let Some(gid) = fs_group {
            let _ = nix::unistd::chown(&file, None, Some(nix::unistd::Gid::from_raw(gid)));
        }
    }
    let tmp_link = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp_link);
    symlink(&stamp, &tmp_link)?;
    fs::rename(&tmp_link, &data_link)?;
    // Visible names: one symlink per top-level entry, through ..data.
    let top: std::collections::BTreeSet<String> = payload
        .files
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(name), &link)?;
        }
    }
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            if name != "..data" && name != stamp {
                let _ = fs::remove_dir_all(entry.path());
            }
        } else if !top.contains(&name) {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

fn same_contents(dir: &Path, payload: &Payload) -> bool {
    let mut count = 0;
    for (path, (data, mode)) in &payload.files {
        let file = dir.join(path);
        let Ok(meta) = fs::metadata(&file) else {
            return false;
        };
        if meta.permissions().mode() & 0o7777 != (*mode as u32 & 0o7777) {
            return false;
        }
        if fs::read(&file).ok().as_ref() != Some(data) {
            return false;
        }
        count += 1;
    }
    count_files(dir) == count
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        count_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn is_mount_point(path: &Path) -> bool {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = path.to_string_lossy();
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| mount_point == target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(files: &[(&str, &str, i32)]) -> Payload {
        let mut p = Payload::default();
        for (path, data, mode) in files {
            p.add(path, data.as_bytes().to_vec(), *mode);
        }
        p
    }

    #[test]
    fn updates_swap_the_data_link_and_drop_stale_names() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("vol");
        write_atomically(
            &v,
            &payload(&[("a", "1", 0o644), ("sub/b", "2", 0o600)]),
            None,
        )
        .unwrap();
        assert_eq!(fs::read_to_string(v.join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(v.join("sub/b")).unwrap(), "2");
        assert_eq!(fs::read_link(v.join("a")).unwrap(), Path::new("..data/a"));
        let first = fs::read_link(v.join("..data")).unwrap();

        // Same contents: nothing changes.
        write_atomically(
            &v,
            &payload(&[("a", "1", 0o644), ("sub/b", "2", 0o600)]),
            None,
        )
        .unwrap();
        assert_eq!(fs::read_link(v.join("..data")).unwrap(), first);

        write_atomically(&v, &payload(&[("a", "3", 0o644)]), None).unwrap();
        assert_eq!(fs::read_to_string(v.join("a")).unwrap(), "3");
        assert!(fs::symlink_metadata(v.join("sub")).is_err());
        assert!(!v.join(&first).exists(), "old data directory removed");
        let mode = fs::metadata(v.join("a")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn host_path_types_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope").display().to_string();
        let err = check_host_path(&missing, "Directory").unwrap_err();
        assert_eq!(
            err,
            format!("hostPath type check failed: {missing} is not a directory")
        );
        check_host_path(&missing, "DirectoryOrCreate").unwrap();
        assert!(Path::new(&missing).is_dir());
        let file = dir.path().join("f").display().to_string();
        check_host_path(&file, "FileOrCreate").unwrap();
        check_host_path(&file, "File").unwrap();
        assert!(check_host_path(&file, "Directory").is_err());
        assert!(check_host_path(&file, "Socket").is_err());
        check_host_path(&file, "").unwrap();
    }

    #[test]
    fn items_select_and_rename_keys() {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c"}, "data": {"k1": "v1", "k2": "v2"},
        }))
        .unwrap();
        let mut p = Payload::default();
        let items = vec![KeyToPath {
            key: "k2".into(),
            path: "dir/two".into(),
            mode: Some(0o400),
        }];
        add_config_map(&mut p, &cm, Some(&items), 0o644).unwrap();
        assert_eq!(p, payload(&[("dir/two", "v2", 0o400)]));
        let missing = vec![KeyToPath {
            key: "k9".into(),
            path: "x".into(),
            mode: None,
        }];
        assert_eq!(
            add_config_map(&mut p, &cm, Some(&missing), 0o644),
            Err("k9".into())
        );
    }
}

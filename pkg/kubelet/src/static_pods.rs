//! Static pods: the kubelet's second pod source, next to the API. Every file
//! in `<data-dir>/agent/pod-manifests/` holds one Pod (YAML or JSON); the
//! kubelet runs it from the file, so it runs whether or not the apiserver can
//! be reached, and publishes a read-only *mirror pod* for it (see
//! [`crate::mirror`]).
//!
//! A static pod is named `<name>-<node>`, lives in `default` unless the file
//! says otherwise, and its UID is a hash of the node, the file's path and its
//! content, so an edited file is a new pod (the old one stops, the new one
//! starts). [`Source::poll`] turns the directory into those changes.

use k8s_openapi::api::core::v1::{Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a pod came from: `file` for static pods (`api` is never written).
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// The static pod's UID, on the pod and its mirror.
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// When the kubelet first saw the pod.
pub const CONFIG_SEEN: &str = "kubernetes.io/config.seen";
/// Marks a mirror pod; the value is the hash of the static pod it mirrors.
pub const CONFIG_MIRROR: &str = kite_api::admission::service_account::MIRROR_POD_ANNOTATION;

/// Whether `pod` is a static pod (read from a file by this kubelet).
pub fn is_static(pod: &Pod) -> bool {
    annotation(pod, CONFIG_SOURCE) == Some("file")
}

/// Whether `pod` is a mirror pod in the API.
pub fn is_mirror(pod: &Pod) -> bool {
    annotation(pod, CONFIG_MIRROR).is_some()
}

/// The value of annotation `key`.
pub fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// `namespace/name`, how kube tells pods of different sources apart.
pub fn full_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The static pod in manifest `path` with content `bytes`, for `node`; the
/// error says what is wrong with the file.
pub fn parse(path: &Path, bytes: &[u8], node: &str) -> Result<Pod, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the file is not UTF-8".to_string())?;
    let trimmed = text.trim_start();
    let mut value: Value = if trimmed.starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            let message = e.to_string();
            format!("not valid YAML: {}", message.lines().next().unwrap_or(""))
        })?
    };
    if !value.is_object() {
        return Err("couldn't parse as pod: the document is not an object".into());
    }
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind != "Pod" || version != "v1" {
        return Err(format!(
            "couldn't parse as pod: want apiVersion v1 and kind Pod, got {version:?} {kind:?}"
        ));
    }
    kite_api::defaults::apply("", "Pod", &mut value);
    kite_api::defaults::prepare_pod_for_create(&mut value);
    let mut pod: Pod =
        serde_json::from_value(value).map_err(|e| format!("couldn't parse as pod: {e}"))?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err("metadata.name: Required value: name or generateName is required".into());
    }
    if pod.spec.as_ref().is_none_or(|s| s.containers.is_empty()) {
        return Err("spec.containers: Required value".into());
    }
    let uid = match pod.metadata.uid.clone().filter(|u| !u.is_empty()) {
        Some(uid) => uid,
        None => manifest_hash(node, path, bytes),
    };
    pod.metadata.name = Some(format!("{name}-{}", node.to_ascii_lowercase()));
    if pod.metadata.namespace.as_deref().is_none_or(str::is_empty) {
        pod.metadata.namespace = Some("default".into());
    }
    pod.metadata.uid = Some(uid.clone());
    pod.metadata.resource_version = None;
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_HASH.into(), uid);
    annotations.insert(CONFIG_SOURCE.into(), "file".into());
    annotations.insert(CONFIG_SEEN.into(), Timestamp::now().to_string());
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.to_string());
        // Like kube, so that a node's NoExecute taints never evict the mirror.
        let tolerate_all = Toleration {
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            ..Toleration::default()
        };
        let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
        if !tolerations.contains(&tolerate_all) {
            tolerations.push(tolerate_all);
        }
    }
    Ok(pod)
}

/// The UID of a static pod: 32 hex digits over the node, the file and its
/// content (kube uses an md5 of the decoded object; only the shape and the
/// "changes when the file changes" property are visible to users).
fn manifest_hash(node: &str, path: &Path, bytes: &[u8]) -> String {
    let mut input = format!("host:{node}\nfile:{}\n", path.display()).into_bytes();
    input.extend_from_slice(bytes);
    let digest = kite_runtime::digest::Digest::of(&input);
    digest.hex()[..32].to_string()
}

/// What changed in the manifest directory since the last poll.
#[derive(Debug, Default)]
pub struct Changes {
    /// Pods new since the last poll (new files, or edited ones under their new UID).
    pub added: Vec<Arc<Pod>>,
    /// Pods whose file went away or changed (under their old UID).
    pub removed: Vec<Arc<Pod>>,
}

/// The manifest directory and what it held at the last poll.
pub struct Source {
    dir: PathBuf,
    node: String,
    /// By UID.
    pods: HashMap<String, Arc<Pod>>,
    /// Files already reported as bad, with the content that was bad.
    reported: HashMap<PathBuf, Vec<u8>>,
}

impl Source {
    /// A source over `dir` for node `node`; nothing is read yet.
    pub fn new(dir: PathBuf, node: &str) -> Self {
        Self {
            dir,
            node: node.to_string(),
            pods: HashMap::new(),
            reported: HashMap::new(),
        }
    }

    /// The static pods as of the last poll.
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.pods.values().cloned().collect()
    }

    /// Reads the directory again. A file that cannot be read or parsed is
    /// logged (once per content) and skipped; when two files name the same
    /// pod the first in name order wins.
    pub fn poll(&mut self) -> Changes {
        let mut found: HashMap<String, Arc<Pod>> = HashMap::new();
        let mut names: HashMap<String, PathBuf> = HashMap::new();
        let mut seen_files = Vec::new();
        for (path, bytes) in manifest_files(&self.dir) {
            seen_files.push(path.clone());
            let pod = match parse(&path, &bytes, &self.node) {
                Ok(pod) => pod,
                Err(message) => {
                    if self.reported.get(&path) != Some(&bytes) {
                        tracing::warn!(file = %path.display(), "skipping static pod manifest: {message}");
                        self.reported.insert(path, bytes);
                    }
                    continue;
                }
            };
            let name = full_name(&pod);
            if let Some(first) = names.get(&name) {
                if self.reported.get(&path) != Some(&bytes) {
                    tracing::warn!(file = %path.display(), first = %first.display(),
                        "skipping static pod manifest: pod {name} is already defined by another file");
                    self.reported.insert(path, bytes);
                }
                continue;
            }
            self.reported.remove(&path);
            names.insert(name, path);
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            // Seen once, seen at that time: the annotation does not move on every poll.
            let pod = match self.pods.get(&uid) {
                Some(old) => old.clone(),
                None => Arc::new(pod),
            };
            found.insert(uid, pod);
        }
        self.reported.retain(|path, _| seen_files.contains(path));
        let mut changes = Changes::default();
        for (uid, pod) in &self.pods {
            if !found.contains_key(uid) {
                changes.removed.push(pod.clone());
            }
        }
        for (uid, pod) in &found {
            if !self.pods.contains_key(uid) {
                changes.added.push(pod.clone());
            }
        }
        self.pods = found;
        changes
    }
}

/// The regular files of `dir` (dotfiles and directories skipped) with their
/// content, in name order.
fn manifest_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| match std::fs::read(&path) {
            Ok(bytes) => Some((path, bytes)),
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot read static pod manifest");
                None
            }
        })
        .collect()
}

/// The static pod `pod` as a pod being deleted: what its worker gets when its
/// file went away, so that it stops within the pod's grace period.
pub fn terminating(pod: &Pod) -> Pod {
    let mut pod = pod.clone();
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    pod.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    pod.metadata.deletion_grace_period_seconds = Some(grace);
    pod
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";

    #[test]
    fn a_manifest_becomes_a_static_pod_of_this_node() {
        let pod = parse(Path::new("/m/web.yaml"), MANIFEST.as_bytes(), "Node1").unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let uid = pod.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 32);
        assert_eq!(annotation(&pod, CONFIG_HASH), Some(uid.as_str()));
        assert!(is_static(&pod));
        assert!(!is_mirror(&pod));
        assert!(annotation(&pod, CONFIG_SEEN).is_some());
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("Node1"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        let toleration = &spec.tolerations.unwrap()[0];
        assert_eq!(toleration.operator.as_deref(), Some("Exists"));
        assert_eq!(toleration.effect.as_deref(), Some("NoExecute"));
    }

    #[test]
    fn the_uid_follows_node_path_and_content() {
        let uid = |path: &str, text: &str, node: &str| {
            parse(Path::new(path), text.as_bytes(), node)
                .unwrap()
                .metadata
                .uid
                .unwrap()
        };
        let base = uid("/m/a.yaml", MANIFEST, "n");
        assert_eq!(base, uid("/m/a.yaml", MANIFEST, "n"));
        assert_ne!(base, uid("/m/b.yaml", MANIFEST, "n"));
        assert_ne!(base, uid("/m/a.yaml", MANIFEST, "m"));
        assert_ne!(
            base,
            uid("/m/a.yaml", &MANIFEST.replace("busybox", "busybox:1"), "n")
        );
    }

    #[test]
    fn json_manifests_and_explicit_namespaces_are_read() {
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","namespace":"kube-system"},
                      "spec":{"containers":[{"name":"c","image":"busybox"}]}}"#;
        let pod = parse(Path::new("/m/j.json"), json.as_bytes(), "n").unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("j-n"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("kube-system"));
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let check = |text: &str, expected: &str| {
            let error = parse(Path::new("/m/x"), text.as_bytes(), "n").unwrap_err();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        };
        check(
            "kind: Service\napiVersion: v1\n",
            "want apiVersion v1 and kind Pod",
        );
        check("- a\n- b\n", "not an object");
        check("{", "not valid JSON");
        check("a: [\n", "not valid YAML");
        check(
            "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: c, image: b}]\n",
            "metadata.name",
        );
        check(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n",
            "spec.containers",
        );
    }

    #[test]
    fn polls_report_new_edited_and_removed_files_and_skip_dotfiles() {
        let dir = tempfile::tempdir().unwrap();
        let mut source = Source::new(dir.path().to_path_buf(), "n");
        assert!(source.poll().added.is_empty());
        std::fs::write(dir.path().join("web.yaml"), MANIFEST).unwrap();
        std::fs::write(dir.path().join(".web.yaml.swp"), MANIFEST).unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "kind: Pod\n").unwrap();
        let changes = source.poll();
        assert_eq!(changes.added.len(), 1);
        assert!(changes.removed.is_empty());
        let first = changes.added[0].clone();
        let again = source.poll();
        assert!(again.added.is_empty() && again.removed.is_empty());
        assert_eq!(source.pods().len(), 1);

        std::fs::write(
            dir.path().join("web.yaml"),
            MANIFEST.replace("busybox", "busybox:1"),
        )
        .unwrap();
        let edited = source.poll();
        assert_eq!(edited.removed[0].metadata.uid, first.metadata.uid);
        assert_eq!(edited.added[0].metadata.name, first.metadata.name);
        assert_ne!(edited.added[0].metadata.uid, first.metadata.uid);

        std::fs::remove_file(dir.path().join("web.yaml")).unwrap();
        let gone = source.poll();
        assert_eq!(gone.removed.len(), 1);
        assert!(source.pods().is_empty());
    }

    #[test]
    fn a_removed_pod_terminates_within_its_grace_period() {
        let text = MANIFEST.replace("spec:\n", "spec:\n  terminationGracePeriodSeconds: 3\n");
        let pod = parse(Path::new("/m/a"), text.as_bytes(), "n").unwrap();
        let gone = terminating(&pod);
        assert!(gone.metadata.deletion_timestamp.is_some());
        assert_eq!(gone.metadata.deletion_grace_period_seconds, Some(3));
    }
}

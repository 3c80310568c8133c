//! ServiceAccount admission: every pod runs as a service account, and, unless
//! it opts out, gets a projected volume with a short-lived token for it, the
//! cluster CA and its namespace, mounted where client libraries look.

use serde_json::{Value, json};

/// Where the token, `ca.crt` and `namespace` files appear in containers.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The annotation that marks a kubelet's mirror of a static pod.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The prefix of the injected volume's name (a random suffix follows).
pub const VOLUME_PREFIX: &str = "kube-api-access-";

/// How long the injected token lives: an hour and seven seconds, so kubelets
/// refresh it before clients that cache for an hour notice.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// The service account a pod runs as, after defaulting (`default`).
/// Mirror pods are left alone (`None`): they cannot use service accounts.
pub fn account_name(pod: &mut Value) -> Option<String> {
    if pod
        .pointer(&format!(
            "/metadata/annotations/{}",
            MIRROR_POD_ANNOTATION.replace('/', "~1")
        ))
        .is_some()
    {
        return None;
    }
    let spec = pod.get_mut("spec")?.as_object_mut()?;
    let name = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_string();
    spec.insert("serviceAccountName".into(), json!(name));
    Some(name)
}

/// Applies the service account `account` to `pod`: its image pull secrets
/// when the pod names none, and the API-access volume (named with
/// `volume_suffix`) mounted into every container that does not mount that
/// path already, unless the pod or the account turns automounting off.
pub fn admit(pod: &mut Value, account: &Value, volume_suffix: &str) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let has_pull_secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    if !has_pull_secrets
        && let Some(secrets) = account
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .filter(|s| !s.is_empty())
    {
        spec.insert("imagePullSecrets".into(), Value::Array(secrets.clone()));
    }
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            account
                .get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if !automount {
        return;
    }
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .and_then(|volumes| {
            volumes.iter().find_map(|v| {
                let name = v.get("name").and_then(Value::as_str)?;
                name.starts_with(VOLUME_PREFIX).then(|| name.to_string())
            })
        });
    let volume = match existing {
        Some(name) => name,
        None => {
            let name = format!("{VOLUME_PREFIX}{volume_suffix}");
            let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
            if let Some(list) = volumes.as_array_mut() {
                list.push(api_access_volume(&name));
            }
            name
        }
    };
    for kind in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(kind).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers {
            mount(container, &volume);
        }
    }
}

fn mount(container: &mut Value, volume: &str) {
    let Some(container) = container.as_object_mut() else {
        return;
    };
    let mounts = container.entry("volumeMounts").or_insert_with(|| json!([]));
    let Some(list) = mounts.as_array_mut() else {
        return;
    };
    if list
        .iter()
        .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
    {
        return;
    }
    list.push(json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH}));
}

fn api_access_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]}]
        }})
    }

    #[test]
    fn pods_run_as_default_and_get_the_api_access_volume() {
        let mut p = pod();
        assert_eq!(account_name(&mut p).as_deref(), Some("default"));
        admit(
            &mut p,
            &json!({"imagePullSecrets": [{"name": "reg"}]}),
            "abcde",
        );
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "reg"}]));
        assert_eq!(p["spec"]["volumes"][0]["name"], "kube-api-access-abcde");
        let sources = &p["spec"]["volumes"][0]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(
            p["spec"]["initContainers"][0]["volumeMounts"][0],
            json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": MOUNT_PATH})
        );
        assert_eq!(
            p["spec"]["containers"][0]["volumeMounts"][0]["name"],
            "kube-api-access-abcde"
        );
        // A container mounting something of its own there keeps it.
        assert_eq!(
            p["spec"]["containers"][1]["volumeMounts"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn automount_can_be_turned_off_by_the_pod_or_the_account() {
        let mut p = pod();
        admit(&mut p, &json!({"automountServiceAccountToken": false}), "x");
        assert!(p["spec"].get("volumes").is_none());
        let mut p = pod();
        p["spec"]["automountServiceAccountToken"] = json!(true);
        admit(&mut p, &json!({"automountServiceAccountToken": false}), "x");
        assert!(p["spec"]["volumes"].is_array(), "the pod's own choice wins");
    }

    #[test]
    fn mirror_pods_are_left_alone() {
        let mut p = pod();
        p["metadata"]["annotations"] = json!({MIRROR_POD_ANNOTATION: "hash"});
        assert_eq!(account_name(&mut p), None);
        assert!(p["spec"].get("serviceAccountName").is_none());
    }
}

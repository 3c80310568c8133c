//! kite's IngressClass: created at start if missing, marked the default, so
//! Ingresses that name no class are served.
//!
//! An existing `kite` class is left as the user made it (they may have
//! removed the default mark on purpose); whether kite's class is the default
//! is read from the cluster's IngressClasses each sync.

use crate::routes::{CLASS_NAME, CONTROLLER};
use k8s_openapi::api::networking::v1::IngressClass;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::sync::Arc;

/// The annotation that makes an IngressClass the cluster default.
pub const DEFAULT_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Creates the `kite` IngressClass unless it exists.
pub async fn ensure(client: &kube::Client) -> Result<(), kube::Error> {
    let api: Api<IngressClass> = Api::all(client.clone());
    if api.get_opt(CLASS_NAME).await?.is_some() {
        return Ok(());
    }
    let class: IngressClass = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {
            "name": CLASS_NAME,
            "annotations": {DEFAULT_ANNOTATION: "true"},
        },
        "spec": {"controller": CONTROLLER},
    }))
    .map_err(kube::Error::SerdeError)?;
    match api.create(&PostParams::default(), &class).await {
        Ok(_) => Ok(()),
        // Created meanwhile (a restart racing itself): fine.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error),
    }
}

/// Whether kite's class is the default among `classes`.
pub fn is_default(classes: &[Arc<IngressClass>]) -> bool {
    classes.iter().any(|class| {
        class.metadata.name.as_deref() == Some(CLASS_NAME)
            && class
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_ANNOTATION))
                .is_some_and(|v| v == "true")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, default: Option<&str>) -> Arc<IngressClass> {
        let mut value = json!({"metadata": {"name": name}, "spec": {"controller": CONTROLLER}});
        if let Some(d) = default {
            value["metadata"]["annotations"] = json!({DEFAULT_ANNOTATION: d});
        }
        Arc::new(serde_json::from_value(value).unwrap())
    }

    #[test]
    fn kite_is_default_only_while_its_class_says_so() {
        assert!(is_default(&[class("kite", Some("true"))]));
        assert!(!is_default(&[class("kite", Some("false"))]));
        assert!(!is_default(&[
            class("kite", None),
            class("other", Some("true"))
        ]));
        assert!(!is_default(&[]));
    }
}

//! Which Services changed since the last sync, as kube-proxy's change
//! trackers keep them: a Service's own changes and those of its
//! EndpointSlices (by their `kubernetes.io/service-name` label) mark its
//! `namespace/name`, so a sync recomputes only those Services' rules instead
//! of every Service in the cluster.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kite_client::Change;
use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Services (`namespace/name`) whose rules may be out of date.
#[derive(Default)]
pub struct Changed {
    keys: Mutex<HashSet<String>>,
}

impl Changed {
    /// Records a Service change.
    pub fn service(&self, change: &Change<Service>) {
        let service = change.object();
        let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        let name = service.metadata.name.as_deref().unwrap_or_default();
        self.mark(format!("{namespace}/{name}"));
    }

    /// Records an EndpointSlice change: its Service, and the one it belonged
    /// to before if its label moved.
    pub fn slice(&self, change: &Change<EndpointSlice>) {
        if let Change::Updated { old, .. } = change
            && let Some(key) = service_of(old)
        {
            self.mark(key);
        }
        if let Some(key) = service_of(change.object()) {
            self.mark(key);
        }
    }

    fn mark(&self, key: String) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key);
    }

    /// The Services marked since the last call.
    pub fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.keys.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The `namespace/name` of the Service a slice belongs to.
pub fn service_of(slice: &EndpointSlice) -> Option<String> {
    let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    let namespace = slice.metadata.namespace.as_deref().unwrap_or_default();
    Some(format!("{namespace}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn slice(service: &str) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("{service}-abc"), "namespace": "default",
                             "labels": {SERVICE_NAME_LABEL: service}},
                "addressType": "IPv4", "endpoints": []
            }))
            .unwrap(),
        )
    }

    #[test]
    fn slices_mark_their_service_and_the_one_they_left() {
        let changed = Changed::default();
        changed.slice(&Change::Added(slice("web")));
        assert_eq!(changed.take(), HashSet::from(["default/web".to_string()]));
        assert!(changed.take().is_empty());
        changed.slice(&Change::Updated {
            old: slice("web"),
            new: slice("api"),
        });
        assert_eq!(
            changed.take(),
            HashSet::from(["default/web".to_string(), "default/api".to_string()])
        );
    }
}

//! Events as Kubernetes components write them: `core/v1` Events naming the
//! object, the reporting component and host, with repeats of the same event
//! folded into one whose `count` grows (as client-go's event correlator does),
//! so `kubectl describe` and `kubectl get events` show what happened.
//!
//! Recording never blocks or fails the caller: events are best effort.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// `Normal` events: things went as intended.
pub const NORMAL: &str = "Normal";
/// `Warning` events: something needs attention.
pub const WARNING: &str = "Warning";

/// Identity of an event for folding repeats: object uid, reason, message.
type Fold = (String, String, String);
/// Where a folded event lives and how often it happened: namespace, name, count.
type Folded = (String, String, i32);

/// Writes events for one component; clones share the fold cache.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: String,
    host: String,
    seen: Arc<Mutex<HashMap<Fold, Folded>>>,
}

impl Recorder {
    /// A recorder reporting as `component` (e.g. `default-scheduler`) from `host`.
    pub fn new(client: kube::Client, component: &str, host: &str) -> Self {
        Self {
            client,
            component: component.to_string(),
            host: host.to_string(),
            seen: Arc::default(),
        }
    }

    /// Records an event about `object` in the background.
    pub fn publish(&self, object: ObjectReference, type_: &str, reason: &str, message: &str) {
        let recorder = self.clone();
        let (type_, reason, message) = (type_.to_string(), reason.to_string(), message.to_string());
        tokio::spawn(async move {
            if let Err(error) = recorder.write(object, &type_, &reason, &message).await {
                tracing::debug!(%error, %reason, "cannot record event");
            }
        });
    }

    async fn write(
        &self,
        object: ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let namespace = object
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = Timestamp::now();
        let fold = (
            object.uid.clone().unwrap_or_default(),
            reason.to_string(),
            message.to_string(),
        );
        let previous = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&fold)
            .cloned();
        if let Some((ns, name, count)) = previous
            && ns == namespace
        {
            let patch = serde_json::json!({
                "count": count + 1,
                "lastTimestamp": Time(now),
            });
            if api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                self.remember(fold, namespace, name, count + 1);
                return Ok(());
            }
        }
        let name = format!(
            "{}.{:x}",
            object.name.as_deref().unwrap_or("object"),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: object,
            type_: Some(type_.to_string()),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: Some(self.host.clone()).filter(|h| !h.is_empty()),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone()),
            ..Default::default()
        };
        api.create(&PostParams::default(), &event).await?;
        self.remember(fold, namespace, name, 1);
        Ok(())
    }

    fn remember(&self, fold: Fold, namespace: String, name: String, count: i32) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        // Bounded: forget everything rather than grow without limit.
        if seen.len() > 4096 {
            seen.clear();
        }
        seen.insert(fold, (namespace, name, count));
    }
}

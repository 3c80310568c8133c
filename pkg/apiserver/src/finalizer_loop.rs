//! The loop behind the apiserver's own finalizers (namespaces, CRDs): follow
//! one resource's watch cache, keep the names of objects being deleted that
//! still carry the finalizer, and retry `step` on each until it reports done.

use crate::watch_cache::{Start, WatchCache};
use kite_api::Status;
use serde_json::Value;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Drives `step(name)` for every object `pending` selects until `step` answers
/// `Ok(true)`; objects held by other finalizers are looked at again every half
/// second. Runs until the cache's event stream closes for good.
pub async fn run<F, Fut>(
    cache: Arc<WatchCache>,
    what: &'static str,
    pending: fn(&Value) -> bool,
    step: F,
) where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<bool, Status>>,
{
    cache.wait_ready().await;
    loop {
        let Ok((start, mut live)) = cache.subscribe(0) else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let mut names: BTreeSet<String> = match start {
            Start::Snapshot(objects, _) => objects
                .iter()
                .filter(|o| pending(&o.value()))
                .map(|o| o.name().to_string())
                .collect(),
            Start::History(_) => BTreeSet::new(),
        };
        loop {
            for name in names.clone() {
                match step(name.clone()).await {
                    Ok(true) => {
                        names.remove(&name);
                    }
                    Ok(false) => {}
                    Err(status) => {
                        tracing::warn!(object = %name, message = %status.message, "{what} cleanup failed; retrying")
                    }
                }
            }
            let wait = if names.is_empty() {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis(500)
            };
            match tokio::time::timeout(wait, live.recv()).await {
                Ok(Ok(event)) if pending(&event.object.value()) => {
                    names.insert(event.object.name().to_string());
                }
                Ok(Ok(_)) | Err(_) => {}
                // Lagged or closed: resubscribe and rebuild the pending set.
                Ok(Err(_)) => break,
            }
        }
    }
}

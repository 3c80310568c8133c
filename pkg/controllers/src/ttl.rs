//! The TTL-after-finished controller: deletes a finished Job (and, in the
//! foreground, its pods) `spec.ttlSecondsAfterFinished` seconds after it got its
//! `Complete` or `Failed` condition, as kube-controller-manager's
//! `ttl-after-finished-controller` does.

use crate::job::{finish_time, is_finished};
use crate::{Config, Result, work};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kite_client::{Informer, WorkQueue, key_of};
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use std::time::Duration;

/// The TTL-after-finished controller.
pub struct Controller {
    client: kube::Client,
    jobs: Informer<Job>,
    queue: WorkQueue,
}

/// How long until `job` expires: `None` if it never does (no TTL, not finished).
pub fn time_left(job: &Job, now: Timestamp) -> Option<Duration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if !is_finished(job) || job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let finished = finish_time(job)?;
    let expires = finished
        .checked_add(SignedDuration::from_secs(i64::from(ttl)))
        .ok()?;
    Some(if expires <= now {
        Duration::ZERO
    } else {
        expires.duration_since(now).unsigned_abs()
    })
}

impl Controller {
    /// A controller over the shared Job informer.
    pub fn new(config: &Config, jobs: Informer<Job>) -> Self {
        let queue = WorkQueue::new();
        let q = queue.clone();
        jobs.on_change(move |change| q.add(&key_of(&change.object().metadata)));
        Self {
            client: config.client.clone(),
            jobs,
            queue,
        }
    }

    /// Runs until the future is dropped (the informer is run by the caller).
    pub async fn run(self) {
        self.jobs.wait_synced().await;
        work("ttl-after-finished", self.queue.clone(), |key| {
            self.reconcile(key)
        })
        .await
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(job) = self.jobs.get(&key) else {
            return Ok(None);
        };
        match time_left(&job, Timestamp::now()) {
            None => Ok(None),
            Some(left) if !left.is_zero() => Ok(Some(left)),
            Some(_) => {
                let (namespace, name) = kite_client::split_key(&key);
                let api: Api<Job> = Api::namespaced(self.client.clone(), namespace);
                let params = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Foreground),
                    preconditions: Some(Preconditions {
                        uid: job.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(name, &params).await {
                    Ok(_) => Ok(None),
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(None),
                    Err(error) => Err(error.into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(ttl: Option<i32>, finished_at: Option<&str>) -> Job {
        let conditions: Vec<_> = finished_at
            .map(|t| json!({"type": "Complete", "status": "True", "lastTransitionTime": t}))
            .into_iter()
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "j", "namespace": "default"},
            "spec": {"ttlSecondsAfterFinished": ttl,
                     "template": {"spec": {"containers": []}}},
            "status": {"conditions": conditions},
        }))
        .expect("job")
    }

    #[test]
    fn jobs_expire_ttl_seconds_after_they_finish() {
        let now: Timestamp = "2026-01-01T00:00:30Z".parse().expect("time");
        assert_eq!(
            time_left(&job(None, Some("2026-01-01T00:00:00Z")), now),
            None
        );
        assert_eq!(time_left(&job(Some(10), None), now), None);
        assert_eq!(
            time_left(&job(Some(60), Some("2026-01-01T00:00:00Z")), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            time_left(&job(Some(0), Some("2026-01-01T00:00:00Z")), now),
            Some(Duration::ZERO)
        );
    }
}

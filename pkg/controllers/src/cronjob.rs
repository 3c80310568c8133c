//! The CronJob controller (`batch/v1`), as kube-controller-manager's
//! `cronjob-controller` runs CronJobs: at each scheduled time (in `timeZone`,
//! else the process's own zone) a Job named `<cronjob>-<minutes since the
//! epoch>`, so a time is never run twice even after a restart or with a stale
//! cache. A time missed by more than `startingDeadlineSeconds` is skipped;
//! `Forbid` skips a time while a Job runs, `Replace` deletes the running Jobs
//! first. Finished Jobs beyond the history limits are deleted, oldest first.

use crate::cron::Schedule;
use crate::job::is_finished;
use crate::util::{controlled_by, controller_of, controller_ref};
use crate::{Config, Result, work};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kite_client::events::{NORMAL, WARNING};
use kite_client::{Informer, Recorder, WorkQueue, key_of};
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use std::sync::Arc;
use std::time::Duration;

/// The annotation with the time a Job was scheduled for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed times than this are reported as too many.
const MISSED_CAP: usize = 100;

/// The name of the Job for the time `at`.
pub fn job_name(cronjob: &str, at: Timestamp) -> String {
    format!("{cronjob}-{}", at.as_second().div_euclid(60))
}

/// The time zone a CronJob's schedule is read in.
pub fn time_zone(cronjob: &CronJob) -> Result<TimeZone, String> {
    match cronjob.spec.as_ref().and_then(|s| s.time_zone.as_deref()) {
        Some(name) => TimeZone::get(name).map_err(|e| format!("unknown time zone {name}: {e}")),
        None => Ok(TimeZone::system()),
    }
}

/// The scheduled time to run now, if any: the latest in `(earliest, now]`
/// where `earliest` is the last scheduled time (or creation), moved up to
/// `now - startingDeadlineSeconds`; with the count of times in that window.
pub fn due(
    schedule: &Schedule,
    cronjob: &CronJob,
    tz: &TimeZone,
    now: Timestamp,
) -> (Option<Timestamp>, usize) {
    let status = cronjob.status.clone().unwrap_or_default();
    let mut earliest = status
        .last_schedule_time
        .map(|t| t.0)
        .or_else(|| cronjob.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    if let Some(deadline) = cronjob
        .spec
        .as_ref()
        .and_then(|s| s.starting_deadline_seconds)
        && let Ok(window) = now.checked_sub(SignedDuration::from_secs(deadline))
    {
        earliest = earliest.max(window);
    }
    schedule.most_recent(earliest, now, tz, MISSED_CAP)
}

/// The CronJob controller.
pub struct Controller {
    client: kube::Client,
    cronjobs: Informer<CronJob>,
    jobs: Informer<Job>,
    queue: WorkQueue,
    recorder: Recorder,
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".to_string()),
        kind: Some("Job".to_string()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn finished_type(job: &Job) -> Option<&'static str> {
    let conditions = job.status.as_ref()?.conditions.as_deref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some("Complete"),
            "Failed" => Some("Failed"),
            _ => None,
        })
}

impl Controller {
    /// A controller over the shared CronJob and Job informers.
    pub fn new(config: &Config, cronjobs: Informer<CronJob>, jobs: Informer<Job>) -> Self {
        let queue = WorkQueue::new();
        let q = queue.clone();
        cronjobs.on_change(move |change| q.add(&key_of(&change.object().metadata)));
        let q = queue.clone();
        jobs.on_change(move |change| {
            let job = change.object();
            if let Some(owner) = controller_of(&job.metadata)
                && owner.kind == "CronJob"
            {
                let ns = job.metadata.namespace.as_deref().unwrap_or_default();
                q.add(&format!("{ns}/{}", owner.name));
            }
        });
        Self {
            client: config.client.clone(),
            cronjobs,
            jobs,
            queue,
            recorder: Recorder::new(config.client.clone(), "cronjob-controller", &config.host),
        }
    }

    /// Runs until the future is dropped (the informers are run by the caller).
    pub async fn run(self) {
        self.cronjobs.wait_synced().await;
        self.jobs.wait_synced().await;
        work("cronjob", self.queue.clone(), |key| self.reconcile(key)).await
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(cj) = self.cronjobs.get(&key) else {
            return Ok(None);
        };
        let (namespace, name) = kite_client::split_key(&key);
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let spec = cj.spec.clone().unwrap_or_default();
        let reference = cj.object_ref(&());
        let jobs_api: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        let mut owned: Vec<Arc<Job>> = self.jobs.filter(|j| {
            j.metadata.namespace.as_deref() == Some(namespace) && controlled_by(&j.metadata, &uid)
        });
        owned.sort_by_key(|j| {
            j.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_default()
        });
        let old = cj.status.clone().unwrap_or_default();
        let mut status = old.clone();

        // Jobs the status lists that finished or went away.
        for listed in old.active.as_deref().unwrap_or_default() {
            let job = owned
                .iter()
                .find(|j| j.metadata.uid.is_some() && j.metadata.uid == listed.uid);
            match job {
                None => self.recorder.publish(
                    reference.clone(),
                    NORMAL,
                    "MissingJob",
                    &format!(
                        "Active job went missing: {}",
                        listed.name.as_deref().unwrap_or_default()
                    ),
                ),
                Some(job) => {
                    if let Some(condition) = finished_type(job) {
                        self.recorder.publish(
                            reference.clone(),
                            NORMAL,
                            "SawCompletedJob",
                            &format!(
                                "Saw completed job: {}, condition: {condition}",
                                job.metadata.name.as_deref().unwrap_or_default()
                            ),
                        );
                    }
                }
            }
        }
        let active: Vec<&Arc<Job>> = owned.iter().filter(|j| !is_finished(j)).collect();
        status.active =
            Some(active.iter().map(|j| job_ref(j)).collect()).filter(|a: &Vec<_>| !a.is_empty());
        let last_success = owned
            .iter()
            .filter(|j| finished_type(j) == Some("Complete"))
            .filter_map(|j| j.status.as_ref()?.completion_time.clone())
            .max_by_key(|t| t.0);
        if let Some(t) = last_success
            && status
                .last_successful_time
                .as_ref()
                .is_none_or(|old| old.0 < t.0)
        {
            status.last_successful_time = Some(t);
        }

        // History limits.
        for (kind, limit) in [
            ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
            ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
        ] {
            let done: Vec<&Arc<Job>> = owned
                .iter()
                .filter(|j| {
                    finished_type(j) == Some(kind) && j.metadata.deletion_timestamp.is_none()
                })
                .collect();
            let excess = done
                .len()
                .saturating_sub(usize::try_from(limit).unwrap_or(0));
            for job in done.into_iter().take(excess) {
                self.delete_job(&jobs_api, &reference, job).await?;
            }
        }

        let mut requeue = None;
        if cj.metadata.deletion_timestamp.is_none() && spec.suspend != Some(true) {
            let (tz, schedule) = match (time_zone(&cj), Schedule::parse(&spec.schedule)) {
                (Ok(tz), Ok(schedule)) => (tz, schedule),
                (Err(error), _) => {
                    self.recorder
                        .publish(reference.clone(), WARNING, "UnknownTimeZone", &error);
                    return self.write_status(namespace, name, &old, status).await;
                }
                (_, Err(error)) => {
                    self.recorder.publish(
                        reference.clone(),
                        WARNING,
                        "UnparseableSchedule",
                        &format!("unparseable schedule: {:?} : {error}", spec.schedule),
                    );
                    return self.write_status(namespace, name, &old, status).await;
                }
            };
            let now = Timestamp::now();
            if let Some(next) = schedule.next_after(now, &tz) {
                let wait = next.duration_since(now).unsigned_abs();
                requeue = Some(wait + Duration::from_millis(100));
            }
            let (at, missed) = due(&schedule, &cj, &tz, now);
            if missed >= MISSED_CAP {
                self.recorder.publish(
                    reference.clone(),
                    WARNING,
                    "TooManyMissedTimes",
                    &format!(
                        "too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
                    ),
                );
            }
            if let Some(at) = at {
                let job_name = job_name(name, at);
                let exists = owned
                    .iter()
                    .any(|j| j.metadata.name.as_deref() == Some(job_name.as_str()));
                let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
                if exists {
                    status.last_schedule_time = Some(Time(at));
                } else if policy == "Forbid" && !active.is_empty() {
                    self.recorder.publish(
                        reference.clone(),
                        NORMAL,
                        "JobAlreadyActive",
                        "Not starting job because prior execution is running and concurrency policy is Forbid",
                    );
                } else {
                    if policy == "Replace" {
                        for job in &active {
                            self.delete_job(&jobs_api, &reference, job).await?;
                        }
                        status.active = None;
                    }
                    let job = self.job_for(&cj, &job_name, at, &tz);
                    match jobs_api.create(&PostParams::default(), &job).await {
                        Ok(made) => {
                            self.recorder.publish(
                                reference.clone(),
                                NORMAL,
                                "SuccessfulCreate",
                                &format!("Created job {job_name}"),
                            );
                            status.active.get_or_insert_default().push(job_ref(&made));
                        }
                        // Made before (the cache is behind): the time is done.
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(error) => {
                            self.recorder.publish(
                                reference.clone(),
                                WARNING,
                                "FailedCreate",
                                &format!("Error creating job: {error}"),
                            );
                            return Err(error.into());
                        }
                    }
                    status.last_schedule_time = Some(Time(at));
                }
            }
        }
        self.write_status(namespace, name, &old, status).await?;
        Ok(requeue)
    }

    fn job_for(&self, cj: &CronJob, name: &str, at: Timestamp, tz: &TimeZone) -> Job {
        let template = cj
            .spec
            .as_ref()
            .map(|s| s.job_template.clone())
            .unwrap_or_default();
        let meta = template.metadata.unwrap_or_default();
        let mut annotations = meta.annotations.unwrap_or_default();
        // RFC 3339 on the schedule's clock, `Z` for UTC as Go writes it.
        let local = at.to_zoned(tz.clone());
        let stamp = if local.offset().seconds() == 0 {
            format!("{}Z", local.strftime("%Y-%m-%dT%H:%M:%S"))
        } else {
            local.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
        };
        annotations.insert(SCHEDULED_TIMESTAMP.to_string(), stamp);
        Job {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: cj.metadata.namespace.clone(),
                labels: meta.labels,
                annotations: Some(annotations),
                owner_references: Some(vec![controller_ref("batch/v1", "CronJob", &cj.metadata)]),
                ..Default::default()
            },
            spec: template.spec,
            status: None,
        }
    }

    async fn delete_job(
        &self,
        api: &Api<Job>,
        reference: &ObjectReference,
        job: &Job,
    ) -> Result<()> {
        let name = job.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                self.recorder.publish(
                    reference.clone(),
                    NORMAL,
                    "SuccessfulDelete",
                    &format!("Deleted job {name}"),
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn write_status(
        &self,
        namespace: &str,
        name: &str,
        old: &k8s_openapi::api::batch::v1::CronJobStatus,
        status: k8s_openapi::api::batch::v1::CronJobStatus,
    ) -> Result<Option<Duration>> {
        if &status == old {
            return Ok(None);
        }
        let api: Api<CronJob> = Api::namespaced(self.client.clone(), namespace);
        // `active` is replaced whole (null clears it); the times only move
        // forward, so a reconcile from a stale cache never erases them.
        let mut fields = serde_json::Map::new();
        fields.insert("active".into(), serde_json::json!(status.active));
        if let Some(t) = &status.last_schedule_time {
            fields.insert("lastScheduleTime".into(), serde_json::json!(t));
        }
        if let Some(t) = &status.last_successful_time {
            fields.insert("lastSuccessfulTime".into(), serde_json::json!(t));
        }
        let patch = serde_json::json!({ "status": fields });
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cronjob(status: serde_json::Value, deadline: Option<i64>) -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": "tick", "namespace": "default",
                         "creationTimestamp": "2026-01-01T00:00:30Z"},
            "spec": {"schedule": "*/5 * * * *", "startingDeadlineSeconds": deadline,
                     "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}},
            "status": status,
        }))
        .expect("cronjob")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    #[test]
    fn job_names_count_minutes_since_the_epoch() {
        assert_eq!(
            job_name("tick", ts("2026-01-01T00:05:00Z")),
            "tick-29453765"
        );
    }

    #[test]
    fn the_due_time_is_the_latest_since_the_last_run() {
        let s = Schedule::parse("*/5 * * * *").expect("schedule");
        let fresh = cronjob(json!({}), None);
        let (at, _) = due(&s, &fresh, &TimeZone::UTC, ts("2026-01-01T00:04:00Z"));
        assert_eq!(at, None);
        let (at, count) = due(&s, &fresh, &TimeZone::UTC, ts("2026-01-01T00:16:00Z"));
        assert_eq!((at, count), (Some(ts("2026-01-01T00:15:00Z")), 3));
        let ran = cronjob(json!({"lastScheduleTime": "2026-01-01T00:15:00Z"}), None);
        assert_eq!(
            due(&s, &ran, &TimeZone::UTC, ts("2026-01-01T00:19:00Z")).0,
            None
        );
    }

    #[test]
    fn times_older_than_the_starting_deadline_are_skipped() {
        let s = Schedule::parse("*/5 * * * *").expect("schedule");
        let strict = cronjob(json!({}), Some(30));
        assert_eq!(
            due(&s, &strict, &TimeZone::UTC, ts("2026-01-01T00:06:00Z")).0,
            None
        );
        assert_eq!(
            due(&s, &strict, &TimeZone::UTC, ts("2026-01-01T00:05:20Z")).0,
            Some(ts("2026-01-01T00:05:00Z"))
        );
    }
}

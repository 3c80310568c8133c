//! The Job controller (`batch/v1`), as kube-controller-manager's `job-controller`
//! runs Jobs: pods up to `parallelism` until `completions` succeed, replacements
//! for failed pods after an exponential back-off, and a terminal condition.
//!
//! Counting is exact across restarts and stale caches the way Kubernetes makes it
//! so: every pod carries the `batch.kubernetes.io/job-tracking` finalizer; a
//! finished pod's uid is first written to `status.uncountedTerminatedPods`, then
//! its finalizer is removed, and only then is it moved into `succeeded`/`failed`.
//! Deleted pods that had not succeeded count as failed.
//!
//! A Job that reaches its goal first gets `SuccessCriteriaMet` (or, when it
//! fails, `FailureTarget`), its remaining pods are deleted, and once none is left
//! the terminal `Complete` (or `Failed`) condition follows, as Kubernetes 1.33
//! does. Indexed Jobs give each pod its index in the
//! `batch.kubernetes.io/job-completion-index` annotation and label, the
//! `JOB_COMPLETION_INDEX` variable and the hostname `<job>-<index>`.

use crate::util::{controlled_by, controller_of, is_ready, pod_from_template, selector_matches};
use crate::{Config, Result, work};
use crate::{backoff_per_index, pod_failure_policy};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kite_client::events::{NORMAL, WARNING};
use kite_client::{Change, Informer, Recorder, WorkQueue, key_of};
use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The finalizer that keeps a Job's pods until they are counted.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Annotation and label with an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The first back-off before a failed pod is replaced; it doubles per failure.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// The longest back-off.
const BACKOFF_MAX: Duration = Duration::from_secs(360);
/// Writes the cache has not shown yet are waited for this long at most.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(60);
/// The most pods created in one pass.
const BURST: usize = 500;

#[derive(Default)]
struct Expected {
    /// Pods created (by name) not yet in the cache.
    creating: HashSet<String>,
    /// Pods deleted (by name) the cache still shows alive.
    deleting: HashSet<String>,
    /// Pods (by uid) whose tracking finalizer was removed.
    released: HashSet<String>,
    /// The Job's resourceVersion after this controller's last status write.
    written: Option<u64>,
    since: Option<Instant>,
}

/// The Job controller.
pub struct Controller {
    client: kube::Client,
    jobs: Informer<Job>,
    pods: Informer<Pod>,
    queue: WorkQueue,
    recorder: Recorder,
    expected: Mutex<HashMap<String, Expected>>,
}

/// What a Job's pods add up to in one reconcile.
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    /// Running or pending pods not being deleted.
    pub active: usize,
    /// Active pods that are ready.
    pub ready: usize,
    /// Pods being deleted that have not finished.
    pub terminating: usize,
    /// Finished pods still holding the tracking finalizer: uid and success.
    pub finished: Vec<(String, bool)>,
    /// Container restarts of active pods (what `OnFailure` Jobs count as failures).
    pub restarts: i32,
    /// Failed pods the pod failure policy ignores: released, never counted.
    pub ignored: Vec<String>,
    /// The message of a `FailJob` rule a failed pod matched.
    pub fail_job: Option<String>,
}

/// What an Indexed Job's pods should be.
struct IndexPlan<'a> {
    completions: i32,
    /// Indexes that get no more pods: completed or failed.
    done: &'a BTreeSet<i32>,
    /// Indexes backing off after a failure (`backoffLimitPerIndex`).
    blocked: &'a BTreeSet<i32>,
    /// Failures so far per index, recorded on new pods (`backoffLimitPerIndex`).
    failure_counts: Option<&'a BTreeMap<i32, i32>>,
    parallelism: usize,
    can_create: bool,
}

/// A pod's outcome as the Job controller sees it: `Some(true)` succeeded,
/// `Some(false)` failed (or deleted before succeeding), `None` still running.
pub fn outcome(pod: &Pod) -> Option<bool> {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => Some(true),
        Some("Failed") => Some(false),
        _ if pod.metadata.deletion_timestamp.is_some() => Some(false),
        _ => None,
    }
}

/// When the latest of the failed `pods` failed (its containers' last finish).
pub fn latest_failure<'a>(pods: impl Iterator<Item = &'a Pod>) -> Option<Timestamp> {
    pods.filter(|p| outcome(p) == Some(false))
        .filter_map(|p| {
            let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
            statuses
                .iter()
                .filter_map(|s| s.state.as_ref()?.terminated.as_ref()?.finished_at.clone())
                .map(|t| t.0)
                .max()
        })
        .max()
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|f| f == TRACKING_FINALIZER)
}

/// Parses `completedIndexes` (`1,3-5`).
pub fn parse_indexes(text: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(n) = part.parse() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

/// Formats indexes as `completedIndexes` does: ascending, runs as `a-b`.
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if end == start {
            start.to_string()
        } else if end == start + 1 {
            format!("{start},{end}")
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// How long to wait before replacing a pod after `failures` failures.
pub fn backoff(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let shift = u32::try_from(failures - 1).unwrap_or(0).min(16);
    BACKOFF_BASE.saturating_mul(1 << shift).min(BACKOFF_MAX)
}

/// Whether the Job has failed more often than `backoffLimit` allows.
pub fn past_backoff_limit(restart_policy: &str, limit: i32, failed: i32, restarts: i32) -> bool {
    if restart_policy == "OnFailure" {
        let total = failed.saturating_add(restarts);
        return if limit == 0 {
            total > 0
        } else {
            total >= limit
        };
    }
    failed > limit
}

/// The index of an Indexed Job's pod.
pub fn index_of(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(COMPLETION_INDEX))
        .or_else(|| pod.metadata.labels.as_ref()?.get(COMPLETION_INDEX))
        .and_then(|v| v.parse().ok())
}

/// The indexes to start pods for: not completed, not running, lowest first,
/// at most `room` of them.
pub fn indexes_to_start(
    completions: i32,
    completed: &BTreeSet<i32>,
    running: &BTreeSet<i32>,
    room: usize,
) -> Vec<i32> {
    (0..completions)
        .filter(|i| !completed.contains(i) && !running.contains(i))
        .take(room)
        .collect()
}

fn condition(type_: &str, reason: &str, message: &str) -> JobCondition {
    let now = Time(Timestamp::now());
    JobCondition {
        type_: type_.to_string(),
        status: "True".to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

fn has_condition(status: &JobStatus, type_: &str) -> Option<JobCondition> {
    status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .cloned()
}

/// Whether the Job has its terminal condition (`Complete` or `Failed`).
pub fn is_finished(job: &Job) -> bool {
    let status = job.status.clone().unwrap_or_default();
    has_condition(&status, "Complete").is_some() || has_condition(&status, "Failed").is_some()
}

/// When the Job got its terminal condition.
pub fn finish_time(job: &Job) -> Option<Timestamp> {
    let status = job.status.clone().unwrap_or_default();
    has_condition(&status, "Complete")
        .or_else(|| has_condition(&status, "Failed"))
        .and_then(|c| c.last_transition_time)
        .map(|t| t.0)
}

fn set_condition(status: &mut JobStatus, new: JobCondition) {
    let conditions = status.conditions.get_or_insert_default();
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) if existing.status == new.status => {
            existing.reason = new.reason;
            existing.message = new.message;
        }
        Some(existing) => *existing = new,
        None => conditions.push(new),
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl Controller {
    /// A controller over the shared Job and Pod informers.
    pub fn new(config: &Config, jobs: Informer<Job>, pods: Informer<Pod>) -> Self {
        let queue = WorkQueue::new();
        let q = queue.clone();
        jobs.on_change(move |change| q.add(&key_of(&change.object().metadata)));
        let q = queue.clone();
        pods.on_change(move |change| {
            let mut pods = vec![change.object().clone()];
            if let Change::Updated { old, .. } = change {
                pods.push(old.clone());
            }
            for pod in pods {
                if let Some(owner) = controller_of(&pod.metadata)
                    && owner.kind == "Job"
                {
                    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
                    q.add(&format!("{namespace}/{}", owner.name));
                }
            }
        });
        Self {
            client: config.client.clone(),
            jobs,
            pods,
            queue,
            recorder: Recorder::new(config.client.clone(), "job-controller", &config.host),
            expected: Mutex::default(),
        }
    }

    /// Runs until the future is dropped (the informers are run by the caller).
    pub async fn run(self) {
        self.jobs.wait_synced().await;
        self.pods.wait_synced().await;
        work("job", self.queue.clone(), |key| self.reconcile(key)).await
    }

    fn expected(&self) -> std::sync::MutexGuard<'_, HashMap<String, Expected>> {
        self.expected.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the caches show this controller's earlier writes for `key`.
    fn caught_up(&self, key: &str, job: &Job) -> bool {
        let mut all = self.expected();
        let Some(exp) = all.get_mut(key) else {
            return true;
        };
        let (namespace, _) = kite_client::split_key(key);
        let pod = |name: &String| self.pods.get(&format!("{namespace}/{name}"));
        exp.creating.retain(|name| pod(name).is_none());
        exp.deleting
            .retain(|name| pod(name).is_some_and(|p| p.metadata.deletion_timestamp.is_none()));
        let seen_rv = job
            .metadata
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse::<u64>().ok());
        if exp.written.is_some_and(|w| seen_rv.is_some_and(|s| s >= w)) {
            exp.written = None;
        }
        let expired = exp.since.is_some_and(|s| s.elapsed() > EXPECTATION_TIMEOUT);
        if expired {
            all.remove(key);
            return true;
        }
        exp.creating.is_empty() && exp.deleting.is_empty() && exp.written.is_none()
    }

    fn expect(&self, key: &str, update: impl FnOnce(&mut Expected)) {
        let mut all = self.expected();
        let exp = all.entry(key.to_string()).or_default();
        update(exp);
        exp.since = Some(Instant::now());
    }

    fn released(&self, key: &str, uid: &str) -> bool {
        self.expected()
            .get(key)
            .is_some_and(|e| e.released.contains(uid))
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(job) = self.jobs.get(&key) else {
            self.expected().remove(&key);
            return Ok(None);
        };
        if !self.caught_up(&key, &job) {
            return Ok(Some(Duration::from_millis(50)));
        }
        let namespace = job.metadata.namespace.clone().unwrap_or_default();
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let spec = job.spec.clone().unwrap_or_default();
        let selector = spec.selector.clone().unwrap_or_default();
        let empty = BTreeMap::new();
        let pods: Vec<Arc<Pod>> = self.pods.filter(|p| {
            p.metadata.namespace.as_deref() == Some(namespace.as_str())
                && controlled_by(&p.metadata, &uid)
                && selector_matches(&selector, p.metadata.labels.as_ref().unwrap_or(&empty))
        });
        // Forget released pods the cache has caught up with.
        if let Some(exp) = self.expected().get_mut(&key) {
            exp.released.retain(|u| {
                pods.iter()
                    .any(|p| p.metadata.uid.as_deref() == Some(u.as_str()) && has_finalizer(p))
            });
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &namespace);
        let mut job = (*job).clone();
        let mut status = job.status.clone().unwrap_or_default();
        let mut uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
        let mut tally = Tally::default();
        for pod in &pods {
            let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
            match outcome(pod) {
                Some(ok) if has_finalizer(pod) && !self.released(&key, &pod_uid) => {
                    let action = if ok {
                        pod_failure_policy::Action::Count
                    } else {
                        pod_failure_policy::evaluate(spec.pod_failure_policy.as_ref(), pod)
                    };
                    match action {
                        pod_failure_policy::Action::Ignore => tally.ignored.push(pod_uid),
                        pod_failure_policy::Action::FailJob(message) => {
                            tally.fail_job.get_or_insert(message);
                            tally.finished.push((pod_uid, ok));
                        }
                        // FailIndex counts too; backoff_per_index marks the index.
                        pod_failure_policy::Action::Count
                        | pod_failure_policy::Action::FailIndex => {
                            tally.finished.push((pod_uid, ok))
                        }
                    }
                }
                Some(_) => {}
                None => {
                    tally.active += 1;
                    tally.ready += usize::from(is_ready(pod));
                    tally.restarts += pod
                        .status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .map(|c| c.iter().map(|c| c.restart_count).sum::<i32>())
                        .unwrap_or(0);
                }
            }
            if pod.metadata.deletion_timestamp.is_some()
                && !matches!(
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
            {
                tally.terminating += 1;
            }
        }

        // 1. Record newly finished pods as uncounted before letting go of them.
        let mut newly = false;
        for (pod_uid, ok) in &tally.finished {
            let list = if *ok {
                uncounted.succeeded.get_or_insert_default()
            } else {
                uncounted.failed.get_or_insert_default()
            };
            if !list.contains(pod_uid) {
                list.push(pod_uid.clone());
                newly = true;
            }
        }
        if newly {
            status.uncounted_terminated_pods = Some(uncounted.clone());
            job.status = Some(status.clone());
            job = self.write_status(&key, &jobs, &job).await?;
        }
        // 2. Release them (and the failures the policy ignores, which are never counted).
        for pod_uid in &tally.ignored {
            if let Some(pod) = pods
                .iter()
                .find(|p| p.metadata.uid.as_deref() == Some(pod_uid.as_str()))
                && self.release(&api, pod).await?
            {
                self.expect(&key, |e| {
                    e.released.insert(pod_uid.clone());
                });
            }
        }
        let pending: HashSet<&String> = uncounted
            .succeeded
            .iter()
            .chain(uncounted.failed.iter())
            .flatten()
            .collect();
        let mut counted: HashSet<String> = HashSet::new();
        for pod_uid in &pending {
            let pod = pods
                .iter()
                .find(|p| p.metadata.uid.as_deref() == Some(pod_uid.as_str()));
            match pod {
                Some(pod) if has_finalizer(pod) && !self.released(&key, pod_uid) => {
                    if self.release(&api, pod).await? {
                        self.expect(&key, |e| {
                            e.released.insert((*pod_uid).clone());
                        });
                    }
                    counted.insert((*pod_uid).clone());
                }
                _ => {
                    counted.insert((*pod_uid).clone());
                }
            }
        }
        // 3. Move them into the counters.
        let mut succeeded = status.succeeded.unwrap_or(0);
        let mut failed = status.failed.unwrap_or(0);
        let keep = |list: &mut Option<Vec<String>>, counter: &mut i32| {
            let all = list.take().unwrap_or_default();
            let (done, rest): (Vec<String>, Vec<String>) =
                all.into_iter().partition(|u| counted.contains(u));
            *counter = counter.saturating_add(count(done.len()));
            *list = Some(rest);
        };
        keep(&mut uncounted.succeeded, &mut succeeded);
        keep(&mut uncounted.failed, &mut failed);
        let uncounted_left = uncounted.succeeded.as_ref().is_some_and(|l| !l.is_empty())
            || uncounted.failed.as_ref().is_some_and(|l| !l.is_empty());
        status.succeeded = Some(succeeded);
        status.failed = Some(failed);
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: uncounted.succeeded.filter(|l| !l.is_empty()),
            failed: uncounted.failed.filter(|l| !l.is_empty()),
        });

        // 4. Decide.
        let reference = job.object_ref(&());
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        let completions = spec.completions;
        let parallelism = usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
        let suspended = spec.suspend.unwrap_or(false);
        let restart_policy = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Never".to_string());
        let mut completed_indexes =
            parse_indexes(status.completed_indexes.as_deref().unwrap_or(""));
        if indexed {
            for pod in &pods {
                if outcome(pod) == Some(true)
                    && let Some(i) = index_of(pod)
                    && completions.is_some_and(|c| i < c)
                {
                    completed_indexes.insert(i);
                }
            }
            status.completed_indexes = Some(format_indexes(&completed_indexes));
        }
        let index_failures = spec
            .backoff_limit_per_index
            .filter(|_| indexed)
            .map(|limit| {
                let already = parse_indexes(status.failed_indexes.as_deref().unwrap_or(""));
                // Once the Job's fate is decided, the pods it stops fail no index.
                let decided = is_finished(&job)
                    || has_condition(&status, "FailureTarget").is_some()
                    || has_condition(&status, "SuccessCriteriaMet").is_some();
                let failures = backoff_per_index::tally(
                    if decided { &[] } else { &pods },
                    completions.unwrap_or(0),
                    limit,
                    spec.pod_failure_policy.as_ref(),
                    &already,
                );
                status.failed_indexes = Some(format_indexes(&failures.failed));
                failures
            });
        let mut requeue: Option<Duration> = None;
        let finished = is_finished(&job);
        let mut target_failed = has_condition(&status, "FailureTarget");
        let mut target_met = has_condition(&status, "SuccessCriteriaMet");
        if !finished && target_failed.is_none() && target_met.is_none() {
            let now = Timestamp::now();
            let done = if indexed {
                completions.is_some_and(|c| count(completed_indexes.len()) >= c)
            } else {
                match completions {
                    Some(c) => succeeded >= c,
                    None => succeeded > 0 && tally.active == 0,
                }
            };
            let deadline = spec.active_deadline_seconds.and_then(|secs| {
                let start = status.start_time.as_ref()?.0;
                let end = start
                    .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(secs))
                    .ok()?;
                Some(end)
            });
            let by_indexes = index_failures.as_ref().and_then(|f| {
                backoff_per_index::verdict(
                    completions.unwrap_or(0),
                    &completed_indexes,
                    &f.failed,
                    spec.max_failed_indexes,
                )
            });
            if let Some(message) = &tally.fail_job {
                let c = condition("FailureTarget", "PodFailurePolicy", message);
                set_condition(&mut status, c.clone());
                target_failed = Some(c);
            } else if let Some((reason, message)) = by_indexes {
                let c = condition("FailureTarget", reason, message);
                set_condition(&mut status, c.clone());
                target_failed = Some(c);
            } else if done {
                let c = condition(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                );
                set_condition(&mut status, c.clone());
                target_met = Some(c);
            } else if !suspended
                && past_backoff_limit(
                    &restart_policy,
                    spec.backoff_limit.unwrap_or(6),
                    failed,
                    tally.restarts,
                )
            {
                let c = condition(
                    "FailureTarget",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                );
                set_condition(&mut status, c.clone());
                target_failed = Some(c);
            } else if !suspended && deadline.is_some_and(|d| d <= now) {
                let c = condition(
                    "FailureTarget",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                );
                set_condition(&mut status, c.clone());
                target_failed = Some(c);
            } else if !suspended && let Some(d) = deadline {
                let left = d.duration_since(now).unsigned_abs();
                requeue = Some(left.max(Duration::from_millis(100)));
            }
        }

        let active: Vec<&Arc<Pod>> = pods.iter().filter(|p| outcome(p).is_none()).collect();
        if finished || target_failed.is_some() || target_met.is_some() || suspended {
            // Nothing more runs: stop what is left.
            self.delete_pods(&key, &api, &reference, &active).await?;
            if !finished && active.is_empty() && tally.terminating == 0 && !uncounted_left {
                if let Some(c) = &target_failed {
                    let reason = c.reason.clone().unwrap_or_default();
                    let message = c.message.clone().unwrap_or_default();
                    set_condition(&mut status, condition("Failed", &reason, &message));
                    self.recorder
                        .publish(reference.clone(), WARNING, &reason, &message);
                } else if let Some(c) = &target_met {
                    set_condition(
                        &mut status,
                        condition(
                            "Complete",
                            c.reason.as_deref().unwrap_or_default(),
                            c.message.as_deref().unwrap_or_default(),
                        ),
                    );
                    status.completion_time = Some(Time(Timestamp::now()));
                    self.recorder
                        .publish(reference.clone(), NORMAL, "Completed", "Job completed");
                }
            }
            if suspended && target_failed.is_none() && target_met.is_none() && !finished {
                if has_condition(&status, "Suspended").is_none() {
                    set_condition(
                        &mut status,
                        condition("Suspended", "JobSuspended", "Job suspended"),
                    );
                    self.recorder
                        .publish(reference.clone(), NORMAL, "Suspended", "Job suspended");
                }
                // The deadline counts from the resume.
                status.start_time = None;
            }
        } else {
            if has_condition(&status, "Suspended").is_some() {
                let mut resumed = condition("Suspended", "JobResumed", "Job resumed");
                resumed.status = "False".to_string();
                set_condition(&mut status, resumed);
                self.recorder
                    .publish(reference.clone(), NORMAL, "Resumed", "Job resumed");
            }
            if status.start_time.is_none() {
                status.start_time = Some(Time(Timestamp::now()));
                if let Some(secs) = spec.active_deadline_seconds {
                    requeue = Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)));
                }
            }
            // With a limit per index each index backs off on its own.
            let mut blocked = BTreeSet::new();
            let wait = match &index_failures {
                Some(f) => {
                    let mut soonest = Duration::ZERO;
                    for (index, failures) in &f.counts {
                        let left = backoff_per_index::last_failure(&pods, *index)
                            .map(|at| {
                                let since = Timestamp::now().duration_since(at).unsigned_abs();
                                backoff(*failures).saturating_sub(since)
                            })
                            .unwrap_or_default();
                        if !left.is_zero() && !f.failed.contains(index) {
                            blocked.insert(*index);
                            soonest = if soonest.is_zero() {
                                left
                            } else {
                                soonest.min(left)
                            };
                        }
                    }
                    soonest
                }
                None => self.failure_backoff(&pods, failed),
            };
            if !wait.is_zero() {
                requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
            }
            let can_create = index_failures.is_some() || wait.is_zero();
            if indexed {
                let mut done = completed_indexes.clone();
                if let Some(f) = &index_failures {
                    done.extend(&f.failed);
                }
                self.manage_indexed(
                    &key,
                    &job,
                    &api,
                    &reference,
                    &active,
                    IndexPlan {
                        completions: completions.unwrap_or(0),
                        done: &done,
                        blocked: &blocked,
                        failure_counts: index_failures.as_ref().map(|f| &f.counts),
                        parallelism,
                        can_create,
                    },
                )
                .await?;
            } else {
                let wanted = match completions {
                    Some(c) => parallelism.min(usize::try_from(c - succeeded).unwrap_or(0)),
                    // Once one pod succeeded, the rest finish on their own.
                    None if succeeded > 0 => active.len(),
                    None => parallelism,
                };
                if active.len() < wanted && can_create {
                    let missing = (wanted - active.len()).min(BURST);
                    let pods = (0..missing).map(|_| self.pod_for(&job, None)).collect();
                    self.create_pods(&key, &api, &reference, pods).await?;
                } else if active.len() > wanted {
                    let mut victims = active.clone();
                    victims.sort_by_key(|p| (is_ready(p), std::cmp::Reverse(created_at(p))));
                    victims.truncate(active.len() - wanted);
                    self.delete_pods(&key, &api, &reference, &victims).await?;
                }
            }
        }

        status.active = Some(count(tally.active));
        status.ready = Some(count(tally.ready));
        status.terminating = Some(count(tally.terminating));
        if job.status.as_ref() != Some(&status) {
            job.status = Some(status);
            self.write_status(&key, &jobs, &job).await?;
        }
        Ok(requeue)
    }

    /// The back-off still to wait before replacing failed pods, counted from the
    /// latest failure the cache shows.
    fn failure_backoff(&self, pods: &[Arc<Pod>], failed: i32) -> Duration {
        let latest = latest_failure(pods.iter().map(|p| &**p));
        let Some(latest) = latest else {
            return Duration::ZERO;
        };
        let since = Timestamp::now().duration_since(latest).unsigned_abs();
        backoff(failed).saturating_sub(since)
    }

    async fn manage_indexed(
        &self,
        key: &str,
        job: &Job,
        api: &Api<Pod>,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        active: &[&Arc<Pod>],
        plan: IndexPlan<'_>,
    ) -> Result<()> {
        let mut running = BTreeSet::new();
        let mut extra = Vec::new();
        for pod in active {
            match index_of(pod) {
                Some(i) if i < plan.completions && !plan.done.contains(&i) && running.insert(i) => {
                }
                // Out of range, completed, failed or a duplicate.
                _ => extra.push(*pod),
            }
        }
        self.delete_pods(key, api, reference, &extra).await?;
        let room = plan.parallelism.saturating_sub(running.len()).min(BURST);
        if plan.can_create && room > 0 {
            let mut not_now = running.clone();
            not_now.extend(plan.blocked);
            let pods = indexes_to_start(plan.completions, plan.done, &not_now, room)
                .into_iter()
                .map(|i| {
                    let mut pod = self.pod_for(job, Some(i));
                    if let Some(counts) = plan.failure_counts {
                        pod.metadata.annotations.get_or_insert_default().insert(
                            backoff_per_index::FAILURE_COUNT.to_string(),
                            counts.get(&i).copied().unwrap_or(0).to_string(),
                        );
                    }
                    pod
                })
                .collect();
            self.create_pods(key, api, reference, pods).await?;
        }
        Ok(())
    }

    fn pod_for(&self, job: &Job, index: Option<i32>) -> Pod {
        let name = job.metadata.name.clone().unwrap_or_default();
        let template = job
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let mut pod = pod_from_template(&template, "batch/v1", "Job", &job.metadata);
        pod.metadata
            .finalizers
            .get_or_insert_default()
            .push(TRACKING_FINALIZER.to_string());
        let spec = pod.spec.get_or_insert_default();
        let generate_name = match index {
            Some(i) => {
                pod.metadata
                    .labels
                    .get_or_insert_default()
                    .insert(COMPLETION_INDEX.to_string(), i.to_string());
                pod.metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(COMPLETION_INDEX.to_string(), i.to_string());
                if spec.hostname.is_none() {
                    spec.hostname = Some(format!("{name}-{i}"));
                }
                let env = EnvVar {
                    name: "JOB_COMPLETION_INDEX".to_string(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: None,
                            field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                        }),
                        ..Default::default()
                    }),
                };
                let containers = spec
                    .containers
                    .iter_mut()
                    .chain(spec.init_containers.iter_mut().flatten());
                for c in containers {
                    let vars = c.env.get_or_insert_default();
                    if !vars.iter().any(|v| v.name == env.name) {
                        vars.push(env.clone());
                    }
                }
                format!("{name}-{i}-")
            }
            None => format!("{name}-"),
        };
        pod.metadata.generate_name = Some(generate_name);
        pod
    }

    async fn create_pods(
        &self,
        key: &str,
        api: &Api<Pod>,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        pods: Vec<Pod>,
    ) -> Result<()> {
        let params = PostParams::default();
        let results = futures::future::join_all(pods.iter().map(|p| api.create(&params, p))).await;
        let mut created = Vec::new();
        let mut failure = None;
        for result in results {
            match result {
                Ok(pod) => {
                    let name = pod.metadata.name.unwrap_or_default();
                    self.recorder.publish(
                        reference.clone(),
                        NORMAL,
                        "SuccessfulCreate",
                        &format!("Created pod: {name}"),
                    );
                    created.push(name);
                }
                Err(error) => {
                    self.recorder.publish(
                        reference.clone(),
                        WARNING,
                        "FailedCreate",
                        &format!("Error creating: {error}"),
                    );
                    failure = Some(error);
                }
            }
        }
        if !created.is_empty() {
            self.expect(key, |e| e.creating.extend(created));
        }
        match failure {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    async fn delete_pods(
        &self,
        key: &str,
        api: &Api<Pod>,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        pods: &[&Arc<Pod>],
    ) -> Result<()> {
        let mut deleted = Vec::new();
        let mut failure = None;
        for pod in pods {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = pod.metadata.name.clone().unwrap_or_default();
            match crate::util::delete_pod(api, pod, &self.recorder, reference).await {
                Ok(true) => deleted.push(name),
                Ok(false) => {}
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        if !deleted.is_empty() {
            self.expect(key, |e| e.deleting.extend(deleted));
        }
        match failure {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    /// Removes the tracking finalizer; `false` if the pod is already gone.
    async fn release(&self, api: &Api<Pod>, pod: &Pod) -> Result<bool> {
        let current = pod.metadata.finalizers.clone().unwrap_or_default();
        let rest: Vec<&String> = current
            .iter()
            .filter(|f| *f != TRACKING_FINALIZER)
            .collect();
        // Conditional on the pod's resourceVersion: a concurrent change of the
        // list fails (and is retried) instead of being lost.
        let patch = serde_json::json!({"metadata": {
            "resourceVersion": pod.metadata.resource_version,
            "finalizers": rest,
        }});
        match api
            .patch(
                pod.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    async fn write_status(&self, key: &str, jobs: &Api<Job>, job: &Job) -> Result<Job> {
        let name = job.metadata.name.clone().unwrap_or_default();
        let mut body = job.clone();
        body.metadata.managed_fields = None;
        let written = jobs
            .replace_status(&name, &PostParams::default(), &body)
            .await?;
        let rv = written
            .metadata
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse::<u64>().ok());
        self.expect(key, |e| e.written = rv);
        Ok(written)
    }
}

fn created_at(pod: &Pod) -> String {
    pod.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn completed_indexes_round_trip_as_kubernetes_writes_them() {
        let cases = [
            ("", vec![]),
            ("0", vec![0]),
            ("0,1", vec![0, 1]),
            ("0-2", vec![0, 1, 2]),
            ("1,3-5,7", vec![1, 3, 4, 5, 7]),
        ];
        for (text, indexes) in cases {
            let set: BTreeSet<i32> = indexes.into_iter().collect();
            assert_eq!(parse_indexes(text), set, "{text}");
            assert_eq!(format_indexes(&set), text);
        }
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_six_minutes() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(10), Duration::from_secs(360));
    }

    #[test]
    fn backoff_limit_counts_failures_or_restarts() {
        assert!(!past_backoff_limit("Never", 1, 1, 0));
        assert!(past_backoff_limit("Never", 1, 2, 0));
        assert!(past_backoff_limit("Never", 0, 1, 0));
        assert!(!past_backoff_limit("OnFailure", 2, 0, 1));
        assert!(past_backoff_limit("OnFailure", 2, 0, 2));
        assert!(past_backoff_limit("OnFailure", 0, 0, 1));
    }

    #[test]
    fn indexes_start_lowest_first_skipping_done_and_running() {
        let done: BTreeSet<i32> = [0, 2].into();
        let running: BTreeSet<i32> = [1].into();
        assert_eq!(indexes_to_start(6, &done, &running, 2), vec![3, 4]);
        assert_eq!(indexes_to_start(3, &done, &running, 5), Vec::<i32>::new());
    }

    #[test]
    fn deleted_pods_that_did_not_succeed_count_as_failed() {
        let pod = |phase: &str, deleting: bool| -> Pod {
            let mut v = json!({"metadata": {"name": "p"}, "status": {"phase": phase}});
            if deleting {
                v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            serde_json::from_value(v).expect("pod")
        };
        assert_eq!(outcome(&pod("Running", false)), None);
        assert_eq!(outcome(&pod("Running", true)), Some(false));
        assert_eq!(outcome(&pod("Succeeded", true)), Some(true));
        assert_eq!(outcome(&pod("Failed", false)), Some(false));
    }

    #[test]
    fn indexed_pods_carry_their_index() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "annotations": {COMPLETION_INDEX: "4"}}
        }))
        .expect("pod");
        assert_eq!(index_of(&pod), Some(4));
    }
}

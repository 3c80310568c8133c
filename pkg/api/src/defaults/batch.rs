//! `batch/v1` defaults: Job (including the generated selector) and CronJob.

use super::core_pod::template_at;
use super::{at, each, ensure_obj, present, set_default, set_default_str};
use serde_json::{Value, json};

pub(super) fn apply(kind: &str, obj: &mut Value) {
    match kind {
        "Job" => job(obj),
        "CronJob" => cron_job(obj),
        _ => {}
    }
}

fn job(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    if !present(spec, "completions") && !present(spec, "parallelism") {
        set_default(spec, "completions", json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    let backoff = if present(spec, "backoffLimitPerIndex") {
        i64::from(i32::MAX)
    } else {
        6
    };
    set_default(spec, "backoffLimit", json!(backoff));
    set_default_str(spec, "completionMode", "NonIndexed");
    set_default(spec, "suspend", json!(false));
    let failure_policy = present(spec, "podFailurePolicy");
    if let Some(pfp) = at(spec, "podFailurePolicy") {
        each(pfp, "rules", |r| {
            each(r, "onPodConditions", |c| {
                set_default_str(c, "status", "True")
            })
        });
    }
    set_default_str(
        spec,
        "podReplacementPolicy",
        if failure_policy {
            "Failed"
        } else {
            "TerminatingOrFailed"
        },
    );
    template_at(spec, "template");
    copy_template_labels(obj);
}

/// An object without labels takes its pod template's labels (Jobs, ReplicationControllers).
pub(super) fn copy_template_labels(obj: &mut Value) {
    let Some(labels) = obj.pointer("/spec/template/metadata/labels").cloned() else {
        return;
    };
    if labels.as_object().is_none_or(|m| m.is_empty()) {
        return;
    }
    if let Some(meta) = ensure_obj(obj, "metadata")
        && meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty())
        && let Some(m) = meta.as_object_mut()
    {
        m.insert("labels".into(), labels);
    }
}

/// Generates a Job's selector on create, unless `spec.manualSelector` is true.
///
/// Adds `batch.kubernetes.io/job-name`, `job-name`, `batch.kubernetes.io/controller-uid`
/// and `controller-uid` to the template's labels (keeping labels the user set), selects
/// `batch.kubernetes.io/controller-uid: <uid>`, and copies the template labels to a Job
/// that has none. Call after [`apply`](super::apply), once the uid is assigned.
pub fn job_selector(obj: &mut Value, uid: &str) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(labels) = ensure_obj(spec, "template")
        .and_then(|t| ensure_obj(t, "metadata"))
        .and_then(|m| ensure_obj(m, "labels"))
    {
        for (k, v) in [
            ("job-name", name.as_str()),
            ("batch.kubernetes.io/job-name", name.as_str()),
            ("controller-uid", uid),
            ("batch.kubernetes.io/controller-uid", uid),
        ] {
            set_default(labels, k, json!(v));
        }
    }
    if let Some(ml) = ensure_obj(spec, "selector").and_then(|s| ensure_obj(s, "matchLabels")) {
        set_default(ml, "batch.kubernetes.io/controller-uid", json!(uid));
    }
    copy_template_labels(obj);
}

fn cron_job(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    set_default_str(spec, "concurrencyPolicy", "Allow");
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(jt) = ensure_obj(spec, "jobTemplate") {
        if let Some(meta) = ensure_obj(jt, "metadata") {
            set_default(meta, "creationTimestamp", Value::Null);
        }
        if let Some(js) = ensure_obj(jt, "spec") {
            template_at(js, "template");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::test_util::check;

    fn tmpl() -> Value {
        json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5.34"}]}})
    }

    fn defaulted_tmpl() -> Value {
        json!({"metadata": {"creationTimestamp": null},
               "spec": {"restartPolicy": "Never", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                        "securityContext": {}, "terminationGracePeriodSeconds": 30,
                        "containers": [{"name": "pi", "image": "perl:5.34", "imagePullPolicy": "IfNotPresent", "resources": {},
                                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}]}})
    }

    #[test]
    fn minimal_job_and_its_selector() {
        let mut job = json!({"metadata": {"name": "pi"}, "spec": {"template": tmpl()}});
        crate::defaults::apply("batch", "Job", &mut job);
        job_selector(&mut job, "0a1b");
        let mut t = defaulted_tmpl();
        t["metadata"]["labels"] = json!({"batch.kubernetes.io/controller-uid": "0a1b", "batch.kubernetes.io/job-name": "pi",
                                          "controller-uid": "0a1b", "job-name": "pi"});
        assert_eq!(
            job,
            json!({"metadata": {"name": "pi", "labels": t["metadata"]["labels"].clone()},
                   "spec": {"backoffLimit": 6, "completionMode": "NonIndexed", "completions": 1, "parallelism": 1,
                            "podReplacementPolicy": "TerminatingOrFailed", "suspend": false,
                            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "0a1b"}},
                            "template": t}})
        );
        let mut manual = json!({"metadata": {"name": "m"}, "spec": {"manualSelector": true, "template": tmpl()}});
        job_selector(&mut manual, "u");
        assert!(manual["spec"].get("selector").is_none());
    }

    #[test]
    fn job_parallelism_and_failure_policy() {
        let mut job = json!({"spec": {"parallelism": 3, "backoffLimitPerIndex": 1, "completionMode": "Indexed",
                                      "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
                                      "template": tmpl()}});
        crate::defaults::apply("batch", "Job", &mut job);
        let s = &job["spec"];
        assert!(s.get("completions").is_none());
        assert_eq!(s["backoffLimit"], 2147483647);
        assert_eq!(s["podReplacementPolicy"], "Failed");
        assert_eq!(
            s["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
            "True"
        );
    }

    #[test]
    fn minimal_cron_job() {
        check(
            "batch",
            "CronJob",
            json!({"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": tmpl()}}}}),
            json!({"spec": {"schedule": "*/5 * * * *", "concurrencyPolicy": "Allow", "suspend": false,
                            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                            "jobTemplate": {"metadata": {"creationTimestamp": null}, "spec": {"template": defaulted_tmpl()}}}}),
        );
    }
}

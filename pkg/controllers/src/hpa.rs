//! The HorizontalPodAutoscaler controller (autoscaling/v2): every 15 s it
//! reads each autoscaler's target through the `scale` subresource, the
//! target's pods' usage from the metrics API (`metrics.k8s.io`, served by the
//! apiserver from the kubelets), proposes replicas per metric
//! ([`replicas::propose`]), takes the largest, normalises it by the bounds,
//! stabilisation windows and scaling policies ([`replicas::History`]), writes
//! the new scale, and reports `currentMetrics` and the `AbleToScale`,
//! `ScalingActive` and `ScalingLimited` conditions as kube-controller-manager
//! words them.
//!
//! Resource and ContainerResource metrics are supported; Pods, Object and
//! External metrics need a custom or external metrics API, which kite does not
//! serve, and are reported as unavailable.

pub mod replicas;

use crate::util::{is_ready, selector_matches};
use crate::{Config, Result, work};
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus,
    MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::jiff::Timestamp;
use kite_api::validation::Quantity as Amount;
use kite_client::events::{NORMAL, WARNING};
use kite_client::{Change, Informer, Recorder, WorkQueue, key_of};
use kube::Resource;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use replicas::{History, Limits, PodSample, Policy, Proposal, Rules, Target};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often every autoscaler is evaluated (kube's `--horizontal-pod-autoscaler-sync-period`).
const SYNC_PERIOD: Duration = Duration::from_secs(15);
/// CPU samples of pods younger than this are trusted only once they are Ready
/// (kube's `--horizontal-pod-autoscaler-cpu-initialization-period`).
const CPU_INITIALIZATION: Duration = Duration::from_secs(300);
/// Readiness changes this soon after start are start-up, not unreadiness
/// (kube's `--horizontal-pod-autoscaler-initial-readiness-delay`).
const INITIAL_READINESS_DELAY: Duration = Duration::from_secs(30);

/// The HorizontalPodAutoscaler controller.
pub struct Controller {
    client: kube::Client,
    autoscalers: Informer<HorizontalPodAutoscaler>,
    pods: Informer<Pod>,
    queue: WorkQueue,
    recorder: Recorder,
    history: Mutex<HashMap<String, History>>,
}

/// One metric's evaluation.
struct Evaluated {
    proposal: Proposal,
    status: MetricStatus,
    /// How the metric is named in events (`cpu resource utilization (percentage of request)`).
    description: String,
    /// Whether it is above its target.
    above: bool,
}

impl Controller {
    /// A controller over the shared Pod informer; it runs its own for autoscalers.
    pub fn new(config: &Config, pods: Informer<Pod>) -> Self {
        let client = config.client.clone();
        let queue = WorkQueue::new();
        let autoscalers = Informer::new(Api::<HorizontalPodAutoscaler>::all(client.clone()));
        let q = queue.clone();
        autoscalers.on_change(move |change| match change {
            Change::Added(hpa) => q.add(&key_of(&hpa.metadata)),
            Change::Updated { old, new } if old.spec != new.spec => q.add(&key_of(&new.metadata)),
            _ => {}
        });
        Self {
            client: client.clone(),
            autoscalers,
            pods,
            queue,
            recorder: Recorder::new(client, "horizontal-pod-autoscaler", &config.host),
            history: Mutex::default(),
        }
    }

    /// Runs until the future is dropped (the Pod informer is run by the caller).
    pub async fn run(self) {
        let own = self.autoscalers.clone().run();
        let controller = async {
            self.autoscalers.wait_synced().await;
            self.pods.wait_synced().await;
            work("horizontal-pod-autoscaler", self.queue.clone(), |key| {
                self.reconcile(key)
            })
            .await
        };
        tokio::join!(own, controller);
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(hpa) = self.autoscalers.get(&key) else {
            self.lock_history().remove(&key);
            return Ok(None);
        };
        let namespace = hpa.metadata.namespace.clone().unwrap_or_default();
        let Some(spec) = hpa.spec.clone() else {
            return Ok(None);
        };
        let mut status = hpa.status.clone().unwrap_or_default();
        status.observed_generation = hpa.metadata.generation;
        let target = &spec.scale_target_ref;
        let reference = format!("{}/{}", target.kind, target.name);
        let scale = match self.scale(&namespace, target).await {
            Ok(scale) => scale,
            Err(why) => {
                let message = format!(
                    "the HPA controller was unable to get the target's current scale: {why}"
                );
                self.warn(&hpa, "FailedGetScale", &why);
                set_condition(
                    &mut status,
                    "AbleToScale",
                    "False",
                    "FailedGetScale",
                    &message,
                );
                self.write_status(&hpa, status).await?;
                return Ok(Some(SYNC_PERIOD));
            }
        };
        let (api_resource, current, selector) = scale;
        status.current_replicas = Some(current);
        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        let now = Instant::now();
        let (desired, rescale_reason) = if current == 0 && min != 0 {
            set_condition(
                &mut status,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            );
            (0, String::new())
        } else if current > max {
            (
                max,
                "Current number of replicas above Spec.MaxReplicas".to_string(),
            )
        } else if current < min {
            (
                min,
                "Current number of replicas below Spec.MinReplicas".to_string(),
            )
        } else {
            let metrics = spec.metrics.clone().unwrap_or_default();
            let evaluated = self
                .evaluate(&hpa, &namespace, &selector, current, &metrics)
                .await;
            let (proposal, reason) = match evaluated {
                Ok((best, statuses, description, any_above)) => {
                    status.current_metrics = Some(statuses);
                    set_condition(
                        &mut status,
                        "ScalingActive",
                        "True",
                        "ValidMetricFound",
                        &format!(
                            "the HPA was able to successfully calculate a replica count from {description}"
                        ),
                    );
                    let reason = if any_above {
                        format!("{description} above target")
                    } else {
                        "All metrics below target".to_string()
                    };
                    (best, reason)
                }
                Err((reason, message)) => {
                    self.warn(&hpa, reason, &message);
                    set_condition(&mut status, "ScalingActive", "False", reason, &message);
                    self.write_status(&hpa, status).await?;
                    return Ok(Some(SYNC_PERIOD));
                }
            };
            let limits = Limits {
                min,
                max,
                behavior: behavior_rules(&spec.behavior),
            };
            let decision = self
                .lock_history()
                .entry(key.clone())
                .or_default()
                .normalize(now, current, proposal, &limits);
            set_condition(
                &mut status,
                "ScalingLimited",
                if decision.limited_reason == "DesiredWithinRange" {
                    "False"
                } else {
                    "True"
                },
                decision.limited_reason,
                decision.limited_message,
            );
            if decision.replicas == current {
                set_condition(
                    &mut status,
                    "AbleToScale",
                    "True",
                    decision.able_reason,
                    decision.able_message,
                );
            }
            (decision.replicas, reason)
        };
        if desired != current {
            let api = Api::<DynamicObject>::namespaced_with(
                self.client.clone(),
                &namespace,
                &api_resource,
            );
            let patch = json!({"spec": {"replicas": desired}});
            match api
                .patch_scale(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.lock_history()
                        .entry(key.clone())
                        .or_default()
                        .scaled(now, desired - current);
                    self.recorder.publish(
                        hpa.object_ref(&()),
                        NORMAL,
                        "SuccessfulRescale",
                        &format!("New size: {desired}; reason: {rescale_reason}"),
                    );
                    set_condition(
                        &mut status,
                        "AbleToScale",
                        "True",
                        "SucceededRescale",
                        &format!(
                            "the HPA controller was able to update the target scale to {desired}"
                        ),
                    );
                    status.last_scale_time = Some(Time(Timestamp::now()));
                }
                Err(error) => {
                    let message =
                        format!("New size: {desired}; reason: {rescale_reason}; error: {error}");
                    self.warn(&hpa, "FailedRescale", &message);
                    set_condition(
                        &mut status,
                        "AbleToScale",
                        "False",
                        "FailedUpdateScale",
                        &format!(
                            "the HPA controller was unable to update the target scale: {error}"
                        ),
                    );
                    self.write_status(&hpa, status).await?;
                    return Ok(Some(SYNC_PERIOD));
                }
            }
        }
        status.desired_replicas = desired;
        tracing::debug!(hpa = %key, %reference, current, desired, "autoscaler evaluated");
        self.write_status(&hpa, status).await?;
        Ok(Some(SYNC_PERIOD))
    }

    fn lock_history(&self) -> std::sync::MutexGuard<'_, HashMap<String, History>> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn warn(&self, hpa: &HorizontalPodAutoscaler, reason: &str, message: &str) {
        self.recorder
            .publish(hpa.object_ref(&()), WARNING, reason, message);
    }

    /// The target's resource, `spec.replicas` and pod selector, through its `scale` subresource.
    async fn scale(
        &self,
        namespace: &str,
        target: &k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference,
    ) -> std::result::Result<(ApiResource, i32, LabelSelector), String> {
        let api_version = target.api_version.as_deref().unwrap_or("v1");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, &target.kind);
        let (resource, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| format!("unable to determine resource for scale target reference: {e}"))?;
        let api = Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &resource);
        let scale = api.get_scale(&target.name).await.map_err(|e| match e {
            kube::Error::Api(s) => s.message,
            other => other.to_string(),
        })?;
        let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
        let selector = scale
            .status
            .and_then(|s| s.selector)
            .ok_or_else(|| "selector is required".to_string())?;
        let selector = parse_selector(&selector)?;
        Ok((resource, replicas, selector))
    }

    /// Evaluates every metric; the largest proposal wins.
    #[allow(clippy::type_complexity)]
    async fn evaluate(
        &self,
        hpa: &HorizontalPodAutoscaler,
        namespace: &str,
        selector: &LabelSelector,
        current: i32,
        metrics: &[MetricSpec],
    ) -> std::result::Result<(i32, Vec<MetricStatus>, String, bool), (&'static str, String)> {
        let pods: Vec<Arc<Pod>> = self.pods.filter(|pod| {
            pod.metadata.namespace.as_deref() == Some(namespace)
                && selector_matches(
                    selector,
                    pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
                )
        });
        let usage = self
            .pod_usage(namespace, selector)
            .await
            .map_err(|why| ("FailedGetResourceMetric", format!("unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: {why}")))?;
        let mut best: Option<Evaluated> = None;
        let mut statuses = Vec::new();
        let mut first_error = None;
        for metric in metrics {
            match evaluate_one(metric, current, &pods, &usage) {
                Ok(evaluated) => {
                    statuses.push(evaluated.status.clone());
                    if best
                        .as_ref()
                        .is_none_or(|b| evaluated.proposal.replicas > b.proposal.replicas)
                    {
                        best = Some(evaluated);
                    }
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        let Some(best) = best else {
            let (reason, message) =
                first_error.unwrap_or(("FailedGetResourceMetric", "no metrics to evaluate".into()));
            return Err((
                reason,
                format!(
                    "invalid metrics ({} invalid out of {}), first error is: {message}",
                    metrics.len(),
                    metrics.len()
                ),
            ));
        };
        if let Some((reason, message)) = &first_error {
            // Some metric failed: never scale down on partial information.
            self.warn(hpa, reason, message);
            if best.proposal.replicas < current {
                return Ok((current, statuses, best.description, best.above));
            }
        }
        Ok((
            best.proposal.replicas,
            statuses,
            best.description,
            best.above,
        ))
    }

    /// Each selected pod's usage per container, from the metrics API.
    async fn pod_usage(
        &self,
        namespace: &str,
        selector: &LabelSelector,
    ) -> std::result::Result<HashMap<String, Vec<(String, i64, i64)>>, String> {
        let gvk = GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "pods");
        let api = Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &resource);
        let list = api
            .list(&ListParams::default().labels(&kite_api::matching::selector_string(selector)))
            .await
            .map_err(|e| match e {
                kube::Error::Api(s) => s.message,
                other => other.to_string(),
            })?;
        let mut out = HashMap::new();
        for item in list.items {
            let name = item.metadata.name.clone().unwrap_or_default();
            let containers = item
                .data
                .get("containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let usage = containers
                .iter()
                .map(|c| {
                    let amount = |resource: &str| {
                        c.pointer(&format!("/usage/{resource}"))
                            .and_then(Value::as_str)
                            .and_then(|q| Amount::parse(q).ok())
                            .map(|q| q.milli_value())
                            .unwrap_or(0)
                    };
                    (
                        c.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        amount("cpu"),
                        amount("memory"),
                    )
                })
                .collect();
            out.insert(name, usage);
        }
        Ok(out)
    }

    async fn write_status(
        &self,
        hpa: &HorizontalPodAutoscaler,
        status: HorizontalPodAutoscalerStatus,
    ) -> Result<()> {
        if hpa.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut updated = hpa.clone();
        updated.status = Some(status);
        let namespace = hpa.metadata.namespace.as_deref().unwrap_or_default();
        let api = Api::<HorizontalPodAutoscaler>::namespaced(self.client.clone(), namespace);
        crate::util::replace_status(&api, &updated).await
    }
}

/// Evaluates one Resource or ContainerResource metric.
fn evaluate_one(
    metric: &MetricSpec,
    current: i32,
    pods: &[Arc<Pod>],
    usage: &HashMap<String, Vec<(String, i64, i64)>>,
) -> std::result::Result<Evaluated, (&'static str, String)> {
    let (resource, container, target, is_container) = match metric.type_.as_str() {
        "Resource" => {
            let source = metric.resource.as_ref().ok_or((
                "FailedGetResourceMetric",
                "resource metric source is missing".to_string(),
            ))?;
            (source.name.clone(), None, source.target.clone(), false)
        }
        "ContainerResource" => {
            let source = metric.container_resource.as_ref().ok_or((
                "FailedGetContainerResourceMetric",
                "container resource metric source is missing".to_string(),
            ))?;
            (
                source.name.clone(),
                Some(source.container.clone()),
                source.target.clone(),
                true,
            )
        }
        other => {
            let reason = match other {
                "Pods" => "FailedGetPodsMetric",
                "Object" => "FailedGetObjectMetric",
                _ => "FailedGetExternalMetric",
            };
            return Err((
                reason,
                format!(
                    "unable to get metric of type {other}: kite serves no custom or external metrics API"
                ),
            ));
        }
    };
    let failed = if is_container {
        "FailedGetContainerResourceMetric"
    } else {
        "FailedGetResourceMetric"
    };
    let goal = match (
        target.type_.as_str(),
        target.average_utilization,
        &target.average_value,
    ) {
        ("Utilization", Some(u), _) => Target::Utilization(i64::from(u)),
        ("AverageValue", _, Some(v)) => Target::AverageValue(
            Amount::parse(&v.0)
                .map(|q| q.milli_value())
                .map_err(|e| (failed, e.to_string()))?,
        ),
        _ => return Err((failed, format!("invalid target for resource {resource}"))),
    };
    let samples: BTreeMap<String, PodSample> = pods
        .iter()
        .map(|pod| {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let measured = usage.get(&name).map(|containers| {
                containers
                    .iter()
                    .filter(|(c, _, _)| container.as_ref().is_none_or(|want| want == c))
                    .map(|(_, cpu, memory)| if resource == "cpu" { *cpu } else { *memory })
                    .sum::<i64>()
            });
            let sample = PodSample {
                usage: measured,
                request: pod_request(pod, &resource, container.as_deref()),
                ignored: pod.metadata.deletion_timestamp.is_some() || phase(pod) == Some("Failed"),
                unready: phase(pod) == Some("Pending")
                    || (resource == "cpu" && measured.is_some() && cpu_unready(pod)),
            };
            (name, sample)
        })
        .collect();
    let proposal = replicas::propose(current, goal, &samples).map_err(|why| {
        (
            failed,
            format!("failed to get {resource} utilization: {why}"),
        )
    })?;
    let value = MetricValueStatus {
        average_utilization: proposal.utilization.and_then(|u| i32::try_from(u).ok()),
        average_value: Some(Quantity(milli_quantity(proposal.average, &resource))),
        value: None,
    };
    let (description, above) = match goal {
        Target::Utilization(goal) => (
            format!("{resource} resource utilization (percentage of request)"),
            proposal.utilization.unwrap_or(0) > goal,
        ),
        Target::AverageValue(goal) => (format!("{resource} resource"), proposal.average > goal),
    };
    let description = if let Some(c) = &container {
        description.replacen("resource", &format!("container resource ({c})"), 1)
    } else {
        description
    };
    let status = if let Some(container) = container {
        MetricStatus {
            type_: "ContainerResource".into(),
            container_resource: Some(ContainerResourceMetricStatus {
                container,
                name: resource,
                current: value,
            }),
            ..MetricStatus::default()
        }
    } else {
        MetricStatus {
            type_: "Resource".into(),
            resource: Some(ResourceMetricStatus {
                name: resource,
                current: value,
            }),
            ..MetricStatus::default()
        }
    };
    Ok(Evaluated {
        proposal,
        status,
        description,
        above,
    })
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Whether a pod's CPU sample is not to be trusted yet (kube's readiness
/// rules for CPU: a pod still starting counts once Ready; later, only a pod
/// that went unready after its initial delay is left out).
fn cpu_unready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let (Some(ready), Some(start)) = (ready, status.and_then(|s| s.start_time.as_ref())) else {
        return true;
    };
    let age = Timestamp::now().duration_since(start.0);
    let age = Duration::try_from(age).unwrap_or_default();
    if age < CPU_INITIALIZATION {
        return !is_ready(pod);
    }
    let changed_after_start = ready
        .last_transition_time
        .as_ref()
        .map(|t| Duration::try_from(t.0.duration_since(start.0)).unwrap_or_default());
    ready.status == "False" && changed_after_start.is_none_or(|d| d < INITIAL_READINESS_DELAY)
}

/// The sum of the pod's containers' requests of `resource` (of one
/// container, if named), milli-units; `None` if one lacks it.
fn pod_request(pod: &Pod, resource: &str, container: Option<&str>) -> Option<i64> {
    let containers = &pod.spec.as_ref()?.containers;
    let mut total = 0;
    for c in containers
        .iter()
        .filter(|c| container.is_none_or(|want| want == c.name))
    {
        let request = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource))?;
        total += Amount::parse(&request.0).ok()?.milli_value();
    }
    Some(total)
}

/// A milli-unit amount as kube prints it in `averageValue` (`250m`, `20Mi`-ish bytes).
fn milli_quantity(milli: i64, resource: &str) -> String {
    if resource == "cpu" || milli % 1000 != 0 {
        format!("{milli}m")
    } else {
        (milli / 1000).to_string()
    }
}

/// `spec.behavior` as normalisation rules (the API server has defaulted both directions).
fn behavior_rules(
    behavior: &Option<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior>,
) -> Option<(Rules, Rules)> {
    let behavior = behavior.as_ref()?;
    let rules = |r: &Option<HPAScalingRules>, window: i32, default: &[(bool, i32)]| {
        let r = r.clone().unwrap_or_default();
        Rules {
            window: Duration::from_secs(
                r.stabilization_window_seconds.unwrap_or(window).max(0) as u64
            ),
            select: r.select_policy.unwrap_or_else(|| "Max".into()),
            policies: match r.policies {
                Some(policies) => policies
                    .iter()
                    .map(|p| Policy {
                        percent: p.type_ == "Percent",
                        value: p.value,
                        period: Duration::from_secs(p.period_seconds.max(0) as u64),
                    })
                    .collect(),
                None => default
                    .iter()
                    .map(|(percent, value)| Policy {
                        percent: *percent,
                        value: *value,
                        period: Duration::from_secs(15),
                    })
                    .collect(),
            },
        }
    };
    Some((
        rules(&behavior.scale_up, 0, &[(false, 4), (true, 100)]),
        rules(&behavior.scale_down, 300, &[(true, 100)]),
    ))
}

/// Sets (or replaces) one condition; its transition time moves only when its status does.
fn set_condition(
    status: &mut HorizontalPodAutoscalerStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == value)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    conditions.retain(|c| c.type_ != type_);
    conditions.push(HorizontalPodAutoscalerCondition {
        type_: type_.into(),
        status: value.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(transition),
    });
    let order = |t: &str| {
        ["AbleToScale", "ScalingActive", "ScalingLimited"]
            .iter()
            .position(|x| *x == t)
    };
    conditions.sort_by_key(|c| order(&c.type_));
}

/// Parses the label selector string a `scale` subresource reports.
fn parse_selector(text: &str) -> std::result::Result<LabelSelector, String> {
    let parsed = kite_api::selector::LabelSelector::parse(text).map_err(|e| e.to_string())?;
    let mut labels = BTreeMap::new();
    let mut expressions = Vec::new();
    for requirement in parsed.requirements() {
        let values = requirement.values().to_vec();
        let operator = requirement.operator().as_str();
        match operator {
            "=" | "==" | "in" if values.len() == 1 => {
                labels.insert(requirement.key().to_string(), values[0].clone());
            }
            _ => expressions.push(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: requirement.key().to_string(),
                    operator: match operator {
                        "in" | "=" | "==" => "In",
                        "notin" | "!=" => "NotIn",
                        "exists" | "" => "Exists",
                        _ => "DoesNotExist",
                    }
                    .into(),
                    values: (!values.is_empty()).then_some(values),
                },
            ),
        }
    }
    Ok(LabelSelector {
        match_labels: (!labels.is_empty()).then_some(labels),
        match_expressions: (!expressions.is_empty()).then_some(expressions),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_selectors_round_trip() {
        let selector = parse_selector("app=web,tier in (a,b),!legacy").unwrap();
        assert_eq!(
            selector.match_labels,
            Some(BTreeMap::from([("app".to_string(), "web".to_string())]))
        );
        let text = kite_api::matching::selector_string(&selector);
        assert!(
            text.contains("app=web") && text.contains("tier in (a,b)") && text.contains("!legacy"),
            "{text}"
        );
    }

    #[test]
    fn conditions_keep_their_order_and_transition_time() {
        let mut status = HorizontalPodAutoscalerStatus::default();
        set_condition(
            &mut status,
            "ScalingLimited",
            "False",
            "DesiredWithinRange",
            "m",
        );
        set_condition(&mut status, "AbleToScale", "True", "ReadyForNewScale", "m");
        let first = status.conditions.as_ref().unwrap()[0]
            .last_transition_time
            .clone();
        set_condition(&mut status, "AbleToScale", "True", "SucceededRescale", "m2");
        let conditions = status.conditions.unwrap();
        assert_eq!(
            conditions
                .iter()
                .map(|c| c.type_.as_str())
                .collect::<Vec<_>>(),
            ["AbleToScale", "ScalingLimited"]
        );
        assert_eq!(conditions[0].last_transition_time, first);
        assert_eq!(conditions[0].reason.as_deref(), Some("SucceededRescale"));
    }

    #[test]
    fn averages_print_as_quantities() {
        assert_eq!(milli_quantity(250, "cpu"), "250m");
        assert_eq!(milli_quantity(4_096_000, "memory"), "4096");
    }
}

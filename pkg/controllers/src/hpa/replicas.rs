//! The arithmetic of the HorizontalPodAutoscaler, free of I/O: replicas
//! proposed by one resource metric (kube's replica calculator, with its
//! treatment of unready and unmeasured pods), and the proposal normalised by
//! stabilisation windows and scaling policies (`spec.behavior`, or the
//! autoscaling/v1-era rules when it is unset).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A usage ratio this close to 1 changes nothing (kube's
/// `--horizontal-pod-autoscaler-tolerance`).
pub const TOLERANCE: f64 = 0.1;

/// What a metric is compared with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// Average utilisation, percent of the pods' requests.
    Utilization(i64),
    /// Average usage per pod, milli-units.
    AverageValue(i64),
}

/// What is known of one pod for one metric.
#[derive(Clone, Debug, PartialEq)]
pub struct PodSample {
    /// Its usage, milli-units; `None` if the metrics API has none.
    pub usage: Option<i64>,
    /// The sum of its containers' requests, milli-units (`None`: a container lacks one).
    pub request: Option<i64>,
    /// Left out entirely: being deleted or failed.
    pub ignored: bool,
    /// Not counted as ready (pending, or for CPU still starting up).
    pub unready: bool,
}

/// A metric's proposal.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    /// Replicas the metric asks for.
    pub replicas: i32,
    /// The current average utilisation, percent (Utilization targets).
    pub utilization: Option<i64>,
    /// The current average usage per pod, milli-units.
    pub average: i64,
}

/// Replicas one resource metric asks for, given `current` replicas and the
/// selected pods by name (kube's `GetResourceReplicas` / `GetRawResourceReplicas`).
pub fn propose(
    current: i32,
    target: Target,
    pods: &BTreeMap<String, PodSample>,
) -> Result<Proposal, String> {
    let mut usage: BTreeMap<&str, i64> = BTreeMap::new();
    let mut unready = BTreeSet::new();
    let mut missing = BTreeSet::new();
    let mut ready = 0i64;
    for (name, pod) in pods {
        if pod.ignored {
            continue;
        }
        if pod.unready {
            unready.insert(name.as_str());
            continue;
        }
        match pod.usage {
            Some(u) => {
                usage.insert(name, u);
                ready += 1;
            }
            None => {
                missing.insert(name.as_str());
            }
        }
    }
    if usage.is_empty() {
        return Err("did not receive metrics for any ready pods".into());
    }
    let request_of = |name: &str| pods.get(name).and_then(|p| p.request);
    if let Target::Utilization(_) = target {
        for name in usage.keys().chain(missing.iter()).chain(unready.iter()) {
            if request_of(name).is_none_or(|r| r <= 0) {
                return Err(format!("missing request for pod {name}"));
            }
        }
    }
    let ratio_of = |usage: &BTreeMap<&str, i64>| -> (f64, Option<i64>, i64) {
        let total: i64 = usage.values().sum();
        let average = total / usage.len().max(1) as i64;
        match target {
            Target::Utilization(goal) => {
                let requests: i64 = usage.keys().filter_map(|n| request_of(n)).sum();
                let utilization = total * 100 / requests.max(1);
                (
                    utilization as f64 / goal.max(1) as f64,
                    Some(utilization),
                    average,
                )
            }
            Target::AverageValue(goal) => (average as f64 / goal.max(1) as f64, None, average),
        }
    };
    let (ratio, utilization, average) = ratio_of(&usage);
    let proposal = |replicas: i32| Proposal {
        replicas,
        utilization,
        average,
    };
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if (1.0 - ratio).abs() <= TOLERANCE {
            return Ok(proposal(current));
        }
        return Ok(proposal((ratio * ready as f64).ceil() as i32));
    }
    // Assume the worst for the direction of travel: unmeasured pods use their
    // full share when scaling down and nothing when scaling up; pods still
    // starting use nothing.
    if !missing.is_empty() {
        for name in &missing {
            let fallback = match target {
                _ if ratio > 1.0 => 0,
                Target::Utilization(goal) => request_of(name).unwrap_or(0) * goal.max(100) / 100,
                Target::AverageValue(goal) => goal,
            };
            if ratio != 1.0 {
                usage.insert(name, fallback);
            }
        }
    }
    if scale_up_with_unready {
        for name in &unready {
            usage.insert(name, 0);
        }
    }
    let (new_ratio, _, _) = ratio_of(&usage);
    if (1.0 - new_ratio).abs() <= TOLERANCE
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(proposal(current));
    }
    let replicas = (new_ratio * usage.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(replicas))
}

/// One scaling policy of `spec.behavior`.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// `Pods` (a count) or `Percent`.
    pub percent: bool,
    /// The count or percentage.
    pub value: i32,
    /// The period the policy looks back over.
    pub period: Duration,
}

/// One direction of `spec.behavior`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// `stabilizationWindowSeconds`.
    pub window: Duration,
    /// `selectPolicy`: `Max`, `Min` or `Disabled`.
    pub select: String,
    /// `policies`.
    pub policies: Vec<Policy>,
}

/// The bounds and rules a proposal is normalised with.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// `spec.minReplicas`.
    pub min: i32,
    /// `spec.maxReplicas`.
    pub max: i32,
    /// `spec.behavior`, up and down; `None` for the rules of HPAs without one.
    pub behavior: Option<(Rules, Rules)>,
}

/// A rescale that happened, for the policies' look-back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleEvent {
    /// When.
    pub at: Instant,
    /// Replicas added (positive) or removed (negative).
    pub change: i32,
}

/// An HPA's memory between syncs: recent recommendations and rescales.
#[derive(Clone, Debug, Default)]
pub struct History {
    recommendations: Vec<(Instant, i32)>,
    events: Vec<ScaleEvent>,
}

/// The normalised decision, with the `ScalingLimited` and `AbleToScale` wording.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Replicas to scale to.
    pub replicas: i32,
    /// `ScalingLimited` reason (`DesiredWithinRange` when not limited).
    pub limited_reason: &'static str,
    /// Its message.
    pub limited_message: &'static str,
    /// `AbleToScale` reason when no rescale happens (`ReadyForNewScale`, `ScaleDownStabilized`...).
    pub able_reason: &'static str,
    /// Its message.
    pub able_message: &'static str,
}

/// How far back the rules without `spec.behavior` look for a higher
/// recommendation before scaling down (kube's
/// `--horizontal-pod-autoscaler-downscale-stabilization`).
const DOWNSCALE_STABILIZATION: Duration = Duration::from_secs(300);

impl History {
    /// Records a rescale by `change` replicas at `now`.
    pub fn scaled(&mut self, now: Instant, change: i32) {
        self.events.push(ScaleEvent { at: now, change });
    }

    /// Normalises `desired` (what the metrics ask for) into what to scale to.
    pub fn normalize(
        &mut self,
        now: Instant,
        current: i32,
        desired: i32,
        limits: &Limits,
    ) -> Decision {
        let longest = limits
            .behavior
            .as_ref()
            .map(|(up, down)| up.window.max(down.window))
            .unwrap_or(DOWNSCALE_STABILIZATION);
        let longest_period = limits
            .behavior
            .as_ref()
            .map(|(up, down)| {
                up.policies
                    .iter()
                    .chain(&down.policies)
                    .map(|p| p.period)
                    .max()
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        self.recommendations
            .retain(|(at, _)| now.saturating_duration_since(*at) <= longest);
        self.events
            .retain(|e| now.saturating_duration_since(e.at) <= longest_period);
        let decision = match &limits.behavior {
            None => self.normalize_plain(now, current, desired, limits),
            Some((up, down)) => {
                self.normalize_with_behavior(now, current, desired, limits, up, down)
            }
        };
        self.recommendations.push((now, desired));
        decision
    }

    fn normalize_plain(
        &self,
        now: Instant,
        current: i32,
        desired: i32,
        limits: &Limits,
    ) -> Decision {
        let stabilized = self
            .recommendations
            .iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) <= DOWNSCALE_STABILIZATION)
            .map(|(_, r)| *r)
            .fold(desired, i32::max);
        let (able_reason, able_message) = if stabilized != desired {
            (
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            )
        } else {
            ("ReadyForNewScale", "recommended size matches current size")
        };
        let scale_up_limit = (2 * current).max(4);
        let (replicas, limited_reason, limited_message) = if stabilized < limits.min {
            (
                limits.min,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        } else if stabilized > limits.max.min(scale_up_limit) {
            if limits.max > scale_up_limit {
                (
                    scale_up_limit,
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                )
            } else {
                (
                    limits.max,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            }
        } else {
            (
                stabilized,
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            )
        };
        Decision {
            replicas,
            limited_reason,
            limited_message,
            able_reason,
            able_message,
        }
    }

    fn normalize_with_behavior(
        &self,
        now: Instant,
        current: i32,
        desired: i32,
        limits: &Limits,
        up: &Rules,
        down: &Rules,
    ) -> Decision {
        let mut up_recommendation = desired;
        let mut down_recommendation = desired;
        for (at, recommendation) in &self.recommendations {
            let age = now.saturating_duration_since(*at);
            if age < up.window {
                up_recommendation = up_recommendation.min(*recommendation);
            }
            if age < down.window {
                down_recommendation = down_recommendation.max(*recommendation);
            }
        }
        let stabilized = current.max(up_recommendation).min(down_recommendation);
        let (able_reason, able_message) = if stabilized > desired {
            (
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            )
        } else if stabilized < desired {
            (
                "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest recent recommendation",
            )
        } else {
            ("ReadyForNewScale", "recommended size matches current size")
        };
        let (replicas, limited_reason, limited_message) = if stabilized > current {
            let limit = self.rate_limit(now, current, up, true).max(current);
            let (ceiling, reason, message) = if limits.max > limit {
                (
                    limit,
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                )
            } else {
                (
                    limits.max,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            };
            if stabilized > ceiling {
                (ceiling, reason, message)
            } else {
                (
                    stabilized,
                    "DesiredWithinRange",
                    "the desired count is within the acceptable range",
                )
            }
        } else if stabilized < current {
            let limit = self.rate_limit(now, current, down, false).min(current);
            let (floor, reason, message) = if limits.min < limit {
                (
                    limit,
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                )
            } else {
                (
                    limits.min,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )
            };
            if stabilized < floor {
                (floor, reason, message)
            } else {
                (
                    stabilized,
                    "DesiredWithinRange",
                    "the desired count is within the acceptable range",
                )
            }
        } else if stabilized > limits.max {
            (
                limits.max,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        } else if stabilized < limits.min {
            (
                limits.min,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        } else {
            (
                stabilized,
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            )
        };
        Decision {
            replicas,
            limited_reason,
            limited_message,
            able_reason,
            able_message,
        }
    }

    /// Replicas added (`up`) or removed in the last `period`.
    fn changed_within(&self, now: Instant, period: Duration, up: bool) -> i32 {
        self.events
            .iter()
            .filter(|e| now.saturating_duration_since(e.at) <= period)
            .filter(|e| (e.change > 0) == up && e.change != 0)
            .map(|e| e.change.abs())
            .sum()
    }

    /// The most replicas `rules` allow scaling up to (`up`), or the fewest
    /// they allow scaling down to, counting from where each policy's period
    /// started. `selectPolicy: Max` picks the policy allowing the biggest
    /// change, `Min` the smallest.
    fn rate_limit(&self, now: Instant, current: i32, rules: &Rules, up: bool) -> i32 {
        if rules.select == "Disabled" {
            return current;
        }
        let proposals = rules.policies.iter().map(|policy| {
            let start = current - self.changed_within(now, policy.period, true)
                + self.changed_within(now, policy.period, false);
            match (policy.percent, up) {
                (true, true) => (start as f64 * (1.0 + policy.value as f64 / 100.0)).ceil() as i32,
                (true, false) => (start as f64 * (1.0 - policy.value as f64 / 100.0)) as i32,
                (false, true) => start + policy.value,
                (false, false) => start - policy.value,
            }
        });
        // Up, the biggest change is the highest proposal; down, the lowest.
        let take_lowest = (rules.select == "Min") == up;
        if take_lowest {
            proposals.min().unwrap_or(current)
        } else {
            proposals.max().unwrap_or(current)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(usage: Option<i64>, request: i64) -> PodSample {
        PodSample {
            usage,
            request: Some(request),
            ignored: false,
            unready: false,
        }
    }

    fn pods(samples: &[PodSample]) -> BTreeMap<String, PodSample> {
        samples
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("p{i}"), s.clone()))
            .collect()
    }

    #[test]
    fn a_busy_pod_asks_for_more() {
        // 200m used of 100m requested, target 50%: 200% / 50% = 4 times one pod.
        let p = propose(1, Target::Utilization(50), &pods(&[sample(Some(200), 100)])).unwrap();
        assert_eq!((p.replicas, p.utilization), (4, Some(200)));
    }

    #[test]
    fn within_tolerance_nothing_changes() {
        let p = propose(
            2,
            Target::Utilization(50),
            &pods(&[sample(Some(52), 100), sample(Some(53), 100)]),
        )
        .unwrap();
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn unmeasured_pods_damp_a_scale_down() {
        // One pod measured at 10% of a 50% target; the unmeasured one is taken
        // at 100% of its request, which flips the ratio: no change.
        let p = propose(
            2,
            Target::Utilization(50),
            &pods(&[sample(Some(10), 100), sample(None, 100)]),
        )
        .unwrap();
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn starting_pods_count_as_idle_when_scaling_up() {
        let mut starting = sample(None, 100);
        starting.unready = true;
        // 100% used by one pod, target 50%: with the starting pod at 0, ratio 1: no change.
        let p = propose(
            2,
            Target::Utilization(50),
            &pods(&[sample(Some(100), 100), starting]),
        )
        .unwrap();
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn missing_requests_are_an_error_for_utilization_only() {
        let mut p = sample(Some(10), 0);
        p.request = None;
        assert!(propose(1, Target::Utilization(50), &pods(&[p.clone()])).is_err());
        assert_eq!(
            propose(1, Target::AverageValue(5), &pods(&[p]))
                .unwrap()
                .replicas,
            2
        );
    }

    #[test]
    fn plain_rules_double_at_most_and_stabilise_down() {
        let limits = Limits {
            min: 1,
            max: 10,
            behavior: None,
        };
        let mut history = History::default();
        let t0 = Instant::now();
        let d = history.normalize(t0, 1, 9, &limits);
        assert_eq!((d.replicas, d.limited_reason), (4, "ScaleUpLimit"));
        let d = history.normalize(t0 + Duration::from_secs(15), 4, 2, &limits);
        assert_eq!(
            (d.replicas, d.able_reason),
            // the highest recent recommendation (9), capped at twice the current (8)
            (8, "ScaleDownStabilized")
        );
        let d = history.normalize(t0 + Duration::from_secs(400), 8, 2, &limits);
        assert_eq!((d.replicas, d.limited_reason), (2, "DesiredWithinRange"));
    }

    fn default_behavior() -> (Rules, Rules) {
        (
            Rules {
                window: Duration::ZERO,
                select: "Max".into(),
                policies: vec![
                    Policy {
                        percent: false,
                        value: 4,
                        period: Duration::from_secs(15),
                    },
                    Policy {
                        percent: true,
                        value: 100,
                        period: Duration::from_secs(15),
                    },
                ],
            },
            Rules {
                window: Duration::from_secs(300),
                select: "Max".into(),
                policies: vec![Policy {
                    percent: true,
                    value: 100,
                    period: Duration::from_secs(15),
                }],
            },
        )
    }

    #[test]
    fn behavior_policies_limit_the_rate() {
        let limits = Limits {
            min: 1,
            max: 100,
            behavior: Some(default_behavior()),
        };
        let mut history = History::default();
        let t0 = Instant::now();
        let d = history.normalize(t0, 2, 50, &limits);
        // max(2 + 4, 2 * 2) = 6.
        assert_eq!((d.replicas, d.limited_reason), (6, "ScaleUpLimit"));
        history.scaled(t0, 4);
        // Within the same period the start is still 2.
        let d = history.normalize(t0 + Duration::from_secs(5), 6, 50, &limits);
        assert_eq!(d.replicas, 6);
        let d = history.normalize(t0 + Duration::from_secs(20), 6, 50, &limits);
        assert_eq!(d.replicas, 12);
    }

    proptest! {
        #[test]
        fn decisions_stay_within_bounds(current in 1i32..50, desired in 0i32..200, min in 1i32..5, extra in 0i32..50) {
            let max = min + extra;
            for behavior in [None, Some(default_behavior())] {
                let limits = Limits { min, max, behavior };
                let mut history = History::default();
                let d = history.normalize(Instant::now(), current.clamp(min, max), desired, &limits);
                prop_assert!(d.replicas >= min && d.replicas <= max, "{d:?}");
            }
        }

        #[test]
        fn proposals_move_toward_the_target(usage in 1i64..10_000, request in 1i64..1_000, goal in 1i64..200) {
            let p = propose(1, Target::Utilization(goal), &pods(&[sample(Some(usage), request)])).unwrap();
            let utilization = usage * 100 / request;
            if utilization as f64 > goal as f64 * (1.0 + TOLERANCE) {
                prop_assert!(p.replicas > 1);
            }
            if (utilization as f64) < goal as f64 * (1.0 - TOLERANCE) {
                prop_assert!(p.replicas <= 1);
            }
        }
    }
}

//! The filters and scores that look at other pods, as kube-scheduler's
//! InterPodAffinity and PodTopologySpread plugins: required pod affinity and
//! anti-affinity (the incoming pod's, then existing pods' anti-affinity
//! against it), topology spread constraints (`DoNotSchedule` filters,
//! `ScheduleAnyway` scores), and preferred pod (anti-)affinity scores.
//!
//! A term's namespaces are its `namespaces` list together with the
//! namespaces its `namespaceSelector` selects (by the Namespaces' labels);
//! with neither, the pod's own; an empty `namespaceSelector` means every
//! namespace.

use crate::filter::{PodFacts, Rejection};
use crate::node_info::NodeInfo;
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// kube-scheduler's reasons, which users and tools grep for.
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
/// The incoming pod's affinity is not met.
pub const AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// The incoming pod's anti-affinity is not met.
pub const ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// Skew above `maxSkew`.
pub const SPREAD: &str = "node(s) didn't match pod topology spread constraints";
/// A node without a constraint's topology key.
pub const SPREAD_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// A pod counted on a node.
#[derive(Clone, Debug)]
pub struct Placed {
    /// The node it is on.
    pub node: String,
    /// The pod.
    pub pod: Arc<Pod>,
}

/// The labels of each Namespace, by name.
pub type NamespaceLabels = HashMap<String, BTreeMap<String, String>>;

/// A term ready to match: its selector and the namespaces it covers (`None`: all).
struct Term {
    selector: Selector,
    namespaces: Option<BTreeSet<String>>,
    topology_key: String,
}

impl Term {
    fn new(
        term: &PodAffinityTerm,
        own_namespace: &str,
        own_labels: &BTreeMap<String, String>,
        namespace_labels: &NamespaceLabels,
    ) -> Self {
        let mut selector = term.label_selector.clone();
        // matchLabelKeys / mismatchLabelKeys add the pod's own values.
        if let Some(selector) = selector.as_mut() {
            for key in term.match_label_keys.iter().flatten() {
                if let Some(value) = own_labels.get(key) {
                    selector
                        .match_labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(key.clone(), value.clone());
                }
            }
        }
        let mut namespaces: BTreeSet<String> = term.namespaces.iter().flatten().cloned().collect();
        if let Some(selector) = &term.namespace_selector {
            namespaces.extend(
                namespace_labels
                    .iter()
                    .filter(|(_, labels)| kite_api::matching::selector_matches(selector, labels))
                    .map(|(name, _)| name.clone()),
            );
        }
        let everywhere = term.namespace_selector.as_ref().is_some_and(|s| {
            s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
                && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
        });
        let namespaces = if everywhere {
            None
        } else if namespaces.is_empty() && term.namespace_selector.is_none() {
            Some(BTreeSet::from([own_namespace.to_string()]))
        } else {
            Some(namespaces)
        };
        Self {
            selector: compile(selector.as_ref()),
            namespaces,
            topology_key: term.topology_key.clone(),
        }
    }

    fn matches(&self, pod: &Pod) -> bool {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        if self
            .namespaces
            .as_ref()
            .is_some_and(|n| !n.contains(namespace))
        {
            return false;
        }
        let empty = BTreeMap::new();
        self.selector
            .matches(pod.metadata.labels.as_ref().unwrap_or(&empty))
    }
}

/// A label selector ready to match; a missing one matches nothing (as in
/// pod affinity terms and spread constraints).
struct Selector(Option<LabelSelector>);

impl Selector {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0
            .as_ref()
            .is_some_and(|s| kite_api::matching::selector_matches(s, labels))
    }
}

fn compile(selector: Option<&LabelSelector>) -> Selector {
    Selector(selector.cloned())
}

fn labels(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

fn affinity_terms(pod: &Pod, anti: bool) -> Vec<PodAffinityTerm> {
    let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let required = if anti {
        affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .clone()
            })
    } else {
        affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .clone()
            })
    };
    required.unwrap_or_default()
}

fn preferred_terms(pod: &Pod, anti: bool) -> Vec<(i32, PodAffinityTerm)> {
    let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let preferred = if anti {
        affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .clone()
            })
    } else {
        affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .clone()
            })
    };
    preferred
        .unwrap_or_default()
        .into_iter()
        .map(|w| (w.weight, w.pod_affinity_term))
        .collect()
}

fn spread_constraints(pod: &Pod) -> Vec<TopologySpreadConstraint> {
    pod.spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.clone())
        .unwrap_or_default()
}

/// Whether a pod has required anti-affinity (which every later pod must respect).
pub fn has_required_anti_affinity(pod: &Pod) -> bool {
    !affinity_terms(pod, true).is_empty()
}

/// Whether scheduling `pod` needs to look at other pods at all.
pub fn needed(pod: &Pod, existing_anti_affinity: bool) -> bool {
    existing_anti_affinity
        || pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
        || !spread_constraints(pod).is_empty()
}

/// What the inter-pod checks know for one attempt: every counted pod and the
/// node labels, computed once.
pub struct Snapshot<'a> {
    placed: &'a [Placed],
    namespace_labels: &'a NamespaceLabels,
    node_labels: HashMap<&'a str, &'a BTreeMap<String, String>>,
    affinity: Vec<Term>,
    anti_affinity: Vec<Term>,
    /// Existing pods' required anti-affinity terms that match the incoming
    /// pod, with the node each such pod is on.
    existing_anti: Vec<(String, String)>,
    /// Whether some counted pod matches every affinity term (else the first
    /// pod of a group may go anywhere its own labels satisfy the terms).
    affinity_satisfiable: bool,
    /// Each spread constraint, its selector, and matching pods per domain.
    spread: Vec<(TopologySpreadConstraint, Selector, BTreeMap<&'a str, i64>)>,
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

impl<'a> Snapshot<'a> {
    /// The snapshot for `pod` over `nodes` and the counted pods.
    pub fn new(
        pod: &Pod,
        nodes: &'a HashMap<String, NodeInfo>,
        placed: &'a [Placed],
        namespace_labels: &'a NamespaceLabels,
    ) -> Self {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let own = labels(pod);
        let node_labels = nodes
            .iter()
            .map(|(name, info)| {
                (
                    name.as_str(),
                    info.node.metadata.labels.as_ref().unwrap_or(&EMPTY),
                )
            })
            .collect();
        let affinity: Vec<Term> = affinity_terms(pod, false)
            .iter()
            .map(|t| Term::new(t, namespace, &own, namespace_labels))
            .collect();
        let anti_affinity = affinity_terms(pod, true)
            .iter()
            .map(|t| Term::new(t, namespace, &own, namespace_labels))
            .collect();
        let mut existing_anti = Vec::new();
        for other in placed {
            let other_ns = other.pod.metadata.namespace.as_deref().unwrap_or_default();
            let other_labels = labels(&other.pod);
            for term in affinity_terms(&other.pod, true) {
                let term = Term::new(&term, other_ns, &other_labels, namespace_labels);
                if term.matches(pod) {
                    existing_anti.push((other.node.clone(), term.topology_key.clone()));
                }
            }
        }
        let affinity_satisfiable = affinity
            .iter()
            .all(|term| placed.iter().any(|p| term.matches(&p.pod)));
        let spread = spread_constraints(pod)
            .into_iter()
            .map(|c| {
                let mut selector = c.label_selector.clone();
                if let Some(selector) = selector.as_mut() {
                    for key in c.match_label_keys.iter().flatten() {
                        if let Some(value) = own.get(key) {
                            selector
                                .match_labels
                                .get_or_insert_with(BTreeMap::new)
                                .insert(key.clone(), value.clone());
                        }
                    }
                }
                let compiled = compile(selector.as_ref());
                (c, compiled)
            })
            .collect::<Vec<_>>();
        let mut snapshot = Self {
            placed,
            namespace_labels,
            node_labels,
            affinity,
            anti_affinity,
            existing_anti,
            affinity_satisfiable,
            spread: Vec::new(),
        };
        let keys: Vec<String> = spread.iter().map(|(c, _)| c.topology_key.clone()).collect();
        snapshot.spread = spread
            .into_iter()
            .map(|(c, selector)| {
                let counts = snapshot.counts(pod, &keys, &c, &selector, nodes);
                (c, selector, counts)
            })
            .collect();
        snapshot
    }

    fn domain(&self, node: &str, key: &str) -> Option<&'a str> {
        self.node_labels
            .get(node)
            .and_then(|l| l.get(key))
            .map(String::as_str)
    }

    /// Whether some counted pod matching `term` is in `node`'s domain of the term's key.
    fn domain_has(&self, node: &str, term: &Term) -> bool {
        let Some(value) = self.domain(node, &term.topology_key) else {
            return false;
        };
        self.placed.iter().any(|p| {
            self.domain(&p.node, &term.topology_key) == Some(value) && term.matches(&p.pod)
        })
    }

    /// kube's InterPodAffinity filter: the pod's affinity, then its
    /// anti-affinity, then existing pods' anti-affinity, in kube-scheduler's order.
    pub fn filter_affinity(&self, facts: &PodFacts<'_>, node: &NodeInfo) -> Result<(), Rejection> {
        let name = node.name();
        if !self.affinity.is_empty() {
            let own_labels = labels(facts.pod);
            let satisfied = if self.affinity_satisfiable {
                self.affinity.iter().all(|term| self.domain_has(name, term))
            } else {
                // No pod matches yet: the first of a group may go where it would match itself.
                self.affinity.iter().all(|term| {
                    self.domain(name, &term.topology_key).is_some()
                        && term.selector.matches(&own_labels)
                })
            };
            if !satisfied {
                return Err(Rejection::unresolvable(AFFINITY));
            }
        }
        if self
            .anti_affinity
            .iter()
            .any(|term| self.domain_has(name, term))
        {
            return Err(Rejection::resolvable(ANTI_AFFINITY));
        }
        for (other_node, key) in &self.existing_anti {
            if let (Some(here), Some(there)) =
                (self.domain(name, key), self.domain(other_node, key))
                && here == there
            {
                return Err(Rejection::resolvable(EXISTING_ANTI_AFFINITY));
            }
        }
        Ok(())
    }

    /// Matching pods per domain of `constraint`, over nodes with every
    /// constraint's key (and, `nodeAffinityPolicy: Honor`, that the pod's
    /// node selector and required node affinity accept).
    fn counts(
        &self,
        pod: &Pod,
        keys: &[String],
        constraint: &TopologySpreadConstraint,
        selector: &Selector,
        nodes: &'a HashMap<String, NodeInfo>,
    ) -> BTreeMap<&'a str, i64> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let honor_affinity = constraint.node_affinity_policy.as_deref() != Some("Ignore");
        let mut counts: BTreeMap<&'a str, i64> = BTreeMap::new();
        for (name, info) in nodes {
            if keys.iter().any(|k| self.domain(name, k).is_none()) {
                continue;
            }
            if honor_affinity && !crate::filter::matches_node_selector_and_affinity(pod, info) {
                continue;
            }
            if let Some(value) = self.domain(name, &constraint.topology_key) {
                counts.entry(value).or_insert(0);
            }
        }
        let empty = BTreeMap::new();
        for p in self.placed {
            let Some(value) = self.domain(&p.node, &constraint.topology_key) else {
                continue;
            };
            let Some(count) = counts.get_mut(value) else {
                continue;
            };
            let same_namespace =
                p.pod.metadata.namespace.as_deref().unwrap_or_default() == namespace;
            if same_namespace
                && p.pod.metadata.deletion_timestamp.is_none()
                && selector.matches(p.pod.metadata.labels.as_ref().unwrap_or(&empty))
            {
                *count += 1;
            }
        }
        counts
    }

    /// kube's PodTopologySpread filter (`whenUnsatisfiable: DoNotSchedule`).
    pub fn filter_spread(&self, facts: &PodFacts<'_>, node: &NodeInfo) -> Result<(), Rejection> {
        let own = labels(facts.pod);
        for (constraint, selector, counts) in &self.spread {
            if constraint.when_unsatisfiable != "DoNotSchedule" {
                continue;
            }
            let Some(value) = self.domain(node.name(), &constraint.topology_key) else {
                return Err(Rejection::unresolvable(SPREAD_MISSING_LABEL));
            };
            let min_domains = constraint.min_domains.unwrap_or(1).max(1) as usize;
            let min = if counts.len() < min_domains {
                0
            } else {
                counts.values().copied().min().unwrap_or(0)
            };
            let here = counts.get(value).copied().unwrap_or(0);
            let own_match = i64::from(selector.matches(&own));
            if here + own_match - min > i64::from(constraint.max_skew) {
                return Err(Rejection::resolvable(SPREAD));
            }
        }
        Ok(())
    }

    /// Raw scores (higher is better) of preferred pod (anti-)affinity and
    /// `ScheduleAnyway` spreading, for `nodes` in order.
    pub fn scores(&self, facts: &PodFacts<'_>, nodes: &[&NodeInfo]) -> (Vec<i64>, Vec<i64>) {
        let namespace = facts.pod.metadata.namespace.as_deref().unwrap_or_default();
        let own = labels(facts.pod);
        let mut preferred: Vec<(i64, Term)> = preferred_terms(facts.pod, false)
            .iter()
            .map(|(w, t)| {
                (
                    i64::from(*w),
                    Term::new(t, namespace, &own, self.namespace_labels),
                )
            })
            .collect();
        preferred.extend(preferred_terms(facts.pod, true).iter().map(|(w, t)| {
            (
                -i64::from(*w),
                Term::new(t, namespace, &own, self.namespace_labels),
            )
        }));
        let affinity = nodes
            .iter()
            .map(|node| {
                preferred
                    .iter()
                    .filter_map(|(weight, term)| {
                        let value = self.domain(node.name(), &term.topology_key)?;
                        let matching = self
                            .placed
                            .iter()
                            .filter(|p| {
                                self.domain(&p.node, &term.topology_key) == Some(value)
                                    && term.matches(&p.pod)
                            })
                            .count() as i64;
                        Some(weight * matching)
                    })
                    .sum()
            })
            .collect();
        let spread = nodes
            .iter()
            .map(|node| {
                self.spread
                    .iter()
                    .filter(|(c, _, _)| c.when_unsatisfiable == "ScheduleAnyway")
                    .map(|(c, _, counts)| {
                        self.domain(node.name(), &c.topology_key)
                            .and_then(|v| counts.get(v).copied())
                            .unwrap_or(0)
                    })
                    .sum()
            })
            .collect();
        (affinity, spread)
    }
}

/// Scores scaled to 0..=100 between their minimum and maximum (kube's
/// normalisation of scores that may be negative); `reverse` puts the lowest first.
pub fn normalize(raw: &[i64], reverse: bool) -> Vec<i64> {
    let (Some(min), Some(max)) = (raw.iter().min().copied(), raw.iter().max().copied()) else {
        return Vec::new();
    };
    raw.iter()
        .map(|&r| {
            if max == min {
                return if reverse { 100 } else { 0 };
            }
            let s = (r - min) * 100 / (max - min);
            if reverse { 100 - s } else { s }
        })
        .collect()
}

//! RBAC: rule matching as `rbac/v1` defines it, and an immutable snapshot of
//! the Roles, ClusterRoles and bindings that answers "may this user do this?"
//! and "what may this user do here?" without touching the store.
//!
//! The snapshot is built from the watch caches and rebuilt only when one of
//! the four caches moved (see [`SnapshotKey`]). ClusterRoles with an
//! `aggregationRule` take the union of the rules of the ClusterRoles their
//! selectors match, transitively, so a new `aggregate-to-view` role is
//! effective at once; `aggregation.rs` also writes that union back into the
//! object as Kubernetes' clusterrole-aggregation controller does.

use super::Attributes;
use super::tokens::service_account_user;
use crate::api::Api;
use crate::authn::UserInfo;
use crate::watch_cache::WatchCache;
use kite_api::selector::LabelSelector;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// One rule of a Role or ClusterRole (`rbac/v1` `PolicyRule`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolicyRule {
    /// Verbs, or `*`.
    pub verbs: Vec<String>,
    /// API groups (`""` is core), or `*`.
    pub api_groups: Vec<String>,
    /// Resources, `resource/subresource`, `*/subresource` or `*`.
    pub resources: Vec<String>,
    /// Object names; empty means all.
    pub resource_names: Vec<String>,
    /// Non-resource paths; a trailing `*` matches any suffix.
    pub non_resource_urls: Vec<String>,
}

fn strings(value: &Value, field: &str) -> Vec<String> {
    value
        .get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn has(list: &[String], wanted: &str) -> bool {
    list.iter().any(|v| v == wanted)
}

impl PolicyRule {
    /// Reads a rule from its JSON form.
    pub fn from_json(value: &Value) -> Self {
        Self {
            verbs: strings(value, "verbs"),
            api_groups: strings(value, "apiGroups"),
            resources: strings(value, "resources"),
            resource_names: strings(value, "resourceNames"),
            non_resource_urls: strings(value, "nonResourceURLs"),
        }
    }

    /// The rule's JSON form (empty lists omitted, as `omitempty` does; `verbs` always present).
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("verbs".into(), json!(self.verbs));
        for (key, list) in [
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !list.is_empty() {
                map.insert(key.into(), json!(list));
            }
        }
        Value::Object(map)
    }

    /// Whether the rule allows the request (`RuleAllows`).
    pub fn allows(&self, attributes: &Attributes<'_>) -> bool {
        if attributes.resource_request {
            let combined = if attributes.subresource.is_empty() {
                attributes.resource.to_string()
            } else {
                format!("{}/{}", attributes.resource, attributes.subresource)
            };
            self.verb_matches(attributes.verb)
                && (has(&self.api_groups, "*") || has(&self.api_groups, attributes.group))
                && self.resource_matches(&combined, attributes.subresource)
                && (self.resource_names.is_empty() || has(&self.resource_names, attributes.name))
        } else {
            self.verb_matches(attributes.verb) && self.url_matches(attributes.path)
        }
    }

    fn verb_matches(&self, verb: &str) -> bool {
        has(&self.verbs, "*") || has(&self.verbs, verb)
    }

    fn resource_matches(&self, combined: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            r == "*"
                || r == combined
                || (!subresource.is_empty()
                    && r.strip_prefix("*/").is_some_and(|sub| sub == subresource))
        })
    }

    fn url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| {
            u == "*"
                || u == path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        })
    }
}

/// A subject of a binding.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

impl Subject {
    /// Whether the subject is `user` (`appliesToUser`); `namespace` is the binding's.
    fn applies_to(&self, user: &UserInfo, namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.name == self.name,
            "Group" => has(&user.groups, &self.name),
            "ServiceAccount" => {
                let ns = if self.namespace.is_empty() {
                    namespace
                } else {
                    &self.namespace
                };
                !ns.is_empty() && user.name == service_account_user(ns, &self.name)
            }
            _ => false,
        }
    }

    /// How kube-apiserver names the subject in an "allowed by" reason.
    fn describe(&self, binding_namespace: &str) -> String {
        match self.kind.as_str() {
            "ServiceAccount" => {
                let ns = if self.namespace.is_empty() {
                    binding_namespace
                } else {
                    &self.namespace
                };
                format!("{} {:?}", self.kind, format!("{}/{ns}", self.name))
            }
            _ => format!("{} {:?}", self.kind, self.name),
        }
    }
}

/// A RoleBinding or ClusterRoleBinding.
#[derive(Clone, Debug)]
struct Binding {
    name: String,
    namespace: String,
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
}

impl Binding {
    fn from_json(value: &Value) -> Self {
        let subjects = value
            .get("subjects")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|s| Subject {
                        kind: s
                            .get("kind")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        name: s
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        namespace: s
                            .get("namespace")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            name: crate::objects::name(value).to_string(),
            namespace: crate::objects::namespace(value).to_string(),
            role_kind: value
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            role_name: value
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            subjects,
        }
    }

    /// The first subject that is `user`.
    fn subject_for(&self, user: &UserInfo) -> Option<&Subject> {
        self.subjects
            .iter()
            .find(|s| s.applies_to(user, &self.namespace))
    }

    /// How kube-apiserver names the binding in an "allowed by" reason.
    fn describe(&self, subject: &Subject) -> String {
        if self.namespace.is_empty() {
            format!(
                "ClusterRoleBinding {:?} of {} {:?} to {}",
                self.name,
                self.role_kind,
                self.role_name,
                subject.describe("")
            )
        } else {
            format!(
                "RoleBinding {:?} of {} {:?} to {}",
                format!("{}/{}", self.name, self.namespace),
                self.role_kind,
                self.role_name,
                subject.describe(&self.namespace)
            )
        }
    }
}

/// An authorization answer with kube-apiserver's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether a rule allows the request.
    pub allowed: bool,
    /// `RBAC: allowed by ...` when allowed; when not, the errors met (missing roles), if any.
    pub reason: String,
}

/// The four RBAC watch caches.
pub(crate) struct Caches {
    cluster_roles: Arc<WatchCache>,
    roles: Arc<WatchCache>,
    cluster_role_bindings: Arc<WatchCache>,
    role_bindings: Arc<WatchCache>,
}

/// The RBAC caches of `api`, once filled; `None` if RBAC is not served.
pub(crate) async fn caches(api: &Api) -> Option<Caches> {
    let get = |plural: &str| {
        api.registry
            .get("rbac.authorization.k8s.io", "v1", plural)
            .map(|r| api.cache(&r))
    };
    let caches = Caches {
        cluster_roles: get("clusterroles")?,
        roles: get("roles")?,
        cluster_role_bindings: get("clusterrolebindings")?,
        role_bindings: get("rolebindings")?,
    };
    for cache in [
        &caches.cluster_roles,
        &caches.roles,
        &caches.cluster_role_bindings,
        &caches.role_bindings,
    ] {
        if tokio::time::timeout(Duration::from_secs(10), cache.wait_ready())
            .await
            .is_err()
        {
            tracing::warn!("RBAC caches are not ready; denying");
            return None;
        }
    }
    Some(caches)
}

fn values(cache: &WatchCache) -> Vec<Value> {
    cache.list("").0.iter().map(|o| o.value()).collect()
}

/// Identifies the cache contents a snapshot was built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotKey([i64; 4]);

impl SnapshotKey {
    pub(crate) fn of(caches: &Caches) -> Self {
        Self([
            caches.cluster_roles.revision(),
            caches.roles.revision(),
            caches.cluster_role_bindings.revision(),
            caches.role_bindings.revision(),
        ])
    }
}

/// The RBAC objects at one moment, indexed for authorization.
#[derive(Debug, Default)]
pub struct Snapshot {
    cluster_roles: HashMap<String, Arc<Vec<PolicyRule>>>,
    roles: HashMap<(String, String), Arc<Vec<PolicyRule>>>,
    cluster_role_bindings: Vec<Binding>,
    role_bindings: HashMap<String, Vec<Binding>>,
}

impl Snapshot {
    /// A snapshot of the given objects (JSON ClusterRoles, Roles, ClusterRoleBindings, RoleBindings).
    pub fn from_objects(
        cluster_roles: &[Value],
        roles: &[Value],
        cluster_role_bindings: &[Value],
        role_bindings: &[Value],
    ) -> Self {
        let cluster_roles = effective_rules(cluster_roles)
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
        let roles = roles
            .iter()
            .map(|r| {
                let rules = r
                    .get("rules")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(PolicyRule::from_json).collect());
                (
                    (
                        crate::objects::namespace(r).to_string(),
                        crate::objects::name(r).to_string(),
                    ),
                    Arc::new(rules.unwrap_or_default()),
                )
            })
            .collect();
        let mut by_namespace: HashMap<String, Vec<Binding>> = HashMap::new();
        for binding in role_bindings.iter().map(Binding::from_json) {
            by_namespace
                .entry(binding.namespace.clone())
                .or_default()
                .push(binding);
        }
        Self {
            cluster_roles,
            roles,
            cluster_role_bindings: cluster_role_bindings
                .iter()
                .map(Binding::from_json)
                .collect(),
            role_bindings: by_namespace,
        }
    }

    pub(crate) fn from_caches(caches: &Caches) -> Self {
        Self::from_objects(
            &values(&caches.cluster_roles),
            &values(&caches.roles),
            &values(&caches.cluster_role_bindings),
            &values(&caches.role_bindings),
        )
    }

    fn rules_of(&self, binding: &Binding) -> Result<Arc<Vec<PolicyRule>>, String> {
        match binding.role_kind.as_str() {
            "ClusterRole" => self
                .cluster_roles
                .get(&binding.role_name)
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "clusterrole.rbac.authorization.k8s.io {:?} not found",
                        binding.role_name
                    )
                }),
            "Role" if !binding.namespace.is_empty() => self
                .roles
                .get(&(binding.namespace.clone(), binding.role_name.clone()))
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "role.rbac.authorization.k8s.io {:?} not found",
                        binding.role_name
                    )
                }),
            other => Err(format!("unsupported role reference kind: {other:?}")),
        }
    }

    /// Calls `visit` with the rules of every binding that applies to `user` (cluster
    /// bindings first, then those of `namespace`) until it returns `true`; returns the
    /// errors met on the way (bindings to missing roles).
    fn visit(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&Binding, &Subject, &[PolicyRule]) -> bool,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let namespaced = if namespace.is_empty() {
            None
        } else {
            self.role_bindings.get(namespace)
        };
        for binding in self
            .cluster_role_bindings
            .iter()
            .chain(namespaced.into_iter().flatten())
        {
            let Some(subject) = binding.subject_for(user) else {
                continue;
            };
            match self.rules_of(binding) {
                Ok(rules) => {
                    if visit(binding, subject, &rules) {
                        break;
                    }
                }
                Err(error) => errors.push(error),
            }
        }
        errors
    }

    /// Whether RBAC allows the request, with kube-apiserver's reason.
    pub fn authorize(&self, attributes: &Attributes<'_>) -> Outcome {
        let mut allowed_by = None;
        let errors = self.visit(
            attributes.user,
            attributes.namespace,
            |binding, subject, rules| {
                if rules.iter().any(|r| r.allows(attributes)) {
                    allowed_by = Some(binding.describe(subject));
                    true
                } else {
                    false
                }
            },
        );
        match allowed_by {
            Some(source) => Outcome {
                allowed: true,
                reason: format!("RBAC: allowed by {source}"),
            },
            None if errors.is_empty() => Outcome {
                allowed: false,
                reason: String::new(),
            },
            None => Outcome {
                allowed: false,
                reason: format!("RBAC: {}", aggregate_errors(&errors)),
            },
        }
    }

    /// Every rule that applies to `user` in `namespace` (SelfSubjectRulesReview), and the
    /// errors met (rules may then be incomplete).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let mut all = Vec::new();
        let errors = self.visit(user, namespace, |_, _, rules| {
            all.extend(rules.iter().cloned());
            false
        });
        (all, errors)
    }
}

/// Errors joined as Go's `utilerrors.NewAggregate` prints them.
pub(crate) fn aggregate_errors(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The rules each ClusterRole grants: its own, or for a role with an `aggregationRule`
/// the union of the rules of every other ClusterRole its selectors match (transitively),
/// by selector, then by role name, without duplicates.
pub fn effective_rules(cluster_roles: &[Value]) -> BTreeMap<String, Vec<PolicyRule>> {
    let by_name: BTreeMap<&str, &Value> = cluster_roles
        .iter()
        .map(|r| (crate::objects::name(r), r))
        .collect();
    let mut done = BTreeMap::new();
    for name in by_name.keys() {
        let mut visiting = HashSet::new();
        resolve(name, &by_name, &mut done, &mut visiting);
    }
    done
}

fn own_rules(role: &Value) -> Vec<PolicyRule> {
    role.get("rules")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(PolicyRule::from_json).collect())
        .unwrap_or_default()
}

fn resolve<'a>(
    name: &'a str,
    by_name: &BTreeMap<&'a str, &'a Value>,
    done: &mut BTreeMap<String, Vec<PolicyRule>>,
    visiting: &mut HashSet<&'a str>,
) -> Vec<PolicyRule> {
    if let Some(rules) = done.get(name) {
        return rules.clone();
    }
    let Some(role) = by_name.get(name) else {
        return Vec::new();
    };
    let selectors = match role.get("aggregationRule") {
        Some(rule) if !rule.is_null() => rule
            .get("clusterRoleSelectors")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => {
            let rules = own_rules(role);
            done.insert(name.to_string(), rules.clone());
            return rules;
        }
    };
    if !visiting.insert(name) {
        // A cycle of aggregating roles: use what is stored.
        return own_rules(role);
    }
    let mut rules: Vec<PolicyRule> = Vec::new();
    for selector in &selectors {
        let Ok(selector) = LabelSelector::from_label_selector(selector) else {
            continue;
        };
        for (other, other_role) in by_name {
            if *other == name || !selector.matches(&crate::objects::labels(other_role)) {
                continue;
            }
            for rule in resolve(other, by_name, done, visiting) {
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
    }
    visiting.remove(name);
    done.insert(name.to_string(), rules.clone());
    rules
}

//! Ingresses → a routing table, and lookups over it (pure functions).
//!
//! Precedence follows the Ingress API: an exact host beats a `*.` wildcard
//! (which covers exactly one DNS label), which beats rules without a host;
//! within a host an `Exact` path beats any `Prefix`, and the longest prefix
//! wins, matched by `/`-separated elements. `ImplementationSpecific` paths are
//! prefixes here. A request that matches no path of its host falls through to
//! the rules without a host and then to the default backend.
//!
//! When Ingresses collide on the same host and path, the oldest one wins
//! (then namespace/name), so adding an Ingress never steals a route.

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use std::collections::HashMap;
use std::sync::Arc;

/// The IngressClass kite serves.
pub const CLASS_NAME: &str = "kite";
/// The controller name in kite's IngressClass.
pub const CONTROLLER: &str = "kite.io/ingress-controller";
/// The annotation older Ingresses name their class with.
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// A Service port a route leads to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Backend {
    /// The Ingress's (and so the Service's) namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The Service port, by number or name.
    pub port: ServicePort,
}

/// How a backend names its Service port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServicePort {
    /// `port.number`.
    Number(i32),
    /// `port.name`.
    Name(String),
}

/// The paths of one host.
#[derive(Debug, Default, Clone, PartialEq)]
struct Paths {
    exact: HashMap<String, Arc<Backend>>,
    /// Normalised prefixes (no trailing `/`; the root is ""), longest first.
    prefixes: Vec<(String, Arc<Backend>)>,
}

impl Paths {
    fn add(&mut self, kind: PathKind, path: &str, backend: &Arc<Backend>) {
        match kind {
            PathKind::Exact => {
                self.exact
                    .entry(path.to_string())
                    .or_insert_with(|| backend.clone());
            }
            PathKind::Prefix => {
                let prefix = path.trim_end_matches('/').to_string();
                if !self.prefixes.iter().any(|(p, _)| *p == prefix) {
                    self.prefixes.push((prefix, backend.clone()));
                }
            }
        }
    }

    fn finish(&mut self) {
        // Stable: among equal lengths the first added (oldest Ingress) stays first.
        self.prefixes
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }

    fn lookup(&self, path: &str) -> Option<&Arc<Backend>> {
        if let Some(backend) = self.exact.get(path) {
            return Some(backend);
        }
        self.prefixes
            .iter()
            .find(|(prefix, _)| prefix_matches(prefix, path))
            .map(|(_, backend)| backend)
    }
}

/// Whether a normalised prefix covers `path` element by element: `/foo`
/// covers `/foo`, `/foo/` and `/foo/bar`, not `/foobar`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[derive(Debug, Clone, Copy)]
enum PathKind {
    Exact,
    Prefix,
}

/// Where requests go, built from every Ingress kite serves.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Table {
    hosts: HashMap<String, Paths>,
    /// Keyed by the suffix after `*.` (`example.com` for `*.example.com`).
    wildcards: HashMap<String, Paths>,
    any_host: Paths,
    default: Option<Arc<Backend>>,
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Send the request to this backend.
    Backend(Arc<Backend>),
    /// No rule and no default backend: 404.
    NotFound,
}

impl Table {
    /// The table for `ingresses`, keeping those [`serves`] accepts.
    pub fn build(ingresses: &[Arc<Ingress>], default_class: bool) -> Self {
        let mut served: Vec<&Ingress> = ingresses
            .iter()
            .map(|i| i.as_ref())
            .filter(|i| serves(i, default_class))
            .collect();
        served.sort_by(|a, b| {
            let key = |i: &Ingress| {
                (
                    i.metadata.creation_timestamp.clone().map(|t| t.0),
                    i.metadata.namespace.clone(),
                    i.metadata.name.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        let mut table = Table::default();
        for ingress in served {
            let namespace = ingress.metadata.namespace.clone().unwrap_or_default();
            let Some(spec) = &ingress.spec else { continue };
            if table.default.is_none() {
                table.default = spec
                    .default_backend
                    .as_ref()
                    .and_then(|b| backend(&namespace, b));
            }
            for rule in spec.rules.iter().flatten() {
                let host = rule.host.as_deref().unwrap_or("").to_ascii_lowercase();
                let paths = if host.is_empty() {
                    &mut table.any_host
                } else if let Some(suffix) = host.strip_prefix("*.") {
                    table.wildcards.entry(suffix.to_string()).or_default()
                } else {
                    table.hosts.entry(host).or_default()
                };
                let Some(http) = &rule.http else { continue };
                for path in &http.paths {
                    let Some(target) = backend(&namespace, &path.backend) else {
                        continue;
                    };
                    let kind = match path.path_type.as_str() {
                        "Exact" => PathKind::Exact,
                        _ => PathKind::Prefix,
                    };
                    let value = path.path.as_deref().unwrap_or("/");
                    paths.add(kind, value, &target);
                }
            }
        }
        table.any_host.finish();
        for paths in table.hosts.values_mut().chain(table.wildcards.values_mut()) {
            paths.finish();
        }
        table
    }

    /// Where a request for `host` (port and trailing dot ignored) and `path`
    /// (no query) goes.
    pub fn lookup(&self, host: &str, path: &str) -> Route {
        let host = normalise_host(host);
        let path = if path.is_empty() { "/" } else { path };
        let exact = self.hosts.get(&host);
        let wildcard = host
            .split_once('.')
            .and_then(|(_, suffix)| self.wildcards.get(suffix));
        for paths in [exact, wildcard, Some(&self.any_host)]
            .into_iter()
            .flatten()
        {
            if let Some(backend) = paths.lookup(path) {
                return Route::Backend(backend.clone());
            }
        }
        match &self.default {
            Some(backend) => Route::Backend(backend.clone()),
            None => Route::NotFound,
        }
    }

    /// Every backend the table can lead to.
    pub fn backends(&self) -> Vec<Arc<Backend>> {
        let mut all: Vec<Arc<Backend>> = self
            .hosts
            .values()
            .chain(self.wildcards.values())
            .chain(std::iter::once(&self.any_host))
            .flat_map(|p| p.exact.values().chain(p.prefixes.iter().map(|(_, b)| b)))
            .chain(self.default.iter())
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// A Host header's name: lower case, without port or trailing dot.
pub fn normalise_host(host: &str) -> String {
    let name = if host.starts_with('[') {
        // An IPv6 literal: `[::1]:80`.
        host.split_once(']')
            .map(|(addr, _)| format!("{addr}]"))
            .unwrap_or_else(|| host.to_string())
    } else {
        host.rsplit_once(':')
            .map(|(name, _)| name.to_string())
            .unwrap_or_else(|| host.to_string())
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn backend(namespace: &str, backend: &IngressBackend) -> Option<Arc<Backend>> {
    let service = backend.service.as_ref()?;
    let port = service.port.as_ref()?;
    let port = match (&port.number, &port.name) {
        (Some(number), _) => ServicePort::Number(*number),
        (None, Some(name)) if !name.is_empty() => ServicePort::Name(name.clone()),
        _ => return None,
    };
    Some(Arc::new(Backend {
        namespace: namespace.to_string(),
        service: service.name.clone(),
        port,
    }))
}

/// Whether kite serves `ingress`: its class is `kite`, or it names no class
/// and kite's class is the cluster default.
pub fn serves(ingress: &Ingress, default_class: bool) -> bool {
    let named = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CLASS_ANNOTATION))
                .map(String::as_str)
        });
    match named {
        Some(class) => class == CLASS_NAME,
        None => default_class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ingress(name: &str, spec: serde_json::Value) -> Arc<Ingress> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": spec,
            }))
            .unwrap(),
        )
    }

    fn rule(host: &str, paths: &[(&str, &str, &str)]) -> serde_json::Value {
        let paths: Vec<_> = paths
            .iter()
            .map(|(kind, path, svc)| {
                json!({"path": path, "pathType": kind,
                       "backend": {"service": {"name": svc, "port": {"number": 80}}}})
            })
            .collect();
        let mut rule = json!({"http": {"paths": paths}});
        if !host.is_empty() {
            rule["host"] = json!(host);
        }
        rule
    }

    fn service_of(table: &Table, host: &str, path: &str) -> Option<String> {
        match table.lookup(host, path) {
            Route::Backend(b) => Some(b.service.clone()),
            Route::NotFound => None,
        }
    }

    fn check(table: &Table, cases: &[(&str, &str, Option<&str>)]) {
        for (host, path, want) in cases {
            assert_eq!(
                service_of(table, host, path).as_deref(),
                *want,
                "{host}{path}"
            );
        }
    }

    #[test]
    fn exact_hosts_beat_wildcards_and_wildcards_cover_one_label() {
        let table = Table::build(
            &[ingress(
                "a",
                json!({"ingressClassName": "kite", "rules": [
                    rule("*.example.com", &[("Prefix", "/", "wild")]),
                    rule("foo.example.com", &[("Prefix", "/", "foo")]),
                ]}),
            )],
            false,
        );
        check(
            &table,
            &[
                ("foo.example.com", "/", Some("foo")),
                ("FOO.example.com:8080", "/x", Some("foo")),
                ("bar.example.com", "/", Some("wild")),
                ("a.bar.example.com", "/", None),
                ("example.com", "/", None),
            ],
        );
    }

    #[test]
    fn exact_beats_prefix_and_the_longest_prefix_wins_by_element() {
        let table = Table::build(
            &[ingress(
                "a",
                json!({"ingressClassName": "kite", "rules": [rule("h", &[
                    ("Prefix", "/", "root"),
                    ("Prefix", "/foo", "foo"),
                    ("Prefix", "/foo/bar/", "foobar"),
                    ("Exact", "/foo", "exact"),
                    ("ImplementationSpecific", "/impl", "impl"),
                ])]}),
            )],
            false,
        );
        check(
            &table,
            &[
                ("h", "/foo", Some("exact")),
                ("h", "/foo/", Some("foo")),
                ("h", "/foo/baz", Some("foo")),
                ("h", "/foobar", Some("root")),
                ("h", "/foo/bar", Some("foobar")),
                ("h", "/foo/bar/x", Some("foobar")),
                ("h", "/impl/x", Some("impl")),
                ("h", "/", Some("root")),
                ("other", "/", None),
            ],
        );
    }

    #[test]
    fn unmatched_paths_fall_through_to_hostless_rules_then_the_default_backend() {
        let table = Table::build(
            &[ingress(
                "a",
                json!({"ingressClassName": "kite",
                       "defaultBackend": {"service": {"name": "fallback", "port": {"name": "http"}}},
                       "rules": [rule("h", &[("Exact", "/only", "h")]),
                                 rule("", &[("Prefix", "/any", "any")])]}),
            )],
            false,
        );
        check(
            &table,
            &[
                ("h", "/only", Some("h")),
                ("h", "/any/x", Some("any")),
                ("h", "/else", Some("fallback")),
                ("x", "/", Some("fallback")),
            ],
        );
        assert_eq!(
            table.lookup("x", "/"),
            Route::Backend(Arc::new(Backend {
                namespace: "default".into(),
                service: "fallback".into(),
                port: ServicePort::Name("http".into()),
            }))
        );
    }

    #[test]
    fn ingresses_of_other_classes_are_ignored_and_classless_ones_need_the_default() {
        let classless = ingress(
            "none",
            json!({"rules": [rule("a", &[("Prefix", "/", "a")])]}),
        );
        let other = ingress(
            "other",
            json!({"ingressClassName": "nginx", "rules": [rule("b", &[("Prefix", "/", "b")])]}),
        );
        let ours = ingress(
            "ours",
            json!({"ingressClassName": "kite", "rules": [rule("c", &[("Prefix", "/", "c")])]}),
        );
        let all = [classless, other, ours];
        let table = Table::build(&all, true);
        check(
            &table,
            &[
                ("a", "/", Some("a")),
                ("b", "/", None),
                ("c", "/", Some("c")),
            ],
        );
        let table = Table::build(&all, false);
        check(
            &table,
            &[("a", "/", None), ("b", "/", None), ("c", "/", Some("c"))],
        );
    }

    #[test]
    fn the_oldest_ingress_keeps_a_contested_route() {
        let mut old = (*ingress(
            "zz-old",
            json!({"ingressClassName": "kite", "rules": [rule("h", &[("Prefix", "/", "old")])]}),
        ))
        .clone();
        old.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2020-01-01T00:00:00Z".parse().unwrap(),
            ));
        let mut new = (*ingress(
            "aa-new",
            json!({"ingressClassName": "kite", "rules": [rule("h", &[("Prefix", "/", "new")])]}),
        ))
        .clone();
        new.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2021-01-01T00:00:00Z".parse().unwrap(),
            ));
        let table = Table::build(&[Arc::new(new), Arc::new(old)], false);
        check(&table, &[("h", "/", Some("old"))]);
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(normalise_host("Example.COM."), "example.com");
        assert_eq!(normalise_host("a.b:443"), "a.b");
        assert_eq!(normalise_host("[::1]:80"), "[::1]");
    }

    proptest! {
        #[test]
        fn a_prefix_matches_exactly_its_element_extensions(
            prefix in prop::collection::vec("[a-c]{1,3}", 1..4),
            extra in prop::collection::vec("[a-c]{1,3}", 0..3),
            glued in "[a-c]{1,2}",
        ) {
            let prefix = format!("/{}", prefix.join("/"));
            let table = Table::build(&[ingress("a", json!({"ingressClassName": "kite",
                "rules": [rule("h", &[("Prefix", &prefix, "p")])]}))], false);
            let below = if extra.is_empty() { prefix.clone() } else { format!("{prefix}/{}", extra.join("/")) };
            prop_assert_eq!(service_of(&table, "h", &below), Some("p".to_string()));
            prop_assert_eq!(service_of(&table, "h", &format!("{below}/")), Some("p".to_string()));
            prop_assert_eq!(service_of(&table, "h", &format!("{prefix}{glued}")), None);
        }

        #[test]
        fn the_longest_matching_prefix_wins(
            elements in prop::collection::vec("[a-b]{1,2}", 1..5),
            cut in 0usize..5,
        ) {
            // Prefixes at every depth of one path; a request for the full
            // path reaches the deepest, one for a shorter path its own depth.
            let prefixes: Vec<String> = (1..=elements.len())
                .map(|n| format!("/{}", elements[..n].join("/")))
                .collect();
            let names: Vec<String> = (1..=elements.len()).map(|n| format!("d{n}")).collect();
            let paths: Vec<(&str, &str, &str)> = prefixes.iter().zip(&names)
                .rev().map(|(p, n)| ("Prefix", p.as_str(), n.as_str())).collect();
            let table = Table::build(&[ingress("a", json!({"ingressClassName": "kite",
                "rules": [rule("h", &paths)]}))], false);
            let depth = cut.min(elements.len() - 1) + 1;
            let request = format!("/{}/tail", elements[..depth].join("/"));
            prop_assert_eq!(service_of(&table, "h", &request), Some(format!("d{depth}")));
        }
    }
}

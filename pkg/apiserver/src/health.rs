//! `/healthz`, `/livez` and `/readyz`, answered the way kube-apiserver does.
//!
//! Each endpoint runs a list of named checks; `?verbose` lists them as
//! `[+]name ok` / `[-]name failed: reason withheld`, `?exclude=name` skips
//! one, and `/readyz/<name>` runs a single check. `/readyz` also fails once
//! shutdown has begun, so load balancers drain the server first.

use crate::body::{self, Body};
use futures::future::BoxFuture;
use http::{Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A probe: resolves to `Err(reason)` when the component is unhealthy.
pub type HealthProbe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A named health check contributed by a component (e.g. `etcd` for the store).
#[derive(Clone)]
pub struct HealthCheck {
    /// The check's name as listed by `?verbose`.
    pub name: String,
    /// The probe run on every request.
    pub probe: HealthProbe,
}

impl std::fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthCheck")
            .field("name", &self.name)
            .finish()
    }
}

/// Which endpoint is being asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/healthz` (deprecated in Kubernetes, still used by many tools).
    Healthz,
    /// `/livez`.
    Livez,
    /// `/readyz`.
    Readyz,
}

impl Endpoint {
    /// Splits a path such as `/readyz/etcd` into the endpoint and the single check asked for.
    pub fn parse(path: &str) -> Option<(Self, Option<&str>)> {
        let (base, rest) = match path.trim_start_matches('/').split_once('/') {
            Some((base, rest)) => (base, Some(rest).filter(|r| !r.is_empty())),
            None => (path.trim_start_matches('/'), None),
        };
        let endpoint = match base {
            "healthz" => Self::Healthz,
            "livez" => Self::Livez,
            "readyz" => Self::Readyz,
            _ => return None,
        };
        Some((endpoint, rest))
    }

    fn name(self) -> &'static str {
        match self {
            Self::Healthz => "healthz",
            Self::Livez => "livez",
            Self::Readyz => "readyz",
        }
    }
}

/// The health checks of one server and its shutdown flag.
#[derive(Debug, Default)]
pub struct Health {
    /// Components started after the server add theirs ([`Health::add`]).
    checks: std::sync::RwLock<Vec<HealthCheck>>,
    shutting_down: AtomicBool,
}

impl Health {
    /// Health with the built-in `ping` and `log` checks plus the components' own.
    pub fn new(checks: Vec<HealthCheck>) -> Self {
        Self {
            checks: std::sync::RwLock::new(checks),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// Adds a check, e.g. of a component started once the API serves.
    pub fn add(&self, check: HealthCheck) {
        self.checks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(check);
    }

    /// A check that passes while `task` runs: a component whose task ended
    /// (it failed, or panicked) makes `/readyz` fail under its name.
    pub fn add_task(&self, name: &str, task: tokio::task::AbortHandle) {
        let task = Arc::new(task);
        self.add(HealthCheck {
            name: name.to_string(),
            probe: Arc::new(move || {
                let finished = task.is_finished();
                Box::pin(async move {
                    if finished {
                        Err("the component stopped".to_string())
                    } else {
                        Ok(())
                    }
                })
            }),
        });
    }

    /// Marks the server as shutting down: `/readyz` fails from now on.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Answers a health request.
    pub async fn answer(
        &self,
        endpoint: Endpoint,
        single: Option<&str>,
        query: &str,
    ) -> Response<Body> {
        let verbose = query_flag(query, "verbose");
        let excluded: Vec<String> = query_values(query, "exclude");

        let mut results: Vec<(String, Result<(), String>)> =
            vec![("ping".to_string(), Ok(())), ("log".to_string(), Ok(()))];
        let checks = self
            .checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for check in &checks {
            results.push((check.name.clone(), (check.probe)().await));
        }
        if endpoint == Endpoint::Readyz {
            let shutdown = if self.shutting_down.load(Ordering::SeqCst) {
                Err("server is shutting down".to_string())
            } else {
                Ok(())
            };
            results.push(("shutdown".to_string(), shutdown));
        }

        if let Some(name) = single {
            return match results.iter().find(|(n, _)| n == name) {
                Some((_, Ok(()))) => body::text(StatusCode::OK, "ok"),
                Some((_, Err(reason))) => {
                    tracing::warn!(check = name, %reason, "health check failed");
                    body::text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("internal server error: {name} check failed\n"),
                    )
                }
                None => body::text(StatusCode::NOT_FOUND, "404 page not found\n"),
            };
        }

        let mut lines = String::new();
        let mut failed = false;
        for (name, result) in &results {
            if excluded.iter().any(|e| e == name) {
                lines.push_str(&format!("[+]{name} excluded: ok\n"));
                continue;
            }
            match result {
                Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
                Err(reason) => {
                    failed = true;
                    tracing::warn!(check = %name, %reason, "health check failed");
                    lines.push_str(&format!("[-]{name} failed: reason withheld\n"));
                }
            }
        }
        let what = endpoint.name();
        if failed {
            body::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{lines}{what} check failed\n"),
            )
        } else if verbose {
            body::text(StatusCode::OK, format!("{lines}{what} check passed\n"))
        } else {
            body::text(StatusCode::OK, "ok")
        }
    }
}

fn query_flag(query: &str, key: &str) -> bool {
    crate::request::query_params(query).any(|(k, v)| k == key && v != "false" && v != "0")
}

fn query_values(query: &str, key: &str) -> Vec<String> {
    crate::request::query_params(query)
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn failing(name: &str) -> HealthCheck {
        HealthCheck {
            name: name.into(),
            probe: Arc::new(|| Box::pin(async { Err("down".to_string()) })),
        }
    }

    async fn text_of(response: Response<Body>) -> (StatusCode, String) {
        let code = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (code, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn a_component_whose_task_ended_fails_readyz() {
        let health = Health::new(vec![]);
        let running = tokio::spawn(std::future::pending::<()>());
        let ended = tokio::spawn(async {});
        health.add_task("kube-proxy", running.abort_handle());
        health.add_task("cluster-dns", ended.abort_handle());
        let _ = (&mut { ended }).await;
        let (code, text) = text_of(
            health
                .answer(Endpoint::Readyz, Some("kube-proxy"), "")
                .await,
        )
        .await;
        assert_eq!((code, text.as_str()), (StatusCode::OK, "ok"));
        let (code, text) = text_of(health.answer(Endpoint::Readyz, None, "verbose").await).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            text.contains("[+]kube-proxy ok\n[-]cluster-dns failed: reason withheld\n"),
            "{text}"
        );
        running.abort();
    }

    #[tokio::test]
    async fn verbose_readyz_lists_every_check() {
        let health = Health::new(vec![]);
        let (code, text) = text_of(health.answer(Endpoint::Readyz, None, "verbose").await).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            text,
            "[+]ping ok\n[+]log ok\n[+]shutdown ok\nreadyz check passed\n"
        );
    }

    #[tokio::test]
    async fn a_failing_check_fails_the_endpoint_unless_excluded() {
        let health = Health::new(vec![failing("etcd")]);
        let (code, text) = text_of(health.answer(Endpoint::Livez, None, "").await).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(text.contains("[-]etcd failed: reason withheld"), "{text}");
        let (code, _) = text_of(health.answer(Endpoint::Livez, None, "exclude=etcd").await).await;
        assert_eq!(code, StatusCode::OK);
    }

    #[tokio::test]
    async fn readyz_fails_after_shutdown_begins_but_livez_does_not() {
        let health = Health::new(vec![]);
        health.begin_shutdown();
        let (ready, _) = text_of(health.answer(Endpoint::Readyz, None, "").await).await;
        let (live, _) = text_of(health.answer(Endpoint::Livez, None, "").await).await;
        assert_eq!(ready, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(live, StatusCode::OK);
    }

    #[tokio::test]
    async fn single_checks_are_addressable_by_path() {
        let health = Health::new(vec![failing("etcd")]);
        assert_eq!(
            Endpoint::parse("/readyz/etcd"),
            Some((Endpoint::Readyz, Some("etcd")))
        );
        assert_eq!(Endpoint::parse("/readyz"), Some((Endpoint::Readyz, None)));
        assert_eq!(Endpoint::parse("/api"), None);
        let (code, _) = text_of(health.answer(Endpoint::Readyz, Some("ping"), "").await).await;
        assert_eq!(code, StatusCode::OK);
        let (code, _) = text_of(health.answer(Endpoint::Readyz, Some("etcd"), "").await).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        let (code, _) = text_of(health.answer(Endpoint::Readyz, Some("nope"), "").await).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }
}

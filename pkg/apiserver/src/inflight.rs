//! The max-in-flight limit: kube-apiserver's `--max-requests-inflight` and
//! `--max-mutating-requests-inflight`. Requests beyond the limit are refused at
//! once with 429 TooManyRequests and `Retry-After: 1`, so an overloaded server
//! sheds load instead of queueing without bound; client-go retries them.
//!
//! As in kube-apiserver, long-running requests (watches, exec, attach,
//! port-forward, proxy, logs) are not counted, and `system:masters` (the
//! in-process components and the admin) is never refused.

use http::Method;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits; 0 means no limit, as in kube-apiserver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Reads (GET, HEAD, LIST) in flight at once.
    pub reads: usize,
    /// Writes (POST, PUT, PATCH, DELETE) in flight at once.
    pub mutating: usize,
}

impl Default for Limits {
    /// kube-apiserver's defaults.
    fn default() -> Self {
        Self {
            reads: 400,
            mutating: 200,
        }
    }
}

/// The two pools of slots.
#[derive(Debug)]
pub struct InFlight {
    reads: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
}

/// What the limiter decided for one request.
#[derive(Debug)]
pub enum Admit {
    /// Go ahead; the slot (if any) is held until this is dropped.
    Go(Option<OwnedSemaphorePermit>),
    /// Every slot is taken: answer 429.
    Refuse,
}

impl InFlight {
    /// Pools of the given sizes.
    pub fn new(limits: Limits) -> Self {
        let pool = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        Self {
            reads: pool(limits.reads),
            mutating: pool(limits.mutating),
        }
    }

    /// Takes a slot for a request, unless it is exempt.
    pub fn admit(&self, method: &Method, path: &str, query: &str, privileged: bool) -> Admit {
        if privileged || is_long_running(path, query) {
            return Admit::Go(None);
        }
        let mutating = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let pool = if mutating {
            &self.mutating
        } else {
            &self.reads
        };
        match pool {
            None => Admit::Go(None),
            Some(pool) => match pool.clone().try_acquire_owned() {
                Ok(permit) => Admit::Go(Some(permit)),
                Err(_) => Admit::Refuse,
            },
        }
    }
}

/// Whether a request may stay open indefinitely (kube-apiserver's
/// long-running check: the watch verb and the streaming subresources).
pub fn is_long_running(path: &str, query: &str) -> bool {
    let watching = query.split('&').any(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        key == "watch" && matches!(value, "1" | "true" | "True")
    });
    if watching {
        return true;
    }
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let prefix = segments.next();
    if !matches!(prefix, Some("api" | "apis")) {
        return false;
    }
    let rest: Vec<&str> = segments.collect();
    if rest.contains(&"watch") {
        return true;
    }
    rest.iter()
        .any(|s| matches!(*s, "exec" | "attach" | "portforward" | "proxy" | "log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_and_streams_are_long_running() {
        assert!(is_long_running("/api/v1/pods", "watch=true"));
        assert!(is_long_running("/api/v1/pods", "labelSelector=a&watch=1"));
        assert!(is_long_running("/api/v1/watch/namespaces/default/pods", ""));
        assert!(is_long_running(
            "/api/v1/namespaces/d/pods/p/exec",
            "command=sh"
        ));
        assert!(is_long_running(
            "/api/v1/namespaces/d/pods/p/log",
            "follow=true"
        ));
        assert!(is_long_running("/api/v1/nodes/n/proxy/stats/summary", ""));
        assert!(!is_long_running("/api/v1/pods", "watch=false"));
        assert!(!is_long_running("/apis/apps/v1/deployments", ""));
        assert!(!is_long_running("/healthz/log", ""));
    }

    #[test]
    fn full_pools_refuse_and_freed_slots_admit_again() {
        let limiter = InFlight::new(Limits {
            reads: 1,
            mutating: 1,
        });
        let held = limiter.admit(&Method::GET, "/api/v1/pods", "", false);
        assert!(matches!(held, Admit::Go(Some(_))));
        assert!(matches!(
            limiter.admit(&Method::GET, "/api/v1/pods", "", false),
            Admit::Refuse
        ));
        // Writes have their own pool, and watches and masters need none.
        assert!(matches!(
            limiter.admit(&Method::POST, "/api/v1/pods", "", false),
            Admit::Go(Some(_))
        ));
        assert!(matches!(
            limiter.admit(&Method::GET, "/api/v1/pods", "watch=true", false),
            Admit::Go(None)
        ));
        assert!(matches!(
            limiter.admit(&Method::GET, "/api/v1/pods", "", true),
            Admit::Go(None)
        ));
        drop(held);
        assert!(matches!(
            limiter.admit(&Method::GET, "/api/v1/pods", "", false),
            Admit::Go(Some(_))
        ));
    }

    #[test]
    fn zero_means_unlimited() {
        let limiter = InFlight::new(Limits {
            reads: 0,
            mutating: 0,
        });
        let held: Vec<_> = (0..1000)
            .map(|_| limiter.admit(&Method::PUT, "/api/v1/pods/x", "", false))
            .collect();
        assert!(held.iter().all(|a| matches!(a, Admit::Go(None))));
    }
}

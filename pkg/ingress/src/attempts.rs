//! Where a request goes and which endpoint it tries next, the same for both
//! servers ([`crate::proxy`] and [`crate::h1`]).
//!
//! A request starts at the next endpoint of its backend (round-robin) and
//! moves on when a connection is refused: nothing was sent, so it goes on
//! whole. An idempotent request without a body that fails once on a
//! reused connection (the endpoint may have closed it as it went out) is
//! sent once more on a new connection to the same endpoint, as nginx does;
//! a second failure is the client's 502.

use crate::proxy::Proxy;
use crate::routes::{Backend, Route};
use http::StatusCode;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why a request gets one of kite's error pages instead of an endpoint.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 404 without a rule, 503 without ready endpoints.
    pub status: StatusCode,
    /// The page's text.
    pub message: String,
}

/// The backend for `host` and `path` and the order to try its endpoints in.
pub fn route(
    proxy: &Proxy,
    host: &str,
    path: &str,
) -> Result<(Arc<Backend>, Vec<SocketAddr>), Refusal> {
    let (table, backends) = proxy.snapshot();
    let backend = match table.lookup(host, path) {
        Route::Backend(backend) => backend,
        Route::NotFound => {
            return Err(Refusal {
                status: StatusCode::NOT_FOUND,
                message: "no ingress rule matches".into(),
            });
        }
    };
    let order = backends
        .get(&backend)
        .map(|e| e.attempt_order())
        .unwrap_or_default();
    if order.is_empty() {
        return Err(Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "service {}/{} has no ready endpoints",
                backend.namespace, backend.service
            ),
        });
    }
    Ok((backend, order))
}

/// One request's way through its endpoints.
#[derive(Debug)]
pub struct Attempts {
    order: Vec<SocketAddr>,
    at: usize,
    /// Whether the one retry on a new connection is still to be had.
    may_retry: bool,
    /// The next try opens a new connection rather than take a pooled one.
    fresh: bool,
}

/// The endpoint to try and how to reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The endpoint.
    pub endpoint: SocketAddr,
    /// Whether an idle pooled connection may carry it.
    pub pooled: bool,
}

impl Attempts {
    /// Tries `order`; `retryable` if the request may be sent twice
    /// (idempotent, no body).
    pub fn new(order: Vec<SocketAddr>, retryable: bool) -> Self {
        Self {
            order,
            at: 0,
            may_retry: retryable,
            fresh: false,
        }
    }

    /// What to try now; `None` once every endpoint refused.
    pub fn current(&self) -> Option<Attempt> {
        self.order.get(self.at).map(|&endpoint| Attempt {
            endpoint,
            pooled: !self.fresh,
        })
    }

    /// The endpoint refused a new connection: on to the next one.
    pub fn refused(&mut self) {
        self.at += 1;
        self.fresh = false;
    }

    /// The connection closed before the request went out, so it goes on
    /// whole: a pooled one is replaced by a new one to the same endpoint,
    /// a new one counts as refused.
    pub fn closed_before_sending(&mut self, reused: bool) {
        if reused {
            self.fresh = true;
        } else {
            self.refused();
        }
    }

    /// The request went out and no response came back: true if it is to be
    /// sent once more, on a new connection to the same endpoint.
    pub fn failed(&mut self, reused: bool) -> bool {
        if reused && self.may_retry {
            self.may_retry = false;
            self.fresh = true;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Vec<SocketAddr> {
        vec![
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        ]
    }

    fn at(attempts: &Attempts) -> Option<(String, bool)> {
        attempts
            .current()
            .map(|a| (a.endpoint.to_string(), a.pooled))
    }

    #[test]
    fn refusals_move_on_until_none_is_left() {
        let mut attempts = Attempts::new(order(), true);
        assert_eq!(at(&attempts), Some(("10.0.0.1:80".into(), true)));
        attempts.refused();
        assert_eq!(at(&attempts), Some(("10.0.0.2:80".into(), true)));
        attempts.refused();
        assert_eq!(at(&attempts), None);
    }

    #[test]
    fn a_failure_on_a_reused_connection_is_retried_once_on_a_new_one() {
        let mut attempts = Attempts::new(order(), true);
        assert!(attempts.failed(true));
        assert_eq!(at(&attempts), Some(("10.0.0.1:80".into(), false)));
        assert!(!attempts.failed(true));
        // A new connection refused: the next endpoint may be pooled again.
        attempts.refused();
        assert_eq!(at(&attempts), Some(("10.0.0.2:80".into(), true)));
    }

    #[test]
    fn no_retry_for_new_connections_or_requests_that_may_not_repeat() {
        assert!(!Attempts::new(order(), true).failed(false));
        assert!(!Attempts::new(order(), false).failed(true));
    }

    #[test]
    fn closed_before_sending_replaces_a_pooled_connection_then_moves_on() {
        let mut attempts = Attempts::new(order(), false);
        attempts.closed_before_sending(true);
        assert_eq!(at(&attempts), Some(("10.0.0.1:80".into(), false)));
        attempts.closed_before_sending(false);
        assert_eq!(at(&attempts), Some(("10.0.0.2:80".into(), true)));
    }
}

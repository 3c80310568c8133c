//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go does it.
//!
//! Several `kite server`s may share one datastore; only one of them may run the
//! scheduler or a given controller set at a time, or pods would be bound twice and
//! replicas created twice. [`LeaderElector::run`] acquires the Lease named in its
//! [`Config`], keeps renewing it while the guarded work runs, and stops the work
//! as soon as a renewal has failed for longer than the renew deadline.
//!
//! Expiry is judged on this process's own clock from when it last *saw the record
//! change*, never by comparing the holder's `renewTime` with our clock, so skew
//! between servers cannot make two leaders (the same rule client-go follows).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use std::future::Future;
use std::time::{Duration, Instant};

/// How one lease is held.
#[derive(Clone, Debug)]
pub struct Config {
    /// Namespace of the Lease (kube-system for the control plane).
    pub namespace: String,
    /// Name of the Lease, e.g. `kube-scheduler`.
    pub name: String,
    /// Who we are: unique per process (host name plus a random suffix).
    pub identity: String,
    /// How long a holder's claim is good for without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up.
    pub renew_deadline: Duration,
    /// How often to try acquiring or renewing.
    pub retry_period: Duration,
}

impl Config {
    /// kube-controller-manager's and kube-scheduler's defaults: 15 s lease,
    /// 10 s renew deadline, 2 s retry period.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// An identity unique to this process: `<host>_<random>`, as client-go's callers build it.
pub fn identity(host: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{host}_{:08x}{:08x}", std::process::id(), nanos)
}

/// The last version of the Lease we saw, and when we saw it change.
struct Observed {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    duration: Duration,
    at: Instant,
}

/// Acquires and renews one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: Config,
    observed: Option<Observed>,
}

/// What one attempt to acquire or renew found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold the lease now.
    Held,
    /// Someone else holds a lease that has not expired.
    Taken,
}

impl LeaderElector {
    /// An elector for `config`'s Lease, reached through `client`.
    pub fn new(client: kube::Client, config: Config) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    /// Runs `work` whenever this process leads, until `work` returns.
    ///
    /// When leadership is lost, the work future is dropped (cancelling it) and
    /// the elector goes back to waiting for the Lease, so a later term starts the
    /// work afresh from `make_work`.
    pub async fn run<F, Fut>(mut self, mut make_work: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            self.acquire().await;
            tracing::info!(lease = %self.config.name, identity = %self.config.identity, "successfully acquired lease");
            let work = make_work();
            tokio::select! {
                () = work => return,
                () = self.renew_until_lost() => {
                    tracing::warn!(lease = %self.config.name, "leader election lost");
                }
            }
        }
    }

    /// Waits until this process holds the Lease.
    async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => return,
                Ok(Attempt::Taken) => {}
                Err(error) => {
                    tracing::debug!(lease = %self.config.name, %error, "cannot acquire lease")
                }
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews every retry period; returns once no renewal succeeded for the renew deadline.
    async fn renew_until_lost(&mut self) {
        let mut last_renewal = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            let attempt =
                tokio::time::timeout(self.config.renew_deadline, self.try_acquire_or_renew()).await;
            match attempt {
                Ok(Ok(Attempt::Held)) => last_renewal = Instant::now(),
                Ok(Ok(Attempt::Taken)) => return,
                Ok(Err(error)) => {
                    tracing::warn!(lease = %self.config.name, %error, "failed to renew lease")
                }
                Err(_) => tracing::warn!(lease = %self.config.name, "renewing the lease timed out"),
            }
            if last_renewal.elapsed() >= self.config.renew_deadline {
                return;
            }
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let duration_seconds = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(15);
        let existing = self.api.get_opt(&self.config.name).await?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(duration_seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(Attempt::Held)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Taken),
                Err(error) => Err(error),
            };
        };
        self.observe(&lease);
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.config.identity.as_str());
        if !ours && holder.is_some() && !self.expired() {
            return Ok(Attempt::Taken);
        }
        if !ours {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.config.identity.clone());
        spec.lease_duration_seconds = Some(duration_seconds);
        spec.renew_time = Some(now);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(&updated);
                Ok(Attempt::Held)
            }
            // Someone else wrote first: they hold it, or we try again next period.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Taken),
            Err(error) => Err(error),
        }
    }

    /// Records `lease` and restarts the expiry clock if its holder or renewal changed.
    fn observe(&mut self, lease: &Lease) {
        let spec = lease.spec.clone().unwrap_or_default();
        let duration = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15),
        );
        let changed = self.observed.as_ref().is_none_or(|seen| {
            seen.holder != spec.holder_identity || seen.renew_time != spec.renew_time
        });
        if changed {
            self.observed = Some(Observed {
                holder: spec.holder_identity,
                renew_time: spec.renew_time,
                duration,
                at: Instant::now(),
            });
        }
    }

    /// Whether the holder we last saw has gone a whole lease duration without renewing.
    fn expired(&self) -> bool {
        self.observed
            .as_ref()
            .is_none_or(|seen| seen.at.elapsed() >= seen.duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_name_the_host_and_differ_between_processes() {
        let id = identity("node-a");
        assert!(id.starts_with("node-a_"));
        assert_eq!(id.len(), "node-a_".len() + 16);
    }

    #[test]
    fn defaults_match_kube_controller_manager() {
        let config = Config::new("kube-system", "kube-scheduler", "me");
        assert_eq!(config.lease_duration, Duration::from_secs(15));
        assert_eq!(config.renew_deadline, Duration::from_secs(10));
        assert_eq!(config.retry_period, Duration::from_secs(2));
    }
}

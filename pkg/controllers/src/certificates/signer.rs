//! Signs approved requests of the built-in signers with the cluster CAs
//! (`kubernetes.io/kube-apiserver-client` and `...-client-kubelet` with the
//! client CA, `kubernetes.io/kubelet-serving` with the server CA) for
//! `spec.expirationSeconds` (at most a year), writing `status.certificate`;
//! a request that cannot be signed gets the `Failed` condition
//! (`SignerValidationFailure`), as kube-controller-manager's signer.

use super::{decision, finished, request_pem};
use crate::{Config, Result, work};
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kite_client::{Change, Informer, WorkQueue, key_of};
use kube::api::Api;
use std::sync::Arc;
use std::time::Duration;

/// The signer.
pub struct Controller {
    client: kube::Client,
    pki: Arc<kite_pki::Pki>,
    requests: Informer<CertificateSigningRequest>,
    queue: WorkQueue,
}

impl Controller {
    /// A signer with `pki`'s CAs over the shared request informer.
    pub fn new(
        config: &Config,
        pki: Arc<kite_pki::Pki>,
        requests: Informer<CertificateSigningRequest>,
    ) -> Self {
        let queue = WorkQueue::new();
        let q = queue.clone();
        requests.on_change(move |change| {
            if !matches!(change, Change::Deleted(_)) {
                q.add(&key_of(&change.object().metadata));
            }
        });
        Self {
            client: config.client.clone(),
            pki,
            requests,
            queue,
        }
    }

    /// Runs until the future is dropped (the informer is run by the caller).
    pub async fn run(self) {
        self.requests.wait_synced().await;
        work("csrsigning", self.queue.clone(), |key| self.reconcile(key)).await
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(csr) = self.requests.get(&key) else {
            return Ok(None);
        };
        let (approved, denied) = decision(&csr);
        if !approved || denied || finished(&csr) {
            return Ok(None);
        }
        let Some(signer) = kite_pki::Signer::for_name(&csr.spec.signer_name) else {
            return Ok(None);
        };
        let lifetime = csr
            .spec
            .expiration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs);
        let usages = csr.spec.usages.clone().unwrap_or_default();
        let mut signed = (*csr).clone();
        let status = signed.status.get_or_insert_with(Default::default);
        match check_usages(&csr.spec.signer_name, &usages).and_then(|()| {
            self.pki
                .sign_request(&request_pem(&csr), signer, &usages, lifetime)
                .map_err(|e| e.to_string())
        }) {
            Ok(pem) => status.certificate = Some(ByteString(pem.into_bytes())),
            Err(why) => {
                let now = Time(Timestamp::now());
                status.conditions.get_or_insert_with(Vec::new).push(
                    CertificateSigningRequestCondition {
                        type_: "Failed".into(),
                        status: "True".into(),
                        reason: Some("SignerValidationFailure".into()),
                        message: Some(why),
                        last_update_time: Some(now.clone()),
                        last_transition_time: Some(now),
                    },
                );
            }
        }
        let api = Api::<CertificateSigningRequest>::all(self.client.clone());
        crate::util::replace_status(&api, &signed).await?;
        Ok(None)
    }
}

/// The usages each built-in signer allows (kube's signer validation).
fn check_usages(signer: &str, usages: &[String]) -> std::result::Result<(), String> {
    let allowed: &[&str] = match signer {
        "kubernetes.io/kubelet-serving" => {
            &["digital signature", "key encipherment", "server auth"]
        }
        _ => &["digital signature", "key encipherment", "client auth"],
    };
    for usage in usages {
        if !allowed.contains(&usage.as_str()) {
            return Err(format!("invalid usage for {signer} signer: {usage}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signer_allows_only_its_usages() {
        let client = ["digital signature".to_string(), "client auth".to_string()];
        let serving = ["key encipherment".to_string(), "server auth".to_string()];
        assert!(check_usages("kubernetes.io/kube-apiserver-client-kubelet", &client).is_ok());
        assert!(check_usages("kubernetes.io/kubelet-serving", &serving).is_ok());
        assert_eq!(
            check_usages("kubernetes.io/kubelet-serving", &client),
            Err("invalid usage for kubernetes.io/kubelet-serving signer: client auth".into())
        );
    }
}

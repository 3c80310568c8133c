//! Approves kubelet client certificate requests (signer
//! `kubernetes.io/kube-apiserver-client-kubelet`, subject
//! `system:node:<name>` in `system:nodes`, no names, client usages) when a
//! SubjectAccessReview says the requester may create
//! `certificatesigningrequests/selfnodeclient` (a node renewing its own) or
//! `certificatesigningrequests/nodeclient` (a joining node's bootstrap
//! token), worded as kube-controller-manager's approver.

use super::{decision, finished, request_pem};
use crate::{Config, Result, work};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kite_client::{Change, Informer, WorkQueue, key_of};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

/// The signer of kubelet client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// The approver.
pub struct Controller {
    client: kube::Client,
    requests: Informer<CertificateSigningRequest>,
    queue: WorkQueue,
}

/// A permission that approves a recognised request, and the approval's message.
struct Recognizer {
    subresource: &'static str,
    message: &'static str,
    recognize: fn(&CertificateSigningRequest, &kite_pki::RequestInfo) -> bool,
}

const RECOGNIZERS: [Recognizer; 2] = [
    Recognizer {
        subresource: "selfnodeclient",
        message: "Auto approving self kubelet client certificate after SubjectAccessReview.",
        recognize: is_self_node_client,
    },
    Recognizer {
        subresource: "nodeclient",
        message: "Auto approving kubelet client certificate after SubjectAccessReview.",
        recognize: is_node_client,
    },
];

impl Controller {
    /// An approver over the shared request informer.
    pub fn new(config: &Config, requests: Informer<CertificateSigningRequest>) -> Self {
        let queue = WorkQueue::new();
        let q = queue.clone();
        requests.on_change(move |change| {
            if !matches!(change, Change::Deleted(_)) {
                q.add(&key_of(&change.object().metadata));
            }
        });
        Self {
            client: config.client.clone(),
            requests,
            queue,
        }
    }

    /// Runs until the future is dropped (the informer is run by the caller).
    pub async fn run(self) {
        self.requests.wait_synced().await;
        work("csrapproving", self.queue.clone(), |key| {
            self.reconcile(key)
        })
        .await
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(csr) = self.requests.get(&key) else {
            return Ok(None);
        };
        let (approved, denied) = decision(&csr);
        if approved || denied || finished(&csr) {
            return Ok(None);
        }
        let Ok(info) = kite_pki::parse_request(&request_pem(&csr)) else {
            // Unparsable requests are the signer's to fail.
            return Ok(None);
        };
        let mut tried = Vec::new();
        for recognizer in &RECOGNIZERS {
            if !(recognizer.recognize)(&csr, &info) {
                continue;
            }
            tried.push(recognizer.subresource);
            if self.allowed(&csr, recognizer.subresource).await? {
                self.approve(&csr, recognizer.message).await?;
                return Ok(None);
            }
        }
        if !tried.is_empty() {
            tracing::info!(
                csr = %key,
                ?tried,
                "recognized csr but subject access review was not approved"
            );
        }
        Ok(None)
    }

    /// Whether the requester may `create` `certificatesigningrequests/<subresource>`.
    async fn allowed(&self, csr: &CertificateSigningRequest, subresource: &str) -> Result<bool> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: csr.spec.username.clone(),
                groups: csr.spec.groups.clone(),
                uid: csr.spec.uid.clone(),
                extra: csr.spec.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some("certificates.k8s.io".into()),
                    resource: Some("certificatesigningrequests".into()),
                    subresource: Some(subresource.into()),
                    verb: Some("create".into()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let api = Api::<SubjectAccessReview>::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }

    async fn approve(&self, csr: &CertificateSigningRequest, message: &str) -> Result<()> {
        let mut approved = csr.clone();
        let now = Time(Timestamp::now());
        let status = approved.status.get_or_insert_with(Default::default);
        status
            .conditions
            .get_or_insert_with(Vec::new)
            .push(CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: Some("AutoApproved".into()),
                message: Some(message.into()),
                last_update_time: Some(now.clone()),
                last_transition_time: Some(now),
            });
        let name = csr.metadata.name.clone().unwrap_or_default();
        let api = Api::<CertificateSigningRequest>::all(self.client.clone());
        // The resourceVersion makes this a compare-and-swap: a request denied
        // meanwhile is not approved as well.
        let patch = json!({
            "metadata": {"resourceVersion": csr.metadata.resource_version},
            "status": {"conditions": approved.status.and_then(|s| s.conditions)},
        });
        match api
            .patch_approval(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A kubelet client certificate request (kube's `IsKubeletClientCSR`).
fn is_node_client(csr: &CertificateSigningRequest, info: &kite_pki::RequestInfo) -> bool {
    if csr.spec.signer_name != KUBELET_CLIENT_SIGNER {
        return false;
    }
    let usages: BTreeSet<&str> = csr
        .spec
        .usages
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect();
    let allowed = [
        BTreeSet::from(["key encipherment", "digital signature", "client auth"]),
        BTreeSet::from(["digital signature", "client auth"]),
    ];
    info.organizations == ["system:nodes"]
        && info.dns_names.is_empty()
        && info.ip_addresses.is_empty()
        && info.other_names.is_empty()
        && info.common_name.starts_with("system:node:")
        && allowed.contains(&usages)
}

/// A node asking for a client certificate in its own name.
fn is_self_node_client(csr: &CertificateSigningRequest, info: &kite_pki::RequestInfo) -> bool {
    is_node_client(csr, info) && csr.spec.username.as_deref() == Some(info.common_name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;

    fn csr(username: &str, usages: &[&str], signer: &str) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                signer_name: signer.into(),
                username: Some(username.into()),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                ..CertificateSigningRequestSpec::default()
            },
            ..CertificateSigningRequest::default()
        }
    }

    fn info(cn: &str, orgs: &[&str]) -> kite_pki::RequestInfo {
        kite_pki::RequestInfo {
            common_name: cn.into(),
            organizations: orgs.iter().map(|o| o.to_string()).collect(),
            ..kite_pki::RequestInfo::default()
        }
    }

    #[test]
    fn only_plain_kubelet_client_requests_are_recognised() {
        let usages = ["digital signature", "client auth"];
        let node = info("system:node:edge-1", &["system:nodes"]);
        assert!(is_node_client(
            &csr("system:bootstrap:abc", &usages, KUBELET_CLIENT_SIGNER),
            &node
        ));
        assert!(!is_self_node_client(
            &csr("system:bootstrap:abc", &usages, KUBELET_CLIENT_SIGNER),
            &node
        ));
        assert!(is_self_node_client(
            &csr("system:node:edge-1", &usages, KUBELET_CLIENT_SIGNER),
            &node
        ));
        // Other signers, usages, groups or names are someone else's business.
        assert!(!is_node_client(
            &csr("u", &usages, "kubernetes.io/kubelet-serving"),
            &node
        ));
        assert!(!is_node_client(
            &csr("u", &["client auth"], KUBELET_CLIENT_SIGNER),
            &node
        ));
        assert!(!is_node_client(
            &csr("u", &usages, KUBELET_CLIENT_SIGNER),
            &info("system:node:x", &["system:masters"])
        ));
        assert!(!is_node_client(
            &csr("u", &usages, KUBELET_CLIENT_SIGNER),
            &info("admin", &["system:nodes"])
        ));
        let mut named = node.clone();
        named.dns_names.push("edge-1".into());
        assert!(!is_node_client(
            &csr("u", &usages, KUBELET_CLIENT_SIGNER),
            &named
        ));
    }
}

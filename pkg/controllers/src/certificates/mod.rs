//! CertificateSigningRequests: the approver ([`approver`]: kubelet client
//! certificates, after a SubjectAccessReview, as kube-controller-manager's
//! csrapproving controller) and the signer ([`signer`]: approved requests of
//! the built-in signers get their certificate from the cluster CAs, as its
//! csrsigning controller). Serving certificates for kubelets are not approved
//! automatically, as in Kubernetes: an admin approves them
//! (`kubectl certificate approve`).

pub mod approver;
pub mod signer;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

/// Whether the request already carries an Approved or Denied condition: (approved, denied).
pub(crate) fn decision(csr: &CertificateSigningRequest) -> (bool, bool) {
    let conditions = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let has = |t: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status != "False")
    };
    (has("Approved"), has("Denied"))
}

/// Whether the request has been signed (or has failed).
pub(crate) fn finished(csr: &CertificateSigningRequest) -> bool {
    let status = csr.status.as_ref();
    status.is_some_and(|s| s.certificate.as_ref().is_some_and(|c| !c.0.is_empty()))
        || status
            .and_then(|s| s.conditions.as_deref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Failed"))
}

/// The PEM text of the request.
pub(crate) fn request_pem(csr: &CertificateSigningRequest) -> String {
    String::from_utf8_lossy(&csr.spec.request.0).into_owned()
}

//! Signing CertificateSigningRequests for the built-in signers
//! (`kubernetes.io/kube-apiserver-client`, `kube-apiserver-client-kubelet`,
//! `kubelet-serving`), as kube-controller-manager's csrsigning controller
//! does: the subject and names come from the request, the key usages and
//! lifetime from the CSR object, never from the request's own extensions.

use rcgen::{CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};
use time::Duration;

use crate::error::{Error, Result};
use crate::pki::Pki;
use crate::util::{BACKDATE, now, random_serial};

/// Which CA signs for a signer name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    /// `kubernetes.io/kube-apiserver-client` and `...-client-kubelet`: the client CA.
    Client,
    /// `kubernetes.io/kubelet-serving`: the server CA.
    Serving,
}

impl Signer {
    /// The CA for a CSR's `spec.signerName`; `None` for signers kite does not run.
    pub fn for_name(signer_name: &str) -> Option<Self> {
        match signer_name {
            "kubernetes.io/kube-apiserver-client"
            | "kubernetes.io/kube-apiserver-client-kubelet" => Some(Self::Client),
            "kubernetes.io/kubelet-serving" => Some(Self::Serving),
            _ => None,
        }
    }
}

/// The longest and default certificate lifetime (`--cluster-signing-duration`).
pub const MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

impl Pki {
    /// Signs the PEM `request` (a PKCS#10 CSR) with `signer`'s CA for `lifetime`
    /// (at most [`MAX_LIFETIME`]) with the CSR object's `usages`; returns the
    /// certificate PEM.
    pub fn sign_request(
        &self,
        request: &str,
        signer: Signer,
        usages: &[String],
        lifetime: Option<std::time::Duration>,
    ) -> Result<String> {
        let invalid = |reason: String| Error::Request { reason };
        let mut csr = CertificateSigningRequestParams::from_pem(request)
            .map_err(|e| invalid(format!("unable to parse csr: {e}")))?;
        let params = &mut csr.params;
        let lifetime = lifetime.unwrap_or(MAX_LIFETIME).min(MAX_LIFETIME);
        let start = now();
        params.not_before = start - BACKDATE;
        params.not_after = start + Duration::seconds(lifetime.as_secs() as i64);
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = Vec::new();
        params.extended_key_usages = Vec::new();
        params.custom_extensions = Vec::new();
        for usage in usages {
            match usage.as_str() {
                "digital signature" => params.key_usages.push(KeyUsagePurpose::DigitalSignature),
                "key encipherment" => params.key_usages.push(KeyUsagePurpose::KeyEncipherment),
                "client auth" => params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ClientAuth),
                "server auth" => params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ServerAuth),
                other => return Err(invalid(format!("unsupported key usage: {other}"))),
            }
        }
        params.use_authority_key_identifier_extension = true;
        let ca = match signer {
            Signer::Client => &self.client_ca,
            Signer::Serving => &self.server_ca,
        };
        let cert = ca.sign_request(&csr)?;
        Ok(cert.pem())
    }
}

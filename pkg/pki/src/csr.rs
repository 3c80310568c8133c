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

/// What a PKCS#10 request asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// The subject's common name.
    pub common_name: String,
    /// The subject's organizations.
    pub organizations: Vec<String>,
    /// Requested DNS names.
    pub dns_names: Vec<String>,
    /// Requested IP addresses.
    pub ip_addresses: Vec<std::net::IpAddr>,
    /// Requested e-mail addresses and URIs (which no kubelet certificate has).
    pub other_names: Vec<String>,
}

/// Parses a PEM certificate request (signature checked).
pub fn parse_request(pem: &str) -> Result<RequestInfo> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;
    let invalid = |reason: String| Error::Request { reason };
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| invalid(format!("PEM block type must be CERTIFICATE REQUEST: {e}")))?;
    if block.label != "CERTIFICATE REQUEST" && block.label != "NEW CERTIFICATE REQUEST" {
        return Err(invalid("PEM block type must be CERTIFICATE REQUEST".into()));
    }
    let (_, request) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
            .map_err(|e| invalid(format!("unable to parse csr: {e}")))?;
    request
        .verify_signature()
        .map_err(|e| invalid(format!("csr signature is invalid: {e}")))?;
    let subject = &request.certification_request_info.subject;
    let mut info = RequestInfo {
        common_name: subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string(),
        organizations: subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_string))
            .collect(),
        ..RequestInfo::default()
    };
    for extension in request.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(names) = extension {
            for name in &names.general_names {
                match name {
                    GeneralName::DNSName(dns) => info.dns_names.push(dns.to_string()),
                    GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => info.ip_addresses.push(std::net::IpAddr::from(
                            <[u8; 4]>::try_from(*bytes).unwrap_or_default(),
                        )),
                        16 => info.ip_addresses.push(std::net::IpAddr::from(
                            <[u8; 16]>::try_from(*bytes).unwrap_or_default(),
                        )),
                        _ => info.other_names.push(format!("{bytes:?}")),
                    },
                    other => info.other_names.push(format!("{other:?}")),
                }
            }
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    fn request(cn: &str, orgs: &[&str], sans: Vec<SanType>) -> String {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        for org in orgs {
            dn.push(DnType::OrganizationName, *org);
        }
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        let key = KeyPair::generate().expect("key");
        params
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem")
    }

    #[test]
    fn requests_are_read_and_signed_by_the_right_ca() {
        let dir = std::env::temp_dir().join(format!("kite-csr-{}", std::process::id()));
        let pki = Pki::ensure(&crate::PkiConfig::new(&dir)).expect("pki");
        let pem = request("system:node:edge-1", &["system:nodes"], Vec::new());
        let info = parse_request(&pem).expect("parse");
        assert_eq!(info.common_name, "system:node:edge-1");
        assert_eq!(info.organizations, ["system:nodes"]);
        assert!(info.dns_names.is_empty() && info.ip_addresses.is_empty());

        let usages = ["digital signature".to_string(), "client auth".to_string()];
        let cert = pki
            .sign_request(
                &pem,
                Signer::Client,
                &usages,
                Some(std::time::Duration::from_secs(3600)),
            )
            .expect("sign");
        let (_, block) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).expect("pem");
        let (_, x509) = x509_parser::parse_x509_certificate(&block.contents).expect("x509");
        assert_eq!(
            x509.subject()
                .iter_common_name()
                .next()
                .and_then(|c| c.as_str().ok()),
            Some("system:node:edge-1")
        );
        assert!(pki.client_ca.issued(&x509));
        assert!(!pki.server_ca.issued(&x509));
        let lifetime =
            x509.validity().not_after.timestamp() - x509.validity().not_before.timestamp();
        assert_eq!(lifetime, 3600 + 300);

        let serving = request(
            "system:node:edge-1",
            &["system:nodes"],
            vec![SanType::IpAddress("10.0.0.7".parse().expect("ip"))],
        );
        assert_eq!(
            parse_request(&serving).expect("parse").ip_addresses,
            ["10.0.0.7".parse::<std::net::IpAddr>().expect("ip")]
        );
        let usages = ["digital signature".to_string(), "server auth".to_string()];
        let cert = pki
            .sign_request(&serving, Signer::Serving, &usages, None)
            .expect("sign");
        let (_, block) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).expect("pem");
        let (_, x509) = x509_parser::parse_x509_certificate(&block.contents).expect("x509");
        assert!(pki.server_ca.issued(&x509));

        assert!(parse_request("not a request").is_err());
        assert!(
            pki.sign_request(&pem, Signer::Client, &["code signing".to_string()], None)
                .is_err()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

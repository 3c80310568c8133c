//! Who is calling: the user a request is authenticated as.
//!
//! For now the only authenticator is the x509 client certificate, already
//! verified against the client CA during the TLS handshake: the subject's CN
//! is the user name and each O is a group, as kube-apiserver reads them.

use x509_parser::prelude::{FromDer, X509Certificate};

/// An authenticated user, as `user.Info` in Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name, e.g. `system:admin`.
    pub name: String,
    /// The groups, always including `system:authenticated`.
    pub groups: Vec<String>,
}

/// The group every authenticated user belongs to.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

impl UserInfo {
    /// The user a verified client certificate (DER) names, if it names one.
    pub fn from_client_cert(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject = cert.subject();
        let name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())?
            .to_string();
        if name.is_empty() {
            return None;
        }
        let mut groups: Vec<String> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_string))
            .collect();
        groups.push(AUTHENTICATED_GROUP.to_string());
        Some(Self { name, groups })
    }
}

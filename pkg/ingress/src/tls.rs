//! TLS certificates chosen by SNI from the `kubernetes.io/tls` Secrets that
//! served Ingresses name in `spec.tls`.
//!
//! The resolver holds one immutable [`Certificates`] map and swaps it whole
//! when Ingresses or Secrets change, so a handshake sees either the old or
//! the new set, and a renewed Secret is served without a restart. A name no
//! entry covers gets the default certificate (issued by the cluster PKI).

use crate::routes::{self, normalise_host};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// Why a certificate cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The PEM does not parse.
    #[error("{what}: {source}")]
    Pem {
        /// Which part (certificate or key, of which Secret).
        what: String,
        /// The parser's complaint.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refuses the key.
    #[error("{what}: {source}")]
    Key {
        /// Which Secret's key.
        what: String,
        /// rustls's complaint.
        #[source]
        source: rustls::Error,
    },
    /// The Secret lacks `tls.crt` or `tls.key`.
    #[error("secret {0} has no tls.crt and tls.key")]
    Missing(String),
}

/// `pub type Result` as elsewhere in kite.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A certificate and key from PEM.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8], what: &str) -> Result<Arc<CertifiedKey>> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            what: format!("{what} certificate"),
            source,
        })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| Error::Pem {
        what: format!("{what} key"),
        source,
    })?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|source| Error::Key {
            what: what.to_string(),
            source,
        })?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

/// Host names → certificates, one snapshot.
#[derive(Debug, Default)]
pub struct Certificates {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl Certificates {
    /// The certificates `spec.tls` of the served Ingresses name; Secrets that
    /// are missing or broken are logged and skipped (their hosts get the
    /// default certificate). The oldest Ingress wins a contested host.
    pub fn build(
        ingresses: &[Arc<Ingress>],
        default_class: bool,
        secret: impl Fn(&str, &str) -> Option<Arc<Secret>>,
    ) -> Self {
        let mut served: Vec<&Arc<Ingress>> = ingresses
            .iter()
            .filter(|i| routes::serves(i, default_class))
            .collect();
        served.sort_by_key(|i| i.metadata.creation_timestamp.clone().map(|t| t.0));
        let mut certificates = Certificates::default();
        let mut parsed: HashMap<String, Option<Arc<CertifiedKey>>> = HashMap::new();
        for ingress in served {
            let namespace = ingress.metadata.namespace.as_deref().unwrap_or_default();
            for entry in ingress.spec.iter().flat_map(|s| s.tls.iter().flatten()) {
                let Some(name) = entry.secret_name.as_deref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                let key = format!("{namespace}/{name}");
                let cert = parsed
                    .entry(key.clone())
                    .or_insert_with(|| match from_secret(secret(namespace, name), &key) {
                        Ok(cert) => Some(cert),
                        Err(error) => {
                            tracing::warn!(%error, "ingress TLS: skipping a certificate");
                            None
                        }
                    })
                    .clone();
                let Some(cert) = cert else { continue };
                for host in entry.hosts.iter().flatten() {
                    let host = normalise_host(host);
                    let map = match host.strip_prefix("*.") {
                        Some(suffix) => certificates.wildcard.entry(suffix.to_string()),
                        None => certificates.exact.entry(host),
                    };
                    map.or_insert_with(|| cert.clone());
                }
            }
        }
        certificates
    }

    /// The certificate for a server name, if an entry covers it.
    pub fn lookup(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let name = normalise_host(server_name);
        if let Some(cert) = self.exact.get(&name) {
            return Some(cert.clone());
        }
        let (_, suffix) = name.split_once('.')?;
        self.wildcard.get(suffix).cloned()
    }
}

fn from_secret(secret: Option<Arc<Secret>>, key: &str) -> Result<Arc<CertifiedKey>> {
    let secret = secret.ok_or_else(|| Error::Missing(key.to_string()))?;
    let data = secret.data.as_ref();
    let (Some(cert), Some(private)) = (
        data.and_then(|d| d.get("tls.crt")),
        data.and_then(|d| d.get("tls.key")),
    ) else {
        return Err(Error::Missing(key.to_string()));
    };
    certified_key(&cert.0, &private.0, &format!("secret {key}"))
}

/// The rustls resolver: the current [`Certificates`], else the default.
#[derive(Debug)]
pub struct Resolver {
    current: RwLock<Arc<Certificates>>,
    default: Arc<CertifiedKey>,
}

impl Resolver {
    /// A resolver serving only `default` until [`Resolver::set`].
    pub fn new(default: Arc<CertifiedKey>) -> Self {
        Self {
            current: RwLock::default(),
            default,
        }
    }

    /// Swaps in a new set of certificates.
    pub fn set(&self, certificates: Certificates) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(certificates);
    }

    fn snapshot(&self) -> Arc<Certificates> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = hello
            .server_name()
            .and_then(|name| self.snapshot().lookup(name));
        Some(found.unwrap_or_else(|| self.default.clone()))
    }
}

/// The server-side TLS settings: certificates by SNI, h2 then HTTP/1.1.
pub fn server_config(resolver: Arc<Resolver>) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn pem_pair(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let pair = rcgen::generate_simple_self_signed(names).unwrap();
        (pair.cert.pem(), pair.signing_key.serialize_pem())
    }

    fn secret(cert: &str, key: &str) -> Arc<Secret> {
        let mut secret = Secret {
            type_: Some("kubernetes.io/tls".into()),
            ..Default::default()
        };
        secret.data = Some(
            [
                ("tls.crt".to_string(), ByteString(cert.as_bytes().to_vec())),
                ("tls.key".to_string(), ByteString(key.as_bytes().to_vec())),
            ]
            .into(),
        );
        Arc::new(secret)
    }

    fn ingress(tls: serde_json::Value) -> Arc<Ingress> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "a", "namespace": "web"},
                "spec": {"ingressClassName": "kite", "tls": tls},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn certificates_are_chosen_by_exact_name_then_one_label_wildcard() {
        let (a_cert, a_key) = pem_pair(&["a.example"]);
        let (w_cert, w_key) = pem_pair(&["*.wild.example"]);
        let secrets: HashMap<String, Arc<Secret>> = [
            ("web/a".to_string(), secret(&a_cert, &a_key)),
            ("web/wild".to_string(), secret(&w_cert, &w_key)),
            ("web/broken".to_string(), secret("not pem", "")),
        ]
        .into();
        let certificates = Certificates::build(
            &[ingress(json!([
                {"hosts": ["a.example"], "secretName": "a"},
                {"hosts": ["*.wild.example"], "secretName": "wild"},
                {"hosts": ["broken.example"], "secretName": "broken"},
                {"hosts": ["missing.example"], "secretName": "missing"},
            ]))],
            false,
            |ns, name| secrets.get(&format!("{ns}/{name}")).cloned(),
        );
        let a = certificates.lookup("A.example").unwrap();
        let w = certificates.lookup("x.wild.example").unwrap();
        assert_ne!(a.cert[0], w.cert[0]);
        assert!(certificates.lookup("y.x.wild.example").is_none());
        assert!(certificates.lookup("wild.example").is_none());
        assert!(certificates.lookup("broken.example").is_none());
        assert!(certificates.lookup("missing.example").is_none());
    }

    #[test]
    fn a_new_set_replaces_the_old_one_whole() {
        let (cert, key) = pem_pair(&["a.example"]);
        let default = certified_key(cert.as_bytes(), key.as_bytes(), "default").unwrap();
        let resolver = Resolver::new(default);
        assert!(resolver.snapshot().lookup("a.example").is_none());
        let secrets = [("web/a".to_string(), secret(&cert, &key))];
        let map: HashMap<_, _> = secrets.into();
        resolver.set(Certificates::build(
            &[ingress(
                json!([{"hosts": ["a.example"], "secretName": "a"}]),
            )],
            false,
            |ns, name| map.get(&format!("{ns}/{name}")).cloned(),
        ));
        assert!(resolver.snapshot().lookup("a.example").is_some());
        resolver.set(Certificates::default());
        assert!(resolver.snapshot().lookup("a.example").is_none());
    }
}

//! [`Pki`]: the server's certificate authorities, leaf certificates and service-account key,
//! created on first start and reused (renewing leaves) on every later one.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::ca::{Ca, generate_key};
use crate::config::PkiConfig;
use crate::error::Result;
use crate::fs::ensure_private_dir;
use crate::leaf::{self, LEAF_DAYS, LeafFiles, LeafSpec, LeafTarget};
use crate::pemfile::{key_err, parse_certs};
use crate::service_account::ServiceAccountKey;
use crate::util;

/// Subject common name of the apiserver serving certificate.
pub const APISERVER_CN: &str = "kube-apiserver";
/// Subject common name of the admin client certificate.
pub const ADMIN_USER: &str = "system:admin";
/// Group (subject organization) of the admin client certificate.
pub const ADMIN_GROUP: &str = "system:masters";

/// The files under the TLS directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    /// The directory itself.
    pub tls_dir: PathBuf,
    /// `server-ca.crt`: the CA that signs serving certificates.
    pub server_ca_cert: PathBuf,
    /// `server-ca.key`.
    pub server_ca_key: PathBuf,
    /// `client-ca.crt`: the CA that signs client certificates (the apiserver trusts it).
    pub client_ca_cert: PathBuf,
    /// `client-ca.key`.
    pub client_ca_key: PathBuf,
    /// `service.key`: service-account token signing key (PKCS#8).
    pub service_key: PathBuf,
    /// `service.pub`: its public key (SubjectPublicKeyInfo).
    pub service_pub: PathBuf,
    /// `serving-kube-apiserver.crt`: serving certificate followed by the server CA.
    pub serving_cert: PathBuf,
    /// `serving-kube-apiserver.key`.
    pub serving_key: PathBuf,
    /// `client-admin.crt`: the `system:admin` client certificate.
    pub admin_cert: PathBuf,
    /// `client-admin.key`.
    pub admin_key: PathBuf,
}

impl PkiPaths {
    /// The standard file names under `tls_dir`.
    pub fn new(tls_dir: impl Into<PathBuf>) -> Self {
        let tls_dir = tls_dir.into();
        let f = |name: &str| tls_dir.join(name);
        Self {
            server_ca_cert: f("server-ca.crt"),
            server_ca_key: f("server-ca.key"),
            client_ca_cert: f("client-ca.crt"),
            client_ca_key: f("client-ca.key"),
            service_key: f("service.key"),
            service_pub: f("service.pub"),
            serving_cert: f("serving-kube-apiserver.crt"),
            serving_key: f("serving-kube-apiserver.key"),
            admin_cert: f("client-admin.crt"),
            admin_key: f("client-admin.key"),
            tls_dir,
        }
    }
}

/// Knobs that only tests turn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EnsureOptions {
    pub(crate) now: OffsetDateTime,
    /// Validity of leaves issued by this call.
    pub(crate) leaf_days: i64,
}

impl Default for EnsureOptions {
    fn default() -> Self {
        Self {
            now: util::now(),
            leaf_days: LEAF_DAYS,
        }
    }
}

/// The server's PKI, loaded and up to date. Create with [`Pki::ensure`].
pub struct Pki {
    paths: PkiPaths,
    pub(crate) server_ca: Ca,
    pub(crate) client_ca: Ca,
    service_account: ServiceAccountKey,
    serving: LeafFiles,
    admin: LeafFiles,
}

impl Pki {
    /// Creates whatever is missing under `config.tls_dir` and loads the rest: the server and
    /// client CAs (10 years, never replaced), the service-account key, the apiserver serving
    /// certificate and the admin client certificate (365 days; reissued when fewer than
    /// [`RENEW_BEFORE_DAYS`](crate::RENEW_BEFORE_DAYS) remain, when not signed by the current
    /// CA, or when the requested names differ from the existing certificate's).
    pub fn ensure(config: &PkiConfig) -> Result<Self> {
        Self::ensure_with(config, EnsureOptions::default())
    }

    pub(crate) fn ensure_with(config: &PkiConfig, opts: EnsureOptions) -> Result<Self> {
        let paths = PkiPaths::new(&config.tls_dir);
        ensure_private_dir(&paths.tls_dir)?;
        let now = opts.now;

        let server_ca = Ca::ensure(
            &paths.server_ca_cert,
            &paths.server_ca_key,
            "kite-server-ca",
            now,
        )?;
        let client_ca = Ca::ensure(
            &paths.client_ca_cert,
            &paths.client_ca_key,
            "kite-client-ca",
            now,
        )?;
        let service_account = ServiceAccountKey::ensure(&paths.service_key, &paths.service_pub)?;

        let (names, ips) = apiserver_sans(config);
        let serving_spec = LeafSpec::serving(APISERVER_CN, &names, &ips)?;
        let serving = leaf::ensure(
            &server_ca,
            &serving_spec,
            &LeafTarget {
                cert_path: &paths.serving_cert,
                key_path: &paths.serving_key,
                with_chain: true,
            },
            now,
            opts.leaf_days,
        )?;
        let admin = leaf::ensure(
            &client_ca,
            &LeafSpec::client(ADMIN_USER, &[ADMIN_GROUP]),
            &LeafTarget {
                cert_path: &paths.admin_cert,
                key_path: &paths.admin_key,
                with_chain: false,
            },
            now,
            opts.leaf_days,
        )?;

        Ok(Self {
            paths,
            server_ca,
            client_ca,
            service_account,
            serving,
            admin,
        })
    }

    /// Paths of every file.
    pub fn paths(&self) -> &PkiPaths {
        &self.paths
    }

    /// The server CA certificate (PEM, as in `server-ca.crt`): what clients trust.
    pub fn server_ca_pem(&self) -> &str {
        &self.server_ca.cert_pem
    }

    /// The server CA certificate (DER).
    pub fn server_ca_der(&self) -> CertificateDer<'static> {
        self.server_ca.cert_der.clone()
    }

    /// The client CA certificate (PEM, as in `client-ca.crt`): what the apiserver trusts
    /// for client-certificate authentication.
    pub fn client_ca_pem(&self) -> &str {
        &self.client_ca.cert_pem
    }

    /// The client CA certificate (DER), for a rustls client-certificate verifier.
    pub fn client_ca_der(&self) -> CertificateDer<'static> {
        self.client_ca.cert_der.clone()
    }

    /// The apiserver serving certificate followed by the server CA (PEM).
    pub fn serving_cert_chain_pem(&self) -> &str {
        &self.serving.cert_pem
    }

    /// The apiserver serving key (PKCS#8 PEM).
    pub fn serving_key_pem(&self) -> &str {
        &self.serving.key_pem
    }

    /// The serving chain as DER, for `rustls::ServerConfig::with_single_cert`.
    pub fn serving_cert_chain_der(&self) -> Result<Vec<CertificateDer<'static>>> {
        parse_certs(&self.paths.serving_cert, self.serving.cert_pem.as_bytes())
    }

    /// The serving key as DER, for `rustls::ServerConfig::with_single_cert`.
    pub fn serving_key_der(&self) -> Result<PrivateKeyDer<'static>> {
        PrivateKeyDer::from_pem_slice(self.serving.key_pem.as_bytes())
            .map_err(|e| key_err(&self.paths.serving_key, e.to_string()))
    }

    /// The admin client certificate (PEM).
    pub fn admin_cert_pem(&self) -> &str {
        &self.admin.cert_pem
    }

    /// The admin client key (PKCS#8 PEM).
    pub fn admin_key_pem(&self) -> &str {
        &self.admin.key_pem
    }

    /// The service-account signing key.
    pub fn service_account(&self) -> &ServiceAccountKey {
        &self.service_account
    }

    /// Issues a client certificate for user `cn` in groups `orgs`, signed by the client CA and
    /// valid for `days`, with a new ECDSA P-256 key. Returns `(cert_pem, key_pem)`; nothing is
    /// written to disk.
    pub fn issue_client_cert(
        &self,
        cn: &str,
        orgs: &[&str],
        days: u32,
    ) -> Result<(String, String)> {
        let key = generate_key(Path::new(cn))?;
        let spec = LeafSpec::client(cn, orgs);
        let cert = leaf::issue(&self.client_ca, &key, &spec, util::now(), days.into())?;
        Ok((cert, key.serialize_pem()))
    }

    /// Issues a serving certificate (EKU serverAuth) for `cn` with DNS names `names` and
    /// addresses `ips`, signed by the server CA and valid for `days`, with a new ECDSA P-256
    /// key. Returns `(cert_pem, key_pem)`; the certificate PEM is the leaf only (append
    /// [`server_ca_pem`](Self::server_ca_pem) for a chain). Nothing is written to disk.
    pub fn issue_serving_cert(
        &self,
        cn: &str,
        names: &[String],
        ips: &[IpAddr],
        days: u32,
    ) -> Result<(String, String)> {
        let key = generate_key(Path::new(cn))?;
        let spec = LeafSpec::serving(cn, names, ips)?;
        let cert = leaf::issue(&self.server_ca, &key, &spec, util::now(), days.into())?;
        Ok((cert, key.serialize_pem()))
    }
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("paths", &self.paths)
            .field("service_account", &self.service_account)
            .finish_non_exhaustive()
    }
}

/// The DNS names and addresses the apiserver serving certificate covers.
fn apiserver_sans(config: &PkiConfig) -> (Vec<String>, Vec<IpAddr>) {
    let mut names = vec!["localhost".to_string()];
    names.extend(config.hostnames.iter().cloned());
    names.extend(["kubernetes", "kubernetes.default", "kubernetes.default.svc"].map(String::from));
    let domain = config.cluster_domain.trim_matches('.');
    if !domain.is_empty() {
        names.push(format!("kubernetes.default.svc.{domain}"));
    }
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        config.service_ip,
    ];
    ips.extend(config.ips.iter().copied());
    (names, ips)
}

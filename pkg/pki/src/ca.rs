//! Certificate authorities: created once, then loaded on every start and never replaced.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;

use crate::error::{Error, Result};
use crate::fs::{PRIVATE, PUBLIC, enforce_mode, read_optional, write_atomic};
use crate::pemfile::{cert_err, check_key_matches, parse_certs, parse_key, x509};
use crate::util::{BACKDATE, days_until, random_serial};

/// Validity of a newly created CA, in days (10 years).
pub(crate) const CA_DAYS: i64 = 3650;

/// A loaded certificate authority: its certificate and a signer built from its key.
pub(crate) struct Ca {
    /// The CA certificate file, as read or written (may hold a bundle; the CA comes first).
    pub(crate) cert_pem: String,
    /// DER of the CA certificate itself.
    pub(crate) cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    cert_path: PathBuf,
}

impl Ca {
    /// Loads the CA at `cert_path`/`key_path`, or creates a self-signed one named
    /// `<cn_prefix>@<unix time>` when the certificate does not exist yet.
    pub(crate) fn ensure(
        cert_path: &Path,
        key_path: &Path,
        cn_prefix: &str,
        now: OffsetDateTime,
    ) -> Result<Self> {
        let cert = read_optional(cert_path)?;
        let key = read_optional(key_path)?;
        match (cert, key) {
            (Some(cert), Some(key)) => Self::load(cert_path, &cert, key_path, &key, now),
            (Some(_), None) => Err(Error::CaKeyMissing {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            }),
            (None, key) => {
                // A key without a certificate is left over from an interrupted first start:
                // nothing can trust it yet, so a certificate is made for it.
                let (key, new_key) = match key {
                    Some(pem) => (parse_key(key_path, &pem)?, false),
                    None => (generate_key(key_path)?, true),
                };
                Self::create(cert_path, key_path, key, new_key, cn_prefix, now)
            }
        }
    }

    fn load(
        cert_path: &Path,
        cert_bytes: &[u8],
        key_path: &Path,
        key_bytes: &[u8],
        now: OffsetDateTime,
    ) -> Result<Self> {
        let certs = parse_certs(cert_path, cert_bytes)?;
        let cert_der = certs
            .into_iter()
            .next()
            .ok_or_else(|| cert_err(cert_path, "no certificate"))?;
        let key = parse_key(key_path, key_bytes)?;
        {
            let cert = x509(cert_path, &cert_der)?;
            if !cert.is_ca() {
                return Err(Error::NotCa {
                    path: cert_path.to_path_buf(),
                });
            }
            check_key_matches(&cert, &key, cert_path, key_path)?;
            let days = days_until(cert.validity().not_after.to_datetime(), now);
            if days < 0 {
                tracing::error!(file = %cert_path.display(), "certificate authority has expired");
            } else if days < crate::RENEW_BEFORE_DAYS {
                tracing::warn!(
                    file = %cert_path.display(),
                    days,
                    "certificate authority expires soon and is not renewed automatically"
                );
            }
        }
        enforce_mode(key_path, PRIVATE)?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| cert_err(cert_path, e.to_string()))?;
        let cert_pem = String::from_utf8(cert_bytes.to_vec())
            .map_err(|_| cert_err(cert_path, "file is not UTF-8 text"))?;
        Ok(Self {
            cert_pem,
            cert_der,
            issuer,
            cert_path: cert_path.to_path_buf(),
        })
    }

    fn create(
        cert_path: &Path,
        key_path: &Path,
        key: KeyPair,
        new_key: bool,
        cn_prefix: &str,
        now: OffsetDateTime,
    ) -> Result<Self> {
        let cn = format!("{cn_prefix}@{}", now.unix_timestamp());
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, cn.as_str());
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(CA_DAYS);
        params.serial_number = Some(random_serial()?);
        let cert = params
            .self_signed(&key)
            .map_err(|source| generate_err(cert_path, source))?;

        if new_key {
            write_atomic(key_path, key.serialize_pem().as_bytes(), PRIVATE)?;
        } else {
            enforce_mode(key_path, PRIVATE)?;
        }
        let cert_pem = cert.pem();
        write_atomic(cert_path, cert_pem.as_bytes(), PUBLIC)?;
        tracing::info!(file = %cert_path.display(), %cn, "created certificate authority");
        Ok(Self {
            cert_pem,
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            cert_path: cert_path.to_path_buf(),
        })
    }

    /// Signs `params` for the public key of `key`.
    pub(crate) fn sign(
        &self,
        params: &CertificateParams,
        key: &KeyPair,
        what: &str,
    ) -> Result<Certificate> {
        params
            .signed_by(key, &self.issuer)
            .map_err(|source| Error::Generate {
                what: what.to_string(),
                source,
            })
    }

    /// Signs a parsed certificate signing request.
    pub(crate) fn sign_request(
        &self,
        request: &rcgen::CertificateSigningRequestParams,
    ) -> Result<Certificate> {
        request
            .signed_by(&self.issuer)
            .map_err(|source| Error::Generate {
                what: "certificate signing request".to_string(),
                source,
            })
    }

    /// Whether `cert` names this CA as issuer and carries a valid signature from its key.
    pub(crate) fn issued(&self, cert: &X509Certificate<'_>) -> bool {
        let Ok(ca) = x509(&self.cert_path, &self.cert_der) else {
            return false;
        };
        cert.issuer().as_raw() == ca.subject().as_raw()
            && cert.verify_signature(Some(ca.public_key())).is_ok()
    }
}

/// A new ECDSA P-256 key; `what` names the file it is for in errors.
pub(crate) fn generate_key(what: &Path) -> Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| generate_err(what, source))
}

fn generate_err(path: &Path, source: rcgen::Error) -> Error {
    Error::Generate {
        what: path.display().to_string(),
        source,
    }
}

//! Decoding certificate and key files, with errors that name the file.

use std::path::{Path, PathBuf};

use rcgen::{KeyPair, PublicKeyData};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::x509::X509Name;

use crate::error::{Error, Result};

/// Decodes every `CERTIFICATE` block of a PEM file and checks each is parsable X.509.
pub(crate) fn parse_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        certs.push(item.map_err(|e| cert_err(path, e.to_string()))?);
    }
    if certs.is_empty() {
        return Err(cert_err(path, "no PEM CERTIFICATE block found"));
    }
    for cert in &certs {
        x509(path, cert)?;
    }
    Ok(certs)
}

/// Parses one DER certificate, naming `path` on failure.
pub(crate) fn x509<'a>(path: &Path, der: &'a [u8]) -> Result<X509Certificate<'a>> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(cert_err(path, "trailing data after the certificate")),
        Err(e) => Err(cert_err(path, e.to_string())),
    }
}

/// Decodes a PKCS#8 private key (ECDSA P-256/P-384, Ed25519 or RSA) from PEM.
pub(crate) fn parse_key(path: &Path, pem: &[u8]) -> Result<KeyPair> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| key_err(path, e.to_string()))?;
    let PrivateKeyDer::Pkcs8(pkcs8) = &der else {
        return Err(key_err(
            path,
            "only PKCS#8 (\"BEGIN PRIVATE KEY\") keys are supported",
        ));
    };
    KeyPair::try_from(pkcs8).map_err(|e| key_err(path, e.to_string()))
}

/// Fails with [`Error::KeyMismatch`] unless `key` is the key of `cert`.
pub(crate) fn check_key_matches(
    cert: &X509Certificate<'_>,
    key: &KeyPair,
    cert_path: &Path,
    key_path: &Path,
) -> Result<()> {
    if cert.public_key().raw == key.subject_public_key_info().as_slice() {
        Ok(())
    } else {
        Err(Error::KeyMismatch {
            cert: PathBuf::from(cert_path),
            key: PathBuf::from(key_path),
        })
    }
}

/// The first common name of a distinguished name, or `""`.
pub(crate) fn common_name(name: &X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Every organization (O) of a distinguished name, sorted.
pub(crate) fn organizations(name: &X509Name<'_>) -> Vec<String> {
    let mut orgs: Vec<String> = name
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    orgs.sort();
    orgs
}

pub(crate) fn cert_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Certificate {
        path: PathBuf::from(path),
        reason: reason.into(),
    }
}

pub(crate) fn key_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Key {
        path: PathBuf::from(path),
        reason: reason.into(),
    }
}

//! Leaf certificates (serving and client): issued by a [`Ca`], reused across restarts,
//! renewed when close to expiry or when the requested names change.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::ca::{Ca, generate_key};
use crate::error::{Error, Result};
use crate::fs::{PRIVATE, PUBLIC, enforce_mode, read_optional, write_atomic};
use crate::pemfile::{
    cert_err, check_key_matches, common_name, key_err, organizations, parse_certs, parse_key, x509,
};
use crate::util::{BACKDATE, days_until, random_serial};

/// Validity of leaf certificates, in days.
pub(crate) const LEAF_DAYS: i64 = 365;

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum San {
    Dns(String),
    Ip(IpAddr),
}

/// What a leaf certificate is for: its extended key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Usage {
    Server,
    Client,
}

/// Everything that identifies a leaf certificate; an existing certificate that differs in any
/// of these is reissued.
#[derive(Debug, Clone)]
pub(crate) struct LeafSpec {
    cn: String,
    /// Sorted, deduplicated organizations (Kubernetes groups for client certificates).
    orgs: Vec<String>,
    sans: BTreeSet<San>,
    usage: Usage,
}

impl LeafSpec {
    /// A serving certificate for `names` and `ips`.
    pub(crate) fn serving(cn: &str, names: &[String], ips: &[IpAddr]) -> Result<Self> {
        let mut sans = BTreeSet::new();
        for name in names {
            sans.insert(San::Dns(dns_name(name)?));
        }
        sans.extend(ips.iter().copied().map(San::Ip));
        Ok(Self {
            cn: cn.to_string(),
            orgs: Vec::new(),
            sans,
            usage: Usage::Server,
        })
    }

    /// A client certificate for user `cn` in groups `orgs`.
    pub(crate) fn client(cn: &str, orgs: &[&str]) -> Self {
        let orgs: BTreeSet<String> = orgs.iter().map(|o| (*o).to_string()).collect();
        Self {
            cn: cn.to_string(),
            orgs: orgs.into_iter().collect(),
            sans: BTreeSet::new(),
            usage: Usage::Client,
        }
    }

    fn params(&self, now: OffsetDateTime, days: i64) -> Result<CertificateParams> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        for org in &self.orgs {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org.as_str());
        }
        params
            .distinguished_name
            .push(DnType::CommonName, self.cn.as_str());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match self.usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.subject_alt_names = self
            .sans
            .iter()
            .map(|san| match san {
                San::Dns(name) => name
                    .clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|_| Error::InvalidSan { name: name.clone() }),
                San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            })
            .collect::<Result<_>>()?;
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(days);
        params.serial_number = Some(random_serial()?);
        Ok(params)
    }

    /// Why `cert` does not fit this spec any more, or `None` when it does.
    fn mismatch(&self, cert: &X509Certificate<'_>) -> Option<&'static str> {
        if common_name(cert.subject()) != self.cn {
            return Some("subject common name changed");
        }
        if organizations(cert.subject()) != self.orgs {
            return Some("subject organizations changed");
        }
        let eku_ok = match cert.extended_key_usage() {
            Ok(Some(eku)) => match self.usage {
                Usage::Server => eku.value.server_auth,
                Usage::Client => eku.value.client_auth,
            },
            _ => false,
        };
        if !eku_ok {
            return Some("extended key usage changed");
        }
        if cert_sans(cert).as_ref() != Some(&self.sans) {
            return Some("subject alternative names changed");
        }
        None
    }
}

/// The subject alternative names of `cert` (DNS names lower-cased), or `None` when the
/// extension is unparsable or holds names of other kinds.
pub(crate) fn cert_sans(cert: &X509Certificate<'_>) -> Option<BTreeSet<San>> {
    let mut sans = BTreeSet::new();
    let Ok(ext) = cert.subject_alternative_name() else {
        return None;
    };
    let Some(ext) = ext else {
        return Some(sans);
    };
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(dns) => {
                sans.insert(San::Dns(dns.to_ascii_lowercase()));
            }
            GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?),
                    16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?),
                    _ => return None,
                };
                sans.insert(San::Ip(ip));
            }
            _ => return None,
        }
    }
    Some(sans)
}

/// Checks and normalises (lower-cases) a DNS name; a leading `*.` wildcard is allowed.
fn dns_name(name: &str) -> Result<String> {
    let lower = name.trim().to_ascii_lowercase();
    let body = lower.strip_prefix("*.").unwrap_or(&lower);
    let valid = !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(lower)
    } else {
        Err(Error::InvalidSan {
            name: name.to_string(),
        })
    }
}

/// Signs a certificate for `spec` and `key` with `ca`, valid `days` from `now`; returns its PEM.
pub(crate) fn issue(
    ca: &Ca,
    key: &KeyPair,
    spec: &LeafSpec,
    now: OffsetDateTime,
    days: i64,
) -> Result<String> {
    let params = spec.params(now, days)?;
    Ok(ca.sign(&params, key, &spec.cn)?.pem())
}

/// A certificate file and its key, as PEM text.
#[derive(Clone)]
pub(crate) struct LeafFiles {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// Where a leaf lives and how it is written.
pub(crate) struct LeafTarget<'a> {
    pub(crate) cert_path: &'a Path,
    pub(crate) key_path: &'a Path,
    /// Append the CA certificate after the leaf (serving certificates).
    pub(crate) with_chain: bool,
}

/// Loads the leaf at `target` if it is still good (issued by `ca`, fits `spec`, at least
/// [`RENEW_BEFORE_DAYS`](crate::RENEW_BEFORE_DAYS) left), otherwise issues a new one for the
/// existing key (or a new key when there is none).
pub(crate) fn ensure(
    ca: &Ca,
    spec: &LeafSpec,
    target: &LeafTarget<'_>,
    now: OffsetDateTime,
    days: i64,
) -> Result<LeafFiles> {
    let LeafTarget {
        cert_path,
        key_path,
        with_chain,
    } = *target;
    let (key, key_pem, new_key) = match read_optional(key_path)? {
        Some(bytes) => {
            let key = parse_key(key_path, &bytes)?;
            let pem = String::from_utf8(bytes)
                .map_err(|_| key_err(key_path, "file is not UTF-8 text"))?;
            (key, pem, false)
        }
        None => {
            let key = generate_key(key_path)?;
            let pem = key.serialize_pem();
            (key, pem, true)
        }
    };

    let reason = match read_optional(cert_path)? {
        None => "missing".to_string(),
        Some(bytes) => {
            let certs = parse_certs(cert_path, &bytes)?;
            let leaf = x509(
                cert_path,
                certs
                    .first()
                    .ok_or_else(|| cert_err(cert_path, "no certificate"))?,
            )?;
            if new_key {
                "private key was missing".to_string()
            } else {
                check_key_matches(&leaf, &key, cert_path, key_path)?;
                match renew_reason(ca, spec, &leaf, now) {
                    Some(reason) => reason,
                    None => {
                        enforce_mode(key_path, PRIVATE)?;
                        let cert_pem = String::from_utf8(bytes)
                            .map_err(|_| cert_err(cert_path, "file is not UTF-8 text"))?;
                        return Ok(LeafFiles { cert_pem, key_pem });
                    }
                }
            }
        }
    };

    let mut cert_pem = issue(ca, &key, spec, now, days)?;
    if with_chain {
        if !cert_pem.ends_with('\n') {
            cert_pem.push('\n');
        }
        cert_pem.push_str(&ca.cert_pem);
    }
    if new_key {
        write_atomic(key_path, key_pem.as_bytes(), PRIVATE)?;
    } else {
        enforce_mode(key_path, PRIVATE)?;
    }
    write_atomic(cert_path, cert_pem.as_bytes(), PUBLIC)?;
    tracing::info!(file = %cert_path.display(), %reason, days, "issued certificate");
    Ok(LeafFiles { cert_pem, key_pem })
}

fn renew_reason(
    ca: &Ca,
    spec: &LeafSpec,
    cert: &X509Certificate<'_>,
    now: OffsetDateTime,
) -> Option<String> {
    if !ca.issued(cert) {
        return Some("not issued by the current certificate authority".to_string());
    }
    let days = days_until(cert.validity().not_after.to_datetime(), now);
    if days < crate::RENEW_BEFORE_DAYS {
        return Some(format!("expires in {days} days"));
    }
    if cert.validity().not_before.to_datetime() > now + BACKDATE {
        return Some("not valid yet".to_string());
    }
    spec.mismatch(cert).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_checked_and_lower_cased() {
        assert_eq!(
            dns_name("Node-1.Example.COM").unwrap(),
            "node-1.example.com"
        );
        assert_eq!(dns_name("*.apps.example").unwrap(), "*.apps.example");
        for bad in ["", "a..b", "has space", "ünicode.example", "a.*.b"] {
            assert!(dns_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}

//! `kite certificate check`: what certificates the TLS directory holds and when they expire.

use std::fmt;
use std::fs;
use std::path::Path;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::RENEW_BEFORE_DAYS;
use crate::error::Result;
use crate::fs::{read, read_err};
use crate::pemfile::{cert_err, common_name, parse_certs, x509};
use crate::util::{self, days_until};

/// One certificate file (the first certificate in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// File name within the directory, e.g. `server-ca.crt`.
    pub file: String,
    /// Subject common name.
    pub subject_cn: String,
    /// Issuer common name.
    pub issuer_cn: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Whole days left, rounded down; negative once expired.
    pub days_remaining: i64,
    /// Whether the certificate is a CA (basicConstraints CA:TRUE).
    pub is_ca: bool,
}

/// How close a certificate is to expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// At least [`RENEW_BEFORE_DAYS`] left.
    Ok,
    /// Fewer than [`RENEW_BEFORE_DAYS`] left: leaves are renewed on the next start.
    Warning,
    /// Already expired.
    Expired,
}

impl CertInfo {
    /// The certificate's status by [`days_remaining`](Self::days_remaining).
    pub fn status(&self) -> CertStatus {
        if self.days_remaining < 0 {
            CertStatus::Expired
        } else if self.days_remaining < RENEW_BEFORE_DAYS {
            CertStatus::Warning
        } else {
            CertStatus::Ok
        }
    }
}

impl fmt::Display for CertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Expired => "EXPIRED",
        })
    }
}

/// Describes every `*.crt` file in `tls_dir`, sorted by file name.
pub fn check(tls_dir: &Path) -> Result<Vec<CertInfo>> {
    check_at(tls_dir, util::now())
}

pub(crate) fn check_at(tls_dir: &Path, now: OffsetDateTime) -> Result<Vec<CertInfo>> {
    let entries = fs::read_dir(tls_dir).map_err(|e| read_err(tls_dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| read_err(tls_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".crt") && !name.starts_with('.') {
            files.push(name);
        }
    }
    files.sort();

    let mut infos = Vec::with_capacity(files.len());
    for file in files {
        let path = tls_dir.join(&file);
        let certs = parse_certs(&path, &read(&path)?)?;
        let cert = x509(
            &path,
            certs
                .first()
                .ok_or_else(|| cert_err(&path, "no certificate"))?,
        )?;
        let not_after = cert.validity().not_after.to_datetime();
        infos.push(CertInfo {
            subject_cn: common_name(cert.subject()),
            issuer_cn: common_name(cert.issuer()),
            not_before: cert.validity().not_before.to_datetime(),
            not_after,
            days_remaining: days_until(not_after, now),
            is_ca: cert.is_ca(),
            file,
        });
    }
    Ok(infos)
}

/// Renders `certs` as a table with aligned columns FILE, SUBJECT, ISSUER, EXPIRES
/// (RFC 3339), RESIDUAL (`364d`) and STATUS, one line per certificate.
pub fn render_table(certs: &[CertInfo]) -> String {
    const HEADER: [&str; 6] = ["FILE", "SUBJECT", "ISSUER", "EXPIRES", "RESIDUAL", "STATUS"];
    let mut rows = vec![HEADER.map(String::from)];
    for c in certs {
        rows.push([
            c.file.clone(),
            c.subject_cn.clone(),
            c.issuer_cn.clone(),
            c.not_after
                .format(&Rfc3339)
                .unwrap_or_else(|_| c.not_after.to_string()),
            format!("{}d", c.days_remaining),
            c.status().to_string(),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

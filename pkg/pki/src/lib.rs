//! kite's PKI: certificate authorities, serving and client certificates, the service-account
//! signing key, kubeconfig files and join tokens (the counterpart of k3s's certificate
//! handling).
//!
//! Start with [`Pki::ensure`], which creates everything under [`PkiConfig::tls_dir`] on first
//! start and reuses it afterwards, renewing leaf certificates that are close to expiry or
//! whose names changed. Around it: [`write_kubeconfig`] for the admin kubeconfig,
//! [`ensure_token`] / [`parse_token`] for join tokens, and [`check`] / [`render_table`] for
//! `kite certificate check`.
//!
//! All keys are ECDSA P-256 in PKCS#8 PEM; private keys are written with mode 0600, the TLS
//! directory with 0700, and every file is replaced atomically.

// Tests may unwrap; library code may not (checked by the non-test clippy pass).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod ca;
mod check;
mod config;
mod csr;
mod error;
mod fs;
mod kubeconfig;
mod leaf;
mod pemfile;
mod pki;
mod service_account;
mod token;
mod util;

#[cfg(test)]
mod tests;

pub use check::{CertInfo, CertStatus, check, render_table};
pub use config::{PkiConfig, split_sans};
pub use csr::{MAX_LIFETIME, RequestInfo, Signer, parse_request};
pub use error::{Error, Result};
pub use kubeconfig::{
    Cluster, Context, DEFAULT_NAME, Kubeconfig, NamedCluster, NamedContext, NamedUser, User,
    write_kubeconfig,
};
pub use pki::{ADMIN_GROUP, ADMIN_USER, APISERVER_CN, Pki, PkiPaths};
pub use service_account::ServiceAccountKey;
pub use token::{SERVER_USER, TOKEN_PREFIX, Token, ca_hash, ensure_token, parse_token};

/// Leaf certificates with fewer days left than this are renewed at start; `kite certificate
/// check` reports them as `WARNING`.
pub const RENEW_BEFORE_DAYS: i64 = 120;

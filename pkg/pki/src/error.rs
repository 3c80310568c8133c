//! The crate's error type: every variant names the file or value it is about.

use std::io;
use std::path::PathBuf;

/// Errors from creating, loading and checking certificates, keys, kubeconfigs and tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A certificate signing request cannot be signed as asked.
    #[error("{reason}")]
    Request {
        /// Why.
        reason: String,
    },

    /// A file or directory could not be read.
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// A file or directory could not be written (or its mode set).
    #[error("cannot write {}", .path.display())]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// A certificate file is not valid PEM or holds an unparsable certificate.
    #[error("invalid certificate in {}: {reason}", .path.display())]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A private key file is not a valid PKCS#8 PEM key.
    #[error("invalid private key in {}: {reason}", .path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A private key does not belong to the certificate next to it.
    #[error("private key {} does not match certificate {}", .key.display(), .cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },

    /// A certificate authority's certificate exists but its key does not.
    #[error(
        "{} exists but its key {} is missing; refusing to replace the certificate authority",
        .cert.display(),
        .key.display()
    )]
    CaKeyMissing {
        /// The CA certificate that exists.
        cert: PathBuf,
        /// The key file that is missing.
        key: PathBuf,
    },

    /// A file that must hold a certificate authority holds a non-CA certificate.
    #[error("{} is not a certificate authority (basicConstraints CA:FALSE)", .path.display())]
    NotCa {
        /// The certificate file.
        path: PathBuf,
    },

    /// Building or signing a certificate or key failed.
    #[error("cannot generate {what}")]
    Generate {
        /// What was being generated (a file name or a subject).
        what: String,
        /// The underlying rcgen error.
        #[source]
        source: rcgen::Error,
    },

    /// A subject alternative name is not a valid DNS name or IP address.
    #[error("invalid subject alternative name {name:?}")]
    InvalidSan {
        /// The offending value.
        name: String,
    },

    /// A join token (from the command line) could not be parsed.
    #[error("invalid token: {reason}")]
    InvalidToken {
        /// What is wrong with it.
        reason: String,
    },

    /// The token file on disk could not be parsed.
    #[error("invalid token in {}: {reason}", .path.display())]
    InvalidTokenFile {
        /// The token file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A full `K10...` token was given whose CA hash does not match the cluster CA.
    #[error("token CA hash {given} does not match the hash {actual} of {}", .ca.display())]
    TokenCaMismatch {
        /// The CA certificate file that was hashed.
        ca: PathBuf,
        /// The hash in the given token.
        given: String,
        /// The hash of the CA file.
        actual: String,
    },

    /// The kubeconfig could not be encoded as YAML.
    #[error("cannot encode kubeconfig {}", .path.display())]
    KubeconfigEncode {
        /// The kubeconfig file.
        path: PathBuf,
        /// The serializer's error.
        #[source]
        source: Box<serde_saphyr::ser::Error>,
    },

    /// A kubeconfig could not be parsed.
    #[error("invalid kubeconfig: {reason}")]
    KubeconfigDecode {
        /// The parser's message.
        reason: String,
    },

    /// The system random number generator failed.
    #[error("system random number generator failed")]
    Random,

    /// Signing with the service-account key failed.
    #[error("cannot sign with the service-account key")]
    Sign,
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

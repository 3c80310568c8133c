//! Writing kubeconfig files: one cluster, user and context, all named `default`, with the
//! certificates embedded as base64 `*-data` fields.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fs::write_atomic;

/// The name used for the cluster, the user and the context.
pub const DEFAULT_NAME: &str = "default";

/// A kubeconfig document (the subset kite writes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kubeconfig {
    /// Always `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always `Config`.
    pub kind: String,
    /// Named clusters.
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    /// Named contexts.
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    /// The context kubectl uses.
    #[serde(rename = "current-context", default)]
    pub current_context: String,
    /// Named users.
    #[serde(default)]
    pub users: Vec<NamedUser>,
}

/// A `clusters[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCluster {
    /// The cluster's name.
    pub name: String,
    /// Its connection details.
    pub cluster: Cluster,
}

/// Where the apiserver is and which CA it is signed by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// `https://host:port`.
    pub server: String,
    /// Base64 of the CA certificate PEM.
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
}

/// A `contexts[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedContext {
    /// The context's name.
    pub name: String,
    /// Which cluster and user it pairs.
    pub context: Context,
}

/// A cluster and user pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Name of a `clusters[]` entry.
    pub cluster: String,
    /// Name of a `users[]` entry.
    pub user: String,
}

/// A `users[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedUser {
    /// The user's name.
    pub name: String,
    /// Its credentials.
    pub user: User,
}

/// Client-certificate credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Base64 of the client certificate PEM.
    #[serde(
        rename = "client-certificate-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate_data: Option<String>,
    /// Base64 of the client key PEM.
    #[serde(
        rename = "client-key-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key_data: Option<String>,
}

impl Kubeconfig {
    /// A kubeconfig for `server_url` trusting `cluster_ca_pem`, authenticating with the
    /// client certificate and key; everything named [`DEFAULT_NAME`].
    pub fn new(
        server_url: &str,
        cluster_ca_pem: &str,
        client_cert_pem: &str,
        client_key_pem: &str,
    ) -> Self {
        Self {
            api_version: "v1".to_string(),
            kind: "Config".to_string(),
            clusters: vec![NamedCluster {
                name: DEFAULT_NAME.to_string(),
                cluster: Cluster {
                    server: server_url.to_string(),
                    certificate_authority_data: Some(STANDARD.encode(cluster_ca_pem)),
                },
            }],
            contexts: vec![NamedContext {
                name: DEFAULT_NAME.to_string(),
                context: Context {
                    cluster: DEFAULT_NAME.to_string(),
                    user: DEFAULT_NAME.to_string(),
                },
            }],
            current_context: DEFAULT_NAME.to_string(),
            users: vec![NamedUser {
                name: DEFAULT_NAME.to_string(),
                user: User {
                    client_certificate_data: Some(STANDARD.encode(client_cert_pem)),
                    client_key_data: Some(STANDARD.encode(client_key_pem)),
                },
            }],
        }
    }

    /// Parses a kubeconfig YAML document.
    pub fn from_yaml(yaml: &str) -> Result<Self> {
        serde_saphyr::from_str(yaml).map_err(|e| Error::KubeconfigDecode {
            reason: e.to_string(),
        })
    }
}

/// Writes a kubeconfig (see [`Kubeconfig::new`]) to `path` atomically with exactly `mode`
/// (also when replacing a file with another mode), creating parent directories.
pub fn write_kubeconfig(
    path: &Path,
    mode: u32,
    server_url: &str,
    cluster_ca_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
) -> Result<()> {
    let config = Kubeconfig::new(server_url, cluster_ca_pem, client_cert_pem, client_key_pem);
    // Plain one-line scalars, as kubectl writes them: scripts grep these files.
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    let yaml = serde_saphyr::to_string_with_options(&config, options).map_err(|source| {
        Error::KubeconfigEncode {
            path: path.to_path_buf(),
            source: Box::new(source),
        }
    })?;
    write_atomic(path, yaml.as_bytes(), mode)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn kubeconfig_parses_back_with_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/kite/kite.yaml");
        write_kubeconfig(&path, 0o600, "https://127.0.0.1:6443", "CA", "CERT", "KEY").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let kc = Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(
            kc,
            Kubeconfig::new("https://127.0.0.1:6443", "CA", "CERT", "KEY")
        );
        assert_eq!(kc.api_version, "v1");
        assert_eq!(kc.kind, "Config");
        assert_eq!(kc.current_context, "default");
        assert_eq!(kc.clusters[0].name, "default");
        assert_eq!(kc.clusters[0].cluster.server, "https://127.0.0.1:6443");
        let b64 = |s: &Option<String>| {
            String::from_utf8(STANDARD.decode(s.as_ref().unwrap()).unwrap()).unwrap()
        };
        assert_eq!(
            b64(&kc.clusters[0].cluster.certificate_authority_data),
            "CA"
        );
        assert_eq!(b64(&kc.users[0].user.client_certificate_data), "CERT");
        assert_eq!(b64(&kc.users[0].user.client_key_data), "KEY");
        assert_eq!(
            kc.contexts[0].context,
            Context {
                cluster: "default".into(),
                user: "default".into()
            }
        );
        // the keys kubectl looks for are spelled as kubectl spells them
        for key in [
            "apiVersion:",
            "current-context: default",
            "certificate-authority-data:",
            "client-certificate-data:",
            "client-key-data:",
        ] {
            assert!(text.contains(key), "{key} missing from\n{text}");
        }
    }

    #[test]
    fn kubeconfig_mode_is_exact_even_when_overwriting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kite.yaml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        write_kubeconfig(&path, 0o600, "https://x:6443", "a", "b", "c").unwrap();
        assert_eq!(mode(&path), 0o600);
        write_kubeconfig(&path, 0o644, "https://x:6443", "a", "b", "c").unwrap();
        assert_eq!(mode(&path), 0o644);
        write_kubeconfig(&path, 0o600, "https://x:6443", "a", "b", "c").unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}

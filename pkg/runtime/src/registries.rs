//! `/etc/kite/registries.yaml`, in k3s's format: per-registry mirrors (their
//! endpoints, tried in order before the registry itself, and repository
//! rewrites), with `"*"` standing for every registry, and per-host settings
//! (credentials and TLS).
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000"]
//!     rewrite:
//!       "^library/(.*)": "mirrored/$1"
//! configs:
//!   "127.0.0.1:5000":
//!     auth: {username: kite, password: secret}
//!     tls: {insecure_skip_verify: true}
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Errors reading the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registries {
    /// Registry host (or `*`) → its mirror.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Endpoint host (`host[:port]`) → its settings.
    #[serde(default)]
    pub configs: BTreeMap<String, HostConfig>,
}

/// A registry's mirror endpoints.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// Endpoint URLs (`https://host:port`, `http://host`), tried in order.
    #[serde(default)]
    pub endpoint: Vec<String>,
    /// Regular expression → replacement (`$1`...) for the repository path
    /// when pulling from a mirror endpoint.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

/// Settings of one endpoint host.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Credentials.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Credentials for an endpoint.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// User name (basic auth, or for the token service).
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// `base64(username:password)`, as in Docker's config.json.
    #[serde(default)]
    pub auth: Option<String>,
    /// A bearer token sent as is.
    #[serde(default)]
    pub registrytoken: Option<String>,
    /// An OAuth2 refresh token (not supported: rejected with a clear message).
    #[serde(default)]
    pub identitytoken: Option<String>,
}

/// TLS settings for an endpoint.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Extra CA certificate (PEM) to trust.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (not supported yet).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client key (not supported yet).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Where an image is fetched from: one endpoint and the repository there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub host: String,
    /// The repository path at that endpoint (after rewrites).
    pub repository: String,
    /// Whether this is the registry itself (not a mirror).
    pub default: bool,
}

impl Registries {
    /// Reads `path`; a missing file means no mirrors and no settings.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(Error::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Self::parse(&text).map_err(|message| Error::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses the YAML text and checks the endpoints and rewrites.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let parsed: Self = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        for (registry, mirror) in &parsed.mirrors {
            for endpoint in &mirror.endpoint {
                parse_url(endpoint)
                    .map_err(|e| format!("mirrors.{registry}.endpoint {endpoint:?}: {e}"))?;
            }
            for pattern in mirror.rewrite.keys() {
                regex::Regex::new(pattern)
                    .map_err(|e| format!("mirrors.{registry}.rewrite {pattern:?}: {e}"))?;
            }
        }
        for (host, config) in &parsed.configs {
            if let Some(auth) = &config.auth
                && auth.identitytoken.is_some()
            {
                return Err(format!(
                    "configs.{host}.auth.identitytoken: OAuth2 identity tokens are not supported; use username/password or registrytoken"
                ));
            }
        }
        Ok(parsed)
    }

    /// The endpoints to try for `registry`/`repository`, in order: the
    /// mirror's (or `*`'s) endpoints with rewrites applied, then the registry
    /// itself.
    pub fn endpoints(&self, registry: &str, repository: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if let Some(mirror) = self.mirrors.get(registry).or_else(|| self.mirrors.get("*")) {
            let repository = rewrite(&mirror.rewrite, repository);
            for url in &mirror.endpoint {
                if let Ok((scheme, host)) = parse_url(url) {
                    out.push(Endpoint {
                        scheme,
                        host,
                        repository: repository.clone(),
                        default: false,
                    });
                }
            }
        }
        let host = if registry == crate::reference::DEFAULT_REGISTRY {
            "registry-1.docker.io".to_string()
        } else {
            registry.to_string()
        };
        if !out.iter().any(|e| e.host == host) {
            out.push(Endpoint {
                scheme: "https".into(),
                host,
                repository: repository.to_string(),
                default: true,
            });
        }
        out
    }

    /// The settings of `host`, if any.
    pub fn config(&self, host: &str) -> Option<&HostConfig> {
        self.configs.get(host)
    }
}

/// The first matching rewrite applied to `repository`.
fn rewrite(rules: &BTreeMap<String, String>, repository: &str) -> String {
    for (pattern, replacement) in rules {
        if let Ok(re) = regex::Regex::new(pattern)
            && re.is_match(repository)
        {
            return re.replace(repository, replacement.as_str()).into_owned();
        }
    }
    repository.to_string()
}

/// `scheme://host[:port][/v2]` → (scheme, host[:port]); a bare host is HTTPS.
fn parse_url(url: &str) -> Result<(String, String), &'static str> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("https".to_string(), url),
    };
    if scheme != "http" && scheme != "https" {
        return Err("the scheme must be http or https");
    }
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err("no host");
    }
    Ok((scheme, host.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_come_first_with_rewrites_then_the_registry() {
        let r = Registries::parse(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:5000\", \"mirror.example.com\"]\n    rewrite:\n      \"^library/(.*)\": \"cache/$1\"\n",
        )
        .unwrap();
        let e = r.endpoints("docker.io", "library/busybox");
        assert_eq!(e.len(), 3);
        assert_eq!(
            (
                e[0].scheme.as_str(),
                e[0].host.as_str(),
                e[0].repository.as_str()
            ),
            ("http", "127.0.0.1:5000", "cache/busybox")
        );
        assert_eq!(e[1].scheme, "https");
        assert_eq!(
            (e[2].host.as_str(), e[2].repository.as_str(), e[2].default),
            ("registry-1.docker.io", "library/busybox", true)
        );
    }

    #[test]
    fn the_wildcard_mirror_serves_every_registry() {
        let r =
            Registries::parse("mirrors:\n  \"*\":\n    endpoint: [\"http://10.0.0.1\"]\n").unwrap();
        let e = r.endpoints("quay.io", "x/y");
        assert_eq!(e[0].host, "10.0.0.1");
        assert_eq!(e[1].host, "quay.io");
    }

    #[test]
    fn bad_files_are_rejected_with_the_field() {
        let err = Registries::parse("mirrors:\n  docker.io:\n    endpoints: []\n").unwrap_err();
        assert!(err.contains("endpoints"), "{err}");
        let err =
            Registries::parse("mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n").unwrap_err();
        assert!(err.contains("http or https"), "{err}");
        let err =
            Registries::parse("mirrors:\n  docker.io:\n    rewrite: {\"(\": \"x\"}\n").unwrap_err();
        assert!(err.contains("rewrite"), "{err}");
    }

    #[test]
    fn an_empty_or_missing_file_is_no_configuration() {
        assert!(Registries::parse("").unwrap().mirrors.is_empty());
        let missing = Registries::load(Path::new("/nonexistent/registries.yaml")).unwrap();
        assert!(missing.configs.is_empty());
    }
}

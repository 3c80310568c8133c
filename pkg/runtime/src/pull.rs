//! Pulling images from registries (the OCI distribution API, through
//! `oci-client`): mirrors and rewrites from [`Registries`], credentials from
//! `registries.yaml` or the pod's `imagePullSecrets`, plain HTTP where the
//! endpoint says `http://` (and for loopback registries, as Docker allows).
//!
//! Blobs are streamed to the store's ingest area while hashed; what was
//! fetched is laid out as an OCI layout and stored by the same code path as a
//! tarball import ([`crate::import`]), so every digest, size and `diff_id` is
//! checked and nothing half-pulled is ever published.

use crate::digest::{Digest, HashingWriter};
use crate::import::{self, Ingest, Ingested};
use crate::reference::Reference;
use crate::registries::{Endpoint, Registries};
use crate::store::{Image, Store};
use crate::unpack::OverlayWhiteouts;
use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;

/// Manifest media types kite understands.
const ACCEPTED: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Manifests and configs larger than this are refused.
const MAX_DOCUMENT: usize = 8 << 20;

/// Credentials for a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// User name and password.
    Basic(String, String),
    /// A bearer token sent as is.
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic(user, _) => write!(f, "Basic({user}, ***)"),
            Self::Bearer(_) => write!(f, "Bearer(***)"),
        }
    }
}

/// Credentials for the registries whose host (and path prefix) `server`
/// matches, as a `kubernetes.io/dockerconfigjson` Secret names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// `host[:port][/path]`, `*.` wildcards allowed in the host.
    pub server: String,
    /// The credentials.
    pub auth: Auth,
}

/// Errors of a pull.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every endpoint failed; the message is the last failure.
    #[error("failed to pull and unpack image \"{reference}\": {message}")]
    Failed {
        /// The image.
        reference: String,
        /// What went wrong.
        message: String,
    },
    /// Credentials cannot be read.
    #[error("{0}")]
    Credentials(String),
}

/// Reads the credentials of a `.dockerconfigjson` (`{"auths": {...}}`) or
/// legacy `.dockercfg` (the `auths` map alone) document.
pub fn credentials_from_docker_config(data: &[u8]) -> Result<Vec<Credential>, Error> {
    let value: Value = serde_json::from_slice(data)
        .map_err(|e| Error::Credentials(format!("invalid docker config JSON: {e}")))?;
    let auths = value.get("auths").unwrap_or(&value);
    let Some(auths) = auths.as_object() else {
        return Err(Error::Credentials(
            "docker config JSON has no \"auths\" object".into(),
        ));
    };
    let mut out = Vec::new();
    for (server, entry) in auths {
        let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_string);
        let (mut user, mut password) = (text("username"), text("password"));
        if let Some(encoded) = text("auth").filter(|a| !a.is_empty()) {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|e| Error::Credentials(format!("{server}: auth is not base64: {e}")))?;
            let decoded = String::from_utf8_lossy(&decoded).into_owned();
            let (u, p) = decoded.split_once(':').ok_or_else(|| {
                Error::Credentials(format!("{server}: auth is not \"user:password\""))
            })?;
            user = Some(u.to_string());
            password = Some(p.to_string());
        }
        let auth = match (user, password, text("registrytoken")) {
            (_, _, Some(token)) => Auth::Bearer(token),
            (Some(user), Some(password), None) => Auth::Basic(user, password),
            _ => continue,
        };
        out.push(Credential {
            server: normalise_server(server),
            auth,
        });
    }
    Ok(out)
}

/// `https://index.docker.io/v1/` → `docker.io`; scheme and trailing `/` dropped.
fn normalise_server(server: &str) -> String {
    let server = server
        .split_once("://")
        .map_or(server, |(_, rest)| rest)
        .trim_end_matches('/');
    let (host, path) = server.split_once('/').unwrap_or((server, ""));
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io",
        other => other,
    };
    if path.is_empty() || (host == "docker.io" && path == "v1") {
        host.to_string()
    } else {
        format!("{host}/{path}")
    }
}

/// The credentials among `all` for `registry`/`repository`, most specific
/// (longest path) first, as the kubelet's keyring orders them.
pub fn matching<'a>(all: &'a [Credential], registry: &str, repository: &str) -> Vec<&'a Auth> {
    let mut found: Vec<(&Credential, usize)> = all
        .iter()
        .filter_map(|c| {
            let (host, path) = c.server.split_once('/').unwrap_or((&c.server, ""));
            let host_ok = host_matches(host, registry);
            let path_ok = path.is_empty()
                || repository == path
                || repository.starts_with(&format!("{path}/"));
            (host_ok && path_ok).then_some((c, path.len()))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.1));
    found.into_iter().map(|(c, _)| &c.auth).collect()
}

/// `*.example.com` matches one label; ports must be equal.
fn host_matches(pattern: &str, host: &str) -> bool {
    let split = |h: &str| -> (String, String) {
        match h.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
                (name.to_ascii_lowercase(), port.to_string())
            }
            _ => (h.to_ascii_lowercase(), String::new()),
        }
    };
    let (pattern, pattern_port) = split(pattern);
    let (host, port) = split(host);
    if pattern_port != port {
        return false;
    }
    let labels: Vec<&str> = pattern.split('.').collect();
    let wanted: Vec<&str> = host.split('.').collect();
    labels.len() == wanted.len() && labels.iter().zip(&wanted).all(|(p, h)| *p == "*" || p == h)
}

fn is_loopback(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name);
    name == "localhost"
        || name
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Pulls images into a store.
#[derive(Clone, Debug, Default)]
pub struct Puller {
    registries: Registries,
}

impl Puller {
    /// A puller with `registries`' mirrors and settings.
    pub fn new(registries: Registries) -> Self {
        Self { registries }
    }

    /// Pulls `reference` into `store`, trying each endpoint (mirrors first)
    /// and, at each, the credentials that apply (`secrets` only at the
    /// registry itself). `on_blob(digest, bytes)` is told of each blob fetched.
    pub async fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        secrets: &[Credential],
        on_blob: &(dyn Fn(&str, u64) + Sync),
    ) -> Result<Image, Error> {
        let failed = |message: String| Error::Failed {
            reference: reference.to_string(),
            message,
        };
        let mut last = String::from("no endpoint to pull from");
        for endpoint in self
            .registries
            .endpoints(reference.registry(), reference.repository())
        {
            let mut schemes = vec![endpoint.scheme.clone()];
            let tls_configured = self
                .registries
                .config(&endpoint.host)
                .is_some_and(|c| c.tls.is_some());
            if endpoint.default && is_loopback(&endpoint.host) && !tls_configured {
                // Docker treats 127.0.0.0/8 as an insecure registry: HTTP after HTTPS fails.
                schemes.push("http".into());
            }
            let mut auths: Vec<Option<Auth>> = Vec::new();
            if let Some(auth) = self.configured_auth(&endpoint.host) {
                auths.push(Some(auth));
            } else if endpoint.default {
                auths.extend(
                    matching(secrets, reference.registry(), reference.repository())
                        .into_iter()
                        .map(|a| Some(a.clone())),
                );
            }
            if auths.is_empty() {
                auths.push(None);
            }
            for scheme in &schemes {
                let mut transport_failed = false;
                for auth in &auths {
                    match self
                        .pull_from(store, reference, &endpoint, scheme, auth.as_ref(), on_blob)
                        .await
                    {
                        Ok(image) => return Ok(image),
                        Err(PullFailure::Transport(message)) => {
                            last = message;
                            transport_failed = true;
                            break;
                        }
                        Err(PullFailure::Other(message)) => last = message,
                    }
                }
                if !transport_failed {
                    break;
                }
            }
        }
        Err(failed(last))
    }

    fn configured_auth(&self, host: &str) -> Option<Auth> {
        let auth = self.registries.config(host)?.auth.as_ref()?;
        if let Some(token) = &auth.registrytoken {
            return Some(Auth::Bearer(token.clone()));
        }
        if let Some(encoded) = &auth.auth {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()?;
            let decoded = String::from_utf8_lossy(&decoded).into_owned();
            let (u, p) = decoded.split_once(':')?;
            return Some(Auth::Basic(u.into(), p.into()));
        }
        Some(Auth::Basic(
            auth.username.clone()?,
            auth.password.clone().unwrap_or_default(),
        ))
    }

    fn client(&self, endpoint: &Endpoint, scheme: &str) -> Result<oci_client::Client, String> {
        install_crypto_provider();
        let mut config = ClientConfig {
            protocol: if scheme == "http" {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            user_agent: concat!("kite/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        if let Some(tls) = self
            .registries
            .config(&endpoint.host)
            .and_then(|c| c.tls.as_ref())
        {
            config.accept_invalid_certificates = tls.insecure_skip_verify;
            if let Some(ca) = &tls.ca_file {
                let data = std::fs::read(ca)
                    .map_err(|e| format!("reading ca_file {}: {e}", ca.display()))?;
                config.extra_root_certificates.push(Certificate {
                    encoding: CertificateEncoding::Pem,
                    data,
                });
            }
        }
        Ok(oci_client::Client::new(config))
    }

    async fn pull_from(
        &self,
        store: &Store,
        reference: &Reference,
        endpoint: &Endpoint,
        scheme: &str,
        auth: Option<&Auth>,
        on_blob: &(dyn Fn(&str, u64) + Sync),
    ) -> Result<Image, PullFailure> {
        let client = self.client(endpoint, scheme).map_err(PullFailure::Other)?;
        let auth = match auth {
            None => RegistryAuth::Anonymous,
            Some(Auth::Basic(u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            Some(Auth::Bearer(t)) => RegistryAuth::Bearer(t.clone()),
        };
        let remote = |digest: Option<&str>| match (digest, reference.digest()) {
            (Some(d), _) => oci_client::Reference::with_digest(
                endpoint.host.clone(),
                endpoint.repository.clone(),
                d.to_string(),
            ),
            (None, Some(d)) => oci_client::Reference::with_digest(
                endpoint.host.clone(),
                endpoint.repository.clone(),
                d.to_string(),
            ),
            (None, None) => oci_client::Reference::with_tag(
                endpoint.host.clone(),
                endpoint.repository.clone(),
                reference.tag().unwrap_or("latest").to_string(),
            ),
        };
        let shown = format!("{}/{}", endpoint.host, endpoint.repository);
        let top_ref = remote(None);
        let anonymous = matches!(auth, RegistryAuth::Anonymous);
        let (top, _) = client
            .pull_manifest_raw(&top_ref, &auth, ACCEPTED)
            .await
            .map_err(|e| {
                let context = format!("failed to resolve reference \"{top_ref}\"");
                classify(&context, e, anonymous)
            })?;
        if top.len() > MAX_DOCUMENT {
            return Err(PullFailure::Other(format!(
                "{shown}: manifest larger than {MAX_DOCUMENT} bytes"
            )));
        }
        let top_digest = Digest::of(&top);
        if let Some(pinned) = reference.digest()
            && *pinned != top_digest
        {
            return Err(PullFailure::Other(format!(
                "{shown}: manifest has digest {top_digest}, expected {pinned}"
            )));
        }
        let top_json: Value = serde_json::from_slice(&top)
            .map_err(|e| PullFailure::Other(format!("{shown}: invalid manifest: {e}")))?;
        let top_type = media_type(&top_json);

        let ingest = Ingest::new(store, "pull").map_err(|e| PullFailure::Other(e.to_string()))?;
        let mut files: BTreeMap<String, Ingested> = BTreeMap::new();
        let put_document =
            |files: &mut BTreeMap<String, Ingested>, bytes: &[u8]| -> Result<Digest, PullFailure> {
                let digest = Digest::of(bytes);
                let tmp = ingest.dir.join(digest.hex());
                std::fs::write(&tmp, bytes)
                    .map_err(|e| PullFailure::Other(format!("writing {}: {e}", tmp.display())))?;
                files.insert(
                    format!("blobs/sha256/{}", digest.hex()),
                    Ingested {
                        digest: digest.clone(),
                        size: bytes.len() as u64,
                        tmp,
                    },
                );
                Ok(digest)
            };
        put_document(&mut files, &top)?;

        let manifest_json = if top_json.get("manifests").is_some() {
            let arch = import::current_arch();
            let chosen = top_json["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| {
                    m.pointer("/platform/os").and_then(Value::as_str) == Some("linux")
                        && m.pointer("/platform/architecture").and_then(Value::as_str) == Some(arch)
                })
                .and_then(|m| m.get("digest").and_then(Value::as_str))
                .ok_or_else(|| {
                    PullFailure::Other(format!("{shown}: no manifest for linux/{arch}"))
                })?
                .to_string();
            let (bytes, _) = client
                .pull_manifest_raw(&remote(Some(&chosen)), &auth, ACCEPTED)
                .await
                .map_err(|e| classify(&format!("fetching manifest {chosen}"), e, anonymous))?;
            let digest = put_document(&mut files, &bytes)?;
            if digest.to_string() != chosen {
                return Err(PullFailure::Other(format!(
                    "manifest {chosen}: content has digest {digest}"
                )));
            }
            serde_json::from_slice(&bytes)
                .map_err(|e| PullFailure::Other(format!("{shown}: invalid manifest: {e}")))?
        } else {
            top_json.clone()
        };

        let mut blobs: Vec<(String, u64)> = Vec::new();
        for descriptor in std::iter::once(&manifest_json["config"]).chain(
            manifest_json["layers"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default(),
        ) {
            let digest = descriptor.get("digest").and_then(Value::as_str);
            let size = descriptor.get("size").and_then(Value::as_u64);
            match (digest, size) {
                (Some(d), Some(s)) => blobs.push((d.to_string(), s)),
                _ => {
                    return Err(PullFailure::Other(format!(
                        "{shown}: a manifest descriptor lacks digest or size"
                    )));
                }
            }
        }
        for (digest_text, size) in blobs {
            let digest = Digest::parse(&digest_text)
                .map_err(|e| PullFailure::Other(format!("{shown}: {e}")))?;
            let name = format!("blobs/sha256/{}", digest.hex());
            if files.contains_key(&name) {
                continue;
            }
            if store.has_blob(&digest) {
                files.insert(
                    name,
                    Ingested {
                        digest: digest.clone(),
                        size,
                        tmp: store.blob_path(&digest),
                    },
                );
                continue;
            }
            let tmp = ingest.dir.join(digest.hex());
            let fetched = fetch_blob(&client, &remote(None), &digest_text, &tmp, anonymous).await?;
            if fetched.0 != digest || fetched.1 != size {
                return Err(PullFailure::Other(format!(
                    "blob {digest_text}: received {} bytes with digest {}, expected {size} bytes",
                    fetched.1, fetched.0
                )));
            }
            on_blob(&digest_text, size);
            files.insert(name, Ingested { digest, size, tmp });
        }

        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": top_type,
                "digest": top_digest.to_string(),
                "size": top.len(),
                "annotations": {"io.containerd.image.name": reference.to_string()},
            }],
        });
        let index_bytes = serde_json::to_vec(&index).unwrap_or_default();
        for (name, bytes) in [
            ("index.json", index_bytes.as_slice()),
            (
                "oci-layout",
                br#"{"imageLayoutVersion":"1.0.0"}"#.as_slice(),
            ),
        ] {
            let tmp = ingest.dir.join(name);
            std::fs::write(&tmp, bytes)
                .map_err(|e| PullFailure::Other(format!("writing {}: {e}", tmp.display())))?;
            files.insert(
                name.to_string(),
                Ingested {
                    digest: Digest::of(bytes),
                    size: bytes.len() as u64,
                    tmp,
                },
            );
        }
        let store = store.clone();
        let images = tokio::task::spawn_blocking(move || {
            import::store_files(&store, ingest, &files, &OverlayWhiteouts)
        })
        .await
        .map_err(|e| PullFailure::Other(e.to_string()))?
        .map_err(|e| PullFailure::Other(e.to_string()))?;
        images
            .into_iter()
            .next()
            .ok_or_else(|| PullFailure::Other(format!("{shown}: nothing was stored")))
    }
}

/// Why one attempt failed: the connection itself (worth another scheme) or
/// anything the registry answered.
enum PullFailure {
    Transport(String),
    Other(String),
}

/// Words a registry failure as containerd does, so that users searching for
/// the message find what they know.
fn classify(
    context: &str,
    error: oci_client::errors::OciDistributionError,
    anonymous: bool,
) -> PullFailure {
    use oci_client::errors::OciDistributionError as E;
    match &error {
        E::RequestError(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
            PullFailure::Transport(format!("{context}: {}", error_chain(e)))
        }
        E::UnauthorizedError { .. } if anonymous => PullFailure::Other(format!(
            "{context}: pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials"
        )),
        E::UnauthorizedError { url } => PullFailure::Other(format!(
            "{context}: failed to authorize: unexpected status from GET request to {url}: 401 Unauthorized"
        )),
        _ => PullFailure::Other(format!("{context}: {error}")),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn media_type(document: &Value) -> String {
    match document.get("mediaType").and_then(Value::as_str) {
        Some(t) => t.to_string(),
        None if document.get("manifests").is_some() => {
            "application/vnd.oci.image.index.v1+json".into()
        }
        None => "application/vnd.oci.image.manifest.v1+json".into(),
    }
}

/// Streams blob `digest` into `path`; returns its digest and size as received.
async fn fetch_blob(
    client: &oci_client::Client,
    image: &oci_client::Reference,
    digest: &str,
    path: &std::path::Path,
    anonymous: bool,
) -> Result<(Digest, u64), PullFailure> {
    let mut stream = client
        .pull_blob_stream(image, digest)
        .await
        .map_err(|e| classify(&format!("fetching blob {digest}"), e, anonymous))?;
    let file = std::fs::File::create(path)
        .map_err(|e| PullFailure::Other(format!("creating {}: {e}", path.display())))?;
    let mut writer = HashingWriter::new(std::io::BufWriter::new(file));
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| PullFailure::Transport(format!("fetching blob {digest}: {e}")))?;
        writer
            .write_all(&chunk)
            .map_err(|e| PullFailure::Other(format!("writing {}: {e}", path.display())))?;
    }
    let (digest, size, buffered) = writer.finish();
    buffered
        .into_inner()
        .map_err(|e| PullFailure::Other(format!("writing {}: {}", path.display(), e.error())))?;
    Ok((digest, size))
}

/// reqwest's rustls needs a process-wide crypto provider; kite uses ring.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Already installed by another part of kite: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_json_yields_credentials() {
        let json = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
            "127.0.0.1:5000":{"username":"kite","password":"s3cret"},
            "quay.io/team":{"username":"a","password":"b"}}}"#;
        let creds = credentials_from_docker_config(json).unwrap();
        assert!(creds.contains(&Credential {
            server: "docker.io".into(),
            auth: Auth::Basic("user".into(), "pass".into())
        }));
        assert!(creds.contains(&Credential {
            server: "127.0.0.1:5000".into(),
            auth: Auth::Basic("kite".into(), "s3cret".into())
        }));
        let found = matching(&creds, "quay.io", "team/app");
        assert_eq!(found, vec![&Auth::Basic("a".into(), "b".into())]);
        assert!(matching(&creds, "quay.io", "other/app").is_empty());
        assert!(matching(&creds, "127.0.0.1:5001", "x").is_empty());
    }

    #[test]
    fn bad_docker_config_is_an_error() {
        assert!(credentials_from_docker_config(b"{").is_err());
        assert!(credentials_from_docker_config(br#"{"auths":{"h":{"auth":"!!"}}}"#).is_err());
    }

    #[test]
    fn wildcards_match_one_label() {
        assert!(host_matches("*.example.com", "r.example.com"));
        assert!(!host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("example.com:5000", "example.com"));
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com:5000"));
    }
}

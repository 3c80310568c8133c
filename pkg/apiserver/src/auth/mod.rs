//! Who is calling and what they may do: authentication of each request
//! (client certificates, bearer tokens) and authorization of each action
//! (RBAC, with `system:masters` always allowed), plus the review APIs that
//! expose both (TokenReview, SelfSubjectReview, SubjectAccessReview...).
//!
//! Start at [`Auth`]: [`Auth::authenticate`] runs the authenticators in
//! kube-apiserver's order (x509 client certificate, then bearer tokens:
//! service-account JWTs, legacy service-account token Secrets, bootstrap
//! tokens, the node join token) and [`Auth::authorize`] asks
//! `system:masters`, then RBAC. The RBAC objects are read from the API's
//! watch caches through a snapshot rebuilt only when one of them changes, so
//! no request reads the store to be authorized.
//!
//! Choices kite makes where Kubernetes leaves them to the distribution:
//! - Anonymous requests are refused with 401 (as k3s runs kube-apiserver
//!   with `--anonymous-auth=false`); only the public-info paths answer them.
//! - Service-account tokens are issued by [`DEFAULT_ISSUER`] for the audiences
//!   [`default_audiences`] (`https://kubernetes.default.svc.cluster.local`
//!   and `kite`, as k3s adds `k3s`).
//! - The node join token (`K10<hash>::server:<secret>`, or just its secret)
//!   authenticates as [`NODE_TOKEN_USER`] in group `system:nodes`, which the
//!   bootstrap policy binds to `system:node` (kite has no Node authorizer).

mod aggregation;
mod authenticator;
mod impersonation;
mod jwt;
pub mod policy;
pub mod rbac;
pub mod reviews;
mod tokens;

#[cfg(test)]
mod tests;

use crate::api::Api;
use crate::authn::UserInfo;
use std::sync::{Arc, Mutex, OnceLock, Weak};

pub use jwt::JwtError;
pub use reviews::token_request;

/// Issuer (`iss`) of the service-account tokens kite signs.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Issuer of legacy (Secret-based) service-account tokens, as Kubernetes writes it.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// The user the node join token authenticates as.
pub const NODE_TOKEN_USER: &str = "system:kite-node";
/// The group of the node join token's user.
pub const NODES_GROUP: &str = "system:nodes";
/// The group whose members may do anything.
pub const MASTERS_GROUP: &str = "system:masters";

/// The audiences the API accepts tokens for (and gives new tokens by default).
pub fn default_audiences() -> Vec<String> {
    vec![DEFAULT_ISSUER.to_string(), "kite".to_string()]
}

/// What [`Auth`] needs to authenticate bearer tokens.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// PKCS#8 PEM of the service-account signing key (ECDSA P-256); without it no
    /// service-account token is issued or accepted.
    pub service_account_key_pem: Option<Vec<u8>>,
    /// The node join token (`K10<hash>::server:<secret>` or a bare secret).
    pub node_token: Option<String>,
    /// `iss` of issued tokens.
    pub issuer: String,
    /// Audiences the API accepts; the first ones are given to new tokens by default.
    pub audiences: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            service_account_key_pem: None,
            node_token: None,
            issuer: DEFAULT_ISSUER.to_string(),
            audiences: default_audiences(),
        }
    }
}

/// Errors building [`Auth`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service-account key is not an ECDSA P-256 PKCS#8 key.
    #[error("service-account key: {0}")]
    Key(#[source] JwtError),
}

/// What a request wants to do, as the authorizer sees it (`authorizer.Attributes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// The caller.
    pub user: &'a UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`
    /// (resource requests) or the lower-case HTTP method (non-resource requests).
    pub verb: &'a str,
    /// Whether this is a request for a resource (else a non-resource path such as `/healthz`).
    pub resource_request: bool,
    /// API group of the resource.
    pub group: &'a str,
    /// Resource (plural).
    pub resource: &'a str,
    /// Subresource, or empty.
    pub subresource: &'a str,
    /// Namespace, or empty for cluster-scoped requests.
    pub namespace: &'a str,
    /// Object name, or empty.
    pub name: &'a str,
    /// The request path (for non-resource requests).
    pub path: &'a str,
}

/// An authorization decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The action is allowed.
    Allow,
    /// The action is denied; the reason is shown to the caller.
    Deny(String),
}

/// Authentication and authorization for one server.
pub struct Auth {
    config: AuthConfig,
    signer: Option<jwt::Signer>,
    api: OnceLock<Weak<Api>>,
    rbac: Mutex<Option<(rbac::SnapshotKey, Arc<rbac::Snapshot>)>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("issuer", &self.config.issuer)
            .field("audiences", &self.config.audiences)
            .field("signer", &self.signer.as_ref().map(jwt::Signer::key_id))
            .finish_non_exhaustive()
    }
}

impl Default for Auth {
    /// Client certificates only; RBAC once [`attach`](Self::attach)ed to an API.
    fn default() -> Self {
        Self {
            config: AuthConfig::default(),
            signer: None,
            api: OnceLock::new(),
            rbac: Mutex::new(None),
        }
    }
}

impl Auth {
    /// Authentication and authorization with `config`; call [`attach`](Self::attach)
    /// once the API exists so tokens and RBAC can read objects.
    pub fn new(config: AuthConfig) -> Result<Self, Error> {
        let signer = match &config.service_account_key_pem {
            Some(pem) => Some(jwt::Signer::from_pkcs8_pem(pem).map_err(Error::Key)?),
            None => None,
        };
        Ok(Self {
            config,
            signer,
            api: OnceLock::new(),
            rbac: Mutex::new(None),
        })
    }

    /// Gives authentication and authorization read access to `api`'s watch caches
    /// and starts the ClusterRole aggregation controller. Later calls are ignored.
    pub fn attach(&self, api: &Arc<Api>) {
        if self.api.set(Arc::downgrade(api)).is_ok() {
            tokio::spawn(aggregation::run(Arc::downgrade(api)));
        }
    }

    /// The API, while it lives.
    fn api(&self) -> Option<Arc<Api>> {
        self.api.get().and_then(Weak::upgrade)
    }

    /// The audiences the API accepts tokens for.
    pub fn audiences(&self) -> &[String] {
        &self.config.audiences
    }

    /// Whether `attributes` are allowed: `system:masters` always, anyone else by RBAC.
    pub async fn authorize(&self, attributes: &Attributes<'_>) -> Decision {
        if attributes.user.groups.iter().any(|g| g == MASTERS_GROUP) {
            return Decision::Allow;
        }
        let Some(snapshot) = self.rbac_snapshot().await else {
            return Decision::Deny(String::new());
        };
        match snapshot.authorize(attributes) {
            rbac::Outcome { allowed: true, .. } => Decision::Allow,
            rbac::Outcome { reason, .. } => Decision::Deny(reason),
        }
    }

    /// Like [`authorize`](Self::authorize), with the reason kube-apiserver gives for an
    /// allowed request too (for SubjectAccessReview's `status.reason`).
    pub async fn authorize_with_reason(&self, attributes: &Attributes<'_>) -> rbac::Outcome {
        if attributes.user.groups.iter().any(|g| g == MASTERS_GROUP) {
            return rbac::Outcome {
                allowed: true,
                reason: String::new(),
            };
        }
        match self.rbac_snapshot().await {
            Some(snapshot) => snapshot.authorize(attributes),
            None => rbac::Outcome {
                allowed: false,
                reason: String::new(),
            },
        }
    }

    /// The current RBAC snapshot, rebuilt when a Role, ClusterRole or binding changed.
    pub async fn rbac_snapshot(&self) -> Option<Arc<rbac::Snapshot>> {
        let api = self.api()?;
        let caches = rbac::caches(&api).await?;
        let key = rbac::SnapshotKey::of(&caches);
        if let Some((cached_key, snapshot)) = &*self.rbac.lock().unwrap_or_else(|e| e.into_inner())
            && *cached_key == key
        {
            return Some(snapshot.clone());
        }
        let snapshot = Arc::new(rbac::Snapshot::from_caches(&caches));
        *self.rbac.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, snapshot.clone()));
        Some(snapshot)
    }
}

/// The 403 kube-apiserver returns for a denied request, e.g.
/// `pods "web" is forbidden: User "jane" cannot delete resource "pods" in API group "" in the namespace "default"`.
pub fn forbidden(attributes: &Attributes<'_>, reason: &str) -> kite_api::Status {
    let user = &attributes.user.name;
    let message = if attributes.resource_request {
        let qualified = kite_api::status::qualified_resource(attributes.group, attributes.resource);
        let subject = if attributes.name.is_empty() {
            qualified
        } else {
            format!("{qualified} {:?}", attributes.name)
        };
        let resource = if attributes.subresource.is_empty() {
            format!("resource {:?}", attributes.resource)
        } else {
            format!(
                "resource \"{}/{}\"",
                attributes.resource, attributes.subresource
            )
        };
        let scope = if attributes.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", attributes.namespace)
        };
        format!(
            "{subject} is forbidden: User {user:?} cannot {} {resource} in API group {:?} {scope}",
            attributes.verb, attributes.group
        )
    } else {
        format!(
            "forbidden: User {user:?} cannot {} path {:?}",
            attributes.verb, attributes.path
        )
    };
    let message = if reason.is_empty() {
        message
    } else {
        format!("{message}: {reason}")
    };
    kite_api::Status::failure(kite_api::StatusReason::Forbidden, message).with_details(
        kite_api::StatusDetails {
            name: attributes.name.to_string(),
            group: attributes.group.to_string(),
            kind: attributes.resource.to_string(),
            ..kite_api::StatusDetails::default()
        },
    )
}

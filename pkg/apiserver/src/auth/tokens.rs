//! Bearer-token authenticators, tried in kube-apiserver's order: service-account
//! JWTs (bound tokens from TokenRequest, then legacy Secret-based tokens),
//! bootstrap tokens, and kite's node join token. Also issues bound tokens.
//!
//! Each authenticator either authenticates the token, does not recognise it
//! (another one may), or rejects it with an error; like kube's token union the
//! errors of all of them are reported together when none succeeds.

use super::{Auth, LEGACY_ISSUER, NODE_TOKEN_USER, NODES_GROUP, jwt};
use crate::api::Api;
use crate::authn::{AUTHENTICATED_GROUP, UserInfo};
use crate::objects;
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Seconds of clock skew tolerated on `exp` and `nbf` (go-jose's default leeway).
const LEEWAY: i64 = 60;
/// Group of every service account.
pub(crate) const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// Group of bootstrap-token users.
const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// Extra-info key carrying a token's `jti`.
const CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// A user a token authenticated, with what `user.Info` carries beyond [`UserInfo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TokenUser {
    /// Name and groups (including `system:authenticated`).
    pub(crate) user: UserInfo,
    /// The user's uid (the ServiceAccount's uid for service accounts).
    pub(crate) uid: String,
    /// Extra information (`authentication.kubernetes.io/pod-name`...).
    pub(crate) extra: BTreeMap<String, Vec<String>>,
    /// The audiences the token is valid for, among those asked for.
    pub(crate) audiences: Vec<String>,
}

/// What one authenticator says about a token.
type Verdict = Result<Option<TokenUser>, String>;

/// The object a bound token is tied to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BoundObject {
    /// `Pod`, `Secret` or `Node`.
    pub(crate) kind: String,
    /// Its name.
    pub(crate) name: String,
    /// Its uid.
    pub(crate) uid: String,
    /// For pods: the node it runs on (name, uid), put in the token like Kubernetes 1.30+.
    pub(crate) node: Option<(String, String)>,
}

/// A service account's full user name.
pub(crate) fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

fn service_account_info(namespace: &str, name: &str, uid: &str) -> TokenUser {
    TokenUser {
        user: UserInfo {
            name: service_account_user(namespace, name),
            groups: vec![
                SERVICE_ACCOUNTS_GROUP.to_string(),
                format!("{SERVICE_ACCOUNTS_GROUP}:{namespace}"),
                AUTHENTICATED_GROUP.to_string(),
            ],
        },
        uid: uid.to_string(),
        extra: BTreeMap::new(),
        audiences: Vec::new(),
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Compares secrets without leaking where they differ.
fn secret_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `aud` as a list (a single string is allowed by RFC 7519).
fn audiences_of(claims: &Value) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn intersect(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| b.contains(x)).cloned().collect()
}

/// A Secret's data field, decoded (`data` is base64; `stringData` is accepted as written).
fn secret_data(secret: &Value, key: &str) -> Option<String> {
    if let Some(encoded) = secret
        .pointer(&format!("/data/{key}"))
        .and_then(Value::as_str)
    {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        return String::from_utf8(bytes).ok();
    }
    secret
        .pointer(&format!("/stringData/{key}"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Reads one object: from the watch cache, falling back to the store for objects
/// created a moment ago (as kube-apiserver's token getters fall back to live lookups).
pub(crate) async fn lookup(
    api: &Api,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Option<Value> {
    let resource = api.registry.get("", "v1", plural)?;
    let key = objects::key(&resource, namespace, name);
    let cache = api.cache(&resource);
    if tokio::time::timeout(Duration::from_secs(5), cache.wait_ready())
        .await
        .is_ok()
    {
        let (found, _) = cache.list(&key);
        if let Some(object) = found.into_iter().find(|o| o.key == key) {
            return Some(object.value());
        }
    }
    let (_, kv) = api.store.get(&key, 0).await.ok()?;
    let kv = kv?;
    objects::decode(&kv.value, kv.mod_revision).ok()
}

fn deleted(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

impl Auth {
    /// Authenticates a bearer token for `audiences` (the API's unless a TokenReview asks
    /// for others). The error is what TokenReview's `status.error` shows.
    pub(crate) async fn authenticate_token(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<TokenUser, String> {
        let mut errors = Vec::new();
        let api = self.api();
        let verdicts = [
            self.service_account_token(api.as_deref(), token, audiences)
                .await,
            bootstrap_token(api.as_deref(), token).await,
            self.node_token(token),
        ];
        for verdict in verdicts {
            match verdict {
                Ok(Some(mut user)) => {
                    if user.audiences.is_empty() {
                        // Audience-agnostic tokens are valid for the API's own audiences.
                        user.audiences = intersect(audiences, &self.config.audiences);
                        if user.audiences.is_empty() {
                            errors.push(format!("token audiences {:?} is invalid for the target audiences {audiences:?}", self.config.audiences));
                            continue;
                        }
                    }
                    return Ok(user);
                }
                Ok(None) => {}
                Err(error) => errors.push(error),
            }
        }
        Err(match errors.len() {
            0 => "invalid bearer token".to_string(),
            1 => errors.remove(0),
            _ => format!("[{}]", errors.join(", ")),
        })
    }

    /// Service-account JWTs signed with the service-account key.
    async fn service_account_token(
        &self,
        api: Option<&Api>,
        token: &str,
        audiences: &[String],
    ) -> Verdict {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let Ok(parsed) = jwt::parse(token) else {
            return Ok(None);
        };
        let issuer = str_at(&parsed.claims, "/iss");
        let legacy = issuer == LEGACY_ISSUER;
        if !legacy && issuer != self.config.issuer {
            return Ok(None);
        }
        let claims = signer
            .verify(token)
            .map_err(|e| format!("invalid bearer token, {e}"))?;
        let api = api.ok_or("service account token has been invalidated")?;
        if legacy {
            self.legacy_token(api, token, &claims, audiences)
                .await
                .map(Some)
        } else {
            self.bound_token(api, &claims, audiences).await.map(Some)
        }
    }

    async fn bound_token(
        &self,
        api: &Api,
        claims: &Value,
        audiences: &[String],
    ) -> Result<TokenUser, String> {
        let now = now();
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or("service account token has no expiration")?;
        if now > exp + LEEWAY {
            return Err("service account token has expired".into());
        }
        if claims
            .get("nbf")
            .and_then(Value::as_i64)
            .is_some_and(|nbf| now + LEEWAY < nbf)
        {
            return Err("service account token is not valid yet".into());
        }
        let token_audiences = audiences_of(claims);
        let valid_for = intersect(audiences, &token_audiences);
        if valid_for.is_empty() {
            return Err(format!(
                "token audiences {token_audiences:?} is invalid for the target audiences {audiences:?}"
            ));
        }
        let namespace = str_at(claims, "/kubernetes.io/namespace");
        let name = str_at(claims, "/kubernetes.io/serviceaccount/name");
        let uid = str_at(claims, "/kubernetes.io/serviceaccount/uid");
        if namespace.is_empty() || name.is_empty() {
            return Err("service account token claims are incomplete".into());
        }
        let sa = lookup(api, "serviceaccounts", Some(namespace), name)
            .await
            .ok_or("service account token has been invalidated")?;
        let sa_uid = str_at(&sa, "/metadata/uid");
        if sa_uid != uid {
            return Err(format!(
                "service account UID ({sa_uid}) does not match claim ({uid})"
            ));
        }
        if deleted(&sa) {
            return Err("service account token has been invalidated".into());
        }
        let mut info = service_account_info(namespace, name, uid);
        for (kind, plural, ns) in [
            ("pod", "pods", Some(namespace)),
            ("secret", "secrets", Some(namespace)),
            ("node", "nodes", None),
        ] {
            let Some(bound) = claims.pointer(&format!("/kubernetes.io/{kind}")) else {
                continue;
            };
            let bound_name = str_at(bound, "/name");
            let bound_uid = str_at(bound, "/uid");
            // The node of a pod-bound token is informational: only a node-bound token needs it to exist.
            let informational = kind == "node" && claims.pointer("/kubernetes.io/pod").is_some();
            if !informational {
                let object = lookup(api, plural, ns, bound_name)
                    .await
                    .filter(|o| !deleted(o))
                    .ok_or_else(|| {
                        format!("{kind} {bound_name:?} bound to this token does not exist")
                    })?;
                let object_uid = str_at(&object, "/metadata/uid");
                if object_uid != bound_uid {
                    return Err(format!(
                        "{kind} UID ({object_uid}) does not match claim ({bound_uid})"
                    ));
                }
            }
            if kind != "secret" {
                info.extra.insert(
                    format!("authentication.kubernetes.io/{kind}-name"),
                    vec![bound_name.to_string()],
                );
                info.extra.insert(
                    format!("authentication.kubernetes.io/{kind}-uid"),
                    vec![bound_uid.to_string()],
                );
            }
        }
        if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
            info.extra
                .insert(CREDENTIAL_ID.into(), vec![format!("JTI={jti}")]);
        }
        info.audiences = valid_for;
        Ok(info)
    }

    async fn legacy_token(
        &self,
        api: &Api,
        token: &str,
        claims: &Value,
        audiences: &[String],
    ) -> Result<TokenUser, String> {
        let valid_for = intersect(audiences, &self.config.audiences);
        if valid_for.is_empty() {
            return Err(format!(
                "token audiences {:?} is invalid for the target audiences {audiences:?}",
                self.config.audiences
            ));
        }
        let namespace = str_at(claims, "/kubernetes.io~1serviceaccount~1namespace");
        let secret_name = str_at(claims, "/kubernetes.io~1serviceaccount~1secret.name");
        let name = str_at(
            claims,
            "/kubernetes.io~1serviceaccount~1service-account.name",
        );
        let uid = str_at(
            claims,
            "/kubernetes.io~1serviceaccount~1service-account.uid",
        );
        if namespace.is_empty() || secret_name.is_empty() || name.is_empty() {
            return Err("service account token claims are incomplete".into());
        }
        let invalidated = || "service account token has been invalidated".to_string();
        let secret = lookup(api, "secrets", Some(namespace), secret_name)
            .await
            .ok_or_else(invalidated)?;
        if deleted(&secret) || !secret_data(&secret, "token").is_some_and(|t| secret_eq(&t, token))
        {
            return Err(invalidated());
        }
        if secret
            .pointer("/metadata/labels/kubernetes.io~1legacy-token-invalid-since")
            .is_some()
        {
            return Err(format!(
                "the token in secret {namespace}/{secret_name} for service account {namespace}/{name} has been marked invalid. Use tokens from the TokenRequest API or manually created secret-based tokens, or remove the 'kubernetes.io/legacy-token-invalid-since' label from the secret to re-enable"
            ));
        }
        let sa = lookup(api, "serviceaccounts", Some(namespace), name)
            .await
            .ok_or_else(invalidated)?;
        let sa_uid = str_at(&sa, "/metadata/uid");
        if sa_uid != uid {
            return Err(format!(
                "service account UID ({sa_uid}) does not match claim ({uid})"
            ));
        }
        if deleted(&sa) {
            return Err(invalidated());
        }
        let mut info = service_account_info(namespace, name, uid);
        info.extra.insert(
            CREDENTIAL_ID.into(),
            vec![format!("JTI={}", str_at(&secret, "/metadata/uid"))],
        );
        info.audiences = valid_for;
        Ok(info)
    }

    /// The node join token: the full `K10...::server:<secret>` form or just the secret.
    fn node_token(&self, token: &str) -> Verdict {
        let Some(expected) = &self.config.node_token else {
            return Ok(None);
        };
        let secret = kite_pki::parse_token(expected)
            .map(|t| t.password)
            .unwrap_or_else(|_| expected.clone());
        if !(secret_eq(token, expected) || secret_eq(token, &secret)) {
            return Ok(None);
        }
        Ok(Some(TokenUser {
            user: UserInfo {
                name: NODE_TOKEN_USER.to_string(),
                groups: vec![NODES_GROUP.to_string(), AUTHENTICATED_GROUP.to_string()],
            },
            uid: String::new(),
            extra: BTreeMap::new(),
            audiences: Vec::new(),
        }))
    }

    /// Signs a token for service account `namespace/name` (uid `uid`), valid for
    /// `expiration_seconds` from now, optionally bound to an object. Returns the token and
    /// its expiry (seconds since the epoch).
    pub(crate) fn issue_token(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        expiration_seconds: i64,
        bound: Option<&BoundObject>,
    ) -> Result<(String, i64), jwt::JwtError> {
        let signer = self.signer.as_ref().ok_or(jwt::JwtError::Key)?;
        let issued = now();
        let exp = issued + expiration_seconds;
        let mut kubernetes = json!({
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": uid},
        });
        if let Some(bound) = bound {
            let key = bound.kind.to_ascii_lowercase();
            kubernetes[key.as_str()] = json!({"name": bound.name, "uid": bound.uid});
            if let Some((node, node_uid)) = &bound.node {
                kubernetes["node"] = json!({"name": node, "uid": node_uid});
            }
        }
        let claims = json!({
            "aud": audiences,
            "exp": exp,
            "iat": issued,
            "iss": self.config.issuer,
            "jti": objects::new_uid(),
            "kubernetes.io": kubernetes,
            "nbf": issued,
            "sub": service_account_user(namespace, name),
        });
        Ok((signer.sign(&claims)?, exp))
    }

    /// Signs a legacy (non-expiring, Secret-backed) token, as Kubernetes' token controller
    /// writes into `kubernetes.io/service-account-token` Secrets.
    pub fn sign_legacy_token(
        &self,
        namespace: &str,
        service_account: &str,
        service_account_uid: &str,
        secret: &str,
    ) -> Result<String, jwt::JwtError> {
        let signer = self.signer.as_ref().ok_or(jwt::JwtError::Key)?;
        signer.sign(&json!({
            "iss": LEGACY_ISSUER,
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/secret.name": secret,
            "kubernetes.io/serviceaccount/service-account.name": service_account,
            "kubernetes.io/serviceaccount/service-account.uid": service_account_uid,
            "sub": service_account_user(namespace, service_account),
        }))
    }
}

/// Bootstrap tokens: `<id>.<secret>` checked against Secret `kube-system/bootstrap-token-<id>`.
async fn bootstrap_token(api: Option<&Api>, token: &str) -> Verdict {
    let Some((id, secret)) = token.split_once('.') else {
        return Ok(None);
    };
    let shape = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !shape(id, 6) || !shape(secret, 16) {
        return Ok(None);
    }
    let Some(api) = api else { return Ok(None) };
    let Some(object) = lookup(
        api,
        "secrets",
        Some("kube-system"),
        &format!("bootstrap-token-{id}"),
    )
    .await
    else {
        return Ok(None);
    };
    if deleted(&object) || str_at(&object, "/type") != "bootstrap.kubernetes.io/token" {
        return Ok(None);
    }
    let field = |key: &str| secret_data(&object, key).unwrap_or_default();
    if field("token-id") != id || !secret_eq(&field("token-secret"), secret) {
        return Ok(None);
    }
    let expiration = field("expiration");
    if !expiration.is_empty() {
        let Ok(at) = time::OffsetDateTime::parse(
            &expiration,
            &time::format_description::well_known::Rfc3339,
        ) else {
            return Ok(None);
        };
        if at.unix_timestamp() < now() {
            return Ok(None);
        }
    }
    if field("usage-bootstrap-authentication") != "true" {
        return Ok(None);
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_string()];
    for group in field("auth-extra-groups")
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        let valid = group
            .strip_prefix("system:bootstrappers:")
            .is_some_and(|rest| {
                !rest.is_empty()
                    && rest.len() <= 256
                    && rest.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-'
                    })
                    && rest
                        .bytes()
                        .last()
                        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if !valid {
            return Ok(None);
        }
        groups.push(group.to_string());
    }
    groups.push(AUTHENTICATED_GROUP.to_string());
    Ok(Some(TokenUser {
        user: UserInfo {
            name: format!("system:bootstrap:{id}"),
            groups,
        },
        uid: String::new(),
        extra: BTreeMap::new(),
        audiences: Vec::new(),
    }))
}

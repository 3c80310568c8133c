//! The request authenticator: the verified client certificate first (as
//! kube-apiserver runs x509 before token authenticators), then the bearer
//! token from `Authorization: Bearer` or, for browsers' WebSockets, from the
//! `base64url.bearer.authorization.k8s.io.<token>` subprotocol.

use super::Auth;
use crate::authn::UserInfo;
use base64::Engine as _;
use http::{HeaderMap, header};
use std::sync::Arc;

/// WebSocket subprotocol prefix carrying a base64url bearer token.
const WEBSOCKET_TOKEN_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

impl Auth {
    /// The user a request is authenticated as: its verified client certificate
    /// (`tls_user`), else its bearer token; `None` means 401 (no credentials, or a
    /// token no authenticator accepts).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        tls_user: Option<Arc<UserInfo>>,
    ) -> Option<Arc<UserInfo>> {
        if let Some(user) = tls_user {
            return Some(user);
        }
        let token = bearer_token(headers)?;
        match self
            .authenticate_token(&token, &self.config.audiences)
            .await
        {
            Ok(authenticated) => Some(Arc::new(authenticated.user)),
            Err(error) => {
                tracing::debug!(%error, "bearer token rejected");
                None
            }
        }
    }
}

/// The bearer token a request carries, if any.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let mut parts = value.split_whitespace();
        if let (Some(scheme), Some(token)) = (parts.next(), parts.next())
            && scheme.eq_ignore_ascii_case("bearer")
            && !token.is_empty()
        {
            return Some(token.to_string());
        }
    }
    let protocols = headers.get_all(header::SEC_WEBSOCKET_PROTOCOL);
    protocols
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(WEBSOCKET_TOKEN_PREFIX))
        .and_then(|encoded| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded)
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|token| !token.is_empty())
}

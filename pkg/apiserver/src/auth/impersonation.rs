//! Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): a caller allowed
//! the `impersonate` verb on users, groups, service accounts, uids or user
//! extras acts as that identity for the rest of the request.

use super::{Attributes, Auth, Decision, forbidden};
use crate::authn::{AUTHENTICATED_GROUP, UserInfo};
use http::HeaderMap;
use kite_api::{Status, StatusReason};
use std::sync::Arc;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

impl Auth {
    /// The identity the request acts as: `user` itself without impersonation
    /// headers, else the impersonated user once every part is authorized.
    pub async fn impersonate(
        &self,
        headers: &HeaderMap,
        user: Arc<UserInfo>,
    ) -> Result<Arc<UserInfo>, Status> {
        let values = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect()
        };
        let name = values(USER).into_iter().next();
        let groups = values(GROUP);
        let uid = values(UID).into_iter().next();
        let extras: Vec<(String, String)> = headers
            .iter()
            .filter_map(|(k, v)| {
                let key = k.as_str().strip_prefix(EXTRA_PREFIX)?;
                Some((key.to_string(), v.to_str().ok()?.to_string()))
            })
            .collect();
        let Some(name) = name else {
            if groups.is_empty() && uid.is_none() && extras.is_empty() {
                return Ok(user);
            }
            return Err(Status::failure(
                StatusReason::BadRequest,
                "impersonating groups, a uid or extra fields requires impersonating a user",
            ));
        };

        let mut impersonated_groups = groups.clone();
        match name
            .strip_prefix(SERVICE_ACCOUNT_PREFIX)
            .and_then(|rest| rest.split_once(':'))
        {
            Some((namespace, account)) => {
                self.allowed(&user, "", "serviceaccounts", namespace, account)
                    .await?;
                if groups.is_empty() {
                    impersonated_groups = vec![
                        "system:serviceaccounts".to_string(),
                        format!("system:serviceaccounts:{namespace}"),
                    ];
                }
            }
            None => self.allowed(&user, "", "users", "", &name).await?,
        }
        for group in &groups {
            self.allowed(&user, "", "groups", "", group).await?;
        }
        if let Some(uid) = &uid {
            self.allowed(&user, "authentication.k8s.io", "uids", "", uid)
                .await?;
        }
        for (key, value) in &extras {
            self.allowed(
                &user,
                "authentication.k8s.io",
                &format!("userextras/{key}"),
                "",
                value,
            )
            .await?;
        }
        if name != "system:anonymous"
            && !impersonated_groups.iter().any(|g| g == AUTHENTICATED_GROUP)
        {
            impersonated_groups.push(AUTHENTICATED_GROUP.to_string());
        }
        Ok(Arc::new(UserInfo {
            name,
            groups: impersonated_groups,
        }))
    }

    async fn allowed(
        &self,
        user: &UserInfo,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), Status> {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        let attributes = Attributes {
            user,
            verb: "impersonate",
            resource_request: true,
            group,
            resource,
            subresource,
            namespace,
            name,
            path: "",
        };
        match self.authorize(&attributes).await {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(forbidden(&attributes, &reason)),
        }
    }
}

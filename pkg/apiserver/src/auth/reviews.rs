//! The review APIs (create-only, never stored; 201 with `status` filled) and
//! TokenRequest:
//!
//! - `authentication.k8s.io/v1` TokenReview (`spec.token` → who it is) and
//!   SelfSubjectReview (`kubectl auth whoami`);
//! - `authorization.k8s.io/v1` SubjectAccessReview, LocalSubjectAccessReview,
//!   SelfSubjectAccessReview (`kubectl auth can-i`) and SelfSubjectRulesReview
//!   (`kubectl auth can-i --list`);
//! - `serviceaccounts/<name>/token` (`kubectl create token`).

use super::Attributes;
use super::rbac::{self, PolicyRule};
use super::tokens::{self, BoundObject, TokenUser};
use crate::api::Call;
use crate::authn::UserInfo;
use crate::body::Body;
use crate::codec;
use crate::errors::{self, ApiResult};
use crate::objects;
use crate::output;
use crate::request::Verb;
use http::{Response, StatusCode};
use kite_api::validation::invalid_status;
use kite_api::{FieldError, Status, StatusReason};
use serde_json::{Map, Value, json};

/// Token lifetimes TokenRequest accepts, in seconds.
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;
const DEFAULT_EXPIRATION: i64 = 3600;

/// Answers a create of a review resource; `None` for any other request.
pub async fn handle(call: &Call<'_>) -> Option<ApiResult<Response<Body>>> {
    if call.request.verb != Verb::Create || call.request.subresource.is_some() {
        return None;
    }
    let result = match (call.resource.group.as_str(), call.resource.plural.as_str()) {
        ("authentication.k8s.io", "tokenreviews") => token_review(call).await,
        ("authentication.k8s.io", "selfsubjectreviews") => self_subject_review(call),
        ("authorization.k8s.io", "subjectaccessreviews") => {
            access_review(call, Review::Subject).await
        }
        ("authorization.k8s.io", "selfsubjectaccessreviews") => {
            access_review(call, Review::SelfSubject).await
        }
        ("authorization.k8s.io", "localsubjectaccessreviews") => {
            access_review(call, Review::Local).await
        }
        ("authorization.k8s.io", "selfsubjectrulesreviews") => {
            self_subject_rules_review(call).await
        }
        _ => return None,
    };
    Some(result)
}

/// The request body as an object, with `apiVersion` and `kind` set to the resource's.
fn body(call: &Call<'_>) -> ApiResult<Value> {
    let mut obj = codec::decode_body(call.headers, &call.body)?;
    if !obj.is_object() {
        return Err(errors::bad_request(
            "the body of the request must be an object",
        ));
    }
    obj["apiVersion"] = json!(call.resource.api_version());
    obj["kind"] = json!(call.resource.kind);
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    if objects::meta_str(&obj, "creationTimestamp").is_empty() {
        obj["metadata"]["creationTimestamp"] = Value::Null;
    }
    Ok(obj)
}

fn created(call: &Call<'_>, obj: &Value) -> ApiResult<Response<Body>> {
    output::object(call, StatusCode::CREATED, obj)
}

/// `authentication.k8s.io/v1` `UserInfo` with Go's `omitempty`.
fn user_info(
    user: &UserInfo,
    uid: &str,
    extra: &std::collections::BTreeMap<String, Vec<String>>,
) -> Value {
    let mut map = Map::new();
    if !user.name.is_empty() {
        map.insert("username".into(), json!(user.name));
    }
    if !uid.is_empty() {
        map.insert("uid".into(), json!(uid));
    }
    if !user.groups.is_empty() {
        map.insert("groups".into(), json!(user.groups));
    }
    if !extra.is_empty() {
        map.insert("extra".into(), json!(extra));
    }
    Value::Object(map)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

async fn token_review(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let mut obj = body(call)?;
    let token = obj
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if token.is_empty() {
        return Err(errors::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let mut audiences = strings(obj.pointer("/spec/audiences"));
    if audiences.is_empty() {
        audiences = call.api.auth.audiences().to_vec();
    }
    let mut status = Map::new();
    match call.api.auth.authenticate_token(&token, &audiences).await {
        Ok(TokenUser {
            user,
            uid,
            extra,
            audiences,
        }) => {
            status.insert("authenticated".into(), json!(true));
            status.insert("user".into(), user_info(&user, &uid, &extra));
            status.insert("audiences".into(), json!(audiences));
        }
        Err(error) => {
            status.insert("user".into(), json!({}));
            status.insert("error".into(), json!(error));
        }
    }
    obj["status"] = Value::Object(status);
    created(call, &obj)
}

fn self_subject_review(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let obj = json!({
        "kind": call.resource.kind,
        "apiVersion": call.resource.api_version(),
        "metadata": {"creationTimestamp": objects::now_rfc3339()},
        "status": {"userInfo": user_info(call.user, "", &Default::default())},
    });
    created(call, &obj)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Review {
    Subject,
    SelfSubject,
    Local,
}

async fn access_review(call: &Call<'_>, review: Review) -> ApiResult<Response<Body>> {
    let mut obj = body(call)?;
    let kind = call.resource.kind.clone();
    let group = call.resource.group.clone();
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let resource_attributes = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource_attributes = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    let mut problems = Vec::new();
    if review == Review::Local {
        let namespace = call.request.namespace.clone().unwrap_or_default();
        let body_namespace = objects::namespace(&obj).to_string();
        if !body_namespace.is_empty() && body_namespace != namespace {
            return Err(errors::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        obj["metadata"]["namespace"] = json!(namespace);
        if let Some(attributes) = resource_attributes {
            let given = attributes
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            if given != namespace {
                problems.push(FieldError::invalid(
                    "spec.resourceAttributes.namespace",
                    given,
                    "must match metadata.namespace",
                ));
            }
        }
        if let Some(attributes) = non_resource_attributes {
            problems.push(FieldError::invalid(
                "spec.nonResourceAttributes",
                attributes.clone(),
                "disallowed on this kind of request",
            ));
        }
    }
    if resource_attributes.is_some() && non_resource_attributes.is_some() {
        problems.push(FieldError::invalid(
            "spec.nonResourceAttributes",
            non_resource_attributes.cloned().unwrap_or(Value::Null),
            "cannot be specified in combination with resourceAttributes",
        ));
    }
    if resource_attributes.is_none() && non_resource_attributes.is_none() {
        problems.push(FieldError::invalid(
            "spec.resourceAttributes",
            Value::Null,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    let subject = match review {
        Review::SelfSubject => call.user.clone(),
        Review::Subject | Review::Local => {
            let user = UserInfo {
                name: spec
                    .get("user")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                groups: strings(spec.get("groups")),
            };
            if user.name.is_empty() && user.groups.is_empty() {
                problems.push(FieldError::invalid(
                    "spec.user",
                    "",
                    "at least one of user or group must be specified",
                ));
            }
            user
        }
    };
    if !problems.is_empty() {
        return Err(invalid_status(&group, &kind, "", &problems));
    }
    let field = |attributes: Option<&Value>, name: &str| {
        attributes
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (verb, namespace, api_group, resource, subresource, name, path) = match resource_attributes
    {
        Some(_) => (
            field(resource_attributes, "verb"),
            field(resource_attributes, "namespace"),
            field(resource_attributes, "group"),
            field(resource_attributes, "resource"),
            field(resource_attributes, "subresource"),
            field(resource_attributes, "name"),
            String::new(),
        ),
        None => (
            field(non_resource_attributes, "verb"),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            field(non_resource_attributes, "path"),
        ),
    };
    let attributes = Attributes {
        user: &subject,
        verb: &verb,
        resource_request: resource_attributes.is_some(),
        group: &api_group,
        resource: &resource,
        subresource: &subresource,
        namespace: &namespace,
        name: &name,
        path: &path,
    };
    let outcome = call.api.auth.authorize_with_reason(&attributes).await;
    let mut status = Map::new();
    status.insert("allowed".into(), json!(outcome.allowed));
    if !outcome.reason.is_empty() {
        status.insert("reason".into(), json!(outcome.reason));
    }
    obj["status"] = Value::Object(status);
    created(call, &obj)
}

async fn self_subject_rules_review(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let obj = body(call)?;
    let namespace = obj
        .pointer("/spec/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if namespace.is_empty() {
        return Err(errors::bad_request("no namespace on request"));
    }
    let (rules, problems) = match call.api.auth.rbac_snapshot().await {
        Some(snapshot) => snapshot.rules_for(call.user, namespace),
        None => (Vec::new(), vec!["RBAC is not available".to_string()]),
    };
    let resource_rules: Vec<Value> = rules
        .iter()
        .filter(|r| !r.resources.is_empty())
        .map(|r| {
            PolicyRule {
                non_resource_urls: Vec::new(),
                ..r.clone()
            }
            .to_json()
        })
        .collect();
    let non_resource_rules: Vec<Value> = rules
        .iter()
        .filter(|r| !r.non_resource_urls.is_empty())
        .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
        .collect();
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !problems.is_empty(),
    });
    if !problems.is_empty() {
        status["evaluationError"] = json!(rbac::aggregate_errors(&problems));
    }
    let out = json!({
        "kind": call.resource.kind,
        "apiVersion": call.resource.api_version(),
        "metadata": {"creationTimestamp": null},
        "spec": {},
        "status": status,
    });
    created(call, &out)
}

/// `POST serviceaccounts/<name>/token`: a TokenRequest answered with a signed, bound token.
pub async fn token_request(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let namespace = call.request.namespace.clone().unwrap_or_default();
    let name = call.request.name.clone().unwrap_or_default();
    let mut obj = codec::decode_body(call.headers, &call.body)?;
    if !obj.is_object() {
        return Err(errors::bad_request(
            "the body of the request must be an object",
        ));
    }
    obj["apiVersion"] = json!("authentication.k8s.io/v1");
    obj["kind"] = json!("TokenRequest");
    let body_namespace = objects::namespace(&obj).to_string();
    if !body_namespace.is_empty() && body_namespace != namespace {
        return Err(errors::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let expiration = match obj.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION,
        Some(value) => value
            .as_i64()
            .ok_or_else(|| errors::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    let mut problems = Vec::new();
    if expiration < MIN_EXPIRATION {
        problems.push(FieldError::invalid(
            "spec.expirationSeconds",
            expiration,
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > MAX_EXPIRATION {
        problems.push(FieldError::invalid(
            "spec.expirationSeconds",
            expiration,
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if !problems.is_empty() {
        return Err(invalid_status(
            "authentication.k8s.io",
            "TokenRequest",
            &name,
            &problems,
        ));
    }
    let service_account = tokens::lookup(call.api, "serviceaccounts", Some(&namespace), &name)
        .await
        .ok_or_else(|| errors::not_found(&call.resource, &name))?;
    let sa_uid = objects::meta_str(&service_account, "uid").to_string();
    let mut audiences = strings(obj.pointer("/spec/audiences"));
    if audiences.is_empty() {
        audiences = call.api.auth.audiences().to_vec();
    }
    let bound = match obj.pointer("/spec/boundObjectRef").filter(|v| !v.is_null()) {
        Some(reference) => Some(bound_object(call, &name, &namespace, reference).await?),
        None => None,
    };
    let (token, exp) = call
        .api
        .auth
        .issue_token(
            &namespace,
            &name,
            &sa_uid,
            &audiences,
            expiration,
            bound.as_ref(),
        )
        .map_err(|e| errors::internal(format!("failed to sign the token: {e}")))?;
    let meta = objects::metadata_mut(&mut obj);
    meta.insert("name".into(), json!(name));
    meta.insert("namespace".into(), json!(namespace));
    meta.entry("creationTimestamp").or_insert(Value::Null);
    obj["spec"]["audiences"] = json!(audiences);
    obj["spec"]["expirationSeconds"] = json!(expiration);
    if obj.pointer("/spec/boundObjectRef").is_none() {
        obj["spec"]["boundObjectRef"] = Value::Null;
    }
    obj["status"] = json!({"token": token, "expirationTimestamp": rfc3339(exp)});
    output::object(call, StatusCode::CREATED, &obj)
}

/// Checks the object a TokenRequest binds to and describes it for the token.
async fn bound_object(
    call: &Call<'_>,
    sa: &str,
    namespace: &str,
    reference: &Value,
) -> ApiResult<BoundObject> {
    let kind = reference.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = reference
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("v1");
    let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
    let uid = reference.get("uid").and_then(Value::as_str).unwrap_or("");
    let (plural, ns) = match (api_version, kind) {
        ("v1", "Pod") => ("pods", Some(namespace)),
        ("v1", "Secret") => ("secrets", Some(namespace)),
        ("v1", "Node") => ("nodes", None),
        _ => {
            return Err(errors::bad_request(format!(
                "cannot bind token for serviceaccount {sa:?} to object of type {api_version}, Kind={kind}"
            )));
        }
    };
    let object = tokens::lookup(call.api, plural, ns, name)
        .await
        .ok_or_else(|| Status::not_found("", plural, name))?;
    let actual_uid = objects::meta_str(&object, "uid").to_string();
    if !uid.is_empty() && uid != actual_uid {
        return Err(Status::failure(
            StatusReason::Conflict,
            format!(
                "Operation cannot be fulfilled on {kind} {name:?}: the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    let mut bound = BoundObject {
        kind: kind.to_string(),
        name: name.to_string(),
        uid: actual_uid,
        node: None,
    };
    if kind == "Pod" {
        let node = object
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !node.is_empty()
            && let Some(node_obj) = tokens::lookup(call.api, "nodes", None, node).await
        {
            bound.node = Some((
                node.to_string(),
                objects::meta_str(&node_obj, "uid").to_string(),
            ));
        }
    }
    Ok(bound)
}

/// RFC 3339 UTC with second precision for a Unix time.
fn rfc3339(seconds: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => String::new(),
    }
}

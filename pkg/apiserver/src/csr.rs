//! What kube-apiserver's CertificateSigningRequest strategies do beyond the
//! generic ones: a new request records who asked (`spec.username`,
//! `groups`, and no client-supplied `uid`/`extra`, which kite's
//! authenticators never produce); `/status` (the signer's) cannot change the
//! Approved and Denied conditions; `/approval` changes nothing else.

use crate::authn::UserInfo;
use crate::objects;
use serde_json::{Value, json};

/// Condition types only the approval subresource may set.
const DECISIONS: [&str; 2] = ["Approved", "Denied"];

fn is_decision(condition: &Value) -> bool {
    condition
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| DECISIONS.contains(&t))
}

fn conditions(obj: &Value) -> Vec<Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Sets the requester of a new request from the authenticated user.
pub fn record_requester(obj: &mut Value, user: &UserInfo) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    obj["spec"]["username"] = json!(user.name);
    obj["spec"]["groups"] = json!(user.groups);
    if let Some(spec) = obj["spec"].as_object_mut() {
        spec.remove("uid");
        spec.remove("extra");
    }
}

/// `/status`: the decisions stay as they were.
pub fn keep_decisions(out: &mut Value, old: &Value) {
    let mut merged: Vec<Value> = conditions(out)
        .into_iter()
        .filter(|c| !is_decision(c))
        .collect();
    merged.extend(conditions(old).into_iter().filter(is_decision));
    set_conditions(out, merged);
}

/// `/approval`: the old object with the new request's decisions (and the old
/// object's other conditions), timestamps filled in where missing.
pub fn prepare_for_approval(new: &Value, old: &Value) -> Value {
    let mut out = old.clone();
    let now = objects::now_rfc3339();
    let mut merged: Vec<Value> = conditions(old)
        .into_iter()
        .filter(|c| !is_decision(c))
        .collect();
    for mut condition in conditions(new).into_iter().filter(is_decision) {
        for field in ["lastUpdateTime", "lastTransitionTime"] {
            if condition.get(field).is_none_or(Value::is_null) {
                condition[field] = json!(now);
            }
        }
        if condition.get("status").is_none() {
            condition["status"] = json!("True");
        }
        merged.push(condition);
    }
    set_conditions(&mut out, merged);
    out
}

fn set_conditions(obj: &mut Value, conditions: Vec<Value>) {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    if conditions.is_empty() {
        if let Some(status) = obj["status"].as_object_mut() {
            status.remove("conditions");
        }
    } else {
        obj["status"]["conditions"] = Value::Array(conditions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requester_is_whoever_asked() {
        let mut csr = json!({"spec": {"username": "forged", "uid": "x", "extra": {"a": ["b"]}, "request": "r"}});
        let user = UserInfo {
            name: "system:node:edge-1".into(),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
        };
        record_requester(&mut csr, &user);
        assert_eq!(csr["spec"]["username"], "system:node:edge-1");
        assert_eq!(
            csr["spec"]["groups"],
            json!(["system:nodes", "system:authenticated"])
        );
        assert!(csr["spec"].get("uid").is_none() && csr["spec"].get("extra").is_none());
        assert_eq!(csr["spec"]["request"], "r");
    }

    #[test]
    fn status_writers_cannot_approve_and_approvers_cannot_sign() {
        let old = json!({"spec": {"request": "r"}, "status": {}});
        let approve = json!({"spec": {"request": "other"}, "status": {
            "certificate": "forged",
            "conditions": [{"type": "Approved", "reason": "KubectlApprove"}]}});
        let approved = prepare_for_approval(&approve, &old);
        assert_eq!(approved["spec"]["request"], "r");
        assert!(approved["status"].get("certificate").is_none());
        let condition = &approved["status"]["conditions"][0];
        assert_eq!(
            (condition["type"].as_str(), condition["status"].as_str()),
            (Some("Approved"), Some("True"))
        );
        assert!(condition["lastUpdateTime"].is_string());

        let mut signed =
            json!({"status": {"certificate": "c", "conditions": [{"type": "Denied"}]}});
        keep_decisions(&mut signed, &approved);
        let types: Vec<&str> = signed["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(types, ["Approved"]);
    }
}

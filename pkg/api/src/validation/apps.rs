//! `apps/v1` validation: Deployment, ReplicaSet, StatefulSet, DaemonSet.

use super::FieldError;
use super::meta::{selector_is_empty, selector_matches, validate_label_selector};
use super::names::regex_error;
use super::pod::validate_pod_template;
use super::util::{arr_of, child, get, has, immutable, int_of, non_negative, one_of, str_of};
use serde_json::Value;

/// Validates a new apps/v1 object's spec.
pub(crate) fn validate(kind: &str, obj: &Value) -> Vec<FieldError> {
    let spec = get(obj, "spec");
    let mut errs = Vec::new();
    let what = kind.to_lowercase();
    non_negative(&mut errs, spec, "replicas", "spec");
    non_negative(&mut errs, spec, "minReadySeconds", "spec");
    non_negative(&mut errs, spec, "revisionHistoryLimit", "spec");
    validate_selector_and_template(spec, &what, &mut errs);
    match kind {
        "Deployment" => deployment(spec, &mut errs),
        "StatefulSet" => stateful_set(spec, &mut errs),
        "DaemonSet" => daemon_set(spec, &mut errs),
        _ => {}
    }
    errs
}

/// Validates an update: the new object, plus the fields apps/v1 freezes.
pub(crate) fn validate_update(kind: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate(kind, new);
    let (ns, os) = (get(new, "spec"), get(old, "spec"));
    immutable(&mut errs, ns, os, "selector", "spec");
    if kind == "StatefulSet" {
        let mut a = ns.clone();
        let mut b = os.clone();
        for v in [&mut a, &mut b] {
            if let Some(m) = v.as_object_mut() {
                for f in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "revisionHistoryLimit",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                    "selector",
                ] {
                    m.remove(f);
                }
            }
        }
        if a != b {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
    errs
}

/// A StatefulSet's template with a claim volume for each volume claim
/// template it does not already have a volume for.
fn with_claim_volumes(spec: &Value, tmpl: &Value) -> Value {
    let mut tmpl = tmpl.clone();
    let names: Vec<String> = arr_of(spec, "volumeClaimTemplates")
        .iter()
        .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return tmpl;
    }
    let Some(pod) = tmpl.get_mut("spec").and_then(Value::as_object_mut) else {
        return tmpl;
    };
    let volumes = pod
        .entry("volumes")
        .or_insert_with(|| Value::Array(Vec::new()));
    if volumes.is_null() {
        *volumes = Value::Array(Vec::new());
    }
    if let Some(list) = volumes.as_array_mut() {
        for name in names {
            if !list.iter().any(|v| v["name"] == name.as_str()) {
                list.push(
                    serde_json::json!({"name": name, "persistentVolumeClaim": {"claimName": name}}),
                );
            }
        }
    }
    tmpl
}

fn validate_selector_and_template(spec: &Value, what: &str, errs: &mut Vec<FieldError>) {
    let selector = spec.get("selector").filter(|s| !s.is_null());
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            errs.extend(validate_label_selector(sel, "spec.selector"));
            if selector_is_empty(sel) {
                errs.push(FieldError::invalid(
                    "spec.selector",
                    sel.clone(),
                    format!("empty selector is invalid for {what}"),
                ));
            }
        }
    }
    let Some(tmpl) = spec.get("template").filter(|t| !t.is_null()) else {
        errs.push(FieldError::required("spec.template", ""));
        return;
    };
    let labels = tmpl.pointer("/metadata/labels");
    if let Some(sel) = selector
        && !selector_is_empty(sel)
        && !selector_matches(sel, labels)
    {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            labels.cloned().unwrap_or(Value::Null),
            "`selector` does not match template `labels`",
        ));
    }
    if what == "statefulset" {
        // Mounts may name volume claim templates: the controller adds those
        // volumes to each pod, so check the template as the pods will be.
        errs.extend(validate_pod_template(
            &with_claim_volumes(spec, tmpl),
            "spec.template",
        ));
    } else {
        errs.extend(validate_pod_template(tmpl, "spec.template"));
    }
    let restart = str_of(get(tmpl, "spec"), "restartPolicy");
    if !restart.is_empty() && restart != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            restart,
            &["Always"],
        ));
    }
    if has(get(tmpl, "spec"), "activeDeadlineSeconds") {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
}

/// Checks an int-or-percent field (`25%`, `1`): `Some(is_zero)` when valid.
fn int_or_percent(v: &Value, path: &str, errs: &mut Vec<FieldError>) -> Option<bool> {
    match v {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(-1);
            if n < 0 {
                errs.push(FieldError::invalid(
                    path,
                    n,
                    "must be greater than or equal to 0",
                ));
                return None;
            }
            Some(n == 0)
        }
        Value::String(s) => {
            let digits = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            match digits {
                None => {
                    errs.push(FieldError::invalid(
                        path,
                        s.as_str(),
                        regex_error(
                            "a valid percent string must be a numeric string followed by an ending '%'",
                            "[0-9]+%",
                            &["1%", "93%"],
                        ),
                    ));
                    None
                }
                Some(d) => {
                    let pct: u64 = d.parse().unwrap_or(u64::MAX);
                    if pct > 100 {
                        errs.push(FieldError::invalid(
                            path,
                            s.as_str(),
                            "must not be greater than 100%",
                        ));
                    }
                    Some(pct == 0)
                }
            }
        }
        _ => None,
    }
}

fn rolling_update(ru: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let unavailable_zero = ru
        .get("maxUnavailable")
        .and_then(|v| int_or_percent(v, &child(path, "maxUnavailable"), errs));
    let surge_zero = ru
        .get("maxSurge")
        .and_then(|v| int_or_percent(v, &child(path, "maxSurge"), errs));
    if unavailable_zero == Some(true) && surge_zero.unwrap_or(true) {
        errs.push(FieldError::invalid(
            child(path, "maxUnavailable"),
            get(ru, "maxUnavailable").clone(),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}

fn deployment(spec: &Value, errs: &mut Vec<FieldError>) {
    let strategy = get(spec, "strategy");
    match str_of(strategy, "type") {
        "Recreate" => {
            if has(strategy, "rollingUpdate") {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => rolling_update(
            get(strategy, "rollingUpdate"),
            "spec.strategy.rollingUpdate",
            errs,
        ),
        "" => errs.push(FieldError::required("spec.strategy.type", "")),
        other => errs.push(FieldError::not_supported(
            "spec.strategy.type",
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
    non_negative(errs, spec, "progressDeadlineSeconds", "spec");
    if let Some(pd) = int_of(spec, "progressDeadlineSeconds")
        && pd <= int_of(spec, "minReadySeconds").unwrap_or(0)
    {
        errs.push(FieldError::invalid(
            "spec.progressDeadlineSeconds",
            pd,
            "must be greater than minReadySeconds",
        ));
    }
}

fn stateful_set(spec: &Value, errs: &mut Vec<FieldError>) {
    match str_of(spec, "podManagementPolicy") {
        "OrderedReady" | "Parallel" => {}
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let us = get(spec, "updateStrategy");
    match str_of(us, "type") {
        "RollingUpdate" => {
            if let Some(p) = int_of(get(us, "rollingUpdate"), "partition")
                && p < 0
            {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate.partition",
                    p,
                    "must be greater than or equal to 0",
                ));
            }
        }
        "OnDelete" => {
            if has(us, "rollingUpdate") {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    get(us, "rollingUpdate").clone(),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "" => errs.push(FieldError::required("spec.updateStrategy", "")),
        other => errs.push(FieldError::invalid(
            "spec.updateStrategy",
            other,
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    let policy = get(spec, "persistentVolumeClaimRetentionPolicy");
    for f in ["whenDeleted", "whenScaled"] {
        one_of(
            errs,
            policy,
            f,
            "spec.persistentVolumeClaimRetentionPolicy",
            &["Retain", "Delete"],
            false,
        );
    }
    if let Some(start) = int_of(get(spec, "ordinals"), "start")
        && start < 0
    {
        errs.push(FieldError::invalid(
            "spec.ordinals.start",
            start,
            "must be greater than or equal to 0",
        ));
    }
}

fn daemon_set(spec: &Value, errs: &mut Vec<FieldError>) {
    let us = get(spec, "updateStrategy");
    match str_of(us, "type") {
        "OnDelete" => {}
        "RollingUpdate" => rolling_update(
            get(us, "rollingUpdate"),
            "spec.updateStrategy.rollingUpdate",
            errs,
        ),
        "" => errs.push(FieldError::required("spec.updateStrategy.type", "")),
        other => errs.push(FieldError::not_supported(
            "spec.updateStrategy.type",
            other,
            &["OnDelete", "RollingUpdate"],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(spec: Value) -> Value {
        let mut d = json!({"metadata": {"name": "web"}, "spec": spec});
        crate::defaults::apply("apps", "Deployment", &mut d);
        d
    }

    fn check(kind: &str, spec: Value, expected: &[&str]) {
        let mut obj = json!({"metadata": {"name": "web"}, "spec": spec});
        crate::defaults::apply("apps", kind, &mut obj);
        let got: Vec<String> = validate(kind, &obj)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, expected);
    }

    fn tmpl(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }

    #[test]
    fn selector_and_template_messages() {
        check(
            "Deployment",
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": tmpl(json!({"app": "web"}))}),
            &[],
        );
        check(
            "Deployment",
            json!({"template": tmpl(json!({"app": "web"}))}),
            &["spec.selector: Required value"],
        );
        check(
            "Deployment",
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": tmpl(json!({"app": "api"}))}),
            &[
                "spec.template.metadata.labels: Invalid value: {\"app\":\"api\"}: `selector` does not match template `labels`",
            ],
        );
        check(
            "ReplicaSet",
            json!({"selector": {}, "template": tmpl(json!({"app": "web"}))}),
            &["spec.selector: Invalid value: {}: empty selector is invalid for replicaset"],
        );
        check(
            "Deployment",
            json!({"replicas": -1, "selector": {"matchLabels": {"a": "b"}}, "template": tmpl(json!({"a": "b"}))}),
            &["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
        );
        let mut t = tmpl(json!({"a": "b"}));
        t["spec"]["restartPolicy"] = json!("Never");
        check(
            "DaemonSet",
            json!({"selector": {"matchLabels": {"a": "b"}}, "template": t}),
            &[
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ],
        );
    }

    #[test]
    fn strategy_messages() {
        check(
            "Deployment",
            json!({"selector": {"matchLabels": {"a": "b"}}, "template": tmpl(json!({"a": "b"})),
                   "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}}}),
            &[
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
            ],
        );
        check(
            "Deployment",
            json!({"selector": {"matchLabels": {"a": "b"}}, "template": tmpl(json!({"a": "b"})),
                   "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x"}}}),
            &[
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"x\": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            ],
        );
        check(
            "Deployment",
            json!({"selector": {"matchLabels": {"a": "b"}}, "template": tmpl(json!({"a": "b"})), "strategy": {"type": "Blue"}}),
            &[
                "spec.strategy.type: Unsupported value: \"Blue\": supported values: \"Recreate\", \"RollingUpdate\"",
            ],
        );
    }

    #[test]
    fn statefulset_mounts_may_name_claim_templates() {
        let mut t = tmpl(json!({"a": "b"}));
        t["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "data", "mountPath": "/data"}]);
        let mut spec =
            json!({"serviceName": "db", "selector": {"matchLabels": {"a": "b"}}, "template": t});
        let sts = |spec: &Value| {
            let mut obj = json!({"metadata": {"name": "db"}, "spec": spec});
            crate::defaults::apply("apps", "StatefulSet", &mut obj);
            obj
        };
        assert_eq!(
            validate("StatefulSet", &sts(&spec))[0].to_string(),
            "spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"data\""
        );
        spec["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"}, "spec": {}}]);
        assert!(validate("StatefulSet", &sts(&spec)).is_empty());
    }

    #[test]
    fn immutable_fields_on_update() {
        let old = deploy(
            json!({"selector": {"matchLabels": {"a": "b"}}, "template": tmpl(json!({"a": "b", "c": "d"}))}),
        );
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        assert!(validate_update("Deployment", &new, &old).is_empty());
        new["spec"]["selector"] = json!({"matchLabels": {"c": "d"}});
        assert_eq!(
            validate_update("Deployment", &new, &old)[0].to_string(),
            "spec.selector: Invalid value: {\"matchLabels\":{\"c\":\"d\"}}: field is immutable"
        );
        let mut sts = json!({"metadata": {"name": "db"}, "spec": {"serviceName": "db", "selector": {"matchLabels": {"a": "b"}}, "template": tmpl(json!({"a": "b"}))}});
        crate::defaults::apply("apps", "StatefulSet", &mut sts);
        let mut changed = sts.clone();
        changed["spec"]["replicas"] = json!(5);
        assert!(validate_update("StatefulSet", &changed, &sts).is_empty());
        changed["spec"]["serviceName"] = json!("other");
        assert_eq!(
            validate_update("StatefulSet", &changed, &sts)[0].to_string(),
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        );
    }
}

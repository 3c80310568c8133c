//! Tests of token authentication, RBAC matching, aggregation and 403 messages.

use super::rbac::{PolicyRule, Snapshot, effective_rules};
use super::*;
use crate::objects;
use crate::registry::Registry;
use crate::strategy;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("kite-auth-test-{}", objects::new_uid()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key_pem(dir: &std::path::Path) -> Vec<u8> {
    let pki = kite_pki::Pki::ensure(&kite_pki::PkiConfig::new(dir.join("tls"))).expect("pki");
    pki.service_account().private_key_pem().as_bytes().to_vec()
}

struct Cluster {
    api: Arc<Api>,
    auth: Arc<Auth>,
    _dir: Scratch,
}

impl Cluster {
    async fn new(node_token: Option<&str>) -> Self {
        let dir = Scratch::new();
        let store: Arc<dyn kite_store::Backend> = Arc::new(
            kite_store::SqliteBackend::open(&dir.0.join("state.db"), kite_store::Config::default())
                .expect("store"),
        );
        let config = AuthConfig {
            service_account_key_pem: Some(key_pem(&dir.0)),
            node_token: node_token.map(str::to_string),
            ..AuthConfig::default()
        };
        let auth = Arc::new(Auth::new(config).expect("auth"));
        let registry = Arc::new(Registry::new(kite_api::resources::builtin()));
        let api = Arc::new(Api::new(
            registry,
            store,
            "127.0.0.1:6443".into(),
            auth.clone(),
        ));
        auth.attach(&api);
        Self {
            api,
            auth,
            _dir: dir,
        }
    }

    async fn put(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        mut obj: Value,
    ) -> Value {
        let resource = self
            .api
            .registry
            .get(group, "v1", plural)
            .expect("resource");
        strategy::prepare_for_create(&resource, &mut obj, namespace);
        let key = objects::key(&resource, namespace, objects::name(&obj));
        self.api
            .store
            .create(&key, objects::encode(&obj), 0)
            .await
            .expect("create");
        obj
    }

    async fn delete(&self, plural: &str, namespace: Option<&str>, name: &str) {
        let resource = self.api.registry.get("", "v1", plural).expect("resource");
        self.api
            .store
            .delete(&objects::key(&resource, namespace, name), None)
            .await
            .expect("delete");
        // Let the watch cache see it.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn audiences() -> Vec<String> {
    default_audiences()
}

#[test]
fn jwt_signatures_verify_and_tampering_is_detected() {
    let dir = Scratch::new();
    let signer = jwt::Signer::from_pkcs8_pem(&key_pem(&dir.0)).expect("signer");
    let token = signer.sign(&json!({"sub": "me"})).expect("sign");
    assert_eq!(signer.verify(&token).expect("verify")["sub"], "me");
    let header = jwt::parse(&token).expect("parse").header;
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], signer.key_id());

    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"sub":"admin"}"#,
    );
    parts[1] = &forged;
    assert_eq!(signer.verify(&parts.join(".")), Err(JwtError::Signature));
    assert_eq!(signer.verify("not-a-jwt"), Err(JwtError::Malformed));
    let none = format!(
        "{}.{}.",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"none"}"#
        ),
        parts[1]
    );
    assert_eq!(
        signer.verify(&none),
        Err(JwtError::Algorithm("none".into()))
    );
    assert!(jwt::Signer::from_pkcs8_pem(b"nope").is_err());
}

#[tokio::test]
async fn service_account_tokens_authenticate_until_the_account_goes() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let cluster = Cluster::new(None).await;
        let sa = cluster
            .put(
                "",
                "serviceaccounts",
                Some("team"),
                json!({"metadata": {"name": "bot"}}),
            )
            .await;
        let uid = objects::meta_str(&sa, "uid").to_string();
        let auth = &cluster.auth;

        let (token, exp) = auth
            .issue_token("team", "bot", &uid, &audiences(), 3600, None)
            .expect("issue");
        assert!(exp > tokens::now());
        let user = auth
            .authenticate_token(&token, &audiences())
            .await
            .expect("valid token");
        assert_eq!(user.user.name, "system:serviceaccount:team:bot");
        assert_eq!(
            user.user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:team",
                "system:authenticated"
            ]
        );
        assert_eq!(user.uid, uid);
        assert!(user.extra["authentication.kubernetes.io/credential-id"][0].starts_with("JTI="));

        // The request path: a bearer header without a client certificate.
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
        let via_header = auth
            .authenticate(&headers, None)
            .await
            .expect("authenticated");
        assert_eq!(via_header.name, "system:serviceaccount:team:bot");

        let other_audience = auth
            .authenticate_token(&token, &["vault".to_string()])
            .await;
        assert!(
            other_audience
                .expect_err("wrong audience")
                .contains("invalid for the target audiences")
        );

        let (expired, _) = auth
            .issue_token("team", "bot", &uid, &audiences(), -120, None)
            .expect("issue");
        assert_eq!(
            auth.authenticate_token(&expired, &audiences()).await,
            Err("service account token has expired".into())
        );

        let tampered = format!("{}x", &token[..token.len() - 1]);
        assert!(
            auth.authenticate_token(&tampered, &audiences())
                .await
                .is_err()
        );

        let (wrong_uid, _) = auth
            .issue_token("team", "bot", "other-uid", &audiences(), 3600, None)
            .expect("issue");
        let error = auth
            .authenticate_token(&wrong_uid, &audiences())
            .await
            .expect_err("uid mismatch");
        assert!(error.contains("does not match claim"), "{error}");

        cluster.delete("serviceaccounts", Some("team"), "bot").await;
        assert_eq!(
            auth.authenticate_token(&token, &audiences()).await,
            Err("service account token has been invalidated".into())
        );
        headers.insert(
            http::header::AUTHORIZATION,
            "Bearer garbage".parse().expect("header"),
        );
        assert!(auth.authenticate(&headers, None).await.is_none());
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn legacy_bootstrap_and_node_tokens_authenticate() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let node_token = format!("K10{}::server:s3cret", "a".repeat(64));
        let cluster = Cluster::new(Some(&node_token)).await;
        let auth = &cluster.auth;
        let sa = cluster.put("", "serviceaccounts", Some("default"), json!({"metadata": {"name": "old"}})).await;
        let uid = objects::meta_str(&sa, "uid");
        let legacy = auth.sign_legacy_token("default", "old", uid, "old-token").expect("sign");
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &legacy);
        cluster
            .put("", "secrets", Some("default"), json!({"metadata": {"name": "old-token"}, "type": "kubernetes.io/service-account-token", "data": {"token": encoded}}))
            .await;
        let user = auth.authenticate_token(&legacy, &audiences()).await.expect("legacy token");
        assert_eq!(user.user.name, "system:serviceaccount:default:old");

        let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
        cluster
            .put(
                "",
                "secrets",
                Some("kube-system"),
                json!({
                    "metadata": {"name": "bootstrap-token-abcdef"},
                    "type": "bootstrap.kubernetes.io/token",
                    "data": {
                        "token-id": b64("abcdef"),
                        "token-secret": b64("0123456789abcdef"),
                        "usage-bootstrap-authentication": b64("true"),
                        "auth-extra-groups": b64("system:bootstrappers:kite:default-node-token"),
                        "expiration": b64("2999-01-01T00:00:00Z"),
                    },
                }),
            )
            .await;
        let user = auth.authenticate_token("abcdef.0123456789abcdef", &audiences()).await.expect("bootstrap token");
        assert_eq!(user.user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.user.groups,
            ["system:bootstrappers", "system:bootstrappers:kite:default-node-token", "system:authenticated"]
        );
        assert!(auth.authenticate_token("abcdef.0123456789abcdee", &audiences()).await.is_err());

        for token in [node_token.as_str(), "s3cret"] {
            let user = auth.authenticate_token(token, &audiences()).await.expect("node token");
            assert_eq!(user.user.name, NODE_TOKEN_USER);
            assert_eq!(user.user.groups, [NODES_GROUP, "system:authenticated"]);
        }
        assert_eq!(auth.authenticate_token("s3cre", &audiences()).await, Err("invalid bearer token".into()));
    })
    .await
    .expect("timed out");
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn resource<'a>(
    user: &'a UserInfo,
    verb: &'a str,
    group: &'a str,
    res: &'a str,
    sub: &'a str,
    ns: &'a str,
    name: &'a str,
) -> Attributes<'a> {
    Attributes {
        user,
        verb,
        resource_request: true,
        group,
        resource: res,
        subresource: sub,
        namespace: ns,
        name,
        path: "",
    }
}

fn path<'a>(user: &'a UserInfo, verb: &'a str, path: &'a str) -> Attributes<'a> {
    Attributes {
        user,
        verb,
        resource_request: false,
        group: "",
        resource: "",
        subresource: "",
        namespace: "",
        name: "",
        path,
    }
}

#[test]
fn rules_match_like_kubernetes() {
    let u = user("u", &[]);
    let rule = |v: Value| PolicyRule::from_json(&v);
    let pods = rule(
        json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}),
    );
    let any_status = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/status"]}));
    let named = rule(
        json!({"verbs": ["update"], "apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"]}),
    );
    let urls = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}));
    let cases: Vec<(&PolicyRule, Attributes<'_>, bool)> = vec![
        (&pods, resource(&u, "get", "", "pods", "", "ns", "p"), true),
        (&pods, resource(&u, "list", "", "pods", "", "", ""), true),
        (
            &pods,
            resource(&u, "delete", "", "pods", "", "ns", "p"),
            false,
        ),
        (
            &pods,
            resource(&u, "get", "apps", "pods", "", "ns", "p"),
            false,
        ),
        (
            &pods,
            resource(&u, "get", "", "pods", "log", "ns", "p"),
            true,
        ),
        (
            &pods,
            resource(&u, "get", "", "pods", "exec", "ns", "p"),
            false,
        ),
        (
            &any_status,
            resource(&u, "patch", "apps", "deployments", "status", "ns", "d"),
            true,
        ),
        (
            &any_status,
            resource(&u, "patch", "apps", "deployments", "", "ns", "d"),
            false,
        ),
        (
            &named,
            resource(&u, "update", "apps", "deployments", "", "ns", "web"),
            true,
        ),
        (
            &named,
            resource(&u, "update", "apps", "deployments", "", "ns", "api"),
            false,
        ),
        (
            &named,
            resource(&u, "update", "apps", "deployments", "", "ns", ""),
            false,
        ),
        (&urls, path(&u, "get", "/healthz"), true),
        (&urls, path(&u, "get", "/healthz/etcd"), false),
        (&urls, path(&u, "get", "/apis/apps/v1"), true),
        (&urls, path(&u, "post", "/apis/apps/v1"), false),
        (&pods, path(&u, "get", "/healthz"), false),
        (&urls, resource(&u, "get", "", "pods", "", "ns", "p"), false),
    ];
    for (rule, attributes, expected) in cases {
        assert_eq!(
            rule.allows(&attributes),
            expected,
            "{rule:?} vs {attributes:?}"
        );
    }
}

fn binding(
    kind: &str,
    name: &str,
    namespace: &str,
    role_kind: &str,
    role: &str,
    subjects: Value,
) -> Value {
    let mut meta = json!({"name": name});
    if !namespace.is_empty() {
        meta["namespace"] = json!(namespace);
    }
    json!({"kind": kind, "metadata": meta, "roleRef": {"kind": role_kind, "name": role}, "subjects": subjects})
}

#[test]
fn snapshot_authorizes_through_bindings_and_explains_why() {
    let roles = policy::cluster_roles();
    let local_roles = vec![
        json!({"metadata": {"name": "reader", "namespace": "dev"}, "rules": [
            {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"]}
        ]}),
    ];
    let cluster_bindings = policy::cluster_role_bindings();
    let bindings = vec![
        binding(
            "RoleBinding",
            "jane-view",
            "dev",
            "ClusterRole",
            "view",
            json!([{"kind": "User", "name": "jane"}]),
        ),
        binding(
            "RoleBinding",
            "bot-reader",
            "dev",
            "Role",
            "reader",
            json!([{"kind": "ServiceAccount", "name": "bot"}]),
        ),
        binding(
            "RoleBinding",
            "dangling",
            "dev",
            "Role",
            "gone",
            json!([{"kind": "Group", "name": "devs"}]),
        ),
    ];
    let snapshot = Snapshot::from_objects(&roles, &local_roles, &cluster_bindings, &bindings);

    let jane = user("jane", &["system:authenticated"]);
    let outcome = snapshot.authorize(&resource(&jane, "get", "", "pods", "", "dev", "web"));
    assert!(outcome.allowed);
    assert_eq!(
        outcome.reason,
        r#"RBAC: allowed by RoleBinding "jane-view/dev" of ClusterRole "view" to User "jane""#
    );
    assert!(
        snapshot
            .authorize(&resource(
                &jane,
                "list",
                "apps",
                "deployments",
                "",
                "dev",
                ""
            ))
            .allowed
    );
    assert!(
        !snapshot
            .authorize(&resource(&jane, "delete", "", "pods", "", "dev", "web"))
            .allowed
    );
    assert!(
        !snapshot
            .authorize(&resource(&jane, "get", "", "secrets", "", "dev", "s"))
            .allowed
    );
    assert!(
        !snapshot
            .authorize(&resource(&jane, "get", "", "pods", "", "prod", "web"))
            .allowed
    );
    let discovery = snapshot.authorize(&path(&jane, "get", "/apis/apps"));
    assert_eq!(
        discovery.reason,
        r#"RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" to Group "system:authenticated""#
    );
    assert!(
        snapshot
            .authorize(&resource(
                &jane,
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
                ""
            ))
            .allowed
    );

    let bot = user("system:serviceaccount:dev:bot", &["system:serviceaccounts"]);
    let read = snapshot.authorize(&resource(
        &bot,
        "get",
        "",
        "configmaps",
        "",
        "dev",
        "settings",
    ));
    assert_eq!(
        read.reason,
        r#"RBAC: allowed by RoleBinding "bot-reader/dev" of Role "reader" to ServiceAccount "bot/dev""#
    );
    assert!(
        !snapshot
            .authorize(&resource(&bot, "get", "", "configmaps", "", "dev", "other"))
            .allowed
    );

    let dev = user("joe", &["devs"]);
    let denied = snapshot.authorize(&resource(&dev, "get", "", "pods", "", "dev", ""));
    assert_eq!(
        denied,
        rbac::Outcome {
            allowed: false,
            reason: r#"RBAC: role.rbac.authorization.k8s.io "gone" not found"#.into()
        }
    );

    let (rules, errors) = snapshot.rules_for(&jane, "dev");
    assert!(errors.is_empty());
    assert!(
        rules
            .iter()
            .any(|r| r.resources.contains(&"pods".to_string())
                && r.verbs.contains(&"get".to_string()))
    );
    assert!(
        rules
            .iter()
            .any(|r| r.non_resource_urls.contains(&"/version".to_string()))
    );
}

#[test]
fn aggregated_roles_take_the_union_of_matching_roles_transitively() {
    let mut roles = policy::cluster_roles();
    roles.push(json!({
        "metadata": {"name": "crd-viewer", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}],
    }));
    let effective = effective_rules(&roles);
    let grants = |role: &str, verb: &str, group: &str, res: &str| {
        let u = user("u", &[]);
        effective[role]
            .iter()
            .any(|r| r.allows(&resource(&u, verb, group, res, "", "ns", "")))
    };
    assert!(grants("view", "get", "", "pods"));
    assert!(grants("view", "get", "example.com", "widgets"));
    assert!(!grants("view", "get", "", "secrets"));
    assert!(grants("edit", "get", "example.com", "widgets"));
    assert!(grants("edit", "create", "apps", "deployments"));
    assert!(grants("edit", "get", "", "secrets"));
    assert!(!grants(
        "edit",
        "create",
        "rbac.authorization.k8s.io",
        "roles"
    ));
    assert!(grants(
        "admin",
        "create",
        "rbac.authorization.k8s.io",
        "roles"
    ));
    assert!(grants("admin", "get", "example.com", "widgets"));
    assert!(!grants("admin", "create", "", "nodes"));
    // No duplicates: view's rules appear once in admin.
    let admin = &effective["admin"];
    let unique: std::collections::HashSet<_> = admin.iter().collect();
    assert_eq!(unique.len(), admin.len());
}

#[test]
fn forbidden_messages_match_kube_apiserver() {
    let jane = user("jane", &[]);
    let check = |attributes: Attributes<'_>, reason: &str, expected: &str| {
        let status = forbidden(&attributes, reason);
        assert_eq!(status.code, 403);
        assert_eq!(status.message, expected);
    };
    check(
        resource(&jane, "delete", "", "pods", "", "default", "web"),
        "",
        r#"pods "web" is forbidden: User "jane" cannot delete resource "pods" in API group "" in the namespace "default""#,
    );
    check(
        resource(&jane, "list", "apps", "deployments", "", "", ""),
        "",
        r#"deployments.apps is forbidden: User "jane" cannot list resource "deployments" in API group "apps" at the cluster scope"#,
    );
    check(
        resource(&jane, "create", "", "pods", "exec", "dev", "web"),
        r#"RBAC: clusterrole.rbac.authorization.k8s.io "x" not found"#,
        r#"pods "web" is forbidden: User "jane" cannot create resource "pods/exec" in API group "" in the namespace "dev": RBAC: clusterrole.rbac.authorization.k8s.io "x" not found"#,
    );
    check(
        path(&jane, "get", "/metrics"),
        "",
        r#"forbidden: User "jane" cannot get path "/metrics""#,
    );
}

#[tokio::test]
async fn bootstrap_policy_is_created_and_reconciled_and_aggregated() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let cluster = Cluster::new(None).await;
        let store = &*cluster.api.store;
        policy::ensure(store, &cluster.api.registry)
            .await
            .expect("ensure");
        // A second run changes nothing and keeps user additions.
        let roles = cluster
            .api
            .registry
            .get("rbac.authorization.k8s.io", "v1", "clusterroles")
            .expect("clusterroles");
        let key = objects::key(&roles, None, "system:discovery");
        let (_, kv) = store.get(&key, 0).await.expect("get");
        let kv = kv.expect("created");
        let mut role = objects::decode(&kv.value, kv.mod_revision).expect("decode");
        assert_eq!(
            role["metadata"]["labels"]["kubernetes.io/bootstrapping"],
            "rbac-defaults"
        );
        role["rules"]
            .as_array_mut()
            .expect("rules")
            .push(json!({"verbs": ["get"], "nonResourceURLs": ["/extra"]}));
        store
            .update(&key, objects::encode(&role), kv.mod_revision, 0)
            .await
            .expect("update");
        policy::ensure(store, &cluster.api.registry)
            .await
            .expect("ensure again");
        let (_, kv) = store.get(&key, 0).await.expect("get");
        let role = objects::decode(&kv.expect("kept").value, 0).expect("decode");
        assert_eq!(role["rules"].as_array().expect("rules").len(), 2);

        // The aggregation controller fills `view` with the aggregated rules.
        let view = objects::key(&roles, None, "view");
        let mut filled = false;
        for _ in 0..100 {
            let (_, kv) = store.get(&view, 0).await.expect("get");
            let role = objects::decode(&kv.expect("view").value, 0).expect("decode");
            if role["rules"].as_array().is_some_and(|r| !r.is_empty()) {
                filled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(filled, "view was not aggregated");

        let jane = user("jane", &["system:authenticated"]);
        let admin = user("root", &["system:masters"]);
        assert_eq!(
            cluster
                .auth
                .authorize(&resource(&admin, "delete", "", "nodes", "", "", "n"))
                .await,
            Decision::Allow
        );
        assert_eq!(
            cluster
                .auth
                .authorize(&path(&jane, "get", "/version"))
                .await,
            Decision::Allow
        );
        assert_eq!(
            cluster
                .auth
                .authorize(&resource(&jane, "get", "", "pods", "", "default", ""))
                .await,
            Decision::Deny(String::new())
        );
    })
    .await
    .expect("timed out");
}

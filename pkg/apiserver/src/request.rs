//! Turns a request's method, path and query into what it asks for.
//!
//! Follows kube-apiserver's request-info rules: `/api/v1` is the core group,
//! `/apis/<group>/<version>` the others; `namespaces/<ns>/` scopes a
//! resource, except that `/api/v1/namespaces/<name>` is the namespace itself;
//! the verb comes from the method, whether a name is present and `?watch`.

use http::Method;

/// The verbs of the resource API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET with `?watch=true` (or the legacy `/watch/` prefix).
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
}

impl Verb {
    /// The verb as RBAC and audit name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Watch => "watch",
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::DeleteCollection => "deletecollection",
        }
    }
}

/// A request against `/api` or `/apis`, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiPath {
    /// `/api`: the legacy API versions.
    LegacyRoot,
    /// `/apis`: the API groups.
    GroupsRoot,
    /// `/apis/<group>`: one group.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`: one group version's resources.
    GroupVersion {
        /// The group (empty for core).
        group: String,
        /// The version.
        version: String,
    },
    /// A resource request.
    Resource(ResourceRequest),
}

/// A request for a resource, a named object or a subresource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRequest {
    /// The group (empty for core).
    pub group: String,
    /// The version.
    pub version: String,
    /// The namespace from the path, if any.
    pub namespace: Option<String>,
    /// The resource (plural).
    pub resource: String,
    /// The object's name, if any.
    pub name: Option<String>,
    /// The subresource (`status`, `scale`, ...), if any.
    pub subresource: Option<String>,
    /// The path after a `proxy` subresource (`nodes/<name>/proxy/<path>`), if any.
    pub subpath: Option<String>,
    /// The verb.
    pub verb: Verb,
}

/// Decodes a path under `/api` or `/apis`; `None` when the path is not an API path
/// or cannot be a valid request (the caller answers 404).
pub fn parse(method: &Method, path: &str, query: &str) -> Option<ApiPath> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] => return Some(ApiPath::LegacyRoot),
        ["apis"] => return Some(ApiPath::GroupsRoot),
        ["apis", group] => return Some(ApiPath::Group((*group).to_string())),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return Some(ApiPath::GroupVersion {
            group: group.into(),
            version: version.into(),
        });
    }
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    // `.../<name>/proxy/<path...>`: the path goes to the proxied server.
    let proxy_at = match rest {
        ["namespaces", _, _, _, "proxy", _, ..] => Some(4),
        [first, _, "proxy", _, ..] if *first != "namespaces" => Some(2),
        _ => None,
    };
    let (rest, subpath) = match proxy_at {
        Some(i) => (&rest[..=i], Some(rest[i + 1..].join("/"))),
        None => (rest, None),
    };
    let (namespace, resource, name, subresource) = match rest {
        // `namespaces/<name>/status|finalize` are the namespace's own subresources.
        ["namespaces", name, sub @ ("status" | "finalize")] => {
            (None, "namespaces", Some(*name), Some(*sub))
        }
        ["namespaces", ns, resource, tail @ ..] => {
            let (name, sub) = name_and_sub(tail)?;
            (Some(*ns), *resource, name, sub)
        }
        // `/api/v1/namespaces/<name>[/status|finalize]` is the namespace object itself.
        ["namespaces", name] => (None, "namespaces", Some(*name), None),
        [resource, tail @ ..] => {
            let (name, sub) = name_and_sub(tail)?;
            (None, *resource, name, sub)
        }
        [] => return None,
    };
    if [Some(resource), namespace, name, subresource]
        .iter()
        .flatten()
        .any(|s| s.is_empty())
    {
        return None;
    }
    let watch_param = query_param(query, "watch").is_some_and(|v| parse_bool(&v));
    let verb = match *method {
        Method::GET | Method::HEAD => match (legacy_watch || watch_param, name.is_some()) {
            (true, _) => Verb::Watch,
            (false, true) => Verb::Get,
            (false, false) => Verb::List,
        },
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE if name.is_some() => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => return None,
    };
    Some(ApiPath::Resource(ResourceRequest {
        group: group.into(),
        version: version.into(),
        namespace: namespace.map(str::to_string),
        resource: resource.into(),
        name: name.map(str::to_string),
        subresource: subresource.map(str::to_string),
        subpath,
        verb,
    }))
}

type NameAndSub<'a> = (Option<&'a str>, Option<&'a str>);

fn name_and_sub<'a>(tail: &[&'a str]) -> Option<NameAndSub<'a>> {
    match tail {
        [] => Some((None, None)),
        [name] => Some((Some(*name), None)),
        [name, sub] => Some((Some(*name), Some(*sub))),
        _ => None,
    }
}

/// A boolean query value as Go's `strconv.ParseBool` reads it (`1`, `t`, `true`, `True`, ...).
pub fn parse_bool(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// The first value of a query parameter, percent-decoded.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query_params(query).find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Every query parameter, percent-decoded, in order.
pub fn query_params(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

/// Decodes `%XX` escapes and `+` (as a space) in a query component.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_subresources_keep_the_path_after_them() {
        let r = resource(Method::GET, "/api/v1/nodes/n1/proxy/stats/summary", "");
        assert_eq!(r.subresource.as_deref(), Some("proxy"));
        assert_eq!(r.subpath.as_deref(), Some("stats/summary"));
        let r = resource(Method::GET, "/api/v1/namespaces/ns/pods/proxy/status", "");
        assert_eq!(r.name.as_deref(), Some("proxy"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
        assert_eq!(r.subpath, None);
        let r = resource(
            Method::GET,
            "/api/v1/namespaces/ns/services/web/proxy/a/b",
            "",
        );
        assert_eq!(r.subpath.as_deref(), Some("a/b"));
    }

    fn resource(method: Method, path: &str, query: &str) -> ResourceRequest {
        match parse(&method, path, query) {
            Some(ApiPath::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths_decode_like_kube_apiserver() {
        let r = resource(Method::GET, "/api/v1/namespaces/default/pods/web/log", "");
        assert_eq!(
            (
                r.group.as_str(),
                r.namespace.as_deref(),
                r.resource.as_str()
            ),
            ("", Some("default"), "pods")
        );
        assert_eq!(
            (r.name.as_deref(), r.subresource.as_deref(), r.verb),
            (Some("web"), Some("log"), Verb::Get)
        );

        let r = resource(Method::GET, "/apis/apps/v1/deployments", "watch=true");
        assert_eq!(
            (r.group.as_str(), r.namespace, r.verb),
            ("apps", None, Verb::Watch)
        );

        let r = resource(Method::GET, "/api/v1/namespaces/kube-system", "");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("kube-system"), None)
        );

        let r = resource(Method::PUT, "/api/v1/namespaces/ns1/finalize", "");
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("namespaces", Some("ns1"), Some("finalize"))
        );

        let r = resource(Method::DELETE, "/api/v1/namespaces/default/configmaps", "");
        assert_eq!(r.verb, Verb::DeleteCollection);

        let r = resource(Method::GET, "/api/v1/watch/namespaces/default/pods", "");
        assert_eq!(r.verb, Verb::Watch);

        assert_eq!(parse(&Method::GET, "/apis", ""), Some(ApiPath::GroupsRoot));
        assert_eq!(
            parse(&Method::GET, "/apis/apps/v1", ""),
            Some(ApiPath::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            })
        );
        assert_eq!(parse(&Method::GET, "/healthz", ""), None);
    }

    #[test]
    fn query_components_are_percent_decoded() {
        assert_eq!(
            query_param("labelSelector=app%3Dweb%2Ctier+in+(a)", "labelSelector").as_deref(),
            Some("app=web,tier in (a)")
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}

//! The REST operations of a resource, shared by the v2 and v3 renderers.

use crate::resources::ResourceInfo;
use crate::schema;

/// A query parameter: name and what it does (our wording).
pub(super) struct Param {
    pub(super) name: &'static str,
    pub(super) description: &'static str,
    pub(super) ty: &'static str,
}

const PRETTY: Param = Param {
    name: "pretty",
    description: "If 'true', the output is pretty printed.",
    ty: "string",
};
const DRY_RUN: Param = Param {
    name: "dryRun",
    description: "When present, modifications are validated but not persisted. The only valid value is All.",
    ty: "string",
};
const FIELD_MANAGER: Param = Param {
    name: "fieldManager",
    description: "Name of the actor making the change, recorded in managedFields.",
    ty: "string",
};
const FIELD_VALIDATION: Param = Param {
    name: "fieldValidation",
    description: "How the server treats unknown and duplicate fields in the request body: Ignore, Warn (the default) or Strict.",
    ty: "string",
};
const FORCE: Param = Param {
    name: "force",
    description: "Apply requests only: take ownership of fields other managers own.",
    ty: "boolean",
};
const LIST: &[Param] = &[
    Param {
        name: "allowWatchBookmarks",
        description: "Ask for BOOKMARK watch events.",
        ty: "boolean",
    },
    Param {
        name: "continue",
        description: "The continue token of a previous paginated list.",
        ty: "string",
    },
    Param {
        name: "fieldSelector",
        description: "Restrict the list by field values.",
        ty: "string",
    },
    Param {
        name: "labelSelector",
        description: "Restrict the list by label values.",
        ty: "string",
    },
    Param {
        name: "limit",
        description: "Maximum number of items to return.",
        ty: "integer",
    },
    PRETTY,
    Param {
        name: "resourceVersion",
        description: "Which resourceVersion the result must be at least as new as.",
        ty: "string",
    },
    Param {
        name: "resourceVersionMatch",
        description: "How resourceVersion applies to a list.",
        ty: "string",
    },
    Param {
        name: "sendInitialEvents",
        description: "Start a watch with synthetic ADDED events for existing objects.",
        ty: "boolean",
    },
    Param {
        name: "timeoutSeconds",
        description: "Timeout for the list or watch call.",
        ty: "integer",
    },
    Param {
        name: "watch",
        description: "Watch for changes instead of listing.",
        ty: "boolean",
    },
];
const CREATE: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, PRETTY];
const PATCH: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE, PRETTY];
const DELETE: &[Param] = &[
    DRY_RUN,
    Param {
        name: "gracePeriodSeconds",
        description: "Seconds before the object is deleted.",
        ty: "integer",
    },
    Param {
        name: "ignoreStoreReadErrorWithClusterBreakingPotential",
        description: "Delete objects that cannot be read from storage.",
        ty: "boolean",
    },
    Param {
        name: "orphanDependents",
        description: "Deprecated: use propagationPolicy.",
        ty: "boolean",
    },
    Param {
        name: "propagationPolicy",
        description: "Orphan, Background or Foreground garbage collection of dependents.",
        ty: "string",
    },
    PRETTY,
];
const READ: &[Param] = &[PRETTY];

/// Definition names operations refer to.
pub(super) const PATCH_DEF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(super) const STATUS_DEF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(super) const DELETE_OPTIONS_DEF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";

/// One operation on one path.
pub(super) struct Operation {
    /// Lower-case HTTP method: `get`, `post`, `put`, `patch`, `delete`.
    pub(super) method: &'static str,
    /// `x-kubernetes-action`: list, post, get, put, patch, delete, deletecollection.
    pub(super) action: &'static str,
    pub(super) id: String,
    pub(super) description: String,
    pub(super) tag: String,
    /// (group, version, kind) of the object the operation is about.
    pub(super) gvk: (String, String, String),
    /// Definition of the request body, if any.
    pub(super) body: Option<String>,
    /// Definition of the 200 response.
    pub(super) response: String,
    pub(super) query: &'static [Param],
}

/// A path with its path parameters and operations.
pub(super) struct PathItem {
    pub(super) path: String,
    pub(super) path_params: Vec<&'static str>,
    pub(super) operations: Vec<Operation>,
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub(super) fn group_version_root(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

fn camel(group: &str, version: &str) -> String {
    let group = if group.is_empty() {
        "core"
    } else {
        group.strip_suffix(".k8s.io").unwrap_or(group)
    };
    let mut out = String::new();
    for part in group.split(['.', '-']) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    let mut v = version.chars();
    if let Some(first) = v.next() {
        out.extend(first.to_uppercase());
        out.push_str(v.as_str());
    }
    out
}

fn tag(group: &str, version: &str) -> String {
    let name = camel(group, "");
    let mut chars = name.chars();
    let lower: String = chars
        .next()
        .map(|c| c.to_lowercase().collect::<String>() + chars.as_str())
        .unwrap_or_default();
    format!("{lower}_{version}")
}

/// Every path of `info` whose kind is the definition `definition` (the list
/// kind is `<definition>List`).
pub(super) fn resource_paths(info: &ResourceInfo, definition: &str) -> Vec<PathItem> {
    let root = group_version_root(&info.group, &info.version);
    let gv_camel = camel(&info.group, &info.version);
    let scope = if info.namespaced { "Namespaced" } else { "" };
    let gvk = (info.group.clone(), info.version.clone(), info.kind.clone());
    let tag = tag(&info.group, &info.version);
    let collection = if info.namespaced {
        format!("{root}/namespaces/{{namespace}}/{}", info.plural)
    } else {
        format!("{root}/{}", info.plural)
    };
    let scope_params: Vec<&'static str> = if info.namespaced {
        vec!["namespace"]
    } else {
        Vec::new()
    };
    let list_def = format!("{definition}List");
    let op = |method,
              action,
              verb: &str,
              suffix: &str,
              what: String,
              body: Option<String>,
              response: &str,
              query| Operation {
        method,
        action,
        id: format!("{verb}{gv_camel}{scope}{}{suffix}", info.kind),
        description: what,
        tag: tag.clone(),
        gvk: gvk.clone(),
        body,
        response: response.to_string(),
        query,
    };
    let mut out = Vec::new();

    let mut ops = Vec::new();
    if info.allows("list") {
        ops.push(op(
            "get",
            "list",
            "list",
            "",
            format!("list or watch objects of kind {}", info.kind),
            None,
            &list_def,
            LIST,
        ));
    }
    if info.allows("create") {
        ops.push(op(
            "post",
            "post",
            "create",
            "",
            format!("create a {}", info.kind),
            Some(definition.into()),
            definition,
            CREATE,
        ));
    }
    if info.allows("deletecollection") {
        ops.push(op(
            "delete",
            "deletecollection",
            "deletecollection",
            "",
            format!("delete collection of {}", info.kind),
            Some(DELETE_OPTIONS_DEF.into()),
            STATUS_DEF,
            DELETE,
        ));
    }
    if !ops.is_empty() {
        out.push(PathItem {
            path: collection.clone(),
            path_params: scope_params.clone(),
            operations: ops,
        });
    }

    let mut item_params = vec!["name"];
    item_params.extend(scope_params.iter().copied());
    let mut ops = Vec::new();
    if info.allows("get") {
        ops.push(op(
            "get",
            "get",
            "read",
            "",
            format!("read the specified {}", info.kind),
            None,
            definition,
            READ,
        ));
    }
    if info.allows("update") {
        ops.push(op(
            "put",
            "put",
            "replace",
            "",
            format!("replace the specified {}", info.kind),
            Some(definition.into()),
            definition,
            CREATE,
        ));
    }
    if info.allows("patch") {
        ops.push(op(
            "patch",
            "patch",
            "patch",
            "",
            format!("partially update the specified {}", info.kind),
            Some(PATCH_DEF.into()),
            definition,
            PATCH,
        ));
    }
    if info.allows("delete") {
        ops.push(op(
            "delete",
            "delete",
            "delete",
            "",
            format!("delete a {}", info.kind),
            Some(DELETE_OPTIONS_DEF.into()),
            STATUS_DEF,
            DELETE,
        ));
    }
    if !ops.is_empty() {
        out.push(PathItem {
            path: format!("{collection}/{{name}}"),
            path_params: item_params.clone(),
            operations: ops,
        });
    }

    if info.namespaced && info.allows("list") {
        let all = op(
            "get",
            "list",
            "list",
            "ForAllNamespaces",
            format!("list or watch objects of kind {}", info.kind),
            None,
            &list_def,
            LIST,
        );
        let all = Operation {
            id: format!("list{gv_camel}{}ForAllNamespaces", info.kind),
            ..all
        };
        out.push(PathItem {
            path: format!("{root}/{}", info.plural),
            path_params: Vec::new(),
            operations: vec![all],
        });
    }

    for sub in &info.subresources {
        let sub_def = if sub.kind == info.kind && sub.group == info.group {
            Some(definition.to_string())
        } else {
            schema::definition_name_for(&sub.group, &sub.version, &sub.kind).map(str::to_string)
        };
        let Some(sub_def) = sub_def else { continue };
        let suffix = capitalise(&sub.name);
        let sub_gvk = (sub.group.clone(), sub.version.clone(), sub.kind.clone());
        let allows = |verb: &str| sub.verbs.iter().any(|v| v == verb);
        let mut ops = Vec::new();
        let mut push = |method, action, verb: &str, what: String, body: Option<String>, query| {
            let mut o = op(method, action, verb, &suffix, what, body, &sub_def, query);
            o.gvk = sub_gvk.clone();
            ops.push(o);
        };
        if allows("get") {
            push(
                "get",
                "get",
                "read",
                format!("read {} of the specified {}", sub.name, info.kind),
                None,
                READ,
            );
        }
        if allows("create") {
            push(
                "post",
                "post",
                "create",
                format!("create {} of a {}", sub.name, info.kind),
                Some(sub_def.clone()),
                CREATE,
            );
        }
        if allows("update") {
            push(
                "put",
                "put",
                "replace",
                format!("replace {} of the specified {}", sub.name, info.kind),
                Some(sub_def.clone()),
                CREATE,
            );
        }
        if allows("patch") {
            push(
                "patch",
                "patch",
                "patch",
                format!(
                    "partially update {} of the specified {}",
                    sub.name, info.kind
                ),
                Some(PATCH_DEF.into()),
                PATCH,
            );
        }
        if !ops.is_empty() {
            out.push(PathItem {
                path: format!("{collection}/{{name}}/{}", sub.name),
                path_params: item_params.clone(),
                operations: ops,
            });
        }
    }
    out
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// The description of a path parameter.
pub(super) fn path_param_description(name: &str) -> &'static str {
    match name {
        "namespace" => "object name and auth scope, such as for teams and projects",
        _ => "name of the object",
    }
}

/// The media types a PATCH operation consumes (strategic merge for built-ins only).
pub(super) fn patch_media_types(custom: bool) -> &'static [&'static str] {
    if custom {
        crate::patch::CUSTOM_RESOURCE_PATCH_TYPES
    } else {
        crate::patch::BUILTIN_PATCH_TYPES
    }
}

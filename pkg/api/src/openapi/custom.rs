//! Custom resources as OpenAPI definitions, named as kube-apiserver names them.

use crate::resources::ResourceInfo;
use crate::schema::GVK_EXTENSION;
use serde_json::{Map, Value, json};

/// A custom resource version to publish: its resource and `openAPIV3Schema`.
#[derive(Clone, Debug)]
pub struct CustomResource {
    /// The resource as discovery serves it; `definition` is ignored.
    pub info: ResourceInfo,
    /// The version's structural schema (`openAPIV3Schema`).
    pub schema: Value,
}

/// `com.example.v1.Widget` for `widgets.example.com/v1`: the group's labels
/// reversed, then version and kind.
pub fn custom_definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

impl CustomResource {
    /// The definition name of the kind.
    pub fn definition_name(&self) -> String {
        custom_definition_name(&self.info.group, &self.info.version, &self.info.kind)
    }

    /// The kind's definition (with `apiVersion`, `kind`, `metadata` and its
    /// GVK) and its list's, as `(name, schema)` pairs. `ref_prefix` is
    /// `#/definitions/` or `#/components/schemas/`.
    pub(super) fn definitions(&self, ref_prefix: &str) -> Vec<(String, Value)> {
        let name = self.definition_name();
        let mut schema = match &self.schema {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        schema.entry("type").or_insert_with(|| json!("object"));
        let props = schema.entry("properties").or_insert_with(|| json!({}));
        if let Value::Object(props) = props {
            props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            props.insert(
                "metadata".into(),
                json!({"$ref": format!("{ref_prefix}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"), "description": "Standard object's metadata."}),
            );
        }
        let gvk = |kind: &str| json!([{"group": self.info.group, "kind": kind, "version": self.info.version}]);
        schema.insert(GVK_EXTENSION.into(), gvk(&self.info.kind));
        let list_kind = format!("{}List", self.info.kind);
        let list = json!({
            "description": format!("{list_kind} is a list of {}", self.info.kind),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": format!("{ref_prefix}{name}")}},
                "kind": {"type": "string"},
                "metadata": {"$ref": format!("{ref_prefix}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")},
            },
            GVK_EXTENSION: gvk(&list_kind),
        });
        vec![(format!("{name}List"), list), (name, Value::Object(schema))]
    }
}

//! The descriptor table: every Kubernetes protobuf message with JSON names.
//!
//! `build.rs` emits the raw table from the `k8s-pb` sources (package, prost
//! struct name, fields by number with their snake_case Rust names). Once per
//! process it is joined with the k8s-openapi schemas of [`crate::schema`]:
//! a message finds its definition by name (case-insensitively: prost writes
//! `CsiDriver` for `CSIDriver`), a field its JSON property by comparing names
//! lower-cased without underscores (`pod_ips` ↔ `podIPs`). Fields of messages
//! the schemas do not cover fall back to lowerCamelCase with Kubernetes'
//! usual acronyms.
//!
//! Zero values: Go clients write every non-pointer field, so a present `""`,
//! `0` or `false` may just be an unset value. [`Zero`] decides per field:
//! - `""` is dropped unless the field is required (non-`omitempty` in Go) or
//!   one of the few pointer strings where empty means something
//!   (`PersistentVolumeClaimSpec.storageClassName`);
//! - `0`/`false` are kept (a pointer set to zero, like `replicas: 0`, must
//!   survive) except in `*Status` messages and in [`PLAIN_OMITEMPTY`], the
//!   non-pointer `omitempty` fields Go clients send in everyday objects
//!   (probe timings, `hostPort`, `stdin`, `minReadySeconds`, ...), where zero
//!   means unset and kite's defaulting would otherwise see a value.

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// How a field repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Label {
    Single,
    Repeated,
    /// `map<string, V>`: repeated entries with key 1 and value 2.
    Map,
}

/// A field's value type; `Message` indexes [`MESSAGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RawKind {
    String,
    Bool,
    Int32,
    Int64,
    Double,
    Bytes,
    Message(usize),
}

/// A field as `build.rs` found it.
pub(super) struct RawField {
    tag: u32,
    name: &'static str,
    label: Label,
    kind: RawKind,
}

/// A message as `build.rs` found it.
pub(super) struct RawMessage {
    package: &'static str,
    name: &'static str,
    fields: &'static [RawField],
}

include!(concat!(env!("OUT_DIR"), "/protobuf_table.rs"));

/// What to do with a present zero scalar (`""`, `0`, `false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Zero {
    Keep,
    Drop,
}

/// Messages with a JSON form of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Special {
    None,
    Time,
    MicroTime,
    Duration,
    Quantity,
    IntOrString,
    RawExtension,
    FieldsV1,
    Unknown,
    /// A named string slice (`Verbs`, `ExtraValue`): `items` as a JSON array.
    Items,
    /// apiextensions `JSON`: raw JSON bytes.
    Json,
    SchemaOrBool,
    SchemaOrArray,
    SchemaOrStringArray,
}

/// One field, ready for decoding.
pub(super) struct Field {
    pub(super) tag: u32,
    pub(super) json: String,
    pub(super) label: Label,
    pub(super) kind: RawKind,
    pub(super) zero: Zero,
    /// An embedded Go struct (`json:",inline"`, e.g. `Probe.handler`,
    /// `Volume.volumeSource`): its fields are merged into the parent.
    pub(super) inline: bool,
}

/// One message, ready for decoding.
pub(super) struct Message {
    /// Kubernetes definition name, e.g. `io.k8s.api.core.v1.Pod`.
    pub(super) name: String,
    pub(super) special: Special,
    /// Sorted by tag.
    pub(super) fields: Vec<Field>,
}

impl Message {
    pub(super) fn field(&self, tag: u32) -> Option<&Field> {
        self.fields
            .binary_search_by_key(&tag, |f| f.tag)
            .ok()
            .map(|i| &self.fields[i])
    }
}

/// The compiled table.
pub(super) struct Table {
    pub(super) messages: Vec<Message>,
    /// `package.name`, lower-cased → index.
    by_name: HashMap<String, usize>,
    /// API group → package prefix (`apps` → `io.k8s.api.apps`).
    groups: HashMap<&'static str, &'static str>,
}

pub(super) static TABLE: LazyLock<Table> = LazyLock::new(Table::build);

/// Package of `meta.v1`, home of options kinds (`DeleteOptions`) every group serves.
pub(super) const META_V1: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// Package prefixes of groups no `k8s-pb` `Resource` impl names.
const EXTRA_GROUPS: &[(&str, &str)] = &[
    ("", "io.k8s.api.core"),
    ("meta.k8s.io", "io.k8s.apimachinery.pkg.apis.meta"),
    ("metrics.k8s.io", "io.k8s.metrics.pkg.apis.metrics"),
    (
        "custom.metrics.k8s.io",
        "io.k8s.metrics.pkg.apis.custom_metrics",
    ),
    (
        "external.metrics.k8s.io",
        "io.k8s.metrics.pkg.apis.external_metrics",
    ),
];

/// Non-pointer `omitempty` numbers and booleans (definition, JSON name):
/// zero means unset, as Go's JSON encoding and defaulting see it.
const PLAIN_OMITEMPTY: &[(&str, &[&str])] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        &["generation"],
    ),
    (
        "io.k8s.api.core.v1.Probe",
        &[
            "initialDelaySeconds",
            "timeoutSeconds",
            "periodSeconds",
            "successThreshold",
            "failureThreshold",
        ],
    ),
    ("io.k8s.api.core.v1.ContainerPort", &["hostPort"]),
    ("io.k8s.api.core.v1.ServicePort", &["nodePort"]),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        &["healthCheckNodePort", "publishNotReadyAddresses"],
    ),
    (
        "io.k8s.api.core.v1.Container",
        &["stdin", "stdinOnce", "tty"],
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        &["stdin", "stdinOnce", "tty"],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        &["hostNetwork", "hostPID", "hostIPC"],
    ),
    ("io.k8s.api.core.v1.VolumeMount", &["readOnly"]),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimVolumeSource",
        &["readOnly"],
    ),
    ("io.k8s.api.core.v1.NodeSpec", &["unschedulable"]),
    (
        "io.k8s.api.core.v1.ReplicationControllerSpec",
        &["minReadySeconds"],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        &["minReadySeconds", "paused"],
    ),
    ("io.k8s.api.apps.v1.ReplicaSetSpec", &["minReadySeconds"]),
    ("io.k8s.api.apps.v1.DaemonSetSpec", &["minReadySeconds"]),
    ("io.k8s.api.apps.v1.StatefulSetSpec", &["minReadySeconds"]),
    ("io.k8s.api.scheduling.v1.PriorityClass", &["globalDefault"]),
];

/// Pointer strings where `""` is a value, not unset.
const MEANINGFUL_EMPTY: &[(&str, &str)] = &[(
    "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
    "storageClassName",
)];

impl Table {
    fn build() -> Table {
        let defs = crate::schema::definitions();
        let def_names: HashMap<String, &String> =
            defs.keys().map(|k| (k.to_lowercase(), k)).collect();
        let plain: HashSet<(&str, &str)> = PLAIN_OMITEMPTY
            .iter()
            .flat_map(|(def, fields)| fields.iter().map(move |f| (*def, *f)))
            .collect();
        let mut messages = Vec::with_capacity(MESSAGES.len());
        let mut by_name = HashMap::with_capacity(MESSAGES.len());
        for (index, raw) in MESSAGES.iter().enumerate() {
            let guess = format!("{}.{}", raw.package, raw.name);
            let def_name = def_names.get(&guess.to_lowercase()).map(|n| n.as_str());
            let schema = def_name.and_then(|n| defs.get(n));
            let name = def_name.map_or(guess, str::to_string);
            let properties = schema.map(properties).unwrap_or_default();
            let required = schema.map(required).unwrap_or_default();
            let status = name.ends_with("Status");
            let mut fields: Vec<Field> = raw
                .fields
                .iter()
                .map(|f| {
                    let property = properties.get(&normalise(f.name));
                    let json = property.map_or_else(|| lower_camel(f.name), |p| (*p).to_string());
                    let inline = property.is_none()
                        && f.label == Label::Single
                        && match f.kind {
                            RawKind::Message(child) => is_inlined(&properties, &MESSAGES[child]),
                            _ => false,
                        };
                    let keep = required.contains(json.as_str())
                        || match f.kind {
                            RawKind::String => {
                                MEANINGFUL_EMPTY.contains(&(name.as_str(), json.as_str()))
                            }
                            RawKind::Bool | RawKind::Int32 | RawKind::Int64 | RawKind::Double => {
                                !status && !plain.contains(&(name.as_str(), json.as_str()))
                            }
                            RawKind::Bytes | RawKind::Message(_) => true,
                        };
                    let zero = if keep { Zero::Keep } else { Zero::Drop };
                    Field {
                        tag: f.tag,
                        json,
                        label: f.label,
                        kind: f.kind,
                        zero,
                        inline,
                    }
                })
                .collect();
            fields.sort_by_key(|f| f.tag);
            let special = special(&name, raw);
            by_name.insert(
                format!("{}.{}", raw.package, raw.name).to_lowercase(),
                index,
            );
            messages.push(Message {
                name,
                special,
                fields,
            });
        }
        let mut groups: HashMap<&'static str, &'static str> =
            EXTRA_GROUPS.iter().copied().collect();
        groups.extend(GROUPS.iter().copied());
        Table {
            messages,
            by_name,
            groups,
        }
    }

    /// The message of a kind, e.g. (`apps`, `v1`, `Deployment`). Options
    /// kinds (`DeleteOptions`) resolve in any group to their `meta.v1` message.
    pub(super) fn lookup(&self, group: &str, version: &str, kind: &str) -> Option<usize> {
        let prefix = match self.groups.get(group) {
            Some(prefix) => (*prefix).to_string(),
            None => format!("io.k8s.api.{}", group.split('.').next().unwrap_or(group)),
        };
        self.by_name
            .get(&format!("{prefix}.{version}.{kind}").to_lowercase())
            .or_else(|| {
                self.by_name
                    .get(&format!("{META_V1}.{kind}").to_lowercase())
            })
            .copied()
    }
}

/// Whether an embedded message's fields are properties of the parent's
/// schema (Go `json:",inline"`); a field newer than the schemas is not.
fn is_inlined(parent: &HashMap<String, &str>, child: &RawMessage) -> bool {
    let matching = child
        .fields
        .iter()
        .filter(|f| parent.contains_key(&normalise(f.name)))
        .count();
    matching > 0 && matching * 2 >= child.fields.len()
}

fn special(name: &str, raw: &RawMessage) -> Special {
    let short = name.rsplit('.').next().unwrap_or(name);
    match name {
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time" => Special::Time,
        "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime" => Special::MicroTime,
        "io.k8s.apimachinery.pkg.apis.meta.v1.Duration" => Special::Duration,
        "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1" => Special::FieldsV1,
        "io.k8s.apimachinery.pkg.api.resource.Quantity" => Special::Quantity,
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => Special::IntOrString,
        "io.k8s.apimachinery.pkg.runtime.RawExtension" => Special::RawExtension,
        "io.k8s.apimachinery.pkg.runtime.Unknown" => Special::Unknown,
        _ if name.starts_with("io.k8s.apiextensions-apiserver.") => match short {
            "JSON" | "Json" => Special::Json,
            "JSONSchemaPropsOrBool" | "JsonSchemaPropsOrBool" => Special::SchemaOrBool,
            "JSONSchemaPropsOrArray" | "JsonSchemaPropsOrArray" => Special::SchemaOrArray,
            "JSONSchemaPropsOrStringArray" | "JsonSchemaPropsOrStringArray" => {
                Special::SchemaOrStringArray
            }
            _ => Special::None,
        },
        _ => match raw.fields {
            [
                RawField {
                    name: "items",
                    label: Label::Repeated,
                    kind: RawKind::String,
                    ..
                },
            ] => Special::Items,
            _ => Special::None,
        },
    }
}

/// Normalised property name → JSON name, for a definition's properties.
fn properties(schema: &Value) -> HashMap<String, &str> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| props.keys().map(|k| (normalise(k), k.as_str())).collect())
        .unwrap_or_default()
}

fn required(schema: &Value) -> HashSet<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Lower-case alphanumerics only: `pod_ips`, `podIPs` → `podips`; `$ref` → `ref`.
fn normalise(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `pod_ips` → `podIPs`, for fields no schema names.
fn lower_camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    for (i, word) in snake.split('_').filter(|w| !w.is_empty()).enumerate() {
        if i == 0 {
            out.push_str(word);
            continue;
        }
        match word {
            "ip" | "id" | "uid" | "url" | "uri" | "cidr" | "api" | "tls" | "dns" | "os" => {
                out.push_str(&word.to_ascii_uppercase());
            }
            "ips" | "cidrs" | "ids" | "uids" | "urls" | "uris" => {
                out.push_str(&word[..word.len() - 1].to_ascii_uppercase());
                out.push('s');
            }
            _ => {
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    out.push(first.to_ascii_uppercase());
                    out.push_str(chars.as_str());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_come_from_the_schemas() {
        let table = &*TABLE;
        let pod_status = table
            .lookup("", "v1", "PodStatus")
            .map(|i| &table.messages[i]);
        let names: Vec<&str> = pod_status
            .unwrap()
            .fields
            .iter()
            .map(|f| f.json.as_str())
            .collect();
        assert!(names.contains(&"podIPs"), "{names:?}");
        assert!(names.contains(&"hostIP"), "{names:?}");
        let csi = table.lookup("storage.k8s.io", "v1", "CSIDriver").unwrap();
        assert_eq!(table.messages[csi].name, "io.k8s.api.storage.v1.CSIDriver");
    }

    #[test]
    fn lower_camel_knows_acronyms() {
        assert_eq!(lower_camel("pod_ips"), "podIPs");
        assert_eq!(lower_camel("host_ip"), "hostIP");
        assert_eq!(
            lower_camel("termination_grace_period_seconds"),
            "terminationGracePeriodSeconds"
        );
    }

    /// Fields the 1.33 schemas lack (newer than k8s-openapi's version) fall
    /// back to lowerCamelCase; a long list would mean the matching broke.
    #[test]
    fn nearly_every_covered_field_matches_a_schema_property() {
        let defs = crate::schema::definitions();
        let mut missing = Vec::new();
        for message in &TABLE.messages {
            let Some(props) = defs.get(&message.name).and_then(|d| d.get("properties")) else {
                continue;
            };
            for field in message.fields.iter().filter(|f| !f.inline) {
                if props.get(&field.json).is_none() {
                    missing.push(format!("{}.{}", message.name, field.json));
                }
            }
        }
        assert!(missing.len() < 20, "{missing:?}");
    }
}

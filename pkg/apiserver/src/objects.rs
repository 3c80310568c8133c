//! Objects as stored: where each lives in the key space and the
//! server-managed metadata kite reads and writes on them.
//!
//! Keys are `/registry/<group>/<resource>/<namespace>/<name>` (`core` for
//! the core group; no namespace segment for cluster-scoped kinds). Objects are
//! stored as JSON without `metadata.resourceVersion`: the store's revision is
//! the resource version and is put back on read, as kube-apiserver does with
//! etcd's mod revision.

use bytes::Bytes;
use kite_api::ResourceInfo;
use serde_json::{Map, Value};

/// The key prefix of every object of a resource.
pub fn resource_prefix(resource: &ResourceInfo) -> String {
    // Kinds served by two APIs live under one prefix (see kite_api::conversion).
    let (group, plural) = match kite_api::conversion::storage(&resource.group, &resource.plural) {
        Some(storage) => (storage.group, storage.plural),
        None => (resource.group.as_str(), resource.plural.as_str()),
    };
    let group = if group.is_empty() { "core" } else { group };
    format!("/registry/{group}/{plural}/")
}

/// The key prefix of a resource's objects in one namespace (or all, for `None`).
pub fn prefix(resource: &ResourceInfo, namespace: Option<&str>) -> String {
    match namespace.filter(|_| resource.namespaced) {
        Some(ns) => format!("{}{ns}/", resource_prefix(resource)),
        None => resource_prefix(resource),
    }
}

/// The key of one object.
pub fn key(resource: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    format!("{}{name}", prefix(resource, namespace))
}

/// The object's metadata map, created if missing (or replaced if not a map).
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(map)) => map,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// A string field of `metadata`, empty when absent.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The object's name.
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

/// The object's namespace.
pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace")
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(obj: &mut Value, revision: i64) {
    metadata_mut(obj).insert(
        "resourceVersion".into(),
        Value::String(revision.to_string()),
    );
}

/// The stored form: JSON without `metadata.resourceVersion`, in the storage
/// version of kinds two APIs share.
pub fn encode(obj: &Value) -> Bytes {
    let mut stored = kite_api::conversion::to_storage(obj).unwrap_or_else(|| obj.clone());
    if let Some(Value::Object(meta)) = stored.get_mut("metadata") {
        meta.remove("resourceVersion");
    }
    Bytes::from(serde_json::to_vec(&stored).unwrap_or_default())
}

/// Decodes a stored object and puts its resource version back.
pub fn decode(bytes: &[u8], revision: i64) -> Result<Value, serde_json::Error> {
    let mut obj: Value = serde_json::from_slice(bytes)?;
    set_resource_version(&mut obj, revision);
    Ok(obj)
}

/// The stored bytes with `metadata.resourceVersion` put back, without parsing the
/// whole object: the top-level `"metadata":{` is found by a scan that skips strings,
/// and the field is inserted right after it. Falls back to a full decode when the
/// object has no metadata object.
pub fn with_resource_version(stored: &[u8], revision: i64) -> Result<Bytes, serde_json::Error> {
    if let Some(at) = top_level_metadata(stored) {
        let field = format!("\"resourceVersion\":\"{revision}\"");
        let empty = stored
            .get(at..)
            .and_then(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()))
            == Some(&b'}');
        let mut out = Vec::with_capacity(stored.len() + field.len() + 1);
        out.extend_from_slice(&stored[..at]);
        out.extend_from_slice(field.as_bytes());
        if !empty {
            out.push(b',');
        }
        out.extend_from_slice(&stored[at..]);
        return Ok(Bytes::from(out));
    }
    let value = decode(stored, revision)?;
    Ok(Bytes::from(serde_json::to_vec(&value)?))
}

/// Offset just after the `{` that opens the top-level `metadata` object.
fn top_level_metadata(json: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    if json[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let key = json.get(start..i)?;
                i += 1;
                if depth == 1 && key == b"metadata" {
                    let mut j = i;
                    while j < json.len() && json[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if json.get(j) == Some(&b':') {
                        j += 1;
                        while j < json.len() && json[j].is_ascii_whitespace() {
                            j += 1;
                        }
                        if json.get(j) == Some(&b'{') {
                            return Some(j + 1);
                        }
                    }
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Labels of an object as a map (empty when absent).
pub fn labels(obj: &Value) -> Map<String, Value> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// RFC 3339 UTC timestamp with second precision, as Kubernetes writes `metav1.Time`.
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// `time` in RFC 3339 at seconds precision, as `metav1.Time` serialises.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    let now = time::OffsetDateTime::from(time);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// A random UUID (version 4) for `metadata.uid`.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6],
        b[7],
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// The 5 random characters kube-apiserver appends to `generateName`.
pub fn name_suffix() -> String {
    // Kubernetes' alphabet: no vowels (no words) and no look-alike characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Puts `condition` into `obj.status.conditions` in place of any of its type.
pub fn replace_condition(obj: &mut Value, condition: Value) {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = Value::Object(Map::new());
    }
    let conditions = &mut obj["status"]["conditions"];
    if !conditions.is_array() {
        *conditions = Value::Array(Vec::new());
    }
    let kind = condition.get("type").cloned();
    if let Some(list) = conditions.as_array_mut() {
        list.retain(|c| c.get("type") != kind.as_ref());
        list.push(condition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_separate_groups_namespaces_and_names() {
        let all = kite_api::resources::builtin();
        let pods = all.iter().find(|r| r.plural == "pods").expect("pods");
        let nodes = all.iter().find(|r| r.plural == "nodes").expect("nodes");
        assert_eq!(
            key(pods, Some("default"), "web"),
            "/registry/core/pods/default/web"
        );
        assert_eq!(prefix(pods, None), "/registry/core/pods/");
        assert_eq!(key(nodes, None, "n1"), "/registry/core/nodes/n1");
        assert_eq!(key(nodes, Some("ignored"), "n1"), "/registry/core/nodes/n1");
    }

    #[test]
    fn resource_version_is_not_stored_but_restored() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "7"}, "data": {"k": "v"}});
        let bytes = encode(&obj);
        assert!(!String::from_utf8_lossy(&bytes).contains("resourceVersion"));
        let back = decode(&bytes, 42).expect("decode");
        assert_eq!(back["metadata"]["resourceVersion"], "42");
    }

    #[test]
    fn resource_versions_are_spliced_into_stored_bytes() {
        let cases = [
            json!({"apiVersion": "v1", "data": {"metadata": "x", "k\"metadata\"": "{"}, "kind": "ConfigMap", "metadata": {"name": "a"}}),
            json!({"metadata": {}, "spec": {"template": {"metadata": {"labels": {"a": "b"}}}}}),
            json!({"kind": "X"}),
        ];
        for obj in cases {
            let stored = encode(&obj);
            let spliced = with_resource_version(&stored, 42).expect("splice");
            let back: Value = serde_json::from_slice(&spliced).expect("valid json");
            assert_eq!(back, decode(&stored, 42).expect("decode"), "{obj}");
        }
    }

    #[test]
    fn generated_identifiers_have_kubernetes_shapes() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        let suffix = name_suffix();
        assert_eq!(suffix.len(), 5);
        assert!(
            suffix
                .bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
        assert!(now_rfc3339().ends_with('Z'));
    }
}

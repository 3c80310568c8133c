//! Field paths as server-side apply names them.
//!
//! A path is a list of elements: a field of an object (`f:spec`), an item of
//! an associative list by its key fields (`k:{"name":"web"}`), an item of a
//! set by its value (`v:"foo"`), or, for lists without keys, an index
//! (`i:0`). The prefixed forms are how `metadata.managedFields[].fieldsV1`
//! spells them; [`display`] gives the `.spec.containers[name="web"].image`
//! form that conflict messages use.

use serde_json::Value;

/// One step of a [`Path`].
///
/// The derived order (fields, then keys, then values, then indexes) is the
/// order structured-merge-diff sorts elements in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    /// A field of an object or a key of a map.
    Field(String),
    /// An associative-list item, by its key fields as canonical JSON (`{"name":"web"}`).
    Key(String),
    /// A set item, by its value as canonical JSON (`"foo"`).
    Value(String),
    /// A list item by position, for lists that have no key.
    Index(usize),
}

/// A path from the object's root.
pub type Path = Vec<Element>;

impl Element {
    /// The `fieldsV1` spelling: `f:name`, `k:{...}`, `v:...`, `i:N`.
    pub fn encode(&self) -> String {
        match self {
            Self::Field(name) => format!("f:{name}"),
            Self::Key(key) => format!("k:{key}"),
            Self::Value(value) => format!("v:{value}"),
            Self::Index(index) => format!("i:{index}"),
        }
    }

    /// Parses the `fieldsV1` spelling; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let (prefix, rest) = text.split_at_checked(2)?;
        match prefix {
            "f:" => Some(Self::Field(rest.to_string())),
            "k:" => canonical(rest).map(Self::Key),
            "v:" => canonical(rest).map(Self::Value),
            "i:" => rest.parse().ok().map(Self::Index),
            _ => None,
        }
    }
}

/// Re-serialises JSON text so equal keys compare equal as strings.
fn canonical(text: &str) -> Option<String> {
    serde_json::from_str::<Value>(text)
        .ok()
        .map(|v| v.to_string())
}

/// The path as conflict messages print it: `.spec.containers[name="web"].image`.
pub fn display(path: &[Element]) -> String {
    let mut out = String::new();
    for element in path {
        match element {
            Element::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            Element::Key(key) => {
                out.push('[');
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(key) {
                    let parts: Vec<String> =
                        fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    out.push_str(&parts.join(","));
                }
                out.push(']');
            }
            Element::Value(value) => {
                out.push_str("[=");
                out.push_str(value);
                out.push(']');
            }
            Element::Index(index) => {
                out.push_str(&format!("[{index}]"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_round_trip_through_their_fields_v1_spelling() {
        for element in [
            Element::Field("spec".into()),
            Element::Key(r#"{"name":"web"}"#.into()),
            Element::Value(r#""foo""#.into()),
            Element::Index(3),
        ] {
            assert_eq!(Element::decode(&element.encode()), Some(element));
        }
        assert_eq!(Element::decode("x:y"), None);
        assert_eq!(Element::decode("k:{not json"), None);
    }

    #[test]
    fn paths_display_as_conflict_messages_print_them() {
        let path = vec![
            Element::Field("spec".into()),
            Element::Field("ports".into()),
            Element::Key(r#"{"port":80,"protocol":"TCP"}"#.into()),
            Element::Field("targetPort".into()),
        ];
        assert_eq!(
            display(&path),
            r#".spec.ports[port=80,protocol="TCP"].targetPort"#
        );
        let set = vec![
            Element::Field("metadata".into()),
            Element::Field("finalizers".into()),
            Element::Value(r#""a""#.into()),
        ];
        assert_eq!(display(&set), r#".metadata.finalizers[="a"]"#);
    }
}

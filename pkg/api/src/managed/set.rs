//! Sets of field paths, and their `fieldsV1` encoding.
//!
//! A set holds *members*: the leaves a manager owns, and list items (which are
//! members themselves as well as parents of their fields). In `fieldsV1` a
//! member with no children is `{}`, a member with children carries `".": {}`
//! among them, and a parent that is only on the way to members has neither.

use super::path::{Element, Path};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A set of member paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<Path>,
}

impl FieldSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a member.
    pub fn insert(&mut self, path: Path) {
        self.members.insert(path);
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[Element]) -> bool {
        self.members.contains(path)
    }

    /// Whether the set has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// How many members the set has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The members, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.members.iter()
    }

    /// Members of either set.
    pub fn union(&self, other: &Self) -> Self {
        Self {
            members: self.members.union(&other.members).cloned().collect(),
        }
    }

    /// Members of `self` that are not members of `other`.
    pub fn difference(&self, other: &Self) -> Self {
        Self {
            members: self.members.difference(&other.members).cloned().collect(),
        }
    }

    /// Members of both sets.
    pub fn intersection(&self, other: &Self) -> Self {
        Self {
            members: self.members.intersection(&other.members).cloned().collect(),
        }
    }

    /// The members for which `keep` is true.
    pub fn filtered(&self, keep: impl Fn(&[Element]) -> bool) -> Self {
        Self {
            members: self.members.iter().filter(|p| keep(p)).cloned().collect(),
        }
    }

    /// Reads a `fieldsV1` value; errors name the first element that is not one.
    pub fn from_fields_v1(value: &Value) -> Result<Self, String> {
        let mut set = Self::new();
        let mut path = Vec::new();
        read(value, &mut path, &mut set)?;
        Ok(set)
    }

    /// The `fieldsV1` value of this set.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Node::default();
        for path in &self.members {
            let mut node = &mut root;
            for element in path {
                node = node.children.entry(element.clone()).or_default();
            }
            node.member = true;
        }
        root.to_value()
    }
}

fn read(value: &Value, path: &mut Path, set: &mut FieldSet) -> Result<(), String> {
    let Value::Object(children) = value else {
        return Err(format!(
            "expected an object at {}",
            super::path::display(path)
        ));
    };
    for (key, child) in children {
        if key == "." {
            set.insert(path.clone());
            continue;
        }
        let element =
            Element::decode(key).ok_or_else(|| format!("invalid path element {key:?}"))?;
        path.push(element);
        match child {
            Value::Object(grandchildren) if grandchildren.is_empty() => set.insert(path.clone()),
            _ => read(child, path, set)?,
        }
        path.pop();
    }
    Ok(())
}

#[derive(Default)]
struct Node {
    member: bool,
    children: BTreeMap<Element, Node>,
}

impl Node {
    fn to_value(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (element, child) in &self.children {
            map.insert(element.encode(), child.to_value());
        }
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trips() {
        let v1 = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}
                }}}
            }
        });
        let set = FieldSet::from_fields_v1(&v1).expect("valid");
        assert_eq!(set.len(), 6);
        assert_eq!(set.to_fields_v1(), v1);
    }

    #[test]
    fn malformed_fields_v1_is_an_error() {
        assert!(FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
    }

    #[test]
    fn set_algebra() {
        let a = FieldSet::from_fields_v1(&json!({"f:a": {}, "f:b": {}})).expect("a");
        let b = FieldSet::from_fields_v1(&json!({"f:b": {}, "f:c": {}})).expect("b");
        assert_eq!(a.union(&b).len(), 3);
        assert_eq!(a.intersection(&b).to_fields_v1(), json!({"f:b": {}}));
        assert_eq!(a.difference(&b).to_fields_v1(), json!({"f:a": {}}));
    }
}

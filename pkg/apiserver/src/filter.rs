//! Which objects a list or watch returns: the namespace from the path plus
//! `labelSelector` and `fieldSelector` (with each kind's selectable fields).

use crate::errors::ApiResult;
use crate::objects;
use kite_api::ResourceInfo;
use kite_api::selector::{FieldSelector, LabelSelector, field_set};
use serde_json::Value;

/// A parsed list/watch filter.
#[derive(Clone, Debug)]
pub struct Filter {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    group: String,
    kind: String,
}

impl Filter {
    /// Parses the selectors of a request for `resource`, scoped to `namespace`.
    pub fn new(
        resource: &ResourceInfo,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> ApiResult<Self> {
        let labels = match label_selector.map(str::trim) {
            Some(s) if !s.is_empty() => LabelSelector::parse(s).map_err(|e| e.status())?,
            _ => LabelSelector::everything(),
        };
        let fields = match field_selector.map(str::trim) {
            Some(s) if !s.is_empty() => {
                if crate::strategy::is_custom(resource) {
                    FieldSelector::parse_for_kind(s, "", "").map_err(|e| e.status())?
                } else {
                    FieldSelector::parse_for_kind(s, &resource.group, &resource.kind)
                        .map_err(|e| e.status())?
                }
            }
            _ => FieldSelector::everything(),
        };
        Ok(Self {
            namespace: namespace.map(str::to_string),
            labels,
            fields,
            group: resource.group.clone(),
            kind: resource.kind.clone(),
        })
    }

    /// Whether only the namespace restricts this filter (so counts are exact).
    pub fn is_namespace_only(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether a cached object passes (no parsing: the cache keeps what filters read).
    pub fn matches_cached(&self, obj: &crate::watch_cache::CachedObject) -> bool {
        if self
            .namespace
            .as_deref()
            .is_some_and(|ns| obj.namespace() != ns)
        {
            return false;
        }
        if !self.labels.is_empty() && !self.labels.matches(obj.labels()) {
            return false;
        }
        self.fields.is_empty() || self.fields.matches(obj.fields())
    }

    /// Whether `obj` passes.
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && objects::namespace(obj) != ns
        {
            return false;
        }
        if !self.labels.is_empty() && !self.labels.matches(&objects::labels(obj)) {
            return false;
        }
        self.fields.is_empty()
            || self
                .fields
                .matches(&field_set(&self.group, &self.kind, obj))
    }
}

//! Field ownership on writes: who the manager of a request is, and the
//! schema `metadata.managedFields` is computed with (see [`kite_api::managed`]).

use crate::api::Call;
use crate::errors::ApiResult;
use crate::objects;
use crate::strategy;
use http::header;
use kite_api::FieldError;
use kite_api::managed::{self, Writer};
use kite_api::schema::SchemaNode;
use kite_api::validation::invalid_status;
use serde_json::Value;

/// The longest manager name kube-apiserver accepts.
const MAX_MANAGER_LENGTH: usize = 128;

/// What a write needs to record field ownership.
pub struct Ownership {
    manager: String,
    api_version: String,
    subresource: String,
    has_status: bool,
    builtin: Option<SchemaNode<'static>>,
    custom: Option<std::sync::Arc<kite_api::resources::CustomSchema>>,
    now: String,
}

impl Ownership {
    /// The ownership context of `call` writing `subresource`.
    ///
    /// The manager is the `fieldManager` parameter, else the client's
    /// User-Agent up to its first `/` (as kube-apiserver names unnamed
    /// writers: `kubectl`, `OpenAPI-Generator`). Apply requires the parameter.
    pub fn of(call: &Call<'_>, subresource: Option<&str>, apply: bool) -> ApiResult<Self> {
        let options = match (apply, call.request.verb) {
            (true, _) | (_, crate::request::Verb::Patch) => "PatchOptions",
            (_, crate::request::Verb::Create) => "CreateOptions",
            _ => "UpdateOptions",
        };
        let requested = call.param("fieldManager").unwrap_or_default();
        let manager = if !requested.is_empty() {
            requested
        } else if apply {
            return Err(invalid_status(
                "meta.k8s.io",
                options,
                "",
                &[FieldError::required(
                    "fieldManager",
                    "is required for apply patch",
                )],
            ));
        } else {
            user_agent_prefix(call)
        };
        if manager.len() > MAX_MANAGER_LENGTH {
            return Err(invalid_status(
                "meta.k8s.io",
                options,
                "",
                &[FieldError::too_long("fieldManager", MAX_MANAGER_LENGTH)],
            ));
        }
        let resource = &call.resource;
        let (builtin, custom) = if strategy::is_custom(resource) {
            (None, resource.custom.clone())
        } else {
            let node = kite_api::schema::definition_name_for(
                &resource.group,
                &resource.version,
                &resource.kind,
            )
            .and_then(kite_api::schema::node);
            (node, None)
        };
        Ok(Self {
            manager,
            api_version: resource.api_version(),
            subresource: subresource.unwrap_or_default().to_string(),
            has_status: strategy::has_status(resource),
            builtin,
            custom,
            now: objects::now_rfc3339(),
        })
    }

    fn schema(&self) -> Option<SchemaNode<'_>> {
        match &self.custom {
            Some(custom) if !custom.schema.is_null() => {
                Some(SchemaNode::standalone(&custom.schema))
            }
            Some(_) => None,
            None => self.builtin,
        }
    }

    fn writer(&self) -> Writer<'_> {
        Writer {
            manager: &self.manager,
            api_version: &self.api_version,
            subresource: &self.subresource,
            has_status: self.has_status,
            now: &self.now,
        }
    }

    /// Records a create (`old` is `None`), update or non-apply patch into `new`.
    pub fn record_update(&self, old: Option<&Value>, new: &mut Value) {
        managed::record_update(old, new, self.schema(), &self.writer());
    }

    /// Server-side apply of `config` onto `live` (`{}` when creating).
    pub fn apply(&self, live: &Value, config: &Value, force: bool) -> ApiResult<Value> {
        managed::apply(live, config, self.schema(), &self.writer(), force).map_err(|c| c.status())
    }
}

fn user_agent_prefix(call: &Call<'_>) -> String {
    let agent = call
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let prefix = agent.split('/').next().unwrap_or_default();
    prefix
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_MANAGER_LENGTH)
        .collect()
}

//! One module per verb; each takes a decoded [`Call`](crate::api::Call) and
//! returns a response or a `Status`.

pub mod binding;
pub mod create;
pub mod delete;
pub mod eviction;
pub mod get;
pub mod list;
pub mod patch;
pub mod scale;
pub mod update;
pub mod watch;

use crate::api::Call;
use crate::body::Body;
use crate::errors::{self, ApiResult};
use crate::request::Verb;
use http::Response;

/// Requests for `<resource>/<name>/<subresource>`.
pub async fn subresource(call: &Call<'_>, name: &str) -> ApiResult<Response<Body>> {
    let Some(sub) = call.resource.subresource(name) else {
        return Err(errors::no_such_resource());
    };
    let verb = call.request.verb;
    if !sub.verbs.iter().any(|v| v == verb.as_str()) {
        return Err(errors::method_not_allowed(&call.resource, verb.as_str()));
    }
    match (name, verb) {
        ("status", Verb::Get) => get::get(call).await,
        ("status", Verb::Update) => update::update(call, Some("status")).await,
        ("status", Verb::Patch) => patch::patch(call, Some("status")).await,
        ("scale", _) => scale::scale(call).await,
        ("token", Verb::Create) => crate::auth::token_request(call).await,
        ("binding", Verb::Create) if call.resource.kind == "Pod" => binding::bind(call).await,
        ("eviction", Verb::Create) if call.resource.kind == "Pod" => eviction::evict(call).await,
        ("finalize", Verb::Update) => update::update(call, Some("finalize")).await,
        ("approval", Verb::Get) => get::get(call).await,
        ("approval", Verb::Update) => update::update(call, Some("approval")).await,
        ("approval", Verb::Patch) => patch::patch(call, Some("approval")).await,
        ("log", Verb::Get) if call.resource.kind == "Pod" => crate::kubelet_proxy::log(call).await,
        ("proxy", _) if call.resource.kind == "Node" => {
            crate::kubelet_proxy::node_proxy(call).await
        }
        ("exec" | "attach" | "portforward", Verb::Get | Verb::Create)
            if call.resource.kind == "Pod" =>
        {
            crate::kubelet_proxy::connect(call, name).await
        }
        _ => Err(kite_api::Status::failure(
            kite_api::StatusReason::MethodNotAllowed,
            format!(
                "the subresource {name:?} of {} is not served yet",
                call.resource.group_resource()
            ),
        )),
    }
}

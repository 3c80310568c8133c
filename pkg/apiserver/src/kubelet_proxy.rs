//! The pod subresources the kubelet serves: `pods/log`, `pods/exec`,
//! `pods/attach` and `pods/portforward`. As kube-apiserver does, the
//! apiserver resolves the container and the node (its `InternalIP` and
//! `daemonEndpoints.kubeletEndpoint.Port`), then calls the kubelet over TLS
//! with its kubelet client certificate: a log is streamed back; an upgrade
//! (SPDY or WebSocket) is answered with the kubelet's own 101 and the two
//! connections are then joined byte for byte, so the kubelet speaks the
//! stream protocols to kubectl directly.

use crate::api::Call;
use crate::body::{self, Body};
use crate::errors::{self, ApiResult};
use crate::objects;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kite_api::{Status, StatusReason};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_rustls::TlsConnector;

/// How long connecting to a kubelet may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a kubelet's error body becomes the message.
const MAX_ERROR_BODY: usize = 50_000;

/// The apiserver's client side of the kubelet API.
pub struct KubeletClient {
    connector: TlsConnector,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient").finish_non_exhaustive()
    }
}

/// PEM material for [`KubeletClient`].
#[derive(Clone, Debug)]
pub struct KubeletClientConfig {
    /// The client certificate kubelets accept (`kube-apiserver-kubelet-client`).
    pub cert_pem: Vec<u8>,
    /// Its key.
    pub key_pem: Vec<u8>,
    /// The CA kubelet serving certificates chain to.
    pub ca_pem: Vec<u8>,
}

impl KubeletClient {
    /// A client presenting `config`'s certificate and trusting its CA.
    pub fn new(config: &KubeletClientConfig) -> crate::Result<Self> {
        let tls = |e: &dyn std::fmt::Display| crate::Error::Tls(format!("kubelet client: {e}"));
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(&config.ca_pem) {
            roots.add(ca.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
        }
        let chain = CertificateDer::pem_slice_iter(&config.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls(&e))?;
        let key = PrivateKeyDer::from_pem_slice(&config.key_pem).map_err(|e| tls(&e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(&e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls(&e))?;
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// GETs `path` from the kubelet at `ip:port`; the body of a 200, at most
    /// `limit` bytes.
    pub(crate) async fn get(
        &self,
        ip: IpAddr,
        port: u16,
        path: &str,
        limit: usize,
    ) -> Result<Bytes, String> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, format!("{ip}:{port}"))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = self.send(ip, port, request).await?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
        Ok(body)
    }

    /// Sends `request` to the kubelet at `ip:port` on a connection of its own.
    async fn send(
        &self,
        ip: IpAddr,
        port: u16,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<hyper::body::Incoming>, String> {
        let connect = async {
            let tcp = tokio::net::TcpStream::connect((ip, port))
                .await
                .map_err(|e| e.to_string())?;
            let _ = tcp.set_nodelay(true);
            self.connector
                .connect(ServerName::IpAddress(ip.into()), tcp)
                .await
                .map_err(|e| e.to_string())
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| "i/o timeout".to_string())??;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "kubelet connection ended with an error");
            }
        });
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Where a pod's kubelet is.
struct Location {
    ip: IpAddr,
    port: u16,
}

/// Reads the pod the call names.
async fn pod(call: &Call<'_>) -> ApiResult<Value> {
    let name = call.request.name.clone().unwrap_or_default();
    let (pod, _) = crate::handlers::get::read(call, &name)
        .await?
        .ok_or_else(|| errors::not_found(&call.resource, &name))?;
    Ok(pod)
}

/// The kubelet of node `node`, as kube-apiserver picks its address.
async fn kubelet(call: &Call<'_>, node: &str) -> ApiResult<Location> {
    let nodes = call
        .api
        .registry
        .get("", "v1", "nodes")
        .ok_or_else(|| errors::internal("nodes are not served"))?;
    let key = objects::key(&nodes, None, node);
    let (_, kv) = call
        .api
        .store
        .get(&key, 0)
        .await
        .map_err(errors::from_store)?;
    let kv = kv.ok_or_else(|| errors::not_found(&nodes, node))?;
    let object = objects::decode(&kv.value, kv.mod_revision).map_err(errors::internal)?;
    let (ip, port) = kubelet_address(&object).ok_or_else(|| {
        errors::bad_request(format!(
            "node {node:?} has no address the apiserver can reach"
        ))
    })?;
    Ok(Location { ip, port })
}

/// Where a Node's kubelet listens: its first InternalIP (else ExternalIP,
/// else a Hostname that is an address) and `daemonEndpoints.kubeletEndpoint.Port`.
pub(crate) fn kubelet_address(node: &Value) -> Option<(IpAddr, u16)> {
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)?;
    let address = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|kind| {
            addresses
                .iter()
                .filter(|a| a["type"] == *kind)
                .find_map(|a| a["address"].as_str()?.parse::<IpAddr>().ok())
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(10250);
    Some((address, port))
}

fn names(containers: Option<&Value>) -> Vec<String> {
    containers
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The container a log, exec or attach request is for, as kube-apiserver
/// chooses it: the one named (which must exist), else the pod's only one.
fn container(pod: &Value, name: &str, requested: Option<String>) -> ApiResult<String> {
    let spec = &pod["spec"];
    let regular = names(spec.get("containers"));
    let init = names(spec.get("initContainers"));
    let ephemeral = names(spec.get("ephemeralContainers"));
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if regular.contains(&c) || init.contains(&c) || ephemeral.contains(&c) => Ok(c),
        Some(c) => Err(errors::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => match regular.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(errors::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            many => {
                let mut message = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    many.join(" ")
                );
                if !init.is_empty() {
                    message.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                Err(errors::bad_request(message))
            }
        },
    }
}

/// The kubelet's answers to a log request it cannot serve, worded as the
/// kubelet's `validateContainerLogStatus` words them, from the pod's status.
fn log_status_error(pod: &Value, name: &str, container: &str, previous: bool) -> Option<Status> {
    let statuses = [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ];
    let status = statuses.iter().find_map(|field| {
        pod["status"][field]
            .as_array()?
            .iter()
            .find(|s| s["name"] == container)
            .cloned()
    });
    let Some(status) = status else {
        return Some(errors::bad_request(format!(
            "container {container:?} in pod {name:?} is waiting to start: ContainerCreating"
        )));
    };
    let last_terminated = status.pointer("/lastState/terminated").is_some();
    if previous {
        return (!last_terminated).then(|| {
            errors::bad_request(format!(
                "previous terminated container {container:?} in pod {name:?} not found"
            ))
        });
    }
    let state = &status["state"];
    if state.get("running").is_some() || state.get("terminated").is_some() || last_terminated {
        return None;
    }
    let reason = state
        .pointer("/waiting/reason")
        .and_then(Value::as_str)
        .unwrap_or("ContainerCreating");
    let why = match reason {
        "ErrImagePull" => "image can't be pulled".to_string(),
        "ImagePullBackOff" => "trying and failing to pull image".to_string(),
        other => other.to_string(),
    };
    Some(errors::bad_request(format!(
        "container {container:?} in pod {name:?} is waiting to start: {why}"
    )))
}

fn query_pairs(call: &Call<'_>, keys: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (theirs, ours) in keys {
        for (k, v) in crate::request::query_params(call.query) {
            if k == *theirs {
                pairs.push((ours.to_string(), v));
            }
        }
    }
    pairs
}

fn encode_query(pairs: &[(String, String)]) -> String {
    let encode = |text: &str| {
        let mut out = String::new();
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn kubelet_client(call: &Call<'_>) -> ApiResult<Arc<KubeletClient>> {
    call.api.kubelet.clone().ok_or_else(|| {
        Status::failure(
            StatusReason::ServiceUnavailable,
            "the apiserver has no kubelet client configured",
        )
    })
}

/// Turns a kubelet's refusal into the `Status` kube-apiserver makes of it.
async fn refusal(response: Response<hyper::body::Incoming>, call: &Call<'_>) -> Status {
    let code = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let name = call.request.name.clone().unwrap_or_default();
    match code {
        StatusCode::BAD_REQUEST => errors::bad_request(text),
        StatusCode::INTERNAL_SERVER_ERROR => errors::internal(text),
        StatusCode::NOT_FOUND => errors::not_found(&call.resource, &name),
        StatusCode::FORBIDDEN => Status::failure(StatusReason::Forbidden, text),
        _ => Status::failure(
            StatusReason::InternalError,
            format!("unexpected response from the kubelet: {code}: {text}"),
        ),
    }
}

fn unreachable(location: &Location, error: &str) -> Status {
    Status::failure(
        StatusReason::InternalError,
        format!("Get \"https://{}:{}\": {error}", location.ip, location.port),
    )
}

/// `GET pods/{name}/log`.
pub async fn log(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let name = call.request.name.clone().unwrap_or_default();
    let pod = pod(call).await?;
    let container = container(&pod, &name, call.param("container"))?;
    for key in ["tailLines", "limitBytes", "sinceSeconds"] {
        if let Some(v) = call.param(key)
            && v.parse::<i64>().is_err()
        {
            return Err(errors::bad_request(format!(
                "couldn't parse the parameter {key:?}: invalid value {v:?}"
            )));
        }
    }
    let previous = call
        .param("previous")
        .is_some_and(|v| crate::request::parse_bool(&v));
    let Some(node) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        // Not scheduled: nothing was logged yet.
        return Ok(text_response(body::full(Bytes::new())));
    };
    if let Some(status) = log_status_error(&pod, &name, &container, previous) {
        return Err(status);
    }
    let location = kubelet(call, node).await?;
    let client = kubelet_client(call)?;
    let query = encode_query(&query_pairs(
        call,
        &[
            ("follow", "follow"),
            ("previous", "previous"),
            ("tailLines", "tailLines"),
            ("sinceSeconds", "sinceSeconds"),
            ("sinceTime", "sinceTime"),
            ("timestamps", "timestamps"),
            ("limitBytes", "limitBytes"),
        ],
    ));
    let path = format!(
        "/containerLogs/{}/{}/{}?{query}",
        segment(call.namespace().unwrap_or("")),
        segment(&name),
        segment(&container)
    );
    let request = Request::get(path)
        .header(header::HOST, format!("{}:{}", location.ip, location.port))
        .body(Full::new(Bytes::new()))
        .map_err(errors::internal)?;
    let response = client
        .send(location.ip, location.port, request)
        .await
        .map_err(|e| unreachable(&location, &e))?;
    if !response.status().is_success() {
        return Err(refusal(response, call).await);
    }
    // Errors mid-stream end the body, as a closed connection does.
    use futures::StreamExt;
    let stream = response
        .into_body()
        .into_data_stream()
        .take_while(|item| std::future::ready(item.is_ok()))
        .filter_map(|item| std::future::ready(item.ok().map(|b| Ok(hyper::body::Frame::data(b)))));
    Ok(text_response(BodyExt::boxed(
        http_body_util::StreamBody::new(stream),
    )))
}

fn text_response(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

/// Headers that belong to this hop or to the apiserver, not to the kubelet.
fn forwardable(name: &header::HeaderName) -> bool {
    let name = name.as_str();
    !(name == "authorization"
        || name == "host"
        || name == "content-length"
        || name == "transfer-encoding"
        || name.starts_with("impersonate-"))
}

/// `pods/{name}/exec`, `attach` and `portforward` (GET or POST, upgraded).
pub async fn connect(call: &Call<'_>, subresource: &str) -> ApiResult<Response<Body>> {
    let name = call.request.name.clone().unwrap_or_default();
    let pod = pod(call).await?;
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (path, query) = match subresource {
        "portforward" => (
            format!(
                "/portForward/{}/{}",
                segment(call.namespace().unwrap_or("")),
                segment(&name)
            ),
            encode_query(&query_pairs(call, &[("ports", "port")])),
        ),
        _ => {
            if phase == "Succeeded" || phase == "Failed" {
                return Err(errors::bad_request(format!(
                    "cannot {subresource} into a container in a completed pod; current phase is {phase}"
                )));
            }
            let container = container(&pod, &name, call.param("container"))?;
            let mut keys = vec![
                ("stdin", "input"),
                ("stdout", "output"),
                ("stderr", "error"),
                ("tty", "tty"),
            ];
            if subresource == "exec" {
                keys.push(("command", "command"));
            }
            let pairs: Vec<(String, String)> = query_pairs(call, &keys)
                .into_iter()
                .map(|(k, v)| match k.as_str() {
                    "command" => (k, v),
                    _ if crate::request::parse_bool(&v) => (k, "1".to_string()),
                    _ => (k, String::new()),
                })
                .filter(|(_, v)| !v.is_empty())
                .collect();
            let verb = if subresource == "exec" {
                "exec"
            } else {
                "attach"
            };
            (
                format!(
                    "/{verb}/{}/{}/{}",
                    segment(call.namespace().unwrap_or("")),
                    segment(&name),
                    segment(&container)
                ),
                encode_query(&pairs),
            )
        }
    };
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| errors::bad_request(format!("pod {name} does not have a host assigned")))?;
    let location = kubelet(call, node).await?;
    let client = kubelet_client(call)?;
    let Some(upgrade) = call.upgrade.and_then(|u| u.lock().ok()?.take()) else {
        return Err(errors::bad_request("Upgrade request required"));
    };
    // kubectl's SPDY upgrades are POSTs, WebSocket upgrades GETs; the kubelet takes both.
    let method = match call.request.verb {
        crate::request::Verb::Create => Method::POST,
        _ => Method::GET,
    };
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{path}?{query}"))
        .header(header::HOST, format!("{}:{}", location.ip, location.port))
        .body(Full::new(Bytes::new()))
        .map_err(errors::internal)?;
    copy_headers(call.headers, request.headers_mut());
    let mut response = client
        .send(location.ip, location.port, request)
        .await
        .map_err(|e| unreachable(&location, &e))?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(refusal(response, call).await);
    }
    let kubelet_upgrade = hyper::upgrade::on(&mut response);
    let mut answer = Response::new(body::full(Bytes::new()));
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (k, v) in response.headers() {
        answer.headers_mut().append(k, v.clone());
    }
    tokio::spawn(async move {
        let (client_io, kubelet_io) = match tokio::join!(upgrade, kubelet_upgrade) {
            (Ok(c), Ok(k)) => (c, k),
            _ => return,
        };
        let mut client_io = TokioIo::new(client_io);
        let mut kubelet_io = TokioIo::new(kubelet_io);
        if let Err(error) = tokio::io::copy_bidirectional(&mut client_io, &mut kubelet_io).await {
            tracing::debug!(%error, "kubelet stream ended with an error");
        }
    });
    Ok(answer)
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if forwardable(name) {
            to.append(name, value.clone());
        }
    }
}

/// `nodes/{name}/proxy/{path}`: the request, body included, goes to the
/// node's kubelet at `/{path}`; its answer comes back as it is.
pub async fn node_proxy(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let name = call.request.name.clone().unwrap_or_default();
    let location = kubelet(call, &name).await?;
    let client = kubelet_client(call)?;
    let path = call.request.subpath.clone().unwrap_or_default();
    let mut uri = format!("/{}", path.trim_start_matches('/'));
    if !call.query.is_empty() {
        uri.push('?');
        uri.push_str(call.query);
    }
    let method = match call.request.verb {
        crate::request::Verb::Create => Method::POST,
        crate::request::Verb::Update => Method::PUT,
        crate::request::Verb::Patch => Method::PATCH,
        crate::request::Verb::Delete | crate::request::Verb::DeleteCollection => Method::DELETE,
        _ => Method::GET,
    };
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, format!("{}:{}", location.ip, location.port))
        .body(Full::new(call.body.clone()))
        .map_err(errors::internal)?;
    for name in [header::ACCEPT, header::CONTENT_TYPE] {
        if let Some(value) = call.headers.get(&name) {
            request.headers_mut().insert(name, value.clone());
        }
    }
    let response = client
        .send(location.ip, location.port, request)
        .await
        .map_err(|e| unreachable(&location, &e))?;
    let (parts, incoming) = response.into_parts();
    use futures::StreamExt;
    let stream = incoming
        .into_data_stream()
        .take_while(|item| std::future::ready(item.is_ok()))
        .filter_map(|item| std::future::ready(item.ok().map(|b| Ok(hyper::body::Frame::data(b)))));
    let mut answer = Response::new(BodyExt::boxed(http_body_util::StreamBody::new(stream)));
    *answer.status_mut() = parts.status;
    if let Some(value) = parts.headers.get(header::CONTENT_TYPE) {
        answer
            .headers_mut()
            .insert(header::CONTENT_TYPE, value.clone());
    }
    Ok(answer)
}

/// The one-time upgrade handle of a request, for [`Call::upgrade`].
pub type UpgradeSlot = Mutex<Option<hyper::upgrade::OnUpgrade>>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_only_container_is_the_default_and_several_need_a_name() {
        let one = json!({"spec": {"containers": [{"name": "c"}]}});
        assert_eq!(container(&one, "p", None).unwrap(), "c");
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        let err = container(&two, "p", None).unwrap_err();
        assert_eq!(
            err.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        assert_eq!(err.code, 400);
        assert_eq!(container(&two, "p", Some("i".into())).unwrap(), "i");
        assert_eq!(
            container(&two, "p", Some("x".into())).unwrap_err().message,
            "container x is not valid for pod p"
        );
    }

    #[test]
    fn log_errors_follow_the_container_state() {
        let waiting = json!({"status": {"containerStatuses": [
            {"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}
        ]}});
        assert_eq!(
            log_status_error(&waiting, "p", "c", false).unwrap().message,
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        assert_eq!(
            log_status_error(&waiting, "p", "c", true).unwrap().message,
            "previous terminated container \"c\" in pod \"p\" not found"
        );
        let restarted = json!({"status": {"containerStatuses": [
            {"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1}}}
        ]}});
        assert!(log_status_error(&restarted, "p", "c", false).is_none());
        assert!(log_status_error(&restarted, "p", "c", true).is_none());
    }

    #[test]
    fn queries_are_percent_encoded() {
        let pairs = vec![
            ("command".to_string(), "sh -c".to_string()),
            ("tty".into(), "1".into()),
        ];
        assert_eq!(encode_query(&pairs), "command=sh%20-c&tty=1");
        assert_eq!(segment("a b"), "a%20b");
    }
}

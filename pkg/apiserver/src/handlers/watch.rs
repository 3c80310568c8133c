//! Watches: a stream of `{"type": ..., "object": ...}` lines, fed by the
//! resource's watch cache, with bookmarks, `sendInitialEvents` and timeouts.

use crate::api::Call;
use crate::body::Body;
use crate::codec::{self, Output};
use crate::errors::{self, ApiResult};
use crate::filter::Filter;
use crate::output;
use crate::watch_cache::{CachedEvent, CachedObject, EventType, Start, StartError};
use bytes::Bytes;
use futures::StreamExt;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use kite_api::table::IncludeObject;
use kite_api::{Status, StatusReason};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// How often a watch with `allowWatchBookmarks` gets a bookmark.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);
/// Watches without `timeoutSeconds` end after this long, like kube-apiserver's default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Params {
    filter: Filter,
    from: i64,
    bookmarks: bool,
    initial_events: bool,
    timeout: Duration,
    output: Output,
}

fn params(call: &Call<'_>) -> ApiResult<Params> {
    let mut field_selector = call.param("fieldSelector").unwrap_or_default();
    if let Some(name) = &call.request.name {
        let by_name = format!("metadata.name={name}");
        field_selector = if field_selector.is_empty() {
            by_name
        } else {
            format!("{field_selector},{by_name}")
        };
    }
    let filter = Filter::new(
        &call.resource,
        call.namespace(),
        call.param("labelSelector").as_deref(),
        Some(&field_selector),
    )?;
    let rv = call.param("resourceVersion").unwrap_or_default();
    let from = match rv.as_str() {
        "" | "0" => 0,
        rv => rv
            .parse::<i64>()
            .map_err(|_| errors::bad_request(format!("invalid resource version {rv:?}")))?,
    };
    let flag = |key: &str| {
        call.param(key)
            .is_some_and(|v| crate::request::parse_bool(&v))
    };
    let bookmarks = flag("allowWatchBookmarks");
    let initial_events = flag("sendInitialEvents");
    if initial_events {
        if call.param("resourceVersionMatch").as_deref() != Some("NotOlderThan") {
            return Err(Status::failure(
                StatusReason::Invalid,
                "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !bookmarks {
            return Err(Status::failure(
                StatusReason::Invalid,
                "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
            ));
        }
    }
    let timeout = match call.param("timeoutSeconds") {
        Some(t) if !t.is_empty() => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| errors::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        _ => DEFAULT_TIMEOUT,
    };
    let output = match codec::negotiate(call.headers)? {
        Output::Yaml => Output::Json,
        other => other,
    };
    Ok(Params {
        filter,
        from,
        bookmarks,
        initial_events,
        timeout,
        output,
    })
}

/// Starts a watch.
pub async fn watch(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let params = params(call)?;
    let cache = call.cache();
    cache.wait_ready().await;
    let include = match call.param("includeObject") {
        Some(v) if !v.is_empty() => IncludeObject::parse(&v).map_err(errors::bad_request)?,
        _ => IncludeObject::Metadata,
    };
    let encoder = Encoder {
        resource: call.resource.clone(),
        output: params.output,
        include,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    // With sendInitialEvents the snapshot is sent even for an explicit resourceVersion.
    let from = if params.initial_events {
        0
    } else {
        params.from
    };
    if from > 0 {
        // A resume point the store has compacted away is Expired, as with etcd.
        let compacted = call
            .api
            .store
            .compact_revision()
            .await
            .map_err(errors::from_store)?;
        cache.forget_compacted(compacted);
    }
    match cache.subscribe(from) {
        Err(StartError::TooOld { requested, oldest }) => {
            let status = Status::failure(
                StatusReason::Expired,
                format!("too old resource version: {requested} ({oldest})"),
            );
            let line = error_line(&status);
            let _ = tx.try_send(line);
        }
        Ok((start, live)) => {
            tokio::spawn(run(start, live, tx, params, encoder, cache));
        }
    }
    let stream =
        tokio_stream_from(rx).map(|bytes| Ok::<_, std::convert::Infallible>(Frame::data(bytes)));
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    *response.status_mut() = StatusCode::OK;
    let content_type = "application/json";
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, private"),
    );
    Ok(response)
}

fn tokio_stream_from(mut rx: mpsc::Receiver<Bytes>) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn run(
    start: Start,
    mut live: broadcast::Receiver<CachedEvent>,
    tx: mpsc::Sender<Bytes>,
    params: Params,
    encoder: Encoder,
    cache: Arc<crate::watch_cache::WatchCache>,
) {
    let deadline = tokio::time::sleep(params.timeout);
    tokio::pin!(deadline);
    let mut last_sent = params.from;
    match start {
        Start::Snapshot(objects, revision) => {
            for object in objects.iter().filter(|o| params.filter.matches_cached(o)) {
                if tx
                    .send(encoder.line(EventType::Added, object))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            last_sent = revision.max(params.from);
            if params.initial_events && tx.send(encoder.bookmark(last_sent, true)).await.is_err() {
                return;
            }
        }
        Start::History(events) => {
            for event in &events {
                if let Some(line) = encoder.event(event, &params.filter)
                    && tx.send(line).await.is_err()
                {
                    return;
                }
                last_sent = event.revision;
            }
        }
    }
    let mut bookmark = tokio::time::interval(BOOKMARK_INTERVAL);
    bookmark.reset();
    loop {
        tokio::select! {
            () = &mut deadline => return,
            () = tx.closed() => return,
            _ = bookmark.tick(), if params.bookmarks => {
                // Only advance past events this watcher has already been sent.
                let revision = cache.revision();
                if live.is_empty() && revision > last_sent {
                    last_sent = revision;
                }
                if tx.send(encoder.bookmark(last_sent, false)).await.is_err() {
                    return;
                }
            }
            received = live.recv() => match received {
                Ok(event) => {
                    if event.revision <= last_sent {
                        continue;
                    }
                    last_sent = event.revision;
                    if let Some(line) = encoder.event(&event, &params.filter)
                        && tx.send(line).await.is_err() {
                            return;
                        }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    tracing::debug!("watcher fell behind; ending its watch");
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

struct Encoder {
    resource: Arc<kite_api::ResourceInfo>,
    output: Output,
    include: IncludeObject,
}

impl Encoder {
    /// The event for one watcher, accounting for objects moving into or out of its selector.
    fn event(&self, event: &CachedEvent, filter: &Filter) -> Option<Bytes> {
        let now = filter.matches_cached(&event.object);
        let before = event
            .prev
            .as_ref()
            .is_some_and(|p| filter.matches_cached(p));
        let kind = match (event.kind, before, now) {
            (EventType::Deleted, _, _) if before || now => EventType::Deleted,
            (EventType::Deleted, _, _) => return None,
            (_, false, true) => EventType::Added,
            (_, true, true) => EventType::Modified,
            (_, true, false) => EventType::Deleted,
            (_, false, false) => return None,
        };
        Some(self.line(kind, &event.object))
    }

    fn line(&self, kind: EventType, object: &CachedObject) -> Bytes {
        // Custom objects are served at the watched version, with its defaults.
        let served = crate::strategy::serve_bytes(&self.resource, &object.json);
        let value = || serde_json::from_slice::<Value>(&served).unwrap_or_else(|_| object.value());
        let object_json: Bytes = match self.output {
            Output::Table => {
                Bytes::from(serde_json::to_vec(&self.table(&value())).unwrap_or_default())
            }
            Output::PartialMetadata => {
                Bytes::from(serde_json::to_vec(&output::partial(&value())).unwrap_or_default())
            }
            _ => served,
        };
        let mut line = Vec::with_capacity(object_json.len() + 32);
        line.extend_from_slice(b"{\"type\":\"");
        line.extend_from_slice(kind.as_str().as_bytes());
        line.extend_from_slice(b"\",\"object\":");
        line.extend_from_slice(&object_json);
        line.extend_from_slice(b"}\n");
        Bytes::from(line)
    }

    fn table(&self, obj: &Value) -> Value {
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        output::table_of(&self.resource, std::slice::from_ref(obj), self.include, rv)
    }

    fn bookmark(&self, revision: i64, initial_events_end: bool) -> Bytes {
        let mut metadata =
            json!({"resourceVersion": revision.to_string(), "creationTimestamp": null});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": metadata});
        let event = json!({"type": "BOOKMARK", "object": object});
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }
}

fn error_line(status: &Status) -> Bytes {
    let event = json!({"type": "ERROR", "object": serde_json::from_slice::<Value>(&status.to_json()).unwrap_or(Value::Null)});
    let mut line = serde_json::to_vec(&event).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

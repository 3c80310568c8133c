//! The kubelet API's [`Backend`] over what the kubelet runs: the pods'
//! [`Registry`] (their container records and sandboxes) and the
//! [`Runtime`]. Exec runs `kite runtime exec` with the session's streams
//! (a terminal through a console socket with `tty`), attach writes the
//! container's stdin FIFO and follows its log, port-forward connects inside
//! the pod's network namespace, logs are the CRI files the monitor writes.

use crate::netns;
use crate::pods::{PodEntry, Registry};
use crate::server::{Backend, BackendError, Connection, ContainerRef, LogSource, StreamIo};
use crate::state::ContainerRecord;
use futures::future::BoxFuture;
use kite_runtime::Runtime;
use serde_json::{Value, json};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// How often a container is checked for having exited (ends `follow` and attach).
const EXIT_POLL: Duration = Duration::from_millis(250);
/// How long a port-forward connection attempt inside the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The kubelet's implementation of the API backend.
#[derive(Clone)]
pub struct KubeletBackend {
    registry: Registry,
    runtime: Runtime,
    node_name: String,
    root: PathBuf,
    rates: Arc<crate::stats::Rates>,
}

impl KubeletBackend {
    /// A backend over the pods in `registry`, run by `runtime` on node
    /// `node_name` whose data lives in `root`.
    pub fn new(registry: Registry, runtime: Runtime, node_name: String, root: PathBuf) -> Self {
        Self {
            registry,
            runtime,
            node_name,
            root,
            rates: Arc::default(),
        }
    }

    /// The summary `/stats/summary` serves (reads /proc and cgroup files).
    fn summary(&self) -> Value {
        use crate::stats::{self, Usage};
        let time = k8s_openapi::jiff::Timestamp::now().to_string();
        let cgroups = Path::new("/sys/fs/cgroup");
        let cpu_ns = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| stats::node_cpu_ns(&s));
        let node_usage = Usage {
            cpu_ns,
            ..Usage::default()
        };
        let rate = cpu_ns.and_then(|ns| self.rates.nano_cores("node", ns));
        let (cpu, mut memory) = stats::usage_json(&node_usage, &time, rate);
        if let Some((total, available)) = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| stats::node_memory(&m))
        {
            memory["availableBytes"] = json!(available);
            memory["usageBytes"] = json!(total - available.min(total));
            memory["workingSetBytes"] = json!(total - available.min(total));
        }
        let fs = stats::filesystem(&self.root, &time);
        let mut pods = Vec::new();
        for entry in self.registry.all() {
            let Some(pod) = entry.pod.clone() else {
                continue;
            };
            let mut containers = Vec::new();
            let mut names: Vec<&str> = entry
                .state
                .containers
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            names.sort_unstable();
            names.dedup();
            for name in names {
                let Some(record) = entry.state.current(name) else {
                    continue;
                };
                if self.runtime.exited(&record.id).is_some() {
                    continue;
                }
                let dirs = self.container_cgroup(&record.id, cgroups);
                let usage = stats::cgroup_usage(&dirs);
                let rate = usage
                    .cpu_ns
                    .and_then(|ns| self.rates.nano_cores(&record.id, ns));
                let (cpu, memory) = stats::usage_json(&usage, &time, rate);
                let started = self.runtime.started(&record.id).map(|s| s.started_at);
                containers.push(json!({
                    "name": name,
                    "startTime": started,
                    "cpu": cpu,
                    "memory": memory,
                }));
            }
            let pod_dirs = kite_runtime::cgroup::container_dirs(
                cgroups,
                &crate::container::pod_cgroup(self.runtime.cgroup_parent(), &pod),
            );
            let usage = stats::cgroup_usage(&pod_dirs);
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let rate = usage
                .cpu_ns
                .and_then(|ns| self.rates.nano_cores(&format!("pod/{uid}"), ns));
            let (cpu, memory) = stats::usage_json(&usage, &time, rate);
            pods.push(json!({
                "podRef": {
                    "name": pod.metadata.name,
                    "namespace": pod.metadata.namespace,
                    "uid": uid,
                },
                "startTime": pod.status.as_ref().and_then(|s| s.start_time.clone()),
                "containers": containers,
                "cpu": cpu,
                "memory": memory,
            }));
        }
        json!({
            "node": {
                "nodeName": self.node_name,
                "cpu": cpu,
                "memory": memory,
                "fs": fs,
                "runtime": {"imageFs": fs},
            },
            "pods": pods,
        })
    }

    /// The cgroup directories of container `id`, from its OCI spec.
    fn container_cgroup(&self, id: &str, cgroups: &Path) -> Vec<PathBuf> {
        let spec: Option<Value> = std::fs::read(self.runtime.bundle_dir(id).join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let path = spec
            .as_ref()
            .and_then(|s| s.pointer("/linux/cgroupsPath"))
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .unwrap_or_else(|| self.runtime.cgroups_path(id));
        kite_runtime::cgroup::container_dirs(cgroups, &path)
    }

    fn pod(&self, namespace: &str, name: &str) -> Result<PodEntry, BackendError> {
        self.registry
            .find(namespace, name)
            .ok_or_else(|| BackendError::NotFound(format!("pod {name:?} does not exist")))
    }

    /// The running instance of the container `target` names.
    fn running(&self, target: &ContainerRef) -> Result<ContainerRecord, BackendError> {
        let entry = self.pod(&target.namespace, &target.pod)?;
        let record = entry
            .state
            .current(&target.container)
            .filter(|r| self.runtime.exited(&r.id).is_none())
            .cloned();
        record.ok_or_else(|| {
            BackendError::BadRequest(format!("container not found ({:?})", target.container))
        })
    }

    /// A watch that turns `false` once container `id` has exited.
    fn running_watch(&self, id: &str) -> watch::Receiver<bool> {
        let running = self.runtime.exited(id).is_none();
        let (tx, rx) = watch::channel(running);
        if running {
            let runtime = self.runtime.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(EXIT_POLL) => {}
                        () = tx.closed() => return,
                    }
                    if runtime.exited(&id).is_some() {
                        let _ = tx.send(false);
                        return;
                    }
                }
            });
        }
        rx
    }
}

impl Backend for KubeletBackend {
    fn exec(
        &self,
        target: ContainerRef,
        command: Vec<String>,
        io: StreamIo,
    ) -> BoxFuture<'static, Result<i32, BackendError>> {
        let this = self.clone();
        Box::pin(async move {
            let record = this.running(&target)?;
            if io.tty {
                crate::tty::exec(&this.runtime, &record.id, &command, io).await
            } else {
                exec_pipes(&this.runtime, &record.id, &command, io).await
            }
        })
    }

    fn attach(
        &self,
        target: ContainerRef,
        io: StreamIo,
    ) -> BoxFuture<'static, Result<Option<i32>, BackendError>> {
        let this = self.clone();
        Box::pin(async move {
            let record = this.running(&target)?;
            attach(&this, &record, io).await
        })
    }

    fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<Connection, BackendError>> {
        let entry = self.pod(namespace, pod);
        Box::pin(async move {
            let entry = entry?;
            // hostNetwork pods have no namespace of their own: the node's loopback.
            let netns = entry.sandbox.network.clone();
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let stream = netns::connect(netns.as_deref(), addr, CONNECT_TIMEOUT)
                .await
                .map_err(|e| {
                    BackendError::Internal(format!(
                        "failed to connect to localhost:{port} inside namespace of pod {:?}: {e}",
                        entry.state.name
                    ))
                })?;
            Ok(Box::new(stream) as Connection)
        })
    }

    fn log(&self, target: &ContainerRef, previous: bool) -> Result<LogSource, BackendError> {
        let entry = self.pod(&target.namespace, &target.pod)?;
        let record = if previous {
            entry.state.previous(&target.container).ok_or_else(|| {
                BackendError::BadRequest(format!(
                    "previous terminated container {:?} in pod {:?} not found",
                    target.container, target.pod
                ))
            })?
        } else {
            entry.state.current(&target.container).ok_or_else(|| {
                BackendError::BadRequest(format!(
                    "container {:?} in pod {:?} is waiting to start: ContainerCreating",
                    target.container, target.pod
                ))
            })?
        };
        let running = if previous {
            watch::channel(false).1
        } else {
            self.running_watch(&record.id)
        };
        Ok(LogSource {
            rotated: kite_runtime::crilog::rotated_files(&record.log),
            path: record.log.clone(),
            running,
        })
    }

    fn pods(&self) -> Value {
        let items: Vec<Value> = self
            .registry
            .all()
            .into_iter()
            .filter_map(|e| {
                e.pod
                    .map(|p| serde_json::to_value(&*p).unwrap_or(Value::Null))
            })
            .collect();
        json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
    }

    fn metrics(&self) -> String {
        let mut running_pods = 0;
        let mut counts = crate::metrics::ContainerCounts::default();
        for entry in self.registry.all() {
            // A finished pod's sandbox counts as stopped, as the kubelet stops it.
            let finished = entry.pod.as_ref().is_some_and(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                matches!(phase, Some("Succeeded" | "Failed"))
            });
            if entry.sandbox.exists() && !finished {
                running_pods += 1;
            }
            let names: std::collections::BTreeSet<&str> = entry
                .state
                .containers
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            for name in names {
                let Some(record) = entry.state.current(name) else {
                    continue;
                };
                match (
                    self.runtime.exited(&record.id),
                    self.runtime.started(&record.id),
                ) {
                    (Some(_), _) => counts.exited += 1,
                    (None, Some(_)) => counts.running += 1,
                    (None, None) => counts.created += 1,
                }
            }
        }
        self.registry.metrics().render(running_pods, counts)
    }

    fn stats_summary(&self) -> BoxFuture<'static, Value> {
        let this = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.summary())
                .await
                .unwrap_or(Value::Null)
        })
    }
}

/// Exec without a terminal: the process's three pipes are the session's streams.
async fn exec_pipes(
    runtime: &Runtime,
    id: &str,
    command: &[String],
    io: StreamIo,
) -> Result<i32, BackendError> {
    let mut cmd = tokio::process::Command::from(runtime.exec_command(id, command, &[], None));
    cmd.stdin(if io.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| BackendError::Internal(format!("cannot run kite runtime exec: {e}")))?;
    let stdin_task = match (io.stdin, child.stdin.take()) {
        (Some(mut from), Some(mut to)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
            // Dropping the pipe is the process's end of input.
            let _ = to.shutdown().await;
        })),
        _ => None,
    };
    let stdout = copy_out(child.stdout.take(), io.stdout);
    let stderr = copy_out(child.stderr.take(), io.stderr);
    let (_, _, status) = tokio::join!(stdout, stderr, child.wait());
    if let Some(task) = stdin_task {
        task.abort();
    }
    let status = status.map_err(|e| BackendError::Internal(format!("exec: {e}")))?;
    Ok(status.code().unwrap_or(137))
}

/// Copies a pipe of the process to a session stream (or drains it when the
/// client did not ask for it), then ends the stream.
async fn copy_out<R>(from: Option<R>, to: Option<Box<dyn AsyncWrite + Send + Unpin>>)
where
    R: AsyncRead + Unpin,
{
    let Some(mut from) = from else {
        return;
    };
    match to {
        Some(mut to) => {
            let _ = tokio::io::copy(&mut from, &mut to).await;
            let _ = to.shutdown().await;
        }
        None => {
            let _ = tokio::io::copy(&mut from, &mut tokio::io::sink()).await;
        }
    }
}

/// Attach: stdin goes to the container's stdin FIFO, its output is what the
/// monitor logs from now on, split into stdout and stderr records.
async fn attach(
    backend: &KubeletBackend,
    record: &ContainerRecord,
    io: StreamIo,
) -> Result<Option<i32>, BackendError> {
    let StreamIo {
        stdin,
        mut stdout,
        mut stderr,
        resize,
        ..
    } = io;
    drop(resize);
    let stdin_task = match stdin {
        Some(mut from) => {
            let fifo = backend.runtime.stdin_path(&record.id);
            let mut to = tokio::fs::OpenOptions::new()
                .write(true)
                .open(&fifo)
                .await
                .map_err(|_| {
                    BackendError::BadRequest(
                        "cannot attach to a container without stdin: the container was not started with stdin: true".into(),
                    )
                })?;
            Some(tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from, &mut to).await;
            }))
        }
        None => None,
    };
    let start = std::fs::metadata(&record.log).map(|m| m.len()).unwrap_or(0);
    let mut running = backend.running_watch(&record.id);
    let (tx, mut rx) = mpsc::channel::<(bool, Vec<u8>)>(16);
    let log = record.log.clone();
    let follower = tokio::spawn(async move {
        let mut offset = start;
        let mut pending = Vec::new();
        loop {
            let exited = !*running.borrow_and_update();
            let read = {
                let log = log.clone();
                tokio::task::spawn_blocking(move || read_from(&log, offset)).await
            };
            if let Ok(Ok(data)) = read {
                offset += data.len() as u64;
                pending.extend_from_slice(&data);
                let complete = pending
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                for line in pending[..complete].split(|b| *b == b'\n') {
                    if let Some((is_stderr, text)) = attach_record(line)
                        && tx.send((is_stderr, text)).await.is_err()
                    {
                        return;
                    }
                }
                pending.drain(..complete);
            }
            if exited {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = running.changed() => {}
            }
        }
    });
    while let Some((is_stderr, text)) = rx.recv().await {
        let target = if is_stderr { &mut stderr } else { &mut stdout };
        if let Some(w) = target
            && w.write_all(&text).await.is_err()
        {
            break;
        }
    }
    follower.abort();
    if let Some(task) = stdin_task {
        task.abort();
    }
    for w in [stdout.as_mut(), stderr.as_mut()].into_iter().flatten() {
        let _ = w.shutdown().await;
    }
    Ok(backend
        .runtime
        .exited(&record.id)
        .map(|exited| exited.exit_code))
}

fn read_from(path: &std::path::Path, offset: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok(data)
}

/// A CRI record as attach shows it: which stream, and the text (with its
/// newline when the record is a full line).
fn attach_record(line: &[u8]) -> Option<(bool, Vec<u8>)> {
    let record = crate::server::logs::parse_record(line)?;
    let is_stderr = line.split(|b| *b == b' ').nth(1) == Some(b"stderr");
    let mut text = record.text.to_vec();
    if record.full {
        text.push(b'\n');
    }
    Some((is_stderr, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_splits_records_by_stream() {
        assert_eq!(
            attach_record(b"2024-01-01T00:00:00.000000000Z stderr F oops"),
            Some((true, b"oops\n".to_vec()))
        );
        assert_eq!(
            attach_record(b"2024-01-01T00:00:00.000000000Z stdout P par"),
            Some((false, b"par".to_vec()))
        );
    }
}

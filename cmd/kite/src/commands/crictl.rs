//! `kite crictl`: the pods, containers and images of this node as crictl
//! shows them. It reads what the kubelet (`pods/<uid>/state.json`) and the
//! runtime (bundles, sandboxes, the image index, CRI logs) keep under
//! `<data-dir>/agent`, so it needs no running server.

mod tty;

use crate::cli::{CrictlArgs, CrictlCommand};
use crate::paths::{self, DataDir};
use anyhow::{Context, Result, bail};
use k8s_openapi::jiff::Timestamp;
use kite_kubelet::state::{ContainerRecord, PodState};
use kite_runtime::{Runtime, RuntimeConfig, Store};
use serde_json::{Value, json};
use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// IDs in tables are this long, as crictl truncates them.
const SHORT_ID: usize = 13;

/// Runs `kite crictl ...` and returns the exit code.
pub fn run(args: CrictlArgs) -> ExitCode {
    let data_dir = DataDir::new(paths::data_dir(args.data_dir.as_deref()));
    let result = (|| {
        let agent = data_dir.agent();
        let store = Store::open(&agent)
            .with_context(|| format!("cannot open the image store in {}", agent.display()))?;
        let binary = std::env::current_exe().context("cannot find the kite binary")?;
        let node = Node {
            runtime: Runtime::new(store, RuntimeConfig::for_binary(binary)),
            agent,
        };
        match args.command {
            CrictlCommand::Ps {
                all,
                name,
                pod,
                quiet,
            } => node.ps(all, name.as_deref(), pod.as_deref(), quiet),
            CrictlCommand::Pods {
                name,
                namespace,
                quiet,
            } => node.pods(name.as_deref(), namespace.as_deref(), quiet),
            CrictlCommand::Images { quiet } => node.images(quiet),
            CrictlCommand::Logs {
                follow,
                tail,
                timestamps,
                container,
            } => node.logs(&container, follow, tail, timestamps),
            CrictlCommand::Exec {
                interactive,
                tty,
                container,
                command,
            } => node.exec(&container, &command, interactive, tty),
            CrictlCommand::Inspect { containers } => node.inspect(&containers),
            CrictlCommand::Inspectp { pods } => node.inspectp(&pods),
        }
    })();
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A pod the kubelet runs or ran.
#[derive(Debug)]
struct PodInfo {
    /// The pod UID without dashes: the sandbox ID crictl shows.
    id: String,
    state: PodState,
    sandbox: PathBuf,
    created: Option<SystemTime>,
    ready: bool,
}

/// One container instance with what the runtime knows of it.
struct ContainerInfo<'a> {
    pod: &'a PodInfo,
    record: ContainerRecord,
    created: Option<SystemTime>,
    started: Option<kite_runtime::monitor::Started>,
    exited: Option<kite_runtime::monitor::Exited>,
}

impl ContainerInfo<'_> {
    fn state(&self) -> &'static str {
        match (&self.started, &self.exited) {
            (_, Some(_)) => "Exited",
            (Some(_), None) => "Running",
            (None, None) => "Created",
        }
    }
}

struct Node {
    runtime: Runtime,
    agent: PathBuf,
}

impl Node {
    /// Every pod with a state file or a sandbox, oldest first.
    fn all_pods(&self) -> Vec<PodInfo> {
        let mut uids: Vec<String> = std::fs::read_dir(self.agent.join("pods"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        for sandbox in self.runtime.list_sandboxes() {
            if let Some(uid) = sandbox.strip_prefix("pod-")
                && !uids.iter().any(|u| u == uid)
            {
                uids.push(uid.to_string());
            }
        }
        let mut pods: Vec<PodInfo> = uids
            .into_iter()
            .map(|uid| {
                let dir = self.agent.join("pods").join(&uid);
                let mut state = PodState::load(&dir.join("state.json")).unwrap_or_default();
                state.uid.clone_from(&uid);
                let sandbox = self.runtime.sandbox_dir(&format!("pod-{uid}"));
                let created = created_time(&sandbox).or_else(|| created_time(&dir));
                let ready = sandbox.is_dir();
                PodInfo {
                    id: uid.replace('-', ""),
                    state,
                    sandbox,
                    created,
                    ready,
                }
            })
            .collect();
        pods.sort_by_key(|p| p.created);
        pods
    }

    /// Every container instance of `pods` whose bundle still exists, newest first.
    fn containers<'a>(&self, pods: &'a [PodInfo]) -> Vec<ContainerInfo<'a>> {
        let mut out: Vec<ContainerInfo<'a>> = pods
            .iter()
            .flat_map(|pod| {
                pod.state.containers.iter().filter_map(move |record| {
                    let bundle = self.runtime.bundle_dir(&record.id);
                    bundle.is_dir().then(|| ContainerInfo {
                        pod,
                        record: record.clone(),
                        created: created_time(&bundle),
                        started: self.runtime.started(&record.id),
                        exited: self.runtime.exited(&record.id),
                    })
                })
            })
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.created));
        out
    }

    fn ps(&self, all: bool, name: Option<&str>, pod: Option<&str>, quiet: bool) -> Result<i32> {
        let name = name
            .map(regex::Regex::new)
            .transpose()
            .context("--name is not a valid regular expression")?;
        let pods = self.all_pods();
        let pod_id = pod
            .map(|p| find_pod(&pods, p).map(|p| p.id.clone()))
            .transpose()?;
        let containers: Vec<ContainerInfo<'_>> = self
            .containers(&pods)
            .into_iter()
            .filter(|c| all || c.state() == "Running")
            .filter(|c| name.as_ref().is_none_or(|r| r.is_match(&c.record.name)))
            .filter(|c| pod_id.as_ref().is_none_or(|id| &c.pod.id == id))
            .collect();
        if quiet {
            for c in &containers {
                println!("{}", c.record.id);
            }
            return Ok(0);
        }
        let images = self.runtime.store().list().unwrap_or_default();
        let mut rows = vec![
            [
                "CONTAINER",
                "IMAGE",
                "CREATED",
                "STATE",
                "NAME",
                "ATTEMPT",
                "POD ID",
                "POD",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for c in &containers {
            let image = images
                .iter()
                .find(|i| i.name == c.record.image_name)
                .map_or_else(
                    || c.record.image.clone(),
                    |i| short(i.config.hex()).to_string(),
                );
            rows.push(vec![
                short(&c.record.id).to_string(),
                image,
                ago(c.created),
                c.state().to_string(),
                c.record.name.clone(),
                c.record.attempt.to_string(),
                short(&c.pod.id).to_string(),
                c.pod.state.name.clone(),
            ]);
        }
        print_table(&rows);
        Ok(0)
    }

    fn pods(&self, name: Option<&str>, namespace: Option<&str>, quiet: bool) -> Result<i32> {
        let name = name
            .map(regex::Regex::new)
            .transpose()
            .context("--name is not a valid regular expression")?;
        let mut pods = self.all_pods();
        pods.reverse();
        let pods: Vec<&PodInfo> = pods
            .iter()
            .filter(|p| name.as_ref().is_none_or(|r| r.is_match(&p.state.name)))
            .filter(|p| namespace.is_none_or(|n| p.state.namespace == n))
            .collect();
        if quiet {
            for p in &pods {
                println!("{}", p.id);
            }
            return Ok(0);
        }
        let mut rows = vec![
            [
                "POD ID",
                "CREATED",
                "STATE",
                "NAME",
                "NAMESPACE",
                "ATTEMPT",
                "RUNTIME",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for p in pods {
            rows.push(vec![
                short(&p.id).to_string(),
                ago(p.created),
                if p.ready { "Ready" } else { "NotReady" }.to_string(),
                p.state.name.clone(),
                p.state.namespace.clone(),
                "0".to_string(),
                "(default)".to_string(),
            ]);
        }
        print_table(&rows);
        Ok(0)
    }

    fn images(&self, quiet: bool) -> Result<i32> {
        let images = self.runtime.store().list()?;
        if quiet {
            for image in &images {
                println!("{}", image.config);
            }
            return Ok(0);
        }
        let mut rows = vec![
            ["IMAGE", "TAG", "IMAGE ID", "SIZE"]
                .map(String::from)
                .to_vec(),
        ];
        for image in &images {
            let (repository, tag) = split_name(&image.name);
            rows.push(vec![
                repository.to_string(),
                tag.to_string(),
                short(image.config.hex()).to_string(),
                human_size(image.size),
            ]);
        }
        print_table(&rows);
        Ok(0)
    }

    fn logs(&self, id: &str, follow: bool, tail: Option<usize>, timestamps: bool) -> Result<i32> {
        let pods = self.all_pods();
        let containers = self.containers(&pods);
        let c = find_container(&containers, id)?;
        let mut files = kite_runtime::crilog::rotated_files(&c.record.log);
        files.push(c.record.log.clone());
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for file in &files[..files.len() - 1] {
            if let Ok(bytes) = std::fs::read(file) {
                lines.extend(bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec));
            }
        }
        let mut reader = std::fs::File::open(&c.record.log)
            .ok()
            .map(std::io::BufReader::new);
        let mut pending = Vec::new();
        if let Some(reader) = reader.as_mut() {
            loop {
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                if line.ends_with(b"\n") {
                    line.pop();
                    lines.push(line);
                } else {
                    // A record still being written: finished when following.
                    pending = line;
                }
            }
        }
        let mut out = Output::new(timestamps);
        let skip = tail.map_or(0, |n| {
            let full = lines.iter().filter(|l| is_full(l)).count();
            full.saturating_sub(n)
        });
        let mut full_seen = 0;
        for line in &lines {
            if full_seen >= skip {
                out.record(line)?;
            }
            if is_full(line) {
                full_seen += 1;
            }
        }
        if !follow {
            return Ok(0);
        }
        let Some(reader) = reader.as_mut() else {
            return Ok(0);
        };
        let id = c.record.id.clone();
        loop {
            let mut chunk = Vec::new();
            let read = reader.read_until(b'\n', &mut chunk)?;
            if read > 0 {
                pending.extend_from_slice(&chunk);
                if pending.ends_with(b"\n") {
                    pending.pop();
                    out.record(&pending)?;
                    pending.clear();
                }
                continue;
            }
            if self.runtime.exited(&id).is_some() {
                return Ok(0);
            }
            // A rotated log starts over in a new file at the same path.
            let position = reader.stream_position()?;
            if std::fs::metadata(&c.record.log).is_ok_and(|m| m.len() < position) {
                let file = std::fs::File::open(&c.record.log)?;
                *reader = std::io::BufReader::new(file);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn exec(&self, id: &str, command: &[String], interactive: bool, tty: bool) -> Result<i32> {
        if !paths::is_root() {
            bail!("kite crictl exec needs root (it joins the container's namespaces)");
        }
        let pods = self.all_pods();
        let containers = self.containers(&pods);
        let c = find_container(&containers, id)?;
        if c.state() != "Running" {
            bail!("container {} is not running", c.record.id);
        }
        if tty {
            return tty::exec(&self.runtime, &c.record.id, command, interactive);
        }
        let mut child = self.runtime.exec_command(&c.record.id, command, &[], None);
        if !interactive {
            child.stdin(std::process::Stdio::null());
        }
        let status = child
            .status()
            .with_context(|| format!("cannot exec in container {}", c.record.id))?;
        Ok(exit_code(status))
    }

    fn inspect(&self, ids: &[String]) -> Result<i32> {
        let pods = self.all_pods();
        let containers = self.containers(&pods);
        for id in ids {
            let c = find_container(&containers, id)?;
            print_json(&container_json(c, &self.runtime))?;
        }
        Ok(0)
    }

    fn inspectp(&self, ids: &[String]) -> Result<i32> {
        let pods = self.all_pods();
        for id in ids {
            let pod = find_pod(&pods, id)?;
            print_json(&pod_json(pod))?;
        }
        Ok(0)
    }
}

/// The container whose ID is `prefix` or starts with it.
fn find_container<'a, 'b>(
    containers: &'b [ContainerInfo<'a>],
    prefix: &str,
) -> Result<&'b ContainerInfo<'a>> {
    let found: Vec<&ContainerInfo<'a>> = containers
        .iter()
        .filter(|c| c.record.id.starts_with(prefix))
        .collect();
    match found.as_slice() {
        _ if prefix.is_empty() => bail!("a container ID is required"),
        [one] => Ok(one),
        [] => bail!("no container with ID {prefix:?} on this node"),
        many => bail!(
            "container ID {prefix:?} is ambiguous: it matches {}",
            many.iter()
                .map(|c| short(&c.record.id))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The pod whose ID (its UID, with or without dashes) is `prefix` or starts with it.
fn find_pod<'a>(pods: &'a [PodInfo], prefix: &str) -> Result<&'a PodInfo> {
    let wanted = prefix.replace('-', "");
    let found: Vec<&PodInfo> = pods.iter().filter(|p| p.id.starts_with(&wanted)).collect();
    match found.as_slice() {
        _ if wanted.is_empty() => bail!("a pod ID is required"),
        [one] => Ok(one),
        [] => bail!("no pod with ID {prefix:?} on this node"),
        many => bail!(
            "pod ID {prefix:?} is ambiguous: it matches {}",
            many.iter()
                .map(|p| short(&p.id))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn container_json(c: &ContainerInfo<'_>, runtime: &Runtime) -> Value {
    let zero = "0001-01-01T00:00:00Z";
    let state = match c.state() {
        "Running" => "CONTAINER_RUNNING",
        "Exited" => "CONTAINER_EXITED",
        _ => "CONTAINER_CREATED",
    };
    let reason = c.exited.as_ref().map_or("", |e| {
        if e.oom_killed {
            "OOMKilled"
        } else if e.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    });
    let pid = if c.exited.is_none() {
        c.started.as_ref().map_or(0, |s| s.pid)
    } else {
        0
    };
    json!({
        "status": {
            "id": c.record.id,
            "metadata": {"attempt": c.record.attempt, "name": c.record.name},
            "state": state,
            "createdAt": c.created.map_or_else(|| zero.to_string(), rfc3339),
            "startedAt": c.started.as_ref().map_or(zero, |s| s.started_at.as_str()),
            "finishedAt": c.exited.as_ref().map_or(zero, |e| e.finished_at.as_str()),
            "exitCode": c.exited.as_ref().map_or(0, |e| e.exit_code),
            "image": {"image": c.record.image_name},
            "imageRef": c.record.image_id,
            "reason": reason,
            "message": "",
            "labels": {
                "io.kubernetes.container.name": c.record.name,
                "io.kubernetes.pod.name": c.pod.state.name,
                "io.kubernetes.pod.namespace": c.pod.state.namespace,
                "io.kubernetes.pod.uid": c.pod.state.uid,
            },
            "annotations": {},
            "logPath": c.record.log,
        },
        "info": {
            "sandboxID": c.pod.id,
            "pid": pid,
            "runtimeType": "kite",
            "bundle": runtime.bundle_dir(&c.record.id),
        },
    })
}

fn pod_json(pod: &PodInfo) -> Value {
    let bound = |kind: &str| pod.sandbox.join(kind).exists();
    let mode = |kind: &str| if bound(kind) { "POD" } else { "NODE" };
    json!({
        "status": {
            "id": pod.id,
            "metadata": {
                "attempt": 0,
                "name": pod.state.name,
                "namespace": pod.state.namespace,
                "uid": pod.state.uid,
            },
            "state": if pod.ready { "SANDBOX_READY" } else { "SANDBOX_NOTREADY" },
            "createdAt": pod.created.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), rfc3339),
            "linux": {"namespaces": {"options": {
                "network": mode("net"),
                "ipc": mode("ipc"),
                "pid": "CONTAINER",
            }}},
            "labels": {
                "io.kubernetes.pod.name": pod.state.name,
                "io.kubernetes.pod.namespace": pod.state.namespace,
                "io.kubernetes.pod.uid": pod.state.uid,
            },
            "annotations": {},
            "runtimeHandler": "",
        },
        "info": {
            "sandboxDir": pod.sandbox,
            "containers": pod.state.containers.iter().map(|c| &c.id).collect::<Vec<_>>(),
        },
    })
}

/// Writes CRI log records as crictl does: each stream to its own, partial
/// records joined, optionally with their time first.
struct Output {
    timestamps: bool,
    /// A partial line is open on this stream.
    open: bool,
}

impl Output {
    fn new(timestamps: bool) -> Self {
        Self {
            timestamps,
            open: false,
        }
    }

    fn record(&mut self, line: &[u8]) -> std::io::Result<()> {
        let mut parts = line.splitn(4, |b| *b == b' ');
        let (Some(time), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            return Ok(());
        };
        let text = parts.next().unwrap_or(b"");
        let mut bytes = Vec::new();
        if self.timestamps && !self.open {
            bytes.extend_from_slice(time);
            bytes.push(b' ');
        }
        bytes.extend_from_slice(text);
        let full = tag != b"P";
        if full {
            bytes.push(b'\n');
        }
        self.open = !full;
        if stream == b"stderr" {
            let mut err = std::io::stderr().lock();
            err.write_all(&bytes)?;
            err.flush()
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()
        }
    }
}

fn is_full(line: &[u8]) -> bool {
    line.splitn(4, |b| *b == b' ')
        .nth(2)
        .is_some_and(|t| t != b"P")
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_table(rows: &[Vec<String>]) {
    for line in format_table(rows) {
        println!("{line}");
    }
}

/// Rows as crictl's tab writer lays them out: columns at least 20 wide, 3 spaces apart.
fn format_table(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.first().map_or(0, Vec::len);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count() + 3).max(20);
        }
    }
    let mut lines = Vec::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}", width = widths[i]));
            }
        }
        lines.push(line.trim_end().to_string());
    }
    lines
}

fn short(id: &str) -> &str {
    id.get(..SHORT_ID).unwrap_or(id)
}

/// `docker.io/library/busybox:latest` as (`docker.io/library/busybox`, `latest`).
fn split_name(name: &str) -> (&str, &str) {
    let name = name.split('@').next().unwrap_or(name);
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "<none>"),
    }
}

fn created_time(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    meta.created().or_else(|_| meta.modified()).ok()
}

fn rfc3339(time: SystemTime) -> String {
    Timestamp::try_from(time).map_or_else(|_| String::new(), |t| t.to_string())
}

/// How long ago `time` was, in crictl's words (`About a minute ago`).
fn ago(time: Option<SystemTime>) -> String {
    let Some(time) = time else {
        return "Unknown".into();
    };
    let elapsed = SystemTime::now().duration_since(time).unwrap_or_default();
    format!("{} ago", human_duration(elapsed))
}

/// A duration in the words of Docker's `HumanDuration`, which crictl uses.
fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    // Hours are rounded to the nearest one.
    let hours = (seconds + 1800) / 3600;
    match () {
        () if seconds < 1 => "Less than a second".into(),
        () if seconds == 1 => "1 second".into(),
        () if seconds < 60 => format!("{seconds} seconds"),
        () if minutes == 1 => "About a minute".into(),
        () if minutes < 60 => format!("{minutes} minutes"),
        () if hours == 1 => "About an hour".into(),
        () if hours < 48 => format!("{hours} hours"),
        () if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        () if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        () if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        () => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// Sizes as crictl prints them: decimal units, four significant digits (`4.27MB`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    // Four significant digits, trailing zeros dropped (Go's %.4g).
    let decimals = match value {
        v if v >= 1000.0 => 0,
        v if v >= 100.0 => 1,
        v if v >= 10.0 => 2,
        _ => 3,
    };
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_crictl() {
        let check = |secs: u64, expected: &str| {
            assert_eq!(
                human_duration(Duration::from_secs(secs)),
                expected,
                "{secs}"
            );
        };
        check(0, "Less than a second");
        check(1, "1 second");
        check(45, "45 seconds");
        check(90, "About a minute");
        check(600, "10 minutes");
        check(3600, "About an hour");
        check(5 * 3600, "5 hours");
        check(3 * 24 * 3600, "3 days");
        check(20 * 24 * 3600, "2 weeks");
        check(90 * 24 * 3600, "3 months");
        check(3 * 365 * 24 * 3600, "3 years");
    }

    #[test]
    fn sizes_read_like_crictl() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(4_270_000), "4.27MB");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(123_456_789), "123.5MB");
    }

    #[test]
    fn image_names_split_into_repository_and_tag() {
        assert_eq!(
            split_name("docker.io/library/busybox:latest"),
            ("docker.io/library/busybox", "latest")
        );
        assert_eq!(
            split_name("127.0.0.1:5000/app"),
            ("127.0.0.1:5000/app", "<none>")
        );
    }

    fn pod(uid: &str) -> PodInfo {
        PodInfo {
            id: uid.replace('-', ""),
            state: PodState::default(),
            sandbox: PathBuf::new(),
            created: None,
            ready: true,
        }
    }

    #[test]
    fn pods_are_found_by_unambiguous_prefixes() {
        let pods = [pod("abc-1"), pod("abd-2")];
        assert_eq!(find_pod(&pods, "abc").unwrap().id, "abc1");
        assert_eq!(find_pod(&pods, "abd-").unwrap().id, "abd2");
        let ambiguous = find_pod(&pods, "ab").unwrap_err().to_string();
        assert!(ambiguous.contains("ambiguous"), "{ambiguous}");
        assert!(find_pod(&pods, "x").is_err());
        assert!(find_pod(&pods, "").is_err());
    }

    #[test]
    fn tables_pad_columns_like_crictl() {
        let rows = vec![
            vec!["A".to_string(), "B".to_string()],
            vec!["x".repeat(25), "y".to_string()],
        ];
        let lines = format_table(&rows);
        assert_eq!(lines[0], format!("{:<28}B", "A"));
        assert_eq!(lines[1], format!("{}   y", "x".repeat(25)));
    }
}

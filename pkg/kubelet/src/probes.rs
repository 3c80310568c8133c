//! Startup, liveness and readiness probes (exec, httpGet, tcpSocket) and
//! lifecycle hooks, run as the kubelet's prober does: after
//! `initialDelaySeconds`, every `periodSeconds`, each attempt bounded by
//! `timeoutSeconds`, flipping state after `successThreshold` successes or
//! `failureThreshold` failures in a row. Liveness and readiness wait for the
//! startup probe to succeed.

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// Where a probe reaches the container.
#[derive(Clone)]
pub struct Target {
    /// The runtime, for exec probes.
    pub runtime: kite_runtime::Runtime,
    /// The container instance.
    pub container_id: String,
    /// The container spec (named ports).
    pub container: Container,
    /// The pod's network namespace (`None`: the node's, for host-network pods).
    pub netns: Option<PathBuf>,
    /// The address of the pod (loopback inside its namespace until it has a pod IP).
    pub pod_ip: IpAddr,
}

/// What the probes of one container instance concluded so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// The startup probe succeeded (or there is none).
    pub started: bool,
    /// The readiness probe succeeds (or there is none, once started).
    pub ready: bool,
    /// The liveness (or startup) probe failed for good: restart the container.
    pub failed: Option<String>,
}

/// Shared probe state plus a way to wake the pod's worker when it changes.
#[derive(Clone)]
pub struct Shared {
    /// The state.
    pub state: Arc<Mutex<State>>,
    /// Notified on every change.
    pub wake: Arc<Notify>,
}

impl Shared {
    /// The state now.
    pub fn get(&self) -> State {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let before = state.clone();
        change(&mut state);
        if *state != before {
            self.wake.notify_one();
        }
    }
}

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `startupProbe`.
    Startup,
    /// `livenessProbe`.
    Liveness,
    /// `readinessProbe`.
    Readiness,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Startup => "Startup",
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
        }
    }
}

/// Reports an `Unhealthy` event: (message).
pub type Reporter = Arc<dyn Fn(String) + Send + Sync>;

/// Starts the container's probers; returns their state and tasks (abort them
/// when the instance goes).
pub fn start(
    target: Target,
    wake: Arc<Notify>,
    report: Reporter,
) -> (Shared, Vec<tokio::task::JoinHandle<()>>) {
    let c = &target.container;
    let shared = Shared {
        state: Arc::new(Mutex::new(State {
            started: c.startup_probe.is_none(),
            ready: c.readiness_probe.is_none() && c.startup_probe.is_none(),
            failed: None,
        })),
        wake,
    };
    let mut tasks = Vec::new();
    for (kind, probe) in [
        (Kind::Startup, &c.startup_probe),
        (Kind::Liveness, &c.liveness_probe),
        (Kind::Readiness, &c.readiness_probe),
    ] {
        if let Some(probe) = probe.clone() {
            tasks.push(tokio::spawn(prober(
                kind,
                probe,
                target.clone(),
                shared.clone(),
                report.clone(),
            )));
        }
    }
    // Without a readiness probe, ready follows started.
    if c.readiness_probe.is_none() && c.startup_probe.is_some() {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                if shared.get().started {
                    shared.update(|s| s.ready = true);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    (shared, tasks)
}

async fn prober(kind: Kind, probe: Probe, target: Target, shared: Shared, report: Reporter) {
    let seconds =
        |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
    let period = seconds(probe.period_seconds, 10).max(Duration::from_secs(1));
    let timeout = seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1));
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    tokio::time::sleep(seconds(probe.initial_delay_seconds, 0)).await;
    if kind != Kind::Startup {
        while !shared.get().started {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (mut successes, mut failures) = (0, 0);
    loop {
        match run(&probe.clone().into(), &target, timeout).await {
            Ok(()) => {
                failures = 0;
                successes += 1;
                if successes >= success_threshold {
                    match kind {
                        Kind::Startup => {
                            shared.update(|s| s.started = true);
                            return;
                        }
                        Kind::Readiness => shared.update(|s| s.ready = true),
                        Kind::Liveness => {}
                    }
                }
            }
            Err(message) => {
                successes = 0;
                failures += 1;
                report(format!("{} probe failed: {message}", kind.label()));
                if failures >= failure_threshold {
                    match kind {
                        Kind::Readiness => shared.update(|s| s.ready = false),
                        Kind::Liveness | Kind::Startup => {
                            let why = format!("failed {} probe", kind.label().to_lowercase());
                            shared.update(|s| s.failed = Some(why));
                            return;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}

/// A probe or hook action.
pub enum Action {
    /// Run a command in the container.
    Exec(Vec<String>),
    /// GET a path over HTTP.
    Http {
        /// Host (default: the pod IP).
        host: Option<String>,
        /// Port.
        port: IntOrString,
        /// Path.
        path: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// `HTTPS` is not verified, as the kubelet does not.
        scheme: String,
    },
    /// Open a TCP connection.
    Tcp {
        /// Host (default: the pod IP).
        host: Option<String>,
        /// Port.
        port: IntOrString,
    },
    /// Sleep (the `sleep` lifecycle action).
    Sleep(i64),
    /// Not supported (gRPC probes).
    Unsupported(String),
}

/// An `httpGet` probe or hook, with Kubernetes' defaults (path `/`, HTTP).
fn http_action(http: k8s_openapi::api::core::v1::HTTPGetAction) -> Action {
    Action::Http {
        host: http.host,
        port: http.port,
        path: http.path.unwrap_or_else(|| "/".into()),
        headers: http
            .http_headers
            .unwrap_or_default()
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect(),
        scheme: http.scheme.unwrap_or_else(|| "HTTP".into()),
    }
}

impl From<Probe> for Action {
    fn from(probe: Probe) -> Self {
        if let Some(exec) = probe.exec {
            Action::Exec(exec.command.unwrap_or_default())
        } else if let Some(http) = probe.http_get {
            http_action(http)
        } else if let Some(tcp) = probe.tcp_socket {
            Action::Tcp {
                host: tcp.host,
                port: tcp.port,
            }
        } else {
            Action::Unsupported("gRPC probes are not supported by kite yet".into())
        }
    }
}

impl From<LifecycleHandler> for Action {
    fn from(handler: LifecycleHandler) -> Self {
        if let Some(exec) = handler.exec {
            Action::Exec(exec.command.unwrap_or_default())
        } else if let Some(http) = handler.http_get {
            http_action(http)
        } else if let Some(tcp) = handler.tcp_socket {
            Action::Tcp {
                host: tcp.host,
                port: tcp.port,
            }
        } else if let Some(sleep) = handler.sleep {
            Action::Sleep(sleep.seconds)
        } else {
            Action::Unsupported("empty lifecycle handler".into())
        }
    }
}

/// Runs one action against the container; `Err` carries the failure as the
/// kubelet words it.
pub async fn run(action: &Action, target: &Target, timeout: Duration) -> Result<(), String> {
    match action {
        Action::Exec(command) => exec(target, command, timeout).await,
        Action::Http {
            host,
            port,
            path,
            headers,
            scheme,
        } => {
            let port = resolve_port(&target.container, port)?;
            let addr = address(host.as_deref(), target.pod_ip, port)?;
            let url = format!("{}://{addr}{path}", scheme.to_lowercase());
            if scheme.eq_ignore_ascii_case("HTTPS") {
                return Err(format!(
                    "Get {url:?}: HTTPS probes are not supported by kite yet"
                ));
            }
            let status = tokio::time::timeout(timeout, http_get(target, addr, path, headers))
                .await
                .map_err(|_| {
                    format!("Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)")
                })?
                .map_err(|e| format!("Get {url:?}: {e}"))?;
            if (200..400).contains(&status) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {status}"))
            }
        }
        Action::Tcp { host, port } => {
            let port = resolve_port(&target.container, port)?;
            let addr = address(host.as_deref(), target.pod_ip, port)?;
            crate::netns::connect(target.netns.as_deref(), addr, timeout)
                .await
                .map(drop)
                .map_err(|e| format!("dial tcp {addr}: connect: {}", lower_error(&e)))
        }
        Action::Sleep(seconds) => {
            tokio::time::sleep(Duration::from_secs((*seconds).max(0) as u64)).await;
            Ok(())
        }
        Action::Unsupported(message) => Err(message.clone()),
    }
}

async fn exec(target: &Target, command: &[String], timeout: Duration) -> Result<(), String> {
    let mut cmd: tokio::process::Command = target
        .runtime
        .exec_command(&target.container_id, command, &[], None)
        .into();
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| format!("command {command:?} timed out"))?
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    match output.status.code() {
        Some(0) => Ok(()),
        Some(125) => Err(String::from_utf8_lossy(&output.stderr).trim().to_string()),
        code => {
            let out = String::from_utf8_lossy(&output.stdout);
            let code = code.unwrap_or(137);
            if out.trim().is_empty() {
                Err(format!("command {command:?} exited with {code}"))
            } else {
                Err(format!(
                    "command {command:?} exited with {code}: {}",
                    out.trim()
                ))
            }
        }
    }
}

async fn http_get(
    target: &Target,
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<u16> {
    let mut stream =
        crate::netns::connect(target.netns.as_deref(), addr, Duration::from_secs(10)).await?;
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        request.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
    {
        request.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed HTTP response"))
}

fn resolve_port(container: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| {
                    format!(
                        "couldn't find port {name:?} in container {:?}",
                        container.name
                    )
                })
        }
    }
}

fn address(host: Option<&str>, pod_ip: IpAddr, port: u16) -> Result<SocketAddr, String> {
    let ip = match host.filter(|h| !h.is_empty()) {
        Some(host) => host.parse::<IpAddr>().map_err(|_| {
            format!("host {host:?} is not an IP address (kite does not resolve probe hosts)")
        })?,
        None => pod_ip,
    };
    Ok(SocketAddr::new(ip, port))
}

fn lower_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_ports_resolve_from_the_container() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "web", "ports": [{"name": "http", "containerPort": 8080}],
        }))
        .unwrap();
        assert_eq!(
            resolve_port(&c, &IntOrString::String("http".into())),
            Ok(8080)
        );
        assert_eq!(resolve_port(&c, &IntOrString::Int(80)), Ok(80));
        assert!(resolve_port(&c, &IntOrString::String("nope".into())).is_err());
    }

    #[tokio::test]
    async fn tcp_and_http_probes_on_the_node() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let status = if req.starts_with("GET /ok ") {
                    "200 OK"
                } else {
                    "503 Nope"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let target = Target {
            runtime: kite_runtime::Runtime::new(
                kite_runtime::Store::open(tempfile::tempdir().unwrap().keep()).unwrap(),
                kite_runtime::RuntimeConfig::for_binary("/bin/false".into()),
            ),
            container_id: "c".into(),
            container: Container::default(),
            netns: None,
            pod_ip: "127.0.0.1".parse().unwrap(),
        };
        let t = Duration::from_secs(1);
        let http = |path: &str| Action::Http {
            host: None,
            port: IntOrString::Int(i32::from(port)),
            path: path.into(),
            headers: vec![],
            scheme: "HTTP".into(),
        };
        assert_eq!(run(&http("/ok"), &target, t).await, Ok(()));
        assert_eq!(
            run(&http("/bad"), &target, t).await,
            Err("HTTP probe failed with statuscode: 503".into())
        );
        let tcp = Action::Tcp {
            host: None,
            port: IntOrString::Int(i32::from(port)),
        };
        assert_eq!(run(&tcp, &target, t).await, Ok(()));
        let closed = Action::Tcp {
            host: None,
            port: IntOrString::Int(1),
        };
        let err = run(&closed, &target, t).await.unwrap_err();
        assert_eq!(err, "dial tcp 127.0.0.1:1: connect: connection refused");
    }
}

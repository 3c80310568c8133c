//! Load generator for kite's API server, run by `tests/bench/api.sh`.
//!
//! Measures, over HTTPS with the admin client certificate: create, get,
//! update and list of 1 KiB ConfigMaps with 1, 16 and 64 concurrent clients
//! (each its own connection); LIST of 10,000 objects; one update fanned out
//! to 1,000 watchers; and the server's memory (RSS) at each stage. Prints
//! markdown tables.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::TlsConnector;

struct Target {
    addr: String,
    tls: TlsConnector,
    pid: Option<u32>,
}

impl Target {
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let tcp = tokio::net::TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = self
            .tls
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn rss_mb(&self) -> f64 {
        self.status_mb("VmRSS:")
    }

    /// A `/proc/<pid>/status` memory line (`RssAnon:`, `RssFile:`...) in MB.
    fn status_mb(&self, field: &str) -> f64 {
        let Some(pid) = self.pid else { return 0.0 };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }
}

async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<(StatusCode, Bytes)> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let request = builder.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

fn configmap(name: &str) -> Vec<u8> {
    let payload = "x".repeat(1024);
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"bench": "crud"}},
        "data": {"payload": payload},
    }))
    .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Create,
    Get,
    Update,
    List,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Get => "get",
            Op::Update => "update",
            Op::List => "list (100 objects)",
        }
    }
}

/// Runs `per_client` operations on each of `clients` connections; returns latencies and wall time.
async fn run_op(
    target: &Arc<Target>,
    ns: &str,
    op: Op,
    clients: usize,
    per_client: usize,
) -> Result<(Vec<Duration>, Duration)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let target = target.clone();
        let ns = ns.to_string();
        tasks.push(tokio::spawn(async move {
            let mut sender = target.connect().await?;
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let name = format!("cm-{clients}-{c}-{i}");
                let base = format!("/api/v1/namespaces/{ns}/configmaps");
                let t = Instant::now();
                let (status, _) = match op {
                    Op::Create => {
                        call(&mut sender, Method::POST, &base, Some(configmap(&name))).await?
                    }
                    Op::Get => {
                        call(&mut sender, Method::GET, &format!("{base}/{name}"), None).await?
                    }
                    // An unconditional update (no resourceVersion), as `kubectl replace --force` would not do
                    // but controllers with retry loops effectively do.
                    Op::Update => {
                        let mut body: serde_json::Value =
                            serde_json::from_slice(&configmap(&name))?;
                        body["data"]["n"] = serde_json::json!(i.to_string());
                        call(
                            &mut sender,
                            Method::PUT,
                            &format!("{base}/{name}"),
                            Some(serde_json::to_vec(&body)?),
                        )
                        .await?
                    }
                    Op::List => {
                        call(
                            &mut sender,
                            Method::GET,
                            &format!("/api/v1/namespaces/{ns}-list/configmaps"),
                            None,
                        )
                        .await?
                    }
                };
                latencies.push(t.elapsed());
                if !status.is_success() {
                    bail!("{} {name}: HTTP {status}", op.name());
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let wall = started.elapsed();
    all.sort();
    Ok((all, wall))
}

async fn ensure_namespace(target: &Target, name: &str) -> Result<()> {
    let mut sender = target.connect().await?;
    let body = serde_json::to_vec(
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )?;
    let (status, text) = call(&mut sender, Method::POST, "/api/v1/namespaces", Some(body)).await?;
    if !(status.is_success() || status == StatusCode::CONFLICT) {
        bail!(
            "creating namespace {name}: {status} {}",
            String::from_utf8_lossy(&text)
        );
    }
    Ok(())
}

async fn crud(target: &Arc<Target>) -> Result<()> {
    ensure_namespace(target, "bench-list").await?;
    let mut sender = target.connect().await?;
    for i in 0..100 {
        call(
            &mut sender,
            Method::POST,
            "/api/v1/namespaces/bench-list/configmaps",
            Some(configmap(&format!("l{i}"))),
        )
        .await?;
    }
    println!("\n### CRUD of 1 KiB ConfigMaps over HTTPS (HTTP/1.1, one connection per client)\n");
    println!("| operation | clients | ops | ops/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for clients in [1usize, 16, 64] {
        let ns = format!("bench-{clients}");
        ensure_namespace(target, &ns).await?;
        let per_client = (2000 / clients).max(20);
        for op in [Op::Create, Op::Get, Op::Update, Op::List] {
            let per = if op == Op::List {
                (per_client / 4).max(5)
            } else {
                per_client
            };
            let (latencies, wall) = run_op(target, &ns, op, clients, per).await?;
            println!(
                "| {} | {clients} | {} | {:.0} | {:.2} | {:.2} |",
                op.name(),
                latencies.len(),
                latencies.len() as f64 / wall.as_secs_f64(),
                ms(percentile(&latencies, 0.5)),
                ms(percentile(&latencies, 0.99))
            );
        }
    }
    Ok(())
}

async fn big_list(target: &Arc<Target>) -> Result<()> {
    ensure_namespace(target, "bench-big").await?;
    let rss_before = target.rss_mb();
    // 8 writers fill 10,000 objects.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = target.connect().await?;
            for i in (w..10_000).step_by(8) {
                let (status, _) = call(
                    &mut sender,
                    Method::POST,
                    "/api/v1/namespaces/bench-big/configmaps",
                    Some(configmap(&format!("big-{i}"))),
                )
                .await?;
                if !status.is_success() && status != StatusCode::CONFLICT {
                    bail!("create big-{i}: {status}");
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let mut sender = target.connect().await?;
    println!("\n### LIST of 10,000 ConfigMaps (1 KiB each)\n");
    println!("| read | p50 ms | max ms | bytes |");
    println!("|---|---|---|---|");
    for (label, query) in [
        ("consistent (from the store)", ""),
        ("resourceVersion=0 (watch cache)", "?resourceVersion=0"),
    ] {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..10 {
            let t = Instant::now();
            let (status, body) = call(
                &mut sender,
                Method::GET,
                &format!("/api/v1/namespaces/bench-big/configmaps{query}"),
                None,
            )
            .await?;
            times.push(t.elapsed());
            if !status.is_success() {
                bail!("list: {status}");
            }
            size = body.len();
        }
        times.sort();
        println!(
            "| {label} | {:.1} | {:.1} | {size} |",
            ms(percentile(&times, 0.5)),
            ms(times[times.len() - 1])
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "\nRSS: {rss_before:.1} MB before the 10,000 ConfigMaps, {:.1} MB after (idle 3 s: {:.1} MB anonymous, {:.1} MB file-backed)",
        target.rss_mb(),
        target.status_mb("RssAnon:"),
        target.status_mb("RssFile:")
    );
    Ok(())
}

async fn watch_fanout(target: &Arc<Target>, watchers: usize) -> Result<()> {
    ensure_namespace(target, "bench-watch").await?;
    let mut sender = target.connect().await?;
    call(
        &mut sender,
        Method::POST,
        "/api/v1/namespaces/bench-watch/configmaps",
        Some(configmap("fanout")),
    )
    .await?;
    let rss_before = target.rss_mb();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let ready = Arc::new(tokio::sync::Semaphore::new(0));
    for _ in 0..watchers {
        let target = target.clone();
        let tx = tx.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let mut sender = target.connect().await?;
            let request = Request::get("/api/v1/namespaces/bench-watch/configmaps?watch=true&resourceVersion=0&fieldSelector=metadata.name%3Dfanout")
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))?;
            let response = sender.send_request(request).await?;
            let mut body = response.into_body();
            let mut seen_initial = false;
            while let Some(frame) = body.frame().await {
                let frame = frame?;
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                let text = String::from_utf8_lossy(data);
                for line in text.lines() {
                    if line.contains("\"ADDED\"") && !seen_initial {
                        seen_initial = true;
                        ready.add_permits(1);
                    } else if line.contains("\"MODIFIED\"") {
                        let _ = tx.send(Instant::now());
                        return Ok::<_, anyhow::Error>(());
                    }
                }
            }
            Ok(())
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), ready.acquire_many(watchers as u32))
        .await
        .context("watchers did not start")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_watching = target.rss_mb();
    let mut body: serde_json::Value = serde_json::from_slice(&configmap("fanout"))?;
    body["data"]["n"] = serde_json::json!("changed");
    let sent = Instant::now();
    call(
        &mut sender,
        Method::PUT,
        "/api/v1/namespaces/bench-watch/configmaps/fanout",
        Some(serde_json::to_vec(&body)?),
    )
    .await?;
    let mut latencies = Vec::new();
    while latencies.len() < watchers {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(at)) => latencies.push(at.duration_since(sent)),
            _ => break,
        }
    }
    latencies.sort();
    println!("\n### One update fanned out to {watchers} watchers\n");
    println!("| watchers reached | p50 ms | p99 ms | max ms | RSS per idle watcher |");
    println!("|---|---|---|---|---|");
    let per_watcher_kb = (rss_watching - rss_before).max(0.0) * 1024.0 / watchers as f64;
    println!(
        "| {}/{watchers} | {:.1} | {:.1} | {:.1} | {per_watcher_kb:.1} KB |",
        latencies.len(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut data_dir = PathBuf::from("/var/lib/kite");
    let mut addr = "127.0.0.1:6443".to_string();
    let mut pid = None;
    let mut only = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data-dir" => {
                data_dir = PathBuf::from(args.next().context("--data-dir needs a value")?)
            }
            "--addr" => addr = args.next().context("--addr needs a value")?,
            "--pid" => pid = Some(args.next().context("--pid needs a value")?.parse()?),
            "--only" => only = Some(args.next().context("--only needs crud, list or watch")?),
            other => bail!("unknown argument {other}"),
        }
    }
    let tls_dir = data_dir.join("server/tls");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(tls_dir.join("server-ca.crt"))? {
        roots.add(cert?)?;
    }
    let chain = CertificateDer::pem_file_iter(tls_dir.join("client-admin.crt"))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(tls_dir.join("client-admin.key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    let target = Arc::new(Target {
        addr,
        tls: TlsConnector::from(Arc::new(config)),
        pid,
    });
    println!(
        "kite API benchmark (RSS of pid {:?} at start: {:.1} MB)",
        pid,
        target.rss_mb()
    );
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
    if run("crud") {
        crud(&target).await?;
    }
    if run("list") {
        big_list(&target).await?;
    }
    if run("watch") {
        watch_fanout(&target, 1000).await?;
    }
    Ok(())
}

//! The measured operations: each runs closed-loop (every caller issues its next request as
//! soon as the previous one is answered) for a fixed time.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::fail;
use crate::stats::Stats;
use crate::target::Target;

/// Keys under the range prefix (also the key space of `get`).
const RANGE_KEYS: usize = 10_000;
const RANGE_PREFIX: &str = "/bench/range/";
/// Bytes per value: a small Kubernetes object.
const VALUE_SIZE: usize = 512;

/// Distinguishes key spaces of successive measurements on the same store.
static RUN: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy)]
pub(crate) enum Operation {
    Create,
    Update,
    Get,
    Range,
    Watch,
}

impl Operation {
    pub(crate) const ALL: [Operation; 5] = [
        Operation::Create,
        Operation::Update,
        Operation::Get,
        Operation::Range,
        Operation::Watch,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update (CAS)",
            Operation::Get => "get",
            Operation::Range => "range 10k keys",
            Operation::Watch => "watch delivery",
        }
    }
}

fn value() -> Bytes {
    Bytes::from(vec![b'x'; VALUE_SIZE])
}

/// Measures `op` with `callers` concurrent callers for about `duration`.
pub(crate) async fn run(
    target: &Target,
    op: Operation,
    callers: usize,
    duration: Duration,
) -> Stats {
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    match op {
        Operation::Create => {
            let target = target.clone();
            closed_loop(callers, duration, move |task, i| {
                let target = target.clone();
                async move {
                    target
                        .create(&format!("/bench/create/{run}/{task}/{i}"), value())
                        .await
                }
            })
            .await
        }
        Operation::Update => {
            let mut revisions = Vec::new();
            for task in 0..callers {
                let key = format!("/bench/update/{run}/{task}");
                target.create(&key, value()).await;
                revisions.push(target.get(&key).await.map_or(0, |(revision, _)| revision));
            }
            let revisions: Arc<Vec<AtomicU64>> = Arc::new(
                revisions
                    .into_iter()
                    .map(|r| AtomicU64::new(r as u64))
                    .collect(),
            );
            let target = target.clone();
            closed_loop(callers, duration, move |task, _| {
                let target = target.clone();
                let revisions = Arc::clone(&revisions);
                async move {
                    let key = format!("/bench/update/{run}/{task}");
                    let expected = revisions[task].load(Ordering::Relaxed) as i64;
                    let revision = match target.compare_and_swap(&key, value(), expected).await {
                        Ok(revision) | Err(revision) => revision,
                    };
                    revisions[task].store(revision as u64, Ordering::Relaxed);
                }
            })
            .await
        }
        Operation::Get => {
            load_range_keys(target).await;
            let target = target.clone();
            closed_loop(callers, duration, move |task, i| {
                let target = target.clone();
                let n = mix(task as u64, i) % RANGE_KEYS as u64;
                async move {
                    if target.get(&format!("{RANGE_PREFIX}{n:05}")).await.is_none() {
                        fail("get: a preloaded key is missing");
                    }
                }
            })
            .await
        }
        Operation::Range => {
            load_range_keys(target).await;
            let target = target.clone();
            closed_loop(callers, duration, move |_, _| {
                let target = target.clone();
                async move {
                    if target.list(RANGE_PREFIX).await != RANGE_KEYS {
                        fail("range: wrong number of keys");
                    }
                }
            })
            .await
        }
        Operation::Watch => watch_delivery(target, run, callers, duration).await,
    }
}

/// A cheap deterministic hash for picking keys.
fn mix(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0x632B_E59B_D9B4_E019);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

/// Creates the 10,000 range keys unless they exist.
async fn load_range_keys(target: &Target) {
    let last = format!("{RANGE_PREFIX}{:05}", RANGE_KEYS - 1);
    if target.get(&last).await.is_some() {
        return;
    }
    let loaders: Vec<_> = (0..64)
        .map(|loader| {
            let target = target.clone();
            tokio::spawn(async move {
                for n in (loader..RANGE_KEYS).step_by(64) {
                    target
                        .create(&format!("{RANGE_PREFIX}{n:05}"), value())
                        .await;
                }
            })
        })
        .collect();
    for loader in loaders {
        loader
            .await
            .unwrap_or_else(|e| fail(&format!("loading range keys: {e}")));
    }
}

/// Runs `callers` tasks each calling `op(task, iteration)` back to back until `duration`
/// has passed.
async fn closed_loop<F, Fut>(callers: usize, duration: Duration, op: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..callers)
        .map(|task| {
            let op = Arc::clone(&op);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0;
                while Instant::now() < deadline {
                    let began = Instant::now();
                    op(task, i).await;
                    latencies.push(began.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap_or_else(|e| fail(&format!("caller: {e}"))));
    }
    Stats::new(start.elapsed(), latencies)
}

/// `callers` watchers on one prefix, one writer creating keys back to back; latency is
/// from just before the write is sent to the watcher receiving the event (so it includes
/// the commit), throughput counts events delivered to all watchers.
async fn watch_delivery(target: &Target, run: u64, callers: usize, duration: Duration) -> Stats {
    let prefix = format!("/bench/watch/{run}/");
    let epoch = Instant::now();
    let mut watchers = Vec::new();
    for _ in 0..callers {
        watchers.push(target.watch(&prefix, epoch).await);
    }
    let start = Instant::now();
    let mut written = 0;
    while start.elapsed() < duration {
        let sent = epoch.elapsed().as_nanos() as u64;
        target
            .create(
                &format!("{prefix}{written:08}"),
                Bytes::copy_from_slice(&sent.to_le_bytes()),
            )
            .await;
        written += 1;
    }
    let mut latencies = Vec::with_capacity(written * callers);
    for mut watcher in watchers {
        for _ in 0..written {
            let latency = tokio::time::timeout(Duration::from_secs(30), watcher.recv())
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| fail("watch: an event did not arrive"));
            latencies.push(latency);
        }
    }
    Stats::new(start.elapsed(), latencies)
}

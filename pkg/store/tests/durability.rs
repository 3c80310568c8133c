//! Durability: every write the store acknowledged survives `kill -9` of the process.
//!
//! The parent test re-executes this very test binary in child mode (the ignored test
//! `durability_child_writer`, selected with `--exact --ignored` and pointed at a database
//! by the `KITE_STORE_DURABILITY_DB` environment variable). The child writes keys from
//! several tasks and prints `ack <revision> <key> <value>` after each acknowledged write.
//! After a random short time the parent SIGKILLs it (`Child::kill`), reopens the database
//! and checks that every acknowledged write is there with its value and revision, and that
//! revisions keep growing across the restarts. The database lives on a real disk (the
//! system temp dir), not tmpfs.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use kite_store::{Backend, Config, SqliteBackend, UpdateOutcome};

const DB_ENV: &str = "KITE_STORE_DURABILITY_DB";
const ITERATION_ENV: &str = "KITE_STORE_DURABILITY_ITERATION";
const ITERATIONS: u64 = 20;
const WRITERS: usize = 4;

fn config() -> Config {
    Config {
        compaction_interval: None,
        ..Config::default()
    }
}

/// One acknowledged write, as the child printed it.
#[derive(Debug)]
struct Ack {
    revision: i64,
    key: String,
    value: String,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut fields = line.strip_prefix("ack ")?.split(' ');
    let revision = fields.next()?.parse().ok()?;
    let key = fields.next()?.to_owned();
    let value = fields.next()?.to_owned();
    Some(Ack {
        revision,
        key,
        value,
    })
}

#[test]
#[ignore = "child process of acknowledged_writes_survive_sigkill_of_the_process"]
fn durability_child_writer() {
    let path = std::env::var(DB_ENV).expect("child mode needs KITE_STORE_DURABILITY_DB");
    let iteration = std::env::var(ITERATION_ENV).expect("child mode needs the iteration");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = SqliteBackend::open(Path::new(&path), config()).expect("open store");
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let store = store.clone();
            let iteration = iteration.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let key = format!("/durability/{iteration}/{writer}/{n}");
                    let value = format!("{iteration}-{writer}-{n}");
                    let revision = store
                        .create(&key, Bytes::from(value.clone()), 0)
                        .await
                        .expect("create");
                    acknowledge(revision, &key, &value);
                }
            }));
        }
        // One more writer updates a shared counter with compare-and-swap.
        let counter = "/durability/counter";
        let mut kv = match store.get(counter, 0).await.expect("get").1 {
            Some(kv) => kv,
            None => {
                store
                    .create(counter, Bytes::from_static(b"0"), 0)
                    .await
                    .expect("create counter");
                store
                    .get(counter, 0)
                    .await
                    .expect("get")
                    .1
                    .expect("counter")
            }
        };
        loop {
            let value: u64 = std::str::from_utf8(&kv.value)
                .expect("utf-8")
                .parse()
                .expect("number");
            let next = (value + 1).to_string();
            match store
                .update(counter, Bytes::from(next.clone()), kv.mod_revision, 0)
                .await
                .expect("update")
            {
                UpdateOutcome::Updated { revision } => {
                    acknowledge(revision, counter, &next);
                    kv.value = Bytes::from(next);
                    kv.mod_revision = revision;
                }
                UpdateOutcome::Conflict { .. } => panic!("the counter has one writer"),
            }
        }
    });
}

fn acknowledge(revision: i64, key: &str, value: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ack {revision} {key} {value}").expect("stdout");
    out.flush().expect("stdout");
}

/// Milliseconds to let the child write before killing it, 10..250, from a cheap PRNG.
fn random_delay(seed: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    Duration::from_millis(10 + x % 240)
}

/// Runs one child until killed; returns what it acknowledged.
fn run_child(db: &Path, iteration: u64) -> Vec<Ack> {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "durability_child_writer",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DB_ENV, db)
        .env(ITERATION_ENV, iteration.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child writer");
    let stdout = child.stdout.take().expect("child stdout");
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(ack) = parse_ack(&line)
                && lines_tx.send(ack).is_err()
            {
                break;
            }
        }
    });
    // Start the clock once the child is writing.
    let first = lines.recv_timeout(Duration::from_secs(10));
    if first.is_ok() {
        std::thread::sleep(random_delay(iteration));
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("stdout reader");
    let mut acks: Vec<Ack> = first.into_iter().collect();
    acks.extend(lines.try_iter());
    assert!(
        !acks.is_empty(),
        "iteration {iteration}: the child acknowledged nothing in 10 s"
    );
    acks
}

#[test]
fn acknowledged_writes_survive_sigkill_of_the_process() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("state.db");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut revision_before = 0;
    let mut total = 0;
    for iteration in 0..ITERATIONS {
        let acks = run_child(&db, iteration);
        total += acks.len();
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), async {
                let store = SqliteBackend::open(&db, config()).expect("reopen after SIGKILL");
                let current = store.current_revision().await.expect("current revision");
                for ack in &acks {
                    assert!(
                        ack.revision > revision_before,
                        "revision {} reused after a restart",
                        ack.revision
                    );
                    assert!(
                        ack.revision <= current,
                        "acknowledged revision {} lost (current {current})",
                        ack.revision
                    );
                    let (_, kv) = store.get(&ack.key, ack.revision).await.expect("get");
                    let kv = kv.unwrap_or_else(|| panic!("acknowledged {ack:?} is missing"));
                    assert_eq!(
                        (kv.mod_revision, &kv.value[..]),
                        (ack.revision, ack.value.as_bytes()),
                        "{ack:?}"
                    );
                }
                revision_before = current;
            })
            .await
            .expect("verification timed out");
        });
    }
    eprintln!(
        "{total} acknowledged writes over {ITERATIONS} kills in {:?}",
        started.elapsed()
    );
}

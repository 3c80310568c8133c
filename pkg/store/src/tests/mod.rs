//! Tests of the SQLite backend: each operation and its errors (`ops`), compaction
//! (`compaction`), watch (`watch`), concurrent compare-and-swap writers (`concurrency`) and
//! random operation sequences checked against the in-memory model (`props`). Durability
//! across `kill -9` is in `tests/durability.rs`.

mod compaction;
mod concurrency;
mod ops;
mod props;
mod watch;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tempfile::TempDir;

use crate::{Config, SqliteBackend};

/// Upper bound for any async test.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a test body under [`TEST_TIMEOUT`].
async fn timed<F: Future>(body: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test timed out")
}

/// A scratch directory, on tmpfs when there is one: these tests are about semantics, and
/// fsync there is free. Durability is tested on a real disk in `tests/durability.rs`.
fn scratch_dir() -> TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir")
}

/// A config without the background compactor.
fn manual_compaction() -> Config {
    Config {
        compaction_interval: None,
        ..Config::default()
    }
}

/// A fresh store in its own directory (keep the directory alive as long as the store).
fn open_store(config: Config) -> (TempDir, SqliteBackend) {
    let dir = scratch_dir();
    let store = SqliteBackend::open(&dir.path().join("state.db"), config).expect("open store");
    (dir, store)
}

fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

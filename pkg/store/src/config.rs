//! Tuning knobs of the SQLite backend.

use std::time::Duration;

/// How a [`SqliteBackend`](crate::SqliteBackend) runs. `Config::default()` matches kine:
/// compact every 5 minutes, keeping the last 1000 revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How many recent revisions the background compactor keeps readable.
    pub compaction_window: i64,
    /// How often the background compactor runs; `None` turns it off (explicit
    /// [`Backend::compact`](crate::Backend::compact) still works).
    pub compaction_interval: Option<Duration>,
    /// Revisions compacted per transaction, so a large compaction never stalls writers
    /// for long: writes queued meanwhile are committed between two steps.
    pub compaction_step: i64,
    /// Largest number of writes committed together in one transaction (group commit).
    pub max_batch: usize,
    /// Reader threads, each with its own read-only connection.
    pub readers: usize,
    /// Commits a watcher may have pending before it is cancelled with
    /// [`Error::WatchLagged`](crate::Error::WatchLagged).
    pub watch_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            compaction_window: 1000,
            compaction_interval: Some(Duration::from_secs(300)),
            compaction_step: 1000,
            max_batch: 256,
            readers: 4,
            watch_buffer: 1024,
        }
    }
}

//! kite's storage layer: a revisioned key-value log with watch, in the shape of k3s's kine,
//! stored in an embedded SQLite database.
//!
//! Every write appends one row to a single table and the row id is the global revision.
//! Reads ask for "the latest row of each key at or below revision R", so any revision that
//! has not been compacted can be read consistently, and pagination keeps its snapshot by
//! passing the returned revision back. Watchers replay rows from the table, then receive
//! live events that the single writer thread broadcasts when a transaction commits.
//!
//! Start at [`Backend`], the operations every datastore provides, and [`SqliteBackend`],
//! the embedded implementation (`SqliteBackend::open(path, Config::default())`).
//! Internals, one job per module: `schema` (connections, pragmas, tables), `writer`
//! (the writer thread with group commit), `reader` (reader threads and queries), `watch`
//! (fan-out and replay), `compact` (compaction of old revisions), `wal` (syncing commits,
//! background checkpoints). `model` (feature `test-util`) is an in-memory reference model.
//!
//! Threads: one writer, `Config::readers` readers, one checkpointer; watchers are tokio
//! tasks, so `watch` and the async operations need a tokio runtime.

mod backend;
mod compact;
mod config;
mod error;
#[cfg(any(test, feature = "test-util"))]
pub mod model;
mod reader;
mod schema;
mod sqlite;
mod types;
mod wal;
mod watch;
mod writer;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests;

pub use backend::Backend;
pub use config::Config;
pub use error::{Error, Result};
pub use sqlite::SqliteBackend;
pub use types::{DeleteOutcome, Event, EventKind, KeyValue, ListResult, UpdateOutcome};
pub use watch::WatchStream;

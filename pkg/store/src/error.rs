//! The store's error type.

use std::path::PathBuf;
use std::sync::Arc;

/// `Result` with the store's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a store operation can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// `create` found a live value under the key.
    #[error("key {key:?} already exists")]
    KeyExists {
        /// The key that exists.
        key: String,
    },
    /// The requested revision is older than the compact revision: its history is gone.
    #[error("revision {requested} has been compacted (compact revision {compact_revision})")]
    Compacted {
        /// The revision that was asked for.
        requested: i64,
        /// The oldest revision that can still be read.
        compact_revision: i64,
    },
    /// The requested revision has not been written yet.
    #[error("revision {requested} is in the future (current revision {current})")]
    FutureRevision {
        /// The revision that was asked for.
        requested: i64,
        /// The newest revision.
        current: i64,
    },
    /// A watcher did not take its events fast enough and was cancelled; relist and re-watch.
    #[error("watch on prefix {prefix:?} fell too far behind and was cancelled")]
    WatchLagged {
        /// The prefix the watcher was watching.
        prefix: String,
    },
    /// Another process (or another `SqliteBackend` in this one) holds the database.
    #[error("database {path} is already open in another store")]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a newer kite with a schema this one does not know.
    #[error("database {path} has schema version {found}, this kite supports up to {supported}")]
    UnsupportedSchema {
        /// The database file.
        path: PathBuf,
        /// The schema version found in the file.
        found: i64,
        /// The newest schema version this build understands.
        supported: i64,
    },
    /// A row read from disk does not hold what the schema promises.
    #[error("database {path} has an invalid row {id}: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The row id (revision).
        id: i64,
        /// What is wrong with it.
        reason: String,
    },
    /// SQLite reported an error.
    #[error("sqlite error while {action} in {path}")]
    Sqlite {
        /// What the store was doing.
        action: &'static str,
        /// The database file.
        path: PathBuf,
        /// SQLite's error (shared: one failed group commit fails every write in it).
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// A file operation outside SQLite failed.
    #[error("io error while {action} {path}")]
    Io {
        /// What the store was doing.
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The store has been shut down (its writer thread is gone).
    #[error("store {path} is closed")]
    Closed {
        /// The database file.
        path: PathBuf,
    },
}

impl Error {
    pub(crate) fn sqlite(
        action: &'static str,
        path: &std::path::Path,
        source: rusqlite::Error,
    ) -> Self {
        Error::Sqlite {
            action,
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }
}

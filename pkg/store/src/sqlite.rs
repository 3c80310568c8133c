//! [`SqliteBackend`]: the embedded datastore, wiring the writer thread, the reader pool and
//! the watch hub behind the [`Backend`] trait.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::reader::ReaderPool;
use crate::schema;
use crate::types::{DeleteOutcome, KeyValue, ListResult, UpdateOutcome};
use crate::wal::Wal;
use crate::watch::{self, Hub, WatchStream};
use crate::writer::{Request, Writer};

/// kine's model on an embedded SQLite database: one writer thread, a pool of WAL readers.
///
/// Cheap to clone; the database closes when the last clone is dropped. Only one
/// `SqliteBackend` may have a database open at a time (enforced with a lock file next to
/// it), since the writer assigns revisions from memory.
#[derive(Clone)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    config: Config,
    readers: Arc<ReaderPool>,
    hub: Arc<Hub>,
    writer: Option<(Sender<Request>, JoinHandle<()>)>,
    /// Held (locked) for as long as the database is open.
    _lock: File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((requests, thread)) = self.writer.take() {
            drop(requests);
            if thread.join().is_err() {
                tracing::error!(path = %self.path.display(), "store writer thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteBackend {
    /// Opens the database at `path`, creating it (and its parent directory) and the schema
    /// if needed, and starts the writer thread.
    pub fn open(path: &Path, config: Config) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        }
        let lock = lock_database(path)?;
        let conn = schema::open_writer(path)?;
        let revisions = schema::revisions(&conn)
            .map_err(|e| Error::sqlite("reading the current revision", path, e))?;
        let hub = Arc::new(Hub::default());
        let wal = Wal::start(path)?;
        let writer = Writer::new(conn, wal, path, Arc::clone(&hub), &config, revisions);
        let (requests, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("kite-store-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| Error::io("starting the writer thread for", path, e))?;
        let readers = Arc::new(ReaderPool::start(path.to_path_buf(), config.readers)?);
        Ok(SqliteBackend {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                config,
                readers,
                hub,
                writer: Some((requests, thread)),
                _lock: lock,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Sends a request to the writer thread and waits for its answer.
    async fn write<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T>>) -> Request,
    ) -> Result<T> {
        let closed = || Error::Closed {
            path: self.inner.path.clone(),
        };
        let (reply, answer) = oneshot::channel();
        let (requests, _) = self.inner.writer.as_ref().ok_or_else(closed)?;
        requests.send(request(reply)).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    #[cfg(test)]
    pub(crate) fn watcher_count(&self) -> usize {
        self.inner.hub.len()
    }
}

/// Takes the `<path>.lock` file's exclusive lock, so two stores never write one database.
fn lock_database(path: &Path) -> Result<File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io("opening", &lock_path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Locked {
            path: path.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(Error::io("locking", &lock_path, e)),
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn current_revision(&self) -> Result<i64> {
        self.inner
            .readers
            .read(|snapshot| Ok(snapshot.current))
            .await
    }

    async fn compact_revision(&self) -> Result<i64> {
        self.inner
            .readers
            .read(|snapshot| Ok(snapshot.compact))
            .await
    }

    async fn create(&self, key: &str, value: Bytes, lease: i64) -> Result<i64> {
        let key = key.to_owned();
        self.write(|reply| Request::Create {
            key,
            value,
            lease,
            reply,
        })
        .await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: i64,
        lease: i64,
    ) -> Result<UpdateOutcome> {
        let key = key.to_owned();
        let expected = expected_mod_revision;
        self.write(|reply| Request::Update {
            key,
            value,
            expected,
            lease,
            reply,
        })
        .await
    }

    async fn delete(&self, key: &str, expected_mod_revision: Option<i64>) -> Result<DeleteOutcome> {
        let key = key.to_owned();
        let expected = expected_mod_revision;
        self.write(|reply| Request::Delete {
            key,
            expected,
            reply,
        })
        .await
    }

    async fn get(&self, key: &str, revision: i64) -> Result<(i64, Option<KeyValue>)> {
        let key = key.to_owned();
        self.inner
            .readers
            .read(move |snapshot| snapshot.get(&key, revision))
            .await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: i64,
    ) -> Result<ListResult> {
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        self.inner
            .readers
            .read(move |snapshot| snapshot.list(&prefix, start_after.as_deref(), limit, revision))
            .await
    }

    async fn count(&self, prefix: &str, revision: i64) -> Result<(i64, i64)> {
        let prefix = prefix.to_owned();
        self.inner
            .readers
            .read(move |snapshot| snapshot.count(&prefix, revision))
            .await
    }

    async fn latest_revision(&self, prefix: &str) -> Result<(i64, i64)> {
        let prefix = prefix.to_owned();
        self.inner
            .readers
            .read(move |snapshot| snapshot.latest(&prefix))
            .await
    }

    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<WatchStream> {
        let inner = &self.inner;
        watch::start(
            &inner.hub,
            &inner.readers,
            prefix,
            from_revision,
            inner.config.watch_buffer,
        )
        .await
    }

    async fn compact(&self, revision: i64) -> Result<i64> {
        self.write(|reply| Request::Compact { revision, reply })
            .await
    }
}

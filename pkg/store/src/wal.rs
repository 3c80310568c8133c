//! Durability and upkeep of SQLite's write-ahead log.
//!
//! [`Wal::sync`] makes committed transactions durable: the writer calls it after each
//! commit and before answering anyone, and it fdatasyncs the `-wal` file (see `schema.rs`
//! for why this replaces `synchronous=FULL`). A failed sync is fatal for the writer: after
//! an fsync error the kernel may have dropped the dirty pages, so nothing can be promised.
//!
//! At start the WAL file is extended with zeros to the size it reaches between two
//! checkpoints, as etcd preallocates its WAL segments: after that, commits overwrite blocks
//! the file already owns, so fdatasync has no file size or allocation to journal and costs
//! one device flush. SQLite ignores bytes after the last valid frame (each frame carries
//! the WAL's salt and a running checksum), exactly as it ignores the stale frames it leaves
//! there itself when it restarts the WAL from the top.
//!
//! [`Wal::committed`] counts commits and every so often wakes a checkpointer thread that
//! copies the WAL back into the database with a PASSIVE checkpoint on its own connection,
//! so that the copy and its fsyncs stay off the writers' commit path (under a steady stream
//! of writes, SQLite's own checkpoint in the writer also runs, see `schema.rs`). The writer
//! also asks for one when it has been idle for a moment ([`Wal::idle_deadline`]): once the
//! WAL is fully copied back, readers stop looking pages up in it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::schema;

/// Commits between two checkpoint requests (a commit writes a few pages).
const COMMITS_PER_CHECKPOINT: u32 = 128;
/// Bytes the WAL file is extended to at start: SQLite's fallback checkpoint point
/// (`wal_autocheckpoint` pages, see `schema.rs`) plus room for the frames' headers.
const PRESIZE_BYTES: u64 = 2048 * 4096 * 9 / 8;
/// Quiet time after a commit before an idle checkpoint.
const IDLE: Duration = Duration::from_millis(100);

pub(crate) struct Wal {
    path: PathBuf,
    file: Option<File>,
    /// Commits since the last checkpoint request.
    commits: u32,
    last_commit: Instant,
    checkpoints: SyncSender<()>,
}

impl Wal {
    /// Starts the checkpointer for the database at `db`, which the writer has opened.
    pub(crate) fn start(db: &Path) -> Result<Self> {
        let conn = schema::open_checkpointer(db)?;
        let (checkpoints, requests) = mpsc::sync_channel::<()>(1);
        let thread_db = db.to_path_buf();
        std::thread::Builder::new()
            .name("kite-store-checkpoint".into())
            .spawn(move || {
                while requests.recv().is_ok() {
                    let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
                    });
                    match outcome {
                        Ok((frames, copied)) => tracing::trace!(frames, copied, "checkpointed"),
                        Err(e) => {
                            let error = Error::sqlite("checkpointing", &thread_db, e);
                            tracing::warn!(%error, "checkpoint failed");
                        }
                    }
                }
            })
            .map_err(|e| Error::io("starting the checkpoint thread for", db, e))?;
        let mut path = db.as_os_str().to_owned();
        path.push("-wal");
        let path = PathBuf::from(path);
        presize(&path).map_err(|e| Error::io("extending", &path, e))?;
        Ok(Wal {
            path,
            file: None,
            commits: 0,
            last_commit: Instant::now(),
            checkpoints,
        })
    }

    /// Flushes the WAL to stable storage.
    pub(crate) fn sync(&mut self) -> Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            // SQLite creates the WAL with the first transaction and keeps it (same inode,
            // reused from the start after checkpoints) while the writer connection is open.
            None => self
                .file
                .insert(File::open(&self.path).map_err(|e| Error::io("opening", &self.path, e))?),
        };
        file.sync_data()
            .map_err(|e| Error::io("syncing", &self.path, e))
    }

    /// Notes a commit; asks for a checkpoint every [`COMMITS_PER_CHECKPOINT`] commits.
    pub(crate) fn committed(&mut self) {
        self.commits += 1;
        self.last_commit = Instant::now();
        if self.commits >= COMMITS_PER_CHECKPOINT {
            self.request_checkpoint();
        }
    }

    /// When the writer, if still idle, should ask for a checkpoint.
    pub(crate) fn idle_deadline(&self) -> Option<Instant> {
        (self.commits > 0).then(|| self.last_commit + IDLE)
    }

    /// Asks for a checkpoint if the writer has been idle since [`Wal::idle_deadline`].
    pub(crate) fn idle(&mut self, now: Instant) {
        if self.idle_deadline().is_some_and(|deadline| now >= deadline) {
            self.request_checkpoint();
        }
    }

    fn request_checkpoint(&mut self) {
        // Full: one is already pending, which covers these commits too. Disconnected: the
        // checkpointer is gone and SQLite's fallback autocheckpoint takes over.
        if let Err(TrySendError::Disconnected(())) = self.checkpoints.try_send(()) {
            tracing::warn!(wal = %self.path.display(), "the checkpoint thread is gone");
        }
        self.commits = 0;
    }
}

/// Extends an existing WAL file with zeros to [`PRESIZE_BYTES`], durably.
fn presize(path: &Path) -> std::io::Result<()> {
    let mut file = match OpenOptions::new().append(true).open(path) {
        Ok(file) => file,
        // SQLite has not created it yet: it will grow as usual.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut missing = PRESIZE_BYTES.saturating_sub(file.metadata()?.len());
    if missing == 0 {
        return Ok(());
    }
    let zeros = vec![0u8; 1 << 20];
    while missing > 0 {
        let n = missing.min(zeros.len() as u64);
        file.write_all(&zeros[..n as usize])?;
        missing -= n;
    }
    file.sync_all()
}

//! The writer thread: the only owner of the write connection.
//!
//! Requests arrive over a channel and are answered through oneshots. Whatever is queued
//! when the thread picks up work is applied in one transaction (group commit: one fsync
//! for the whole batch), events are published to watchers right after the commit, then
//! every caller gets its answer. Being the only writer, the thread assigns revisions itself
//! from an in-memory counter. Between batches it advances compaction one step at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Instant;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::compact::{self, Compactor};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::schema::tombstone_kv;
use crate::types::{DeleteOutcome, Event, EventKind, KeyValue, UpdateOutcome};
use crate::wal::Wal;
use crate::watch::{Batch, Hub};

const LATEST: &str = "SELECT id, deleted, create_revision, lease, value FROM kine
    WHERE name = ?1 ORDER BY id DESC LIMIT 1";

const INSERT: &str = "INSERT INTO kine (id, name, created, deleted, create_revision,
    prev_revision, lease, value, old_value, old_lease)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// A request to the writer thread.
pub(crate) enum Request {
    Create {
        key: String,
        value: Bytes,
        lease: i64,
        reply: oneshot::Sender<Result<i64>>,
    },
    Update {
        key: String,
        value: Bytes,
        expected: i64,
        lease: i64,
        reply: oneshot::Sender<Result<UpdateOutcome>>,
    },
    Delete {
        key: String,
        expected: Option<i64>,
        reply: oneshot::Sender<Result<DeleteOutcome>>,
    },
    Compact {
        revision: i64,
        reply: oneshot::Sender<Result<i64>>,
    },
}

/// A write applied in the open transaction, answered once it commits.
enum Pending {
    Create(oneshot::Sender<Result<i64>>, Option<Result<i64>>),
    Update(
        oneshot::Sender<Result<UpdateOutcome>>,
        Option<UpdateOutcome>,
    ),
    Delete(
        oneshot::Sender<Result<DeleteOutcome>>,
        Option<DeleteOutcome>,
    ),
}

impl Pending {
    /// Answers with the outcome, or with `error` if the transaction failed.
    fn answer(self, error: Option<&Error>) {
        fn send<T>(
            reply: oneshot::Sender<Result<T>>,
            outcome: Option<Result<T>>,
            error: Option<&Error>,
        ) {
            let result = match (error, outcome) {
                (None, Some(outcome)) => outcome,
                (Some(error), _) => Err(error.clone()),
                // Not reached: without an error every pending write has an outcome.
                (None, None) => return,
            };
            let _ = reply.send(result);
        }
        match self {
            Pending::Create(reply, outcome) => send(reply, outcome, error),
            Pending::Update(reply, outcome) => send(reply, outcome.map(Ok), error),
            Pending::Delete(reply, outcome) => send(reply, outcome.map(Ok), error),
        }
    }
}

/// A key's newest row, as the writer needs it.
struct Latest {
    id: i64,
    deleted: bool,
    create_revision: i64,
    lease: i64,
    value: Bytes,
}

impl Latest {
    fn live(self) -> Option<Latest> {
        (!self.deleted).then_some(self)
    }

    fn kv(&self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.id,
            lease: self.lease,
        }
    }
}

/// A row to append.
struct NewRow<'a> {
    name: &'a str,
    created: bool,
    deleted: bool,
    create_revision: i64,
    prev_revision: i64,
    lease: i64,
    value: &'a [u8],
    old_value: Option<&'a [u8]>,
    old_lease: i64,
}

pub(crate) struct Writer {
    conn: Connection,
    path: PathBuf,
    hub: Arc<Hub>,
    max_batch: usize,
    revision: i64,
    compacted: i64,
    compactor: Compactor,
    wal: Wal,
    /// Set when the WAL could not be synced: the writer stops.
    broken: bool,
}

impl Writer {
    /// Takes over an open write connection whose log is at `revision`/`compacted`.
    pub(crate) fn new(
        conn: Connection,
        wal: Wal,
        path: &Path,
        hub: Arc<Hub>,
        config: &Config,
        (revision, compacted): (i64, i64),
    ) -> Self {
        Writer {
            conn,
            path: path.to_path_buf(),
            hub,
            max_batch: config.max_batch.max(1),
            revision,
            compacted,
            compactor: Compactor::new(config, compacted),
            wal,
            broken: false,
        }
    }

    /// Serves requests until every sender is gone.
    pub(crate) fn run(mut self, requests: Receiver<Request>) {
        loop {
            let first = if self.compactor.next_step(self.compacted).is_some() {
                match requests.try_recv() {
                    Ok(request) => Some(request),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => break,
                }
            } else if let Some(wake) = self.wake_at() {
                match requests.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                    Ok(request) => Some(request),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match requests.recv() {
                    Ok(request) => Some(request),
                    Err(_) => break,
                }
            };
            if let Some(first) = first {
                let mut batch = vec![first];
                while batch.len() < self.max_batch {
                    match requests.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
                self.commit(batch);
            }
            let now = Instant::now();
            self.wal.idle(now);
            self.compactor.schedule(now, self.revision);
            self.compact_one_step();
            if self.broken {
                tracing::error!(path = %self.path.display(), "store writer stopped");
                break;
            }
        }
    }

    /// When the writer has something to do even if no request comes.
    fn wake_at(&self) -> Option<Instant> {
        [self.compactor.next_run(), self.wal.idle_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Makes what was just committed durable; a failure stops the writer for good.
    fn sync(&mut self) -> Result<()> {
        let synced = self.wal.sync();
        match &synced {
            Ok(()) => self.wal.committed(),
            Err(error) => {
                tracing::error!(%error, "cannot make commits durable");
                self.broken = true;
            }
        }
        synced
    }

    /// Applies a batch in one transaction and answers it.
    fn commit(&mut self, batch: Vec<Request>) {
        let start = self.revision;
        let mut events = Vec::new();
        let mut pending = Vec::with_capacity(batch.len());
        let mut failure: Option<Error> = None;
        let mut began = false;
        for request in batch {
            if let Request::Compact { revision, reply } = request {
                self.compactor
                    .request(revision, self.revision, self.compacted, reply);
                continue;
            }
            if failure.is_none() && !began {
                match self.execute("BEGIN IMMEDIATE") {
                    Ok(()) => began = true,
                    Err(e) => {
                        failure = Some(Error::sqlite("starting a write transaction", &self.path, e))
                    }
                }
            }
            let ev = &mut events;
            match request {
                Request::Create {
                    key,
                    value,
                    lease,
                    reply,
                } => {
                    let outcome = self.apply(&mut failure, |w| w.create(&key, &value, lease, ev));
                    pending.push(Pending::Create(reply, outcome));
                }
                Request::Update {
                    key,
                    value,
                    expected,
                    lease,
                    reply,
                } => {
                    let outcome = self.apply(&mut failure, |w| {
                        w.update(&key, &value, expected, lease, ev)
                    });
                    pending.push(Pending::Update(reply, outcome));
                }
                Request::Delete {
                    key,
                    expected,
                    reply,
                } => {
                    let outcome = self.apply(&mut failure, |w| w.delete(&key, expected, ev));
                    pending.push(Pending::Delete(reply, outcome));
                }
                Request::Compact { .. } => {}
            }
        }
        if began && failure.is_none() {
            failure = match self.execute("COMMIT") {
                Ok(()) => self.sync().err(),
                Err(e) => Some(Error::sqlite("committing writes", &self.path, e)),
            };
        }
        if self.broken {
            // Committed but not known to be durable: nobody is told it succeeded.
        } else if let Some(error) = &failure {
            tracing::error!(%error, "write transaction failed");
            if !self.conn.is_autocommit() {
                let _ = self.execute("ROLLBACK");
            }
            self.revision = start;
        } else if !events.is_empty() {
            let batch: Batch = events.into();
            self.hub.publish(&batch);
        }
        for write in pending {
            write.answer(failure.as_ref());
        }
    }

    /// Runs one write unless an earlier one in the batch failed.
    fn apply<T>(
        &mut self,
        failure: &mut Option<Error>,
        write: impl FnOnce(&mut Self) -> rusqlite::Result<T>,
    ) -> Option<T> {
        if failure.is_some() {
            return None;
        }
        match write(self) {
            Ok(outcome) => Some(outcome),
            Err(e) => {
                *failure = Some(Error::sqlite("writing a key", &self.path, e));
                None
            }
        }
    }

    fn execute(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(|_| ())
    }

    fn latest(&self, key: &str) -> rusqlite::Result<Option<Latest>> {
        self.conn
            .prepare_cached(LATEST)?
            .query_row([key], |row| {
                Ok(Latest {
                    id: row.get(0)?,
                    deleted: row.get(1)?,
                    create_revision: row.get(2)?,
                    lease: row.get(3)?,
                    value: Bytes::from(row.get::<_, Vec<u8>>(4)?),
                })
            })
            .optional()
    }

    /// Appends `row` at the next revision and returns that revision.
    fn append(&mut self, row: NewRow<'_>) -> rusqlite::Result<i64> {
        let id = self.revision + 1;
        // A create's create_revision is its own revision, known only here.
        let create_revision = if row.created { id } else { row.create_revision };
        self.conn.prepare_cached(INSERT)?.execute(params![
            id,
            row.name,
            row.created,
            row.deleted,
            create_revision,
            row.prev_revision,
            row.lease,
            row.value,
            row.old_value,
            row.old_lease,
        ])?;
        self.revision = id;
        Ok(id)
    }

    fn create(
        &mut self,
        key: &str,
        value: &Bytes,
        lease: i64,
        events: &mut Vec<Event>,
    ) -> rusqlite::Result<Result<i64>> {
        let latest = self.latest(key)?;
        if latest.as_ref().is_some_and(|l| !l.deleted) {
            return Ok(Err(Error::KeyExists {
                key: key.to_owned(),
            }));
        }
        let revision = self.append(NewRow {
            name: key,
            created: true,
            deleted: false,
            create_revision: 0,
            prev_revision: latest.map_or(0, |l| l.id),
            lease,
            value,
            old_value: None,
            old_lease: 0,
        })?;
        let kv = KeyValue {
            key: key.to_owned(),
            value: value.clone(),
            create_revision: revision,
            mod_revision: revision,
            lease,
        };
        events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: None,
        });
        Ok(Ok(revision))
    }

    fn update(
        &mut self,
        key: &str,
        value: &Bytes,
        expected: i64,
        lease: i64,
        events: &mut Vec<Event>,
    ) -> rusqlite::Result<UpdateOutcome> {
        let prev = match self.latest(key)?.and_then(Latest::live) {
            Some(latest) if latest.id == expected => latest,
            other => {
                let current = other.map(|l| l.kv(key));
                return Ok(UpdateOutcome::Conflict {
                    revision: self.revision,
                    current,
                });
            }
        };
        let revision = self.append(NewRow {
            name: key,
            created: false,
            deleted: false,
            create_revision: prev.create_revision,
            prev_revision: prev.id,
            lease,
            value,
            old_value: Some(&prev.value),
            old_lease: prev.lease,
        })?;
        let kv = KeyValue {
            key: key.to_owned(),
            value: value.clone(),
            create_revision: prev.create_revision,
            mod_revision: revision,
            lease,
        };
        events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: Some(prev.kv(key)),
        });
        Ok(UpdateOutcome::Updated { revision })
    }

    fn delete(
        &mut self,
        key: &str,
        expected: Option<i64>,
        events: &mut Vec<Event>,
    ) -> rusqlite::Result<DeleteOutcome> {
        let Some(prev) = self.latest(key)?.and_then(Latest::live) else {
            return Ok(DeleteOutcome::NotFound {
                revision: self.revision,
            });
        };
        if expected.is_some_and(|expected| expected != prev.id) {
            return Ok(DeleteOutcome::Conflict {
                revision: self.revision,
                current: prev.kv(key),
            });
        }
        let revision = self.append(NewRow {
            name: key,
            created: false,
            deleted: true,
            create_revision: prev.create_revision,
            prev_revision: prev.id,
            lease: 0,
            value: &[],
            old_value: Some(&prev.value),
            old_lease: prev.lease,
        })?;
        let prev = prev.kv(key);
        let kv = tombstone_kv(key.to_owned(), revision);
        events.push(Event {
            kind: EventKind::Delete,
            kv,
            prev_kv: Some(prev.clone()),
        });
        Ok(DeleteOutcome::Deleted { revision, prev })
    }

    /// Advances compaction by one step, if any is wanted, in its own transaction.
    fn compact_one_step(&mut self) {
        let Some((lo, hi)) = self.compactor.next_step(self.compacted) else {
            return;
        };
        let step = || -> rusqlite::Result<usize> {
            self.execute("BEGIN IMMEDIATE")?;
            let deleted = compact::compact_step(&self.conn, lo, hi)?;
            self.execute("COMMIT")?;
            Ok(deleted)
        };
        match step() {
            Ok(deleted) => {
                if let Err(error) = self.sync() {
                    self.compactor.failed(self.compacted, &error);
                    return;
                }
                tracing::debug!(from = lo, to = hi, deleted, "compacted");
                self.compacted = hi;
                self.compactor.advanced(hi);
            }
            Err(e) => {
                if !self.conn.is_autocommit() {
                    let _ = self.execute("ROLLBACK");
                }
                let error = Error::sqlite("compacting", &self.path, e);
                tracing::error!(%error, "compaction failed");
                self.compactor.failed(self.compacted, &error);
            }
        }
    }
}

//! Reads: a fixed pool of reader threads, each owning a read-only WAL connection (so its
//! prepared statements stay cached), and the queries they run inside one read transaction
//! (a [`Snapshot`]) so that a read and the revision it reports always agree.
//!
//! Every query asks for "the latest row of each key with id <= R"; WAL readers never block
//! the writer nor each other.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::schema::{self, StoredRow};
use crate::types::{Event, KeyValue, ListResult, key_range, resolve_revision};

const GET: &str = "SELECT id, deleted, create_revision, lease, value FROM kine
    WHERE name = ?1 AND id <= ?2 ORDER BY id DESC LIMIT 1";

// Rows of a key range at or below a revision in (name, id) order, straight off the
// (name, id, deleted) index: the last row of each name is that key's state, so one pass
// without per-key subqueries finds every live key (see `Snapshot::scan_latest`).
const RANGE_BOUNDED: &str = "SELECT id, name, deleted, create_revision, lease, value FROM kine
    WHERE name >= ?1 AND name < ?3 AND id <= ?2 ORDER BY name, id";
const RANGE_UNBOUNDED: &str = "SELECT id, name, deleted, create_revision, lease, value FROM kine
    WHERE name >= ?1 AND id <= ?2 ORDER BY name, id";
// The same for counting: index only.
const NAMES_BOUNDED: &str = "SELECT name, deleted FROM kine
    WHERE name >= ?1 AND name < ?3 AND id <= ?2 ORDER BY name, id";
const NAMES_UNBOUNDED: &str = "SELECT name, deleted FROM kine
    WHERE name >= ?1 AND id <= ?2 ORDER BY name, id";

// The newest row of a key range, from the (name, id) index alone.
const LATEST_BOUNDED: &str = "SELECT COALESCE(MAX(id), 0) FROM kine WHERE name >= ?1 AND name < ?2";
const LATEST_UNBOUNDED: &str = "SELECT COALESCE(MAX(id), 0) FROM kine WHERE name >= ?1";

// History is read in revision order by rowid; `+name` keeps the planner off the name index,
// since a watch usually resumes from a recent revision.
const HISTORY_BOUNDED: &str = "SELECT id, name, created, deleted, create_revision,
    prev_revision, lease, value, old_value, old_lease FROM kine
    WHERE id > ?1 AND +name >= ?2 AND +name < ?4 ORDER BY id LIMIT ?3";
const HISTORY_UNBOUNDED: &str = "SELECT id, name, created, deleted, create_revision,
    prev_revision, lease, value, old_value, old_lease FROM kine
    WHERE id > ?1 AND +name >= ?2 ORDER BY id LIMIT ?3";

/// A read to run on a reader thread.
type Job = Box<dyn FnOnce(Option<&Connection>, &Path) + Send>;

/// Reader threads for one database. Dropping the pool stops them once idle.
pub(crate) struct ReaderPool {
    path: PathBuf,
    jobs: Sender<Job>,
}

impl ReaderPool {
    /// Starts `threads` reader threads for the database at `path`.
    pub(crate) fn start(path: PathBuf, threads: usize) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let (queue, db) = (Arc::clone(&queue), path.clone());
            std::thread::Builder::new()
                .name(format!("kite-store-reader-{n}"))
                .spawn(move || serve(&queue, &db))
                .map_err(|e| Error::io("starting a reader thread for", &path, e))?;
        }
        Ok(ReaderPool { path, jobs })
    }

    /// Runs `f` inside one read transaction on a reader thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Snapshot<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn, path| {
            let outcome = catch_unwind(AssertUnwindSafe(|| match conn {
                Some(conn) => run_in_snapshot(conn, path, f),
                None => schema::open_reader(path).and_then(|conn| run_in_snapshot(&conn, path, f)),
            }));
            let _ = reply.send(outcome);
        });
        let closed = || Error::Closed {
            path: self.path.clone(),
        };
        self.jobs.send(job).map_err(|_| closed())?;
        match answer.await.map_err(|_| closed())? {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// A reader thread: takes jobs until the pool is dropped. It opens its connection on its
/// first job (the writer has created the database by then) and again after a failure.
fn serve(queue: &Mutex<Receiver<Job>>, path: &Path) {
    let mut conn: Option<Connection> = None;
    loop {
        let job = match queue.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if conn.is_none() {
            conn = schema::open_reader(path).ok();
        }
        job(conn.as_ref(), path);
        // A connection left inside a transaction (a failed COMMIT) is not reused.
        if conn.as_ref().is_some_and(|c| !c.is_autocommit()) {
            conn = None;
        }
    }
}

fn run_in_snapshot<T>(
    conn: &Connection,
    path: &Path,
    f: impl FnOnce(&Snapshot<'_>) -> Result<T>,
) -> Result<T> {
    let sql = |action| move |e| Error::sqlite(action, path, e);
    conn.prepare_cached("BEGIN")
        .and_then(|mut s| s.execute([]))
        .map_err(sql("starting a read transaction"))?;
    let outcome = schema::revisions(conn)
        .map_err(sql("reading the current revision"))
        .and_then(|(current, compact)| {
            f(&Snapshot {
                conn,
                path,
                current,
                compact,
            })
        });
    let end = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]));
    let value = outcome?;
    end.map_err(sql("ending a read transaction"))?;
    Ok(value)
}

/// One read transaction: a fixed view of the log.
pub(crate) struct Snapshot<'a> {
    conn: &'a Connection,
    path: &'a Path,
    /// The newest revision in this view.
    pub(crate) current: i64,
    /// The compact revision in this view.
    pub(crate) compact: i64,
}

impl Snapshot<'_> {
    fn sql(&self, action: &'static str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
        move |e| Error::sqlite(action, self.path, e)
    }

    pub(crate) fn get(&self, key: &str, revision: i64) -> Result<(i64, Option<KeyValue>)> {
        let rev = resolve_revision(revision, self.current, self.compact)?;
        let read = || -> rusqlite::Result<Option<KeyValue>> {
            let mut stmt = self.conn.prepare_cached(GET)?;
            let mut rows = stmt.query(params![key, rev])?;
            let Some(row) = rows.next()? else {
                return Ok(None);
            };
            if row.get::<_, bool>(1)? {
                return Ok(None);
            }
            Ok(Some(KeyValue {
                key: key.to_owned(),
                value: Bytes::from(row.get::<_, Vec<u8>>(4)?),
                create_revision: row.get(2)?,
                mod_revision: row.get(0)?,
                lease: row.get(3)?,
            }))
        };
        Ok((rev, read().map_err(self.sql("reading a key"))?))
    }

    pub(crate) fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: i64,
    ) -> Result<ListResult> {
        let rev = resolve_revision(revision, self.current, self.compact)?;
        let (start, end) = key_range(prefix, start_after);
        if end.as_ref().is_some_and(|end| start >= *end) {
            return Ok(ListResult {
                revision: rev,
                kvs: Vec::new(),
                more: false,
                count: 0,
            });
        }
        // One key more than asked tells whether more remain.
        let wanted = if limit == 0 {
            usize::MAX
        } else {
            limit.saturating_add(1)
        };
        let kvs = self
            .scan_latest(&start, end.as_deref(), rev, wanted)
            .map_err(self.sql("listing keys"))?;
        let more = kvs.len() > limit && limit > 0;
        let (kvs, count) = if more {
            let mut kvs = kvs;
            kvs.truncate(limit);
            (kvs, self.count_range(&start, end.as_deref(), rev)?)
        } else {
            let count = i64::try_from(kvs.len()).unwrap_or(i64::MAX);
            (kvs, count)
        };
        Ok(ListResult {
            revision: rev,
            kvs,
            more,
            count,
        })
    }

    /// The live keys of `[start, end)` at `rev` in key order, at most `wanted` of them.
    fn scan_latest(
        &self,
        start: &str,
        end: Option<&str>,
        rev: i64,
        wanted: usize,
    ) -> rusqlite::Result<Vec<KeyValue>> {
        let mut stmt;
        let mut rows = match end {
            Some(end) => {
                stmt = self.conn.prepare_cached(RANGE_BOUNDED)?;
                stmt.query(params![start, rev, end])?
            }
            None => {
                stmt = self.conn.prepare_cached(RANGE_UNBOUNDED)?;
                stmt.query(params![start, rev])?
            }
        };
        let mut kvs = Vec::new();
        // The newest row seen of the current key; `None` if that row is a tombstone.
        let mut newest: Option<KeyValue> = None;
        let mut newest_name = String::new();
        while let Some(row) = rows.next()? {
            let name = row.get_ref(1)?.as_str()?;
            if name != newest_name {
                if let Some(kv) = newest.take() {
                    kvs.push(kv);
                    if kvs.len() >= wanted {
                        return Ok(kvs);
                    }
                }
                newest_name.clear();
                newest_name.push_str(name);
            }
            newest = if row.get::<_, bool>(2)? {
                None
            } else {
                Some(KeyValue {
                    key: newest_name.clone(),
                    value: Bytes::from(row.get::<_, Vec<u8>>(5)?),
                    create_revision: row.get(3)?,
                    mod_revision: row.get(0)?,
                    lease: row.get(4)?,
                })
            };
        }
        kvs.extend(newest);
        Ok(kvs)
    }

    /// The snapshot's revision and the newest revision written under `prefix`.
    pub(crate) fn latest(&self, prefix: &str) -> Result<(i64, i64)> {
        let (start, end) = key_range(prefix, None);
        let latest = match end {
            Some(end) => self
                .conn
                .prepare_cached(LATEST_BOUNDED)
                .and_then(|mut s| s.query_row(params![start, end], |r| r.get(0))),
            None => self
                .conn
                .prepare_cached(LATEST_UNBOUNDED)
                .and_then(|mut s| s.query_row(params![start], |r| r.get(0))),
        }
        .map_err(self.sql("reading the newest revision of a range"))?;
        Ok((self.current, latest))
    }

    pub(crate) fn count(&self, prefix: &str, revision: i64) -> Result<(i64, i64)> {
        let rev = resolve_revision(revision, self.current, self.compact)?;
        let (start, end) = key_range(prefix, None);
        Ok((rev, self.count_range(&start, end.as_deref(), rev)?))
    }

    fn count_range(&self, start: &str, end: Option<&str>, rev: i64) -> Result<i64> {
        let count = || -> rusqlite::Result<i64> {
            let mut stmt;
            let mut rows = match end {
                Some(end) => {
                    stmt = self.conn.prepare_cached(NAMES_BOUNDED)?;
                    stmt.query(params![start, rev, end])?
                }
                None => {
                    stmt = self.conn.prepare_cached(NAMES_UNBOUNDED)?;
                    stmt.query(params![start, rev])?
                }
            };
            let mut count = 0;
            let mut name = String::new();
            let mut live = false;
            while let Some(row) = rows.next()? {
                let next = row.get_ref(0)?.as_str()?;
                if next != name {
                    count += i64::from(live);
                    name.clear();
                    name.push_str(next);
                }
                live = !row.get::<_, bool>(1)?;
            }
            Ok(count + i64::from(live))
        };
        count().map_err(self.sql("counting keys"))
    }

    /// Events for keys under `prefix` with revisions above `after`, oldest first, at most
    /// `limit` of them.
    pub(crate) fn history(&self, prefix: &str, after: i64, limit: usize) -> Result<Vec<Event>> {
        if after < self.compact {
            return Err(Error::Compacted {
                requested: after,
                compact_revision: self.compact,
            });
        }
        let (start, end) = key_range(prefix, None);
        let sql_limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stored = Vec::new();
        let mut scan = || -> rusqlite::Result<()> {
            let mut stmt;
            let mut rows = match &end {
                Some(end) => {
                    stmt = self.conn.prepare_cached(HISTORY_BOUNDED)?;
                    stmt.query(params![after, start, sql_limit, end])?
                }
                None => {
                    stmt = self.conn.prepare_cached(HISTORY_UNBOUNDED)?;
                    stmt.query(params![after, start, sql_limit])?
                }
            };
            while let Some(row) = rows.next()? {
                stored.push(StoredRow::read(row)?);
            }
            Ok(())
        };
        scan().map_err(self.sql("reading history"))?;
        stored
            .into_iter()
            .map(|row| row.into_event(self.path))
            .collect()
    }
}

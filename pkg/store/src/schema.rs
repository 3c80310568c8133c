//! The on-disk layout: opening connections with the right pragmas, creating the tables,
//! and decoding the log's rows.
//!
//! One table, `kine`, is the log: each write appends a row and the row id is the revision.
//! A create row has `created = 1`; a delete appends a tombstone (`deleted = 1`) whose
//! `old_value` is the deleted value. `prev_revision` always points at the key's previous
//! row, which is what compaction and `prev_kv` rely on. `kine_meta` holds the compact
//! revision. The current revision is `sqlite_sequence`'s counter for `kine`, which
//! AUTOINCREMENT keeps even when compaction deletes the newest row, so it never goes back.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::types::{Event, EventKind, KeyValue};

/// Version written to `PRAGMA user_version` by this build.
const SCHEMA_VERSION: i64 = 1;

const CREATE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS kine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    lease INTEGER NOT NULL,
    value BLOB NOT NULL,
    old_value BLOB,
    old_lease INTEGER NOT NULL
);
-- Point reads, prefix ranges and \"latest row per key at revision R\". `deleted` rides along
-- so that counting live keys never touches the table itself.
CREATE INDEX IF NOT EXISTS kine_name_id ON kine (name, id, deleted);
CREATE TABLE IF NOT EXISTS kine_meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

const REVISIONS: &str = "SELECT
    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'kine'), 0),
    COALESCE((SELECT value FROM kine_meta WHERE name = 'compact_revision'), 0)";

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Address space each reader maps the database file into (not memory it uses).
const READER_MMAP_BYTES: i64 = 1 << 30;

/// Opens (creating if needed) the database for the writer thread: WAL, full sync, schema.
pub(crate) fn open_writer(path: &Path) -> Result<Connection> {
    let sql_err = |action| move |e| Error::sqlite(action, path, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sql_err("opening the database"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sql_err("setting the busy timeout"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(sql_err("enabling WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::sqlite(
            "enabling WAL",
            path,
            rusqlite::Error::InvalidParameterName(format!("journal_mode is {mode}")),
        ));
    }
    // Durability: an acknowledged write must survive a power cut, as etcd guarantees by
    // syncing its WAL (Kubernetes assumes it). In WAL mode, `synchronous=FULL` is exactly
    // `NORMAL` plus a sync of the WAL after every commit; the writer does that sync itself
    // (see `wal.rs`) with fdatasync before it answers, which is the same guarantee at a lower
    // cost: SQLite's fsync also flushes the WAL's timestamps, forcing an ext4 journal commit
    // on most commits. `NORMAL` alone would survive kill -9 (committed frames sit in the page
    // cache) but could lose acknowledged writes on an OS crash, so it is never used alone.
    // NORMAL still syncs around checkpoints, keeping the database file consistent.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql_err("setting synchronous"))?;
    // Checkpoints run on their own thread (`wal.rs`). Under a steady stream of writes its
    // passive checkpoints never catch up with the end of the WAL, so the WAL could not
    // restart; then the writer's own checkpoint at this size (8 MiB) does it.
    conn.pragma_update(None, "wal_autocheckpoint", 2048)
        .map_err(sql_err("setting wal_autocheckpoint"))?;
    // Keep the WAL file from staying large after a burst of writes.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(sql_err("setting journal_size_limit"))?;
    conn.set_prepared_statement_cache_capacity(64);

    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sql_err("reading the schema version"))?;
    if version > SCHEMA_VERSION {
        return Err(Error::UnsupportedSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    conn.execute_batch(&format!(
        "BEGIN; {CREATE_TABLES} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    ))
    .map_err(sql_err("creating the schema"))?;
    Ok(conn)
}

/// Opens the checkpointer's connection to a database the writer has already opened.
pub(crate) fn open_checkpointer(path: &Path) -> Result<Connection> {
    let sql_err = |action| move |e| Error::sqlite(action, path, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(sql_err("opening the checkpoint connection"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sql_err("setting the busy timeout"))?;
    // Checkpoints sync the WAL before copying it and the database after.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql_err("setting synchronous"))?;
    Ok(conn)
}

/// Opens a read-only connection to a database the writer has already opened.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let sql_err = |action| move |e| Error::sqlite(action, path, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(sql_err("opening a read connection"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sql_err("setting the busy timeout"))?;
    // Read database pages straight from the OS page cache instead of copying each one
    // into SQLite's own cache: large lists spend most of their time reading pages.
    conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)
        .map_err(sql_err("setting mmap_size"))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// The current and the compact revision as seen by `conn`'s transaction.
pub(crate) fn revisions(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.prepare_cached(REVISIONS)?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
}

/// One row of the log, all columns.
#[derive(Debug)]
pub(crate) struct StoredRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) created: bool,
    pub(crate) deleted: bool,
    pub(crate) create_revision: i64,
    pub(crate) prev_revision: i64,
    pub(crate) lease: i64,
    pub(crate) value: Vec<u8>,
    pub(crate) old_value: Option<Vec<u8>>,
    pub(crate) old_lease: i64,
}

impl StoredRow {
    /// Decodes a row whose columns are `id, name, created, deleted, create_revision,
    /// prev_revision, lease, value, old_value, old_lease`, in that order.
    pub(crate) fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(StoredRow {
            id: row.get(0)?,
            name: row.get(1)?,
            created: row.get(2)?,
            deleted: row.get(3)?,
            create_revision: row.get(4)?,
            prev_revision: row.get(5)?,
            lease: row.get(6)?,
            value: row.get(7)?,
            old_value: row.get(8)?,
            old_lease: row.get(9)?,
        })
    }

    /// The watch event this row stands for.
    pub(crate) fn into_event(self, path: &Path) -> Result<Event> {
        let prev_kv = if self.created {
            None
        } else {
            let Some(old_value) = self.old_value else {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    id: self.id,
                    reason: format!("key {:?}: an update or delete without old_value", self.name),
                });
            };
            Some(KeyValue {
                key: self.name.clone(),
                value: Bytes::from(old_value),
                create_revision: self.create_revision,
                mod_revision: self.prev_revision,
                lease: self.old_lease,
            })
        };
        Ok(if self.deleted {
            Event {
                kind: EventKind::Delete,
                kv: tombstone_kv(self.name, self.id),
                prev_kv,
            }
        } else {
            let kv = KeyValue {
                key: self.name,
                value: Bytes::from(self.value),
                create_revision: self.create_revision,
                mod_revision: self.id,
                lease: self.lease,
            };
            Event {
                kind: EventKind::Put,
                kv,
                prev_kv,
            }
        })
    }
}

/// The `kv` of a delete event: only the key and the delete's revision, as etcd reports it.
pub(crate) fn tombstone_kv(key: String, revision: i64) -> KeyValue {
    KeyValue {
        key,
        value: Bytes::new(),
        create_revision: 0,
        mod_revision: revision,
        lease: 0,
    }
}

//! Compaction: forgetting history older than a revision, in kine's way.
//!
//! Compacting to revision R deletes every row at or below R that a read at R or later can
//! no longer see: rows superseded by a newer row of the same key (at or below R) and
//! tombstones. Since each row's `prev_revision` points at the row it superseded, the rows to
//! delete for a step `(lo, hi]` are the `prev_revision`s of rows in that range plus the
//! tombstones in it; rows at or below `lo` that nothing in the range supersedes were already
//! judged by earlier steps. Work is done in steps of at most `Config::compaction_step`
//! revisions, each its own transaction, so that writes queued meanwhile are not stalled.
//!
//! [`Compactor`] is the writer thread's bookkeeping: explicit requests and their waiters,
//! the background schedule, and the target the steps advance towards.

use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use crate::config::Config;
use crate::error::{Error, Result};

const DELETE_STEP: &str = "DELETE FROM kine WHERE id IN (
    SELECT prev_revision FROM kine WHERE id > ?1 AND id <= ?2 AND prev_revision > 0
    UNION ALL
    SELECT id FROM kine WHERE id > ?1 AND id <= ?2 AND deleted = 1)";

const SET_COMPACT_REVISION: &str = "INSERT INTO kine_meta (name, value)
    VALUES ('compact_revision', ?1)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value";

/// Deletes what compacting from `lo` to `hi` makes unreadable and records `hi` as the
/// compact revision. Runs inside the caller's write transaction; returns the rows deleted.
pub(crate) fn compact_step(conn: &Connection, lo: i64, hi: i64) -> rusqlite::Result<usize> {
    let deleted = conn.prepare_cached(DELETE_STEP)?.execute(params![lo, hi])?;
    conn.prepare_cached(SET_COMPACT_REVISION)?
        .execute(params![hi])?;
    Ok(deleted)
}

/// Where compaction stands and who waits for it; owned by the writer thread.
pub(crate) struct Compactor {
    window: i64,
    interval: Option<Duration>,
    step: i64,
    next_run: Option<Instant>,
    /// The compact revision the steps advance towards.
    target: i64,
    waiters: Vec<(i64, oneshot::Sender<Result<i64>>)>,
}

impl Compactor {
    pub(crate) fn new(config: &Config, compact_revision: i64) -> Self {
        Compactor {
            window: config.compaction_window.max(0),
            interval: config.compaction_interval,
            step: config.compaction_step.max(1),
            next_run: config
                .compaction_interval
                .map(|every| Instant::now() + every),
            target: compact_revision,
            waiters: Vec::new(),
        }
    }

    /// Takes an explicit `compact(revision)`; the reply is sent once it is done.
    pub(crate) fn request(
        &mut self,
        revision: i64,
        current: i64,
        compacted: i64,
        reply: oneshot::Sender<Result<i64>>,
    ) {
        if revision > current {
            let _ = reply.send(Err(Error::FutureRevision {
                requested: revision,
                current,
            }));
        } else if revision <= compacted {
            let _ = reply.send(Err(Error::Compacted {
                requested: revision,
                compact_revision: compacted,
            }));
        } else {
            self.target = self.target.max(revision);
            self.waiters.push((revision, reply));
        }
    }

    /// When the background compactor next wants to run, if it is on.
    pub(crate) fn next_run(&self) -> Option<Instant> {
        self.next_run
    }

    /// Starts a background run if one is due: target the current revision minus the window.
    pub(crate) fn schedule(&mut self, now: Instant, current: i64) {
        let (Some(next), Some(every)) = (self.next_run, self.interval) else {
            return;
        };
        if now >= next {
            self.target = self.target.max(current - self.window);
            self.next_run = Some(now + every);
        }
    }

    /// The next step `(lo, hi]` to compact, if the target is ahead of `compacted`.
    pub(crate) fn next_step(&self, compacted: i64) -> Option<(i64, i64)> {
        (self.target > compacted).then(|| {
            (
                compacted,
                self.target.min(compacted.saturating_add(self.step)),
            )
        })
    }

    /// A step committed: answers the requests it completed.
    pub(crate) fn advanced(&mut self, compacted: i64) {
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(revision, _)| *revision <= compacted);
        self.waiters = waiting;
        for (_, reply) in done {
            let _ = reply.send(Ok(compacted));
        }
    }

    /// A step failed: gives up on the target and fails every waiting request.
    pub(crate) fn failed(&mut self, compacted: i64, error: &Error) {
        self.target = compacted;
        for (_, reply) in self.waiters.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

//! An in-memory reference model of the store, for property tests: obviously correct and
//! slow. It keeps every revision forever (compaction only moves the compact revision), so
//! comparing it with a real backend also checks that compaction never changes what a
//! readable revision shows.

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::types::{
    DeleteOutcome, Event, EventKind, KeyValue, ListResult, UpdateOutcome, resolve_revision,
};

/// One write: row `i` of [`Model`]'s log has revision `i + 1`.
#[derive(Clone, Debug)]
struct Row {
    key: String,
    /// `None` for a delete.
    value: Option<Bytes>,
    create_revision: i64,
    lease: i64,
}

/// The reference model; mirrors [`Backend`](crate::Backend) synchronously.
#[derive(Clone, Debug, Default)]
pub struct Model {
    log: Vec<Row>,
    compact_revision: i64,
}

impl Model {
    /// An empty store.
    pub fn new() -> Self {
        Model::default()
    }

    /// See [`Backend::current_revision`](crate::Backend::current_revision).
    pub fn current_revision(&self) -> i64 {
        self.log.len() as i64
    }

    /// See [`Backend::compact_revision`](crate::Backend::compact_revision).
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// The key's live value at `revision` (which must be in range).
    fn at(&self, key: &str, revision: i64) -> Option<KeyValue> {
        let (index, row) = self.log[..revision as usize]
            .iter()
            .enumerate()
            .rev()
            .find(|(_, row)| row.key == key)?;
        let value = row.value.clone()?;
        Some(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: row.create_revision,
            mod_revision: index as i64 + 1,
            lease: row.lease,
        })
    }

    fn push(&mut self, row: Row) -> i64 {
        self.log.push(row);
        self.current_revision()
    }

    /// See [`Backend::create`](crate::Backend::create).
    pub fn create(&mut self, key: &str, value: Bytes, lease: i64) -> Result<i64> {
        if self.at(key, self.current_revision()).is_some() {
            return Err(Error::KeyExists {
                key: key.to_owned(),
            });
        }
        let revision = self.current_revision() + 1;
        let row = Row {
            key: key.to_owned(),
            value: Some(value),
            create_revision: revision,
            lease,
        };
        Ok(self.push(row))
    }

    /// See [`Backend::update`](crate::Backend::update).
    pub fn update(&mut self, key: &str, value: Bytes, expected: i64, lease: i64) -> UpdateOutcome {
        match self.at(key, self.current_revision()) {
            Some(current) if current.mod_revision == expected => {
                let row = Row {
                    key: key.to_owned(),
                    value: Some(value),
                    create_revision: current.create_revision,
                    lease,
                };
                UpdateOutcome::Updated {
                    revision: self.push(row),
                }
            }
            current => UpdateOutcome::Conflict {
                revision: self.current_revision(),
                current,
            },
        }
    }

    /// See [`Backend::delete`](crate::Backend::delete).
    pub fn delete(&mut self, key: &str, expected: Option<i64>) -> DeleteOutcome {
        let revision = self.current_revision();
        match self.at(key, revision) {
            None => DeleteOutcome::NotFound { revision },
            Some(current) if expected.is_some_and(|e| e != current.mod_revision) => {
                DeleteOutcome::Conflict { revision, current }
            }
            Some(prev) => {
                let row = Row {
                    key: key.to_owned(),
                    value: None,
                    create_revision: 0,
                    lease: 0,
                };
                DeleteOutcome::Deleted {
                    revision: self.push(row),
                    prev,
                }
            }
        }
    }

    fn resolve(&self, revision: i64) -> Result<i64> {
        resolve_revision(revision, self.current_revision(), self.compact_revision)
    }

    /// See [`Backend::get`](crate::Backend::get).
    pub fn get(&self, key: &str, revision: i64) -> Result<(i64, Option<KeyValue>)> {
        let revision = self.resolve(revision)?;
        Ok((revision, self.at(key, revision)))
    }

    /// Live keys starting with `prefix` at `revision`, sorted.
    fn live(&self, prefix: &str, revision: i64) -> Vec<KeyValue> {
        let mut keys: Vec<&str> = self.log[..revision as usize]
            .iter()
            .map(|row| row.key.as_str())
            .filter(|key| key.starts_with(prefix))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .filter_map(|key| self.at(key, revision))
            .collect()
    }

    /// See [`Backend::list`](crate::Backend::list).
    pub fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: i64,
    ) -> Result<ListResult> {
        let revision = self.resolve(revision)?;
        let mut kvs: Vec<KeyValue> = self
            .live(prefix, revision)
            .into_iter()
            .filter(|kv| start_after.is_none_or(|after| kv.key.as_str() > after))
            .collect();
        let count = kvs.len() as i64;
        let more = limit > 0 && kvs.len() > limit;
        if more {
            kvs.truncate(limit);
        }
        Ok(ListResult {
            revision,
            kvs,
            more,
            count,
        })
    }

    /// See [`Backend::count`](crate::Backend::count).
    pub fn count(&self, prefix: &str, revision: i64) -> Result<(i64, i64)> {
        let revision = self.resolve(revision)?;
        Ok((revision, self.live(prefix, revision).len() as i64))
    }

    /// The events a watch on `prefix` from `from_revision` sees, up to the current revision.
    pub fn events(&self, prefix: &str, from_revision: i64) -> Result<Vec<Event>> {
        if from_revision < self.compact_revision {
            return Err(Error::Compacted {
                requested: from_revision,
                compact_revision: self.compact_revision,
            });
        }
        Ok(self.live_events(prefix, from_revision))
    }

    /// The events a watch on `prefix` opened at `from_revision` has seen by now, whatever
    /// was compacted since it started.
    pub fn live_events(&self, prefix: &str, from_revision: i64) -> Vec<Event> {
        let start = from_revision.clamp(0, self.current_revision());
        let mut events = Vec::new();
        for revision in start + 1..=self.current_revision() {
            let row = &self.log[revision as usize - 1];
            if !row.key.starts_with(prefix) {
                continue;
            }
            let prev_kv = self.at(&row.key, revision - 1);
            events.push(match self.at(&row.key, revision) {
                Some(kv) => Event {
                    kind: EventKind::Put,
                    kv,
                    prev_kv,
                },
                None => Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: row.key.clone(),
                        value: Bytes::new(),
                        create_revision: 0,
                        mod_revision: revision,
                        lease: 0,
                    },
                    prev_kv,
                },
            });
        }
        events
    }

    /// See [`Backend::compact`](crate::Backend::compact).
    pub fn compact(&mut self, revision: i64) -> Result<i64> {
        let current = self.current_revision();
        if revision > current {
            return Err(Error::FutureRevision {
                requested: revision,
                current,
            });
        }
        if revision <= self.compact_revision {
            return Err(Error::Compacted {
                requested: revision,
                compact_revision: self.compact_revision,
            });
        }
        self.compact_revision = revision;
        Ok(revision)
    }
}

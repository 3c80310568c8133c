//! Property test: random operation sequences give the same results on the SQLite backend
//! as on the in-memory model, including pagination, reads at old revisions, compaction
//! and what watchers see.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

use super::{bytes, manual_compaction, open_store, timed};
use crate::model::Model;
use crate::{Backend, Config, Result, SqliteBackend, WatchStream};

/// Keys chosen to straddle prefix boundaries, multi-byte characters and NUL.
const KEYS: &[&str] = &[
    "a/1",
    "a/2",
    "a/b/1",
    "a/b/2",
    "ab",
    "a/\0z",
    "b/1",
    "é/1",
    "é/2",
    "éa",
    "\u{10FFFF}/x",
];
const PREFIXES: &[&str] = &["", "a", "a/", "a/b/", "b/", "é", "é/", "\u{10FFFF}", "z"];

#[derive(Clone, Debug)]
enum Op {
    Create {
        key: usize,
        value: u8,
    },
    /// `None` uses the key's current mod revision; `Some` picks any revision.
    Update {
        key: usize,
        value: u8,
        revision: Option<u16>,
    },
    /// `None` deletes unconditionally; `Some(None)` with the right revision; `Some(Some)` any.
    Delete {
        key: usize,
        revision: Option<Option<u16>>,
    },
    Get {
        key: usize,
        at: u16,
    },
    List {
        prefix: usize,
        page: usize,
        at: u16,
    },
    Count {
        prefix: usize,
        at: u16,
    },
    Compact {
        at: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let prefix = 0..PREFIXES.len();
    prop_oneof![
        4 => (key.clone(), any::<u8>()).prop_map(|(key, value)| Op::Create { key, value }),
        4 => (key.clone(), any::<u8>(), proptest::option::weighted(0.3, any::<u16>()))
            .prop_map(|(key, value, revision)| Op::Update { key, value, revision }),
        2 => (key.clone(), proptest::option::of(proptest::option::of(any::<u16>())))
            .prop_map(|(key, revision)| Op::Delete { key, revision }),
        2 => (key, any::<u16>()).prop_map(|(key, at)| Op::Get { key, at }),
        2 => (prefix.clone(), 0..4usize, any::<u16>()).prop_map(|(prefix, page, at)| Op::List { prefix, page, at }),
        1 => (prefix, any::<u16>()).prop_map(|(prefix, at)| Op::Count { prefix, at }),
        1 => any::<u16>().prop_map(|at| Op::Compact { at }),
    ]
}

/// Maps a random number onto 0 (newest), a past revision or a little past the current one.
fn revision(at: u16, model: &Model) -> i64 {
    i64::from(at) % (model.current_revision() + 3)
}

/// Errors compared by message (the error type carries SQLite causes and is not `Eq`).
fn norm<T>(result: Result<T>) -> Result<T, String> {
    result.map_err(|e| e.to_string())
}

async fn collect(stream: &mut WatchStream, up_to: i64) -> Vec<crate::Event> {
    let mut events: Vec<crate::Event> = Vec::new();
    while events.last().map_or(0, |e| e.revision()) < up_to {
        events.extend(
            stream
                .recv()
                .await
                .expect("stream ended")
                .expect("watch failed"),
        );
    }
    events
}

async fn check_list(store: &SqliteBackend, model: &Model, prefix: &str, page: usize, at: i64) {
    let first = norm(store.list(prefix, None, page, at).await);
    assert_eq!(
        first,
        norm(model.list(prefix, None, page, at)),
        "list {prefix:?} page {page} at {at}"
    );
    let Ok(mut current) = first else { return };
    while current.more {
        let after = current.kvs.last().map(|kv| kv.key.clone());
        let next = store
            .list(prefix, after.as_deref(), page, current.revision)
            .await
            .unwrap();
        let expected = model
            .list(prefix, after.as_deref(), page, current.revision)
            .unwrap();
        assert_eq!(next, expected, "list {prefix:?} after {after:?}");
        current = next;
    }
}

async fn run_case(ops: Vec<Op>) {
    let (_dir, store) = open_store(Config {
        compaction_step: 3,
        ..manual_compaction()
    });
    let mut model = Model::new();
    let mut everything = store.watch("", 0).await.unwrap();
    for op in ops {
        match op {
            Op::Create { key, value } => {
                let key = KEYS[key];
                let got = norm(store.create(key, bytes(&value.to_string()), 0).await);
                assert_eq!(
                    got,
                    norm(model.create(key, bytes(&value.to_string()), 0)),
                    "create {key:?}"
                );
            }
            Op::Update {
                key,
                value,
                revision: choice,
            } => {
                let key = KEYS[key];
                let expected = match choice {
                    Some(at) => revision(at, &model),
                    None => model
                        .get(key, 0)
                        .ok()
                        .and_then(|(_, kv)| kv)
                        .map_or(0, |kv| kv.mod_revision),
                };
                let lease = i64::from(value % 3);
                let got = store
                    .update(key, bytes(&value.to_string()), expected, lease)
                    .await
                    .unwrap();
                let want = model.update(key, bytes(&value.to_string()), expected, lease);
                assert_eq!(got, want, "update {key:?} expecting {expected}");
            }
            Op::Delete {
                key,
                revision: choice,
            } => {
                let key = KEYS[key];
                let expected = choice.map(|choice| match choice {
                    Some(at) => revision(at, &model),
                    None => model
                        .get(key, 0)
                        .ok()
                        .and_then(|(_, kv)| kv)
                        .map_or(0, |kv| kv.mod_revision),
                });
                let got = store.delete(key, expected).await.unwrap();
                assert_eq!(
                    got,
                    model.delete(key, expected),
                    "delete {key:?} expecting {expected:?}"
                );
            }
            Op::Get { key, at } => {
                let (key, at) = (KEYS[key], revision(at, &model));
                assert_eq!(
                    norm(store.get(key, at).await),
                    norm(model.get(key, at)),
                    "get {key:?} at {at}"
                );
            }
            Op::List { prefix, page, at } => {
                check_list(&store, &model, PREFIXES[prefix], page, revision(at, &model)).await;
            }
            Op::Count { prefix, at } => {
                let (prefix, at) = (PREFIXES[prefix], revision(at, &model));
                assert_eq!(
                    norm(store.count(prefix, at).await),
                    norm(model.count(prefix, at)),
                    "count {prefix:?}"
                );
            }
            Op::Compact { at } => {
                let at = revision(at, &model);
                assert_eq!(
                    norm(store.compact(at).await),
                    norm(model.compact(at)),
                    "compact {at}"
                );
            }
        }
        assert_eq!(
            store.current_revision().await.unwrap(),
            model.current_revision()
        );
        assert_eq!(
            store.compact_revision().await.unwrap(),
            model.compact_revision()
        );
    }

    // A watcher opened before everything saw everything, compaction notwithstanding.
    let current = model.current_revision();
    assert_eq!(
        collect(&mut everything, current).await,
        model.live_events("", 0)
    );
    // A watch from the compact revision replays what is left; one from before it fails.
    let compacted = model.compact_revision();
    let mut replay = store.watch("a/", compacted).await.unwrap();
    let expected = model.events("a/", compacted).unwrap();
    let last = expected.last().map_or(0, |e| e.revision());
    assert_eq!(collect(&mut replay, last).await, expected);
    if compacted > 0 {
        assert_eq!(
            norm(store.watch("", compacted - 1).await.map(|_| ())),
            Err(model.events("", compacted - 1).unwrap_err().to_string())
        );
    }
}

#[test]
fn random_operation_sequences_match_the_in_memory_model() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(op(), 1..80), |ops| {
        runtime.block_on(timed(run_case(ops)));
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

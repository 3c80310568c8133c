//! Compaction: what it keeps, what it drops, its errors and the background compactor.

use std::time::Duration;

use super::{bytes, manual_compaction, open_store, timed};
use crate::{Backend, Config, Error, SqliteBackend};

/// Rows left in the log table, read behind the store's back.
fn rows_on_disk(store: &SqliteBackend) -> i64 {
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.query_row("SELECT COUNT(*) FROM kine", [], |row| row.get(0))
        .unwrap()
}

/// Writes a history with updates, deletes and re-creates over a few keys; returns the
/// revision after it.
async fn write_history(store: &SqliteBackend) -> i64 {
    for round in 0..5 {
        for key in ["/a", "/b", "/c"] {
            match store.get(key, 0).await.unwrap().1 {
                Some(kv) if round % 2 == 1 && key == "/b" => {
                    store.delete(key, Some(kv.mod_revision)).await.unwrap();
                }
                Some(kv) => {
                    store
                        .update(key, bytes(&format!("{round}")), kv.mod_revision, 0)
                        .await
                        .unwrap();
                }
                None => {
                    store
                        .create(key, bytes(&format!("{round}")), 0)
                        .await
                        .unwrap();
                }
            }
        }
    }
    store.current_revision().await.unwrap()
}

async fn check_compaction_keeps_reads(config: Config) {
    let (_dir, store) = open_store(config);
    let current = write_history(&store).await;
    let mut before = Vec::new();
    for revision in 1..=current {
        before.push(store.list("", None, 0, revision).await.unwrap());
    }
    let rows_before = rows_on_disk(&store);
    let compact_at = current - 4;
    assert_eq!(store.compact(compact_at).await.unwrap(), compact_at);
    assert!(
        rows_on_disk(&store) < rows_before,
        "compaction deleted nothing"
    );
    for revision in 1..=current {
        let after = store.list("", None, 0, revision).await;
        if revision < compact_at {
            assert!(
                matches!(after, Err(Error::Compacted { .. })),
                "revision {revision}: {after:?}"
            );
        } else {
            assert_eq!(
                after.unwrap(),
                before[revision as usize - 1],
                "revision {revision}"
            );
        }
    }
}

#[tokio::test]
async fn compaction_keeps_every_revision_from_the_compact_revision_on_readable() {
    timed(check_compaction_keeps_reads(manual_compaction())).await;
}

#[tokio::test]
async fn compaction_in_small_steps_keeps_the_same_reads() {
    timed(check_compaction_keeps_reads(Config {
        compaction_step: 2,
        ..manual_compaction()
    }))
    .await;
}

#[tokio::test]
async fn compacting_at_the_current_revision_leaves_one_row_per_live_key() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        let current = write_history(&store).await;
        store.compact(current).await.unwrap();
        let live = store.count("", 0).await.unwrap().1;
        assert_eq!(rows_on_disk(&store), live);
    })
    .await;
}

#[tokio::test]
async fn compacting_a_future_revision_fails_with_future_revision() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        store.create("/a", bytes("1"), 0).await.unwrap();
        let err = store.compact(2).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::FutureRevision {
                    requested: 2,
                    current: 1
                }
            ),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn compacting_at_or_below_the_compact_revision_fails_with_compacted() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        store.create("/a", bytes("1"), 0).await.unwrap();
        store.create("/b", bytes("1"), 0).await.unwrap();
        store.compact(2).await.unwrap();
        for revision in [1, 2] {
            let err = store.compact(revision).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Compacted {
                        compact_revision: 2,
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn the_background_compactor_keeps_the_configured_window() {
    timed(async {
        let config = Config {
            compaction_window: 5,
            compaction_interval: Some(Duration::from_millis(20)),
            ..Config::default()
        };
        let (_dir, store) = open_store(config);
        let mut revision = store.create("/counter", bytes("0"), 0).await.unwrap();
        for i in 1..30 {
            match store
                .update("/counter", bytes(&i.to_string()), revision, 0)
                .await
                .unwrap()
            {
                crate::UpdateOutcome::Updated { revision: new } => revision = new,
                other => panic!("unexpected {other:?}"),
            }
        }
        while store.compact_revision().await.unwrap() != revision - 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(rows_on_disk(&store), 6, "the window's rows are left");
        assert!(store.get("/counter", revision - 5).await.is_ok());
    })
    .await;
}

//! One test per operation and per error case.

use super::{bytes, manual_compaction, open_store, scratch_dir, timed};
use crate::{Backend, Config, DeleteOutcome, Error, KeyValue, SqliteBackend, UpdateOutcome};

fn kv(key: &str, value: &str, create_revision: i64, mod_revision: i64, lease: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: bytes(value),
        create_revision,
        mod_revision,
        lease,
    }
}

#[tokio::test]
async fn an_empty_store_is_at_revision_zero() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        assert_eq!(store.current_revision().await.unwrap(), 0);
        assert_eq!(store.compact_revision().await.unwrap(), 0);
        assert_eq!(store.get("/a", 0).await.unwrap(), (0, None));
    })
    .await;
}

#[tokio::test]
async fn creates_get_consecutive_revisions_and_are_readable() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        assert_eq!(store.create("/a", bytes("1"), 0).await.unwrap(), 1);
        assert_eq!(store.create("/b", bytes("2"), 7).await.unwrap(), 2);
        assert_eq!(store.current_revision().await.unwrap(), 2);
        assert_eq!(
            store.get("/a", 0).await.unwrap(),
            (2, Some(kv("/a", "1", 1, 1, 0)))
        );
        assert_eq!(
            store.get("/b", 0).await.unwrap(),
            (2, Some(kv("/b", "2", 2, 2, 7)))
        );
    })
    .await;
}

#[tokio::test]
async fn creating_an_existing_key_fails_with_key_exists() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        store.create("/a", bytes("1"), 0).await.unwrap();
        let err = store.create("/a", bytes("2"), 0).await.unwrap_err();
        assert!(
            matches!(&err, Error::KeyExists { key } if key == "/a"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "key \"/a\" already exists");
        assert_eq!(
            store.current_revision().await.unwrap(),
            1,
            "nothing was written"
        );
    })
    .await;
}

#[tokio::test]
async fn a_key_created_again_after_delete_starts_a_new_lifetime() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        store.create("/a", bytes("1"), 0).await.unwrap();
        store.delete("/a", None).await.unwrap();
        assert_eq!(store.create("/a", bytes("2"), 0).await.unwrap(), 3);
        assert_eq!(
            store.get("/a", 0).await.unwrap().1,
            Some(kv("/a", "2", 3, 3, 0))
        );
    })
    .await;
}

#[tokio::test]
async fn update_with_the_current_mod_revision_writes_and_keeps_create_revision() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        store.create("/a", bytes("1"), 0).await.unwrap();
        let outcome = store.update("/a", bytes("2"), 1, 5).await.unwrap();
        assert_eq!(outcome, UpdateOutcome::Updated { revision: 2 });
        assert_eq!(
            store.get("/a", 0).await.unwrap().1,
            Some(kv("/a", "2", 1, 2, 5))
        );
    })
    .await;
}

#[tokio::test]
async fn update_with_a_stale_mod_revision_conflicts_and_returns_the_current_value() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        store.create("/a", bytes("1"), 0).await.unwrap();
        store.update("/a", bytes("2"), 1, 0).await.unwrap();
        let outcome = store.update("/a", bytes("3"), 1, 0).await.unwrap();
        let current = Some(kv("/a", "2", 1, 2, 0));
        assert_eq!(
            outcome,
            UpdateOutcome::Conflict {
                revision: 2,
                current
            }
        );
        assert_eq!(store.current_revision().await.unwrap(), 2);
    })
    .await;
}

#[tokio::test]
async fn update_of_a_missing_or_deleted_key_conflicts_with_none() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        let outcome = store.update("/a", bytes("1"), 0, 0).await.unwrap();
        assert_eq!(
            outcome,
            UpdateOutcome::Conflict {
                revision: 0,
                current: None
            }
        );
        store.create("/a", bytes("1"), 0).await.unwrap();
        store.delete("/a", None).await.unwrap();
        // Even the tombstone's own revision does not resurrect the key.
        let outcome = store.update("/a", bytes("1"), 2, 0).await.unwrap();
        assert_eq!(
            outcome,
            UpdateOutcome::Conflict {
                revision: 2,
                current: None
            }
        );
    })
    .await;
}

#[tokio::test]
async fn delete_without_precondition_writes_a_tombstone_and_returns_the_old_value() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        store.create("/a", bytes("1"), 3).await.unwrap();
        let outcome = store.delete("/a", None).await.unwrap();
        assert_eq!(
            outcome,
            DeleteOutcome::Deleted {
                revision: 2,
                prev: kv("/a", "1", 1, 1, 3)
            }
        );
        assert_eq!(store.get("/a", 0).await.unwrap(), (2, None));
        assert_eq!(
            store.get("/a", 1).await.unwrap().1,
            Some(kv("/a", "1", 1, 1, 3))
        );
    })
    .await;
}

#[tokio::test]
async fn delete_with_the_right_mod_revision_deletes_and_a_wrong_one_conflicts() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        store.create("/a", bytes("1"), 0).await.unwrap();
        let outcome = store.delete("/a", Some(7)).await.unwrap();
        assert_eq!(
            outcome,
            DeleteOutcome::Conflict {
                revision: 1,
                current: kv("/a", "1", 1, 1, 0)
            }
        );
        let outcome = store.delete("/a", Some(1)).await.unwrap();
        assert!(
            matches!(outcome, DeleteOutcome::Deleted { revision: 2, .. }),
            "{outcome:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn delete_of_a_missing_key_reports_not_found_without_writing() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        assert_eq!(
            store.delete("/a", None).await.unwrap(),
            DeleteOutcome::NotFound { revision: 0 }
        );
        assert_eq!(
            store.delete("/a", Some(1)).await.unwrap(),
            DeleteOutcome::NotFound { revision: 0 }
        );
        assert_eq!(store.current_revision().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn get_at_an_old_revision_returns_the_value_as_it_was() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        store.create("/a", bytes("1"), 0).await.unwrap();
        store.create("/other", bytes("x"), 0).await.unwrap();
        store.update("/a", bytes("2"), 1, 0).await.unwrap();
        assert_eq!(
            store.get("/a", 1).await.unwrap(),
            (1, Some(kv("/a", "1", 1, 1, 0)))
        );
        assert_eq!(
            store.get("/a", 2).await.unwrap(),
            (2, Some(kv("/a", "1", 1, 1, 0)))
        );
        assert_eq!(
            store.get("/a", 3).await.unwrap(),
            (3, Some(kv("/a", "2", 1, 3, 0)))
        );
        assert_eq!(store.get("/other", 1).await.unwrap(), (1, None));
    })
    .await;
}

#[tokio::test]
async fn reading_a_future_revision_fails_with_future_revision() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        store.create("/a", bytes("1"), 0).await.unwrap();
        let err = store.get("/a", 2).await.unwrap_err();
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
        let err = store.list("/", None, 0, 5).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::FutureRevision {
                    requested: 5,
                    current: 1
                }
            ),
            "{err:?}"
        );
        let err = store.count("/", 5).await.unwrap_err();
        assert!(matches!(err, Error::FutureRevision { .. }), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn reading_below_the_compact_revision_fails_with_compacted() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        for i in 0..4 {
            store
                .create(&format!("/k{i}"), bytes("v"), 0)
                .await
                .unwrap();
        }
        assert_eq!(store.compact(3).await.unwrap(), 3);
        let err = store.get("/k0", 2).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Compacted {
                    requested: 2,
                    compact_revision: 3
                }
            ),
            "{err:?}"
        );
        let err = store.list("/", None, 0, 1).await.unwrap_err();
        assert!(matches!(err, Error::Compacted { .. }), "{err:?}");
        assert_eq!(
            store
                .get("/k0", 3)
                .await
                .unwrap()
                .1
                .map(|kv| kv.mod_revision),
            Some(1)
        );
    })
    .await;
}

#[tokio::test]
async fn list_returns_live_keys_under_the_prefix_in_key_order() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        for key in ["/p/c", "/p/a", "/q/a", "/p/b", "/p", "/pa"] {
            store.create(key, bytes(key), 0).await.unwrap();
        }
        store.delete("/p/b", None).await.unwrap();
        let page = store.list("/p/", None, 0, 0).await.unwrap();
        let keys: Vec<_> = page.kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/p/a", "/p/c"]);
        assert_eq!((page.revision, page.more, page.count), (7, false, 2));
        let all = store.list("", None, 0, 0).await.unwrap();
        assert_eq!(all.count, 5);
    })
    .await;
}

#[tokio::test]
async fn list_pages_continue_from_the_last_key_at_the_same_revision() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        for i in 0..10 {
            store
                .create(&format!("/k/{i:02}"), bytes("v"), 0)
                .await
                .unwrap();
        }
        let first = store.list("/k/", None, 4, 0).await.unwrap();
        assert_eq!(
            (first.kvs.len(), first.more, first.count, first.revision),
            (4, true, 10, 10)
        );
        // Writes after the first page do not leak into the following pages.
        store.delete("/k/05", None).await.unwrap();
        store.create("/k/99", bytes("v"), 0).await.unwrap();
        let last_key = first.kvs.last().map(|kv| kv.key.clone());
        let second = store
            .list("/k/", last_key.as_deref(), 4, first.revision)
            .await
            .unwrap();
        let keys: Vec<_> = second.kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/k/04", "/k/05", "/k/06", "/k/07"]);
        assert_eq!((second.more, second.count, second.revision), (true, 6, 10));
        let last_key = second.kvs.last().map(|kv| kv.key.clone());
        let third = store
            .list("/k/", last_key.as_deref(), 4, first.revision)
            .await
            .unwrap();
        assert_eq!((third.kvs.len(), third.more, third.count), (2, false, 2));
    })
    .await;
}

#[tokio::test]
async fn list_handles_multibyte_prefixes_and_keys() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        for key in ["é/1", "é/2", "éa", "ê/1", "e/1"] {
            store.create(key, bytes(key), 0).await.unwrap();
        }
        let keys: Vec<_> = store
            .list("é/", None, 0, 0)
            .await
            .unwrap()
            .kvs
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        assert_eq!(keys, ["é/1", "é/2"]);
        let keys: Vec<_> = store
            .list("é", None, 0, 0)
            .await
            .unwrap()
            .kvs
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        assert_eq!(keys, ["é/1", "é/2", "éa"]);
    })
    .await;
}

#[tokio::test]
async fn count_counts_live_keys_under_the_prefix_at_a_revision() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        store.create("/a/1", bytes("v"), 0).await.unwrap();
        store.create("/a/2", bytes("v"), 0).await.unwrap();
        store.create("/b/1", bytes("v"), 0).await.unwrap();
        store.delete("/a/1", None).await.unwrap();
        assert_eq!(store.count("/a/", 0).await.unwrap(), (4, 1));
        assert_eq!(store.count("/a/", 3).await.unwrap(), (3, 2));
        assert_eq!(store.count("", 0).await.unwrap(), (4, 2));
    })
    .await;
}

#[tokio::test]
async fn data_and_revisions_survive_closing_and_reopening() {
    timed(async {
        let dir = scratch_dir();
        let path = dir.path().join("nested/state.db");
        {
            let store = SqliteBackend::open(&path, manual_compaction()).unwrap();
            store.create("/a", bytes("1"), 0).await.unwrap();
            store.create("/b", bytes("2"), 0).await.unwrap();
            store.delete("/b", None).await.unwrap();
            store.compact(3).await.unwrap();
        }
        let store = SqliteBackend::open(&path, manual_compaction()).unwrap();
        // The newest row (a tombstone) was compacted away; the revision must not go back.
        assert_eq!(store.current_revision().await.unwrap(), 3);
        assert_eq!(store.compact_revision().await.unwrap(), 3);
        assert_eq!(store.create("/c", bytes("3"), 0).await.unwrap(), 4);
        assert_eq!(
            store.get("/a", 0).await.unwrap().1,
            Some(kv("/a", "1", 1, 1, 0))
        );
    })
    .await;
}

#[tokio::test]
async fn a_database_cannot_be_opened_by_two_stores_at_once() {
    timed(async {
        let dir = scratch_dir();
        let path = dir.path().join("state.db");
        let first = SqliteBackend::open(&path, manual_compaction()).unwrap();
        let err = SqliteBackend::open(&path, manual_compaction()).unwrap_err();
        assert!(
            matches!(&err, Error::Locked { path: locked } if *locked == path),
            "{err:?}"
        );
        drop(first);
        SqliteBackend::open(&path, Config::default()).unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_store_is_usable_as_a_trait_object() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        let backend: std::sync::Arc<dyn Backend> = std::sync::Arc::new(store);
        assert_eq!(backend.create("/a", bytes("1"), 0).await.unwrap(), 1);
        assert_eq!(backend.count("/", 0).await.unwrap(), (1, 1));
    })
    .await;
}

#[tokio::test]
async fn the_wal_is_checkpointed_in_the_background_and_stays_small() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        for i in 0..2000 {
            store
                .create(&format!("/k/{i:05}"), bytes(&"v".repeat(1000)), 0)
                .await
                .unwrap();
        }
        let mut wal = store.path().as_os_str().to_owned();
        wal.push("-wal");
        let size = std::fs::metadata(&wal).unwrap().len();
        // 2000 commits of a few 4 KiB pages each would be over 20 MiB without checkpoints;
        // the file is preallocated to 9 MiB and checkpoints keep it there.
        assert!(size < 10 << 20, "WAL is {size} bytes");
        assert_eq!(store.count("/k/", 0).await.unwrap().1, 2000);
    })
    .await;
}

#[tokio::test]
async fn latest_revision_names_the_newest_write_under_a_prefix() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        assert_eq!(store.latest_revision("/a/").await.unwrap(), (0, 0));
        store.create("/a/1", bytes("1"), 0).await.unwrap();
        store.create("/b/1", bytes("1"), 0).await.unwrap();
        store.update("/a/1", bytes("2"), 1, 0).await.unwrap();
        store.create("/b/2", bytes("1"), 0).await.unwrap();
        assert_eq!(store.latest_revision("/a/").await.unwrap(), (4, 3));
        store.delete("/a/1", None).await.unwrap();
        assert_eq!(store.latest_revision("/a/").await.unwrap(), (5, 5));
        assert_eq!(store.latest_revision("/b/").await.unwrap(), (5, 4));
        assert_eq!(store.latest_revision("/c/").await.unwrap(), (5, 0));
    })
    .await;
}

//! Many compare-and-swap writers at once: no lost updates, revisions strictly increase.

use std::collections::BTreeSet;

use super::{bytes, manual_compaction, open_store, timed};
use crate::{Backend, SqliteBackend, UpdateOutcome};

const COUNTERS: usize = 4;
const WRITERS: usize = 16;
const INCREMENTS: usize = 40;

/// Increments `key` once with a read-modify-CAS loop; returns the revision it wrote.
async fn increment(store: &SqliteBackend, key: &str) -> (i64, usize) {
    let (_, kv) = store.get(key, 0).await.unwrap();
    let mut kv = kv.expect("counter exists");
    let mut conflicts = 0;
    loop {
        let value: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
        let next = bytes(&(value + 1).to_string());
        match store.update(key, next, kv.mod_revision, 0).await.unwrap() {
            UpdateOutcome::Updated { revision } => return (revision, conflicts),
            UpdateOutcome::Conflict { current, .. } => {
                conflicts += 1;
                kv = current.expect("counters are never deleted");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cas_writers_lose_no_update_and_see_strictly_increasing_revisions() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        for c in 0..COUNTERS {
            store
                .create(&format!("/counters/{c}"), bytes("0"), 0)
                .await
                .unwrap();
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let key = format!("/counters/{}", w % COUNTERS);
                    let mut revisions = Vec::new();
                    let mut conflicts = 0;
                    for _ in 0..INCREMENTS {
                        let (revision, lost_races) = increment(&store, &key).await;
                        revisions.push(revision);
                        conflicts += lost_races;
                    }
                    (revisions, conflicts)
                })
            })
            .collect();
        let mut all = BTreeSet::new();
        let mut total_conflicts = 0;
        for writer in writers {
            let (revisions, conflicts) = writer.await.unwrap();
            assert!(
                revisions.windows(2).all(|w| w[0] < w[1]),
                "one writer's revisions go back"
            );
            for revision in revisions {
                assert!(all.insert(revision), "revision {revision} handed out twice");
            }
            total_conflicts += conflicts;
        }
        assert!(
            total_conflicts > 0,
            "the test never raced; it proves nothing"
        );
        for c in 0..COUNTERS {
            let kv = store
                .get(&format!("/counters/{c}"), 0)
                .await
                .unwrap()
                .1
                .unwrap();
            let expected = WRITERS / COUNTERS * INCREMENTS;
            assert_eq!(
                std::str::from_utf8(&kv.value).unwrap(),
                expected.to_string()
            );
        }
        let current = store.current_revision().await.unwrap();
        assert_eq!(
            current as usize,
            COUNTERS + WRITERS * INCREMENTS,
            "a failed CAS wrote"
        );
        assert_eq!(all.last().copied(), Some(current));
    })
    .await;
}

//! Watch: order, prev_kv, replay, prefixes, compaction, slow consumers, cancellation.

use std::time::Duration;

use super::{bytes, manual_compaction, open_store, timed};
use crate::model::Model;
use crate::{Backend, Config, Error, Event, EventKind, SqliteBackend, WatchStream};

/// Receives batches until an event at `revision` (or later) arrived; checks that revisions
/// strictly increase on the way.
async fn events_until(stream: &mut WatchStream, revision: i64) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    while events.last().is_none_or(|e| e.revision() < revision) {
        let batch = stream
            .recv()
            .await
            .expect("stream ended")
            .expect("watch failed");
        assert!(!batch.is_empty(), "empty batch");
        events.extend(batch);
    }
    assert!(
        events.windows(2).all(|w| w[0].revision() < w[1].revision()),
        "out of order"
    );
    events
}

/// Applies the same little history to the store and the model.
async fn write_history(store: &SqliteBackend, model: &mut Model) {
    store.create("/w/a", bytes("1"), 0).await.unwrap();
    model.create("/w/a", bytes("1"), 0).unwrap();
    store.create("/x/other", bytes("x"), 0).await.unwrap();
    model.create("/x/other", bytes("x"), 0).unwrap();
    store.update("/w/a", bytes("2"), 1, 9).await.unwrap();
    model.update("/w/a", bytes("2"), 1, 9);
    store.create("/w/b", bytes("3"), 0).await.unwrap();
    model.create("/w/b", bytes("3"), 0).unwrap();
    store.delete("/w/a", None).await.unwrap();
    model.delete("/w/a", None);
    store.create("/w/a", bytes("4"), 0).await.unwrap();
    model.create("/w/a", bytes("4"), 0).unwrap();
}

#[tokio::test]
async fn live_events_arrive_in_revision_order_with_prev_kv() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        let mut model = Model::new();
        let mut stream = store.watch("/w/", 0).await.unwrap();
        write_history(&store, &mut model).await;
        let events = events_until(&mut stream, 6).await;
        assert_eq!(events, model.events("/w/", 0).unwrap());
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        use EventKind::{Delete, Put};
        assert_eq!(kinds, [Put, Put, Put, Delete, Put]);
        let update = &events[1];
        assert_eq!(
            update
                .prev_kv
                .as_ref()
                .map(|kv| (kv.mod_revision, &kv.value[..])),
            Some((1, &b"1"[..]))
        );
        let delete = &events[3];
        assert_eq!((delete.kv.mod_revision, delete.kv.value.len()), (5, 0));
        assert_eq!(
            delete
                .prev_kv
                .as_ref()
                .map(|kv| (kv.mod_revision, kv.lease)),
            Some((3, 9))
        );
        assert_eq!(events[4].prev_kv, None, "a re-create has no previous value");
    })
    .await;
}

#[tokio::test]
async fn a_watch_from_an_old_revision_replays_history_then_continues_live() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        let mut model = Model::new();
        write_history(&store, &mut model).await;
        let mut stream = store.watch("/w/", 2).await.unwrap();
        let replayed = events_until(&mut stream, 6).await;
        assert_eq!(replayed, model.events("/w/", 2).unwrap());
        store.update("/w/b", bytes("5"), 4, 0).await.unwrap();
        model.update("/w/b", bytes("5"), 4, 0);
        let live = events_until(&mut stream, 7).await;
        assert_eq!(live, model.events("/w/", 6).unwrap());
    })
    .await;
}

#[tokio::test]
async fn a_watch_only_reports_keys_under_its_prefix() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        let mut stream = store.watch("/x/", 0).await.unwrap();
        write_history(&store, &mut Model::new()).await;
        store.create("/x/last", bytes("y"), 0).await.unwrap();
        let keys: Vec<_> = events_until(&mut stream, 7)
            .await
            .into_iter()
            .map(|e| e.kv.key)
            .collect();
        assert_eq!(keys, ["/x/other", "/x/last"]);
    })
    .await;
}

#[tokio::test]
async fn a_watch_from_a_compacted_revision_fails_with_compacted() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        write_history(&store, &mut Model::new()).await;
        store.compact(4).await.unwrap();
        let err = store.watch("/w/", 3).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Compacted {
                    requested: 3,
                    compact_revision: 4
                }
            ),
            "{err:?}"
        );
        // From the compact revision itself, the rest of history is still there.
        let mut stream = store.watch("/w/", 4).await.unwrap();
        let revisions: Vec<_> = events_until(&mut stream, 6)
            .await
            .iter()
            .map(Event::revision)
            .collect();
        assert_eq!(revisions, [5, 6]);
    })
    .await;
}

#[tokio::test]
async fn a_watch_from_a_future_revision_starts_after_it() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        let mut stream = store.watch("/", 3).await.unwrap();
        for i in 0..5 {
            store
                .create(&format!("/k{i}"), bytes("v"), 0)
                .await
                .unwrap();
        }
        let revisions: Vec<_> = events_until(&mut stream, 5)
            .await
            .iter()
            .map(Event::revision)
            .collect();
        assert_eq!(revisions, [4, 5]);
    })
    .await;
}

#[tokio::test]
async fn a_replay_longer_than_one_read_is_complete_and_ordered() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        let total = 2500;
        for i in 0..total {
            store
                .create(&format!("/k/{i:05}"), bytes("v"), 0)
                .await
                .unwrap();
        }
        let mut stream = store.watch("/k/", 0).await.unwrap();
        let events = events_until(&mut stream, total).await;
        let revisions: Vec<i64> = events.iter().map(Event::revision).collect();
        assert_eq!(revisions, (1..=total).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watches_started_while_writes_race_miss_and_repeat_nothing() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        let total = 600;
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..total {
                    store
                        .create(&format!("/k/{i:05}"), bytes("v"), 0)
                        .await
                        .unwrap();
                }
            })
        };
        let mut watchers = Vec::new();
        for n in 0..40 {
            tokio::time::sleep(Duration::from_micros(300)).await;
            let current = store.current_revision().await.unwrap();
            // Start some at the current revision and some a little behind it.
            let from = (current - (n % 3) * 7).max(0);
            let stream = store.watch("/k/", from).await.unwrap();
            watchers.push((from, stream));
        }
        writer.await.unwrap();
        for (from, mut stream) in watchers {
            if from == total {
                continue;
            }
            let revisions: Vec<i64> = events_until(&mut stream, total)
                .await
                .iter()
                .map(Event::revision)
                .collect();
            assert_eq!(
                revisions,
                (from + 1..=total).collect::<Vec<_>>(),
                "watch from {from}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_watcher_that_stops_reading_is_cancelled_without_blocking_writers() {
    timed(async {
        let config = Config {
            watch_buffer: 4,
            ..manual_compaction()
        };
        let (_dir, store) = open_store(config);
        let mut slow = store.watch("/", 0).await.unwrap();
        let mut fast = store.watch("/", 0).await.unwrap();
        let total = 200;
        // The reading watcher reports how far it got, so the writer can keep
        // it from falling behind on a loaded machine (with a 4-batch buffer,
        // any scheduling hiccup would otherwise cancel it too).
        let (progress, mut seen) = tokio::sync::watch::channel(0i64);
        let reader = tokio::spawn(async move {
            let mut received = 0;
            while *progress.borrow() < total {
                let batch = fast
                    .recv()
                    .await
                    .expect("stream ended")
                    .expect("watch failed");
                received += batch.len();
                if let Some(last) = batch.last() {
                    progress.send_replace(last.revision());
                }
            }
            received
        });
        for i in 0..total {
            store
                .create(&format!("/k{i}"), bytes("v"), 0)
                .await
                .unwrap();
            seen.wait_for(|r| *r > i).await.expect("reader gone");
        }
        assert_eq!(
            reader.await.unwrap(),
            total as usize,
            "a reading watcher got everything"
        );
        let mut delivered = 0;
        let err = loop {
            match slow.recv().await.expect("the stream ends with an error") {
                Ok(batch) => delivered += batch.len(),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(&err, Error::WatchLagged { prefix } if prefix == "/"),
            "{err:?}"
        );
        assert!(delivered < total as usize);
        assert!(slow.recv().await.is_none(), "nothing follows the error");
    })
    .await;
}

#[tokio::test]
async fn dropping_a_watch_stream_unregisters_the_watcher() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        let stream = store.watch("/", 0).await.unwrap();
        assert_eq!(store.watcher_count(), 1);
        drop(stream);
        // The hub notices on its next publish.
        store.create("/a", bytes("v"), 0).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        store.create("/b", bytes("v"), 0).await.unwrap();
        assert_eq!(store.watcher_count(), 0);
    })
    .await;
}

#[tokio::test]
async fn closing_the_store_ends_its_watch_streams() {
    timed(async {
        let (_dir, store) = open_store(manual_compaction());
        let mut stream = store.watch("/", 0).await.unwrap();
        drop(store);
        assert!(stream.recv().await.is_none());
    })
    .await;
}

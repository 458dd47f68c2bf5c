//! The outbox against a model (protocol.md §6), with random appends, acks and a small size cap:
//! seqs strictly increase and are never reused; acknowledged records are gone; state changes
//! and notifications are never dropped; results are dropped oldest first; every drop is counted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;
use proptest::prelude::*;

#[path = "common/records.rs"]
mod records;

use snbox::record::{Body, NotificationType, Origin, Record, State, StateType};
use snbox::store::Store;

#[derive(Debug, Clone)]
enum Op {
    /// Records of these kinds (0 result, 1 state change, 2 notification), each with a body of
    /// roughly this many bytes.
    Append(Vec<u8>, usize),
    /// Acknowledge up to this share (per mille) of what is pending.
    Ack(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (proptest::collection::vec(0u8..3, 1..60), 50usize..2000).prop_map(|(k, n)| Op::Append(k, n)),
        1 => (0u16..=1000).prop_map(Op::Ack),
    ]
}

fn origin() -> Arc<Origin> {
    Arc::new(Origin {
        service: "s".into(),
        device: "d".into(),
        node: "n".into(),
        company: None,
    })
}

fn record(kind: u8, size: usize) -> Record {
    let ts = Timestamp::from_second(1_800_000_000).expect("ts");
    let body = match kind {
        0 => Body::Result {
            status: State::Ok,
            state_type: StateType::Hard,
            attempt: 1,
            duration_ms: 1,
            output: "x".repeat(size),
            metrics: Default::default(),
            in_availability_period: true,
            in_maintenance: false,
            flapping: false,
        },
        1 => Body::StateChange {
            from: State::Ok,
            to: State::Critical,
            state_type: StateType::Soft,
        },
        _ => Body::Notification {
            kind: NotificationType::Problem,
            status: State::Critical,
            criticality: snbox::document::Criticality::High,
            contacts: vec![],
            contact_groups: vec![],
            held_s: 0,
            repeat: 0,
            output: String::new(),
            problem_since: None,
            delivered_by: None,
        },
    };
    Record { ts, body }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn outbox_matches_its_model(ops in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            // A cap small enough to be hit: a few hundred KiB.
            let opened = Store::open(dir.path(), 256 * 1024).expect("store");
            let store = opened.store;
            let origin = Arc::new(Origin { service: "s".into(), device: "d".into(), node: "n".into(), company: Some("c".into()) });
            // Model: every record appended and not acknowledged, by seq, with its kind.
            let mut live: BTreeMap<u64, u8> = BTreeMap::new();
            let mut last_seq = 0u64;
            for op in ops {
                match op {
                    Op::Append(kinds, size) => {
                        let items = kinds.iter().map(|k| (origin.clone(), record(*k, size))).collect::<Vec<_>>();
                        let last = store.append_committed(items, vec![]).await.expect("commit");
                        let first = last + 1 - kinds.len() as u64;
                        prop_assert!(first > last_seq, "seqs strictly increase: {first} after {last_seq}");
                        for (i, k) in kinds.iter().enumerate() {
                            live.insert(first + i as u64, *k);
                        }
                        last_seq = last;
                    }
                    Op::Ack(share) => {
                        let pending = store.pending(0, 1_000_000).await.expect("pending");
                        if pending.is_empty() {
                            continue;
                        }
                        let index = ((pending.len() - 1) * share as usize) / 1000;
                        let upto = pending[index]["seq"].as_u64().expect("seq");
                        store.ack(upto).await.expect("ack");
                        live.retain(|seq, _| *seq > upto);
                    }
                }
                let present: BTreeSet<u64> = store
                    .pending(0, 1_000_000)
                    .await
                    .expect("pending")
                    .iter()
                    .filter_map(|r| r["seq"].as_u64())
                    .collect();
                // Nothing present that the model does not have.
                prop_assert!(present.iter().all(|s| live.contains_key(s)));
                // State changes and notifications are never dropped.
                for (seq, kind) in &live {
                    if *kind != 0 {
                        prop_assert!(present.contains(seq), "record {seq} (kind {kind}) was dropped");
                    }
                }
                // Results go oldest first: the missing ones are all older than the present ones.
                let results: Vec<u64> = live.iter().filter(|(_, k)| **k == 0).map(|(s, _)| *s).collect();
                let missing: Vec<u64> = results.iter().copied().filter(|s| !present.contains(s)).collect();
                if let (Some(newest_missing), Some(oldest_present)) = (missing.last(), results.iter().find(|s| present.contains(s))) {
                    prop_assert!(newest_missing < oldest_present, "result {newest_missing} dropped while {oldest_present} is kept");
                }
                // Dropped results leave the model: they will never come back.
                for seq in &missing {
                    live.remove(seq);
                }
            }
            let stats = store.stats().await.expect("stats");
            prop_assert_eq!(stats.last_seq, last_seq);
            Ok(())
        })?;
    }
}

#[test]
fn outbox_counts_every_dropped_result_and_keeps_the_rest() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 256 * 1024).expect("store").store;
        let origin = origin();
        let mut appended = 0u64;
        for round in 0..40 {
            let mut items: Vec<_> = (0..50).map(|_| (origin.clone(), record(0, 400))).collect();
            items.push((origin.clone(), record(1 + (round % 2) as u8, 0)));
            appended += items.len() as u64;
            store.append_committed(items, vec![]).await.expect("commit");
        }
        let stats = store.stats().await.expect("stats");
        assert!(stats.dropped > 0, "the cap was hit");
        assert_eq!(stats.records + stats.dropped, appended, "{stats:?}");
        let pending = store.pending(0, 1_000_000).await.expect("pending");
        let kept_others = pending.iter().filter(|r| r["kind"] != "result").count();
        assert_eq!(kept_others, 40, "every state change and notification is kept");
        assert!(stats.bytes <= 256 * 1024 + 64 * 1024, "{stats:?}");
    });
}

/// The benchmark's target (≤ 80 database bytes per result) as a regression guard: 20,000
/// typical ICMP results from 1,000 services, through the real store, measured as the pages
/// the database uses.
#[tokio::test]
async fn outbox_holds_an_icmp_result_in_80_bytes_or_less() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = Store::open(dir.path(), 1 << 30).expect("store");
    let store = opened.store;
    let origins: Vec<Arc<Origin>> = (0..1000)
        .map(|i| {
            Arc::new(Origin {
                service: format!("site-{}-dev-{i}-ping", i % 7).into(),
                device: format!("site-{}-dev-{i}", i % 7).into(),
                node: format!("site-{}", i % 7).into(),
                company: Some("client".into()),
            })
        })
        .collect();
    let before = store.stats().await.expect("stats").bytes;
    let n = 20_000u64;
    for batch in 0..(n / 1000) {
        let items = (0..1000u64)
            .map(|i| {
                let k = batch * 1000 + i;
                let ts = Timestamp::from_millisecond(1_800_000_000_000 + k as i64 * 60).expect("ts");
                let body = records::icmp_result(k);
                (origins[(k % 1000) as usize].clone(), Record { ts, body })
            })
            .collect();
        store.append_committed(items, vec![]).await.expect("commit");
    }
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.records, n);
    let per_result = (stats.bytes - before) as f64 / n as f64;
    eprintln!("{per_result:.1} database bytes per result");
    assert!(per_result <= 80.0, "{per_result:.1} bytes per result");
    // And they read back in the wire form.
    let first = store.pending(0, 1).await.expect("pending");
    assert_eq!(first[0]["output"], "3/3 replies, rtt 0.060 ms");
    assert_eq!(first[0]["metrics"]["rtt_min_ms"], 0.04);
}

/// protocol.md §6: a record reported produced is never lost. While the database cannot be
/// written (here another process holds its write lock past the busy timeout), records wait in
/// memory, in order, and are committed first once it can.
#[test]
fn outbox_keeps_records_in_memory_while_it_cannot_commit_and_commits_them_first_after() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 1 << 30).expect("store").store;
        let origin = origin();
        let results = |n: usize| (0..n).map(|_| (origin.clone(), record(0, 10))).collect::<Vec<_>>();
        assert_eq!(store.append_committed(results(10), vec![]).await.expect("commit"), 10);

        let other = rusqlite::Connection::open(dir.path().join("snbox.db")).expect("db");
        other.execute_batch("BEGIN EXCLUSIVE").expect("lock");
        let mut held = results(5);
        held.push((origin.clone(), record(1, 0)));
        let refused = store.append_committed(held, vec![("s".into(), "{}".into())]).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("kept in memory")),
            "{refused:?}"
        );
        other.execute_batch("COMMIT").expect("unlock");

        // The next commit writes the held records first, then the new ones.
        assert_eq!(store.append_committed(results(2), vec![]).await.expect("commit"), 18);
        let stats = store.stats().await.expect("stats");
        assert_eq!((stats.unsaved, stats.dropped, stats.records), (0, 0, 18), "{stats:?}");
        let pending = store.pending(10, 100).await.expect("pending");
        let kinds: Vec<_> = pending
            .iter()
            .map(|r| (r["seq"].as_u64().unwrap_or(0), r["kind"].clone()))
            .collect();
        assert_eq!(kinds.len(), 8);
        assert_eq!(kinds[5], (16, serde_json::json!("state_change")), "{kinds:?}");
        assert!(kinds.iter().map(|k| k.0).eq(11..=18), "{kinds:?}");
    });
}

fn origin_of(service: &str) -> Arc<Origin> {
    Arc::new(Origin {
        service: service.into(),
        device: format!("dev-{service}").into(),
        node: "n".into(),
        company: None,
    })
}

/// Another connection's trigger makes every outbox insert fail: a real fault between the
/// origin's insert and the record's, which rolls the whole commit back.
fn inject_outbox_failure(db: &std::path::Path, on: bool) {
    let conn = rusqlite::Connection::open(db).expect("second connection");
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    let sql = if on {
        "CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
    } else {
        "DROP TRIGGER fail_outbox"
    };
    conn.execute_batch(sql).expect("trigger");
}

/// Runs `test` on a store in a fresh directory, with its database's path.
fn with_store(test: impl AsyncFnOnce(Store, std::path::PathBuf)) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let opened = Store::open(dir.path(), 64 * 1024 * 1024).expect("store");
        test(opened.store, dir.path().join("snbox.db")).await;
    });
}

#[test]
fn a_rolled_back_commit_files_every_record_under_its_own_service() {
    with_store(async |store, db| {
        // A known origin first, so the next new origin's row id is predictable.
        store
            .append_committed(vec![(origin_of("a"), record(0, 10))], vec![])
            .await
            .expect("first");
        inject_outbox_failure(&db, true);
        let failed = store
            .append_committed(vec![(origin_of("b"), record(1, 0))], vec![])
            .await;
        assert!(failed.is_err(), "the injected fault fails the commit");
        inject_outbox_failure(&db, false);
        // A new origin after the rollback: it may take the row id the rolled-back one had.
        store
            .append_committed(vec![(origin_of("c"), record(1, 0))], vec![])
            .await
            .expect("after");
        let pending = store.pending(0, 100).await.expect("pending");
        let services: Vec<(&str, &str)> = pending
            .iter()
            .map(|r| (r["service"].as_str().unwrap_or("?"), r["type"].as_str().unwrap_or("?")))
            .collect();
        assert_eq!(services.len(), 3, "{pending:?}");
        for (service, _) in &services {
            assert!(["a", "b", "c"].contains(service), "{services:?}");
        }
        let mut seen: Vec<&str> = services.iter().map(|(s, _)| *s).collect();
        seen.sort();
        assert_eq!(seen, ["a", "b", "c"], "each record under its own service: {pending:?}");
        for r in &pending {
            let service = r["service"].as_str().unwrap_or("?");
            assert_eq!(r["device"].as_str(), Some(format!("dev-{service}").as_str()), "{r}");
        }
    });
}

#[test]
fn store_counts_follow_commits_failures_acks_and_drops() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let opened = Store::open(dir.path(), 64 * 1024 * 1024).expect("store");
        let store = opened.store;
        let db = dir.path().join("snbox.db");
        let before = store.stats().await.expect("stats");
        assert_eq!((before.records, before.commits, before.errors), (0, 0, 0));
        let last = store
            .append_committed(
                vec![(origin_of("a"), record(0, 10)), (origin_of("a"), record(0, 10))],
                vec![],
            )
            .await
            .expect("commit");
        let after = store.stats().await.expect("stats");
        assert_eq!(
            (after.records, after.commits, after.errors, after.last_seq),
            (2, 1, 0, last)
        );
        assert!(after.oldest_ts.is_some());
        inject_outbox_failure(&db, true);
        assert!(
            store
                .append_committed(vec![(origin_of("a"), record(0, 10))], vec![])
                .await
                .is_err()
        );
        let failed = store.stats().await.expect("stats");
        assert_eq!(
            (failed.commits, failed.errors, failed.unsaved),
            (1, 1, 1),
            "one failed commit counted once"
        );
        assert!(
            failed
                .commit_error
                .as_deref()
                .is_some_and(|e| e.contains("injected fault")),
            "{failed:?}"
        );
        assert_eq!(failed.failing_s, Some(0));
        inject_outbox_failure(&db, false);
        store
            .append_committed(vec![(origin_of("a"), record(0, 10))], vec![])
            .await
            .expect("commit");
        let healed = store.stats().await.expect("stats");
        assert_eq!(
            (healed.records, healed.commits, healed.errors, healed.unsaved),
            (4, 2, 1, 0)
        );
        assert_eq!((healed.failing_s, healed.commit_error), (None, None));
        store.ack(last).await.expect("ack");
        let acked = store.stats().await.expect("stats");
        assert_eq!(acked.records, 2);
        // The counts after a reopen are what the file holds.
        drop(store);
        opened.writer.join().expect("writer");
        let reopened = Store::open(dir.path(), 64 * 1024 * 1024).expect("store");
        let again = reopened.store.stats().await.expect("stats");
        assert_eq!(
            (again.records, again.last_seq, again.oldest_ts),
            (2, healed.last_seq, acked.oldest_ts)
        );
    });
}

/// Flash wears by bytes written: writes nobody waits for share one commit every 2 s; a writer
/// that waits for its commit gets it at once, with everything queued before it.
#[test]
fn writes_nobody_waits_for_share_one_commit_every_two_seconds() {
    with_store(async |store, _| {
        let started = std::time::Instant::now();
        for i in 0..50 {
            store
                .append(vec![(origin_of(&format!("s{i}")), record(0, 10))], vec![])
                .await
                .expect("queued");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let queued = store.stats().await.expect("stats");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1) || queued.commits <= 1,
            "{queued:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let grouped = store.stats().await.expect("stats");
        assert_eq!(grouped.records, 50, "{grouped:?}");
        assert!(
            grouped.commits <= 2,
            "50 writes in half a second: {} commits",
            grouped.commits
        );
        store
            .append(vec![(origin_of("late"), record(0, 10))], vec![])
            .await
            .expect("queued");
        let seq = store
            .append_committed(vec![(origin_of("waits"), record(1, 0))], vec![])
            .await
            .expect("committed");
        let now = store.stats().await.expect("stats");
        assert_eq!((now.records, now.last_seq, now.unsaved), (52, seq, 0), "{now:?}");
    });
}

/// A standalone box's retention (`[standalone] keep_days`): nothing acknowledges its records,
/// so every kind older than the limit goes, and what is younger stays.
#[tokio::test]
async fn standalone_retention_deletes_every_kind_older_than_keep_days_and_keeps_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = Store::open(dir.path(), 1 << 30).expect("store");
    let store = opened.store.clone();
    let now = Timestamp::now();
    let aged = |kind: u8, days: i64| {
        let mut r = record(kind, 10);
        r.ts = now - jiff::SignedDuration::from_hours(24 * days);
        (origin(), r)
    };
    let items = vec![
        aged(0, 40),
        aged(1, 40),
        aged(2, 31),
        aged(0, 29),
        aged(2, 1),
        aged(1, 0),
    ];
    store.append_committed(items, Vec::new()).await.expect("commit");
    let cutoff = now - jiff::SignedDuration::from_hours(24 * 30);
    assert_eq!(store.expire(cutoff, true).await.expect("expire"), 3);
    let left = store.pending(0, 100).await.expect("pending");
    assert_eq!(left.len(), 3, "{left:#?}");
    assert_eq!(left[0]["kind"], "result");
    assert_eq!(store.stats().await.expect("stats").records, 3);
    // Paired boxes expire only finished deliveries, never records.
    assert_eq!(store.expire(now, false).await.expect("expire"), 0);
    assert_eq!(store.stats().await.expect("stats").records, 3);
    drop(store);
    drop(opened.store);
    let _ = opened.writer.join();
}

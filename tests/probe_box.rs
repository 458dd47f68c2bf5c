//! The `box` kind (protocol.md §3): the box's own CPU, memory, state-directory disk, outbox
//! fill, age of the oldest unacknowledged record and clock offset, judged by their limits.
//! The disk limit is crossed by a filled tmpfs state directory, the outbox ones by a store
//! whose records nobody acknowledges.

#[path = "common/peers.rs"]
mod peers;

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::json;

use snbox::document::params::{self, BoxParams};
use snbox::probe::Status;
use snbox::probe::box_health::{BoxProber, Uplink};
use snbox::record::{Body, Origin, Record, State, StateType};
use snbox::store::Store;

/// `v`'s limits; the machine's CPU, memory and disk are measured but not judged unless `v`
/// says so (the tests share the machine: a CI host's disk may be 96% full).
fn limits(v: serde_json::Value) -> BoxParams {
    let mut v = v;
    for gauge in ["cpu_pct", "memory_pct", "disk_pct"] {
        if v.get(gauge).is_none() {
            v[gauge] = json!({});
        }
    }
    params::parse(v).expect("valid params")
}

#[tokio::test]
async fn box_measures_this_machines_cpu_memory_and_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prober = BoxProber::new(dir.path().to_path_buf(), None, false);
    let r = prober.check(&limits(json!({}))).await;
    for name in ["cpu_pct", "memory_pct", "disk_pct"] {
        let v = r.metrics[name];
        assert!((0.0..=100.0).contains(&v), "{name} {v}: {r:?}");
    }
    // Standalone and without a store: said, not guessed.
    assert!(
        !r.metrics.contains_key("unsent_age_s") && !r.metrics.contains_key("clock_offset_s"),
        "{r:?}"
    );
    assert!(r.output.contains("unsent: standalone"), "{r:?}");
    // Any memory in use is over a limit of 0.
    let r = prober.check(&limits(json!({ "memory_pct": { "warn": 0.0 } }))).await;
    assert_eq!(r.status, Status::Warning, "{r:?}");
    assert!(
        r.output.starts_with("memory "),
        "the crossed measure comes first: {r:?}"
    );
    assert!(r.output.contains("(over 0.0 %)"), "{r:?}");
    // A measure that should be there and cannot be read makes the check unknown.
    let gone = BoxProber::new(dir.path().join("gone"), None, false);
    let r = gone.check(&limits(json!({}))).await;
    assert_eq!(r.status, Status::Unknown, "{r:?}");
    assert!(r.output.starts_with("disk: ") && r.output.contains("gone"), "{r:?}");
}

#[tokio::test]
#[ignore = "needs root (mounts a tmpfs): bash .ci/run runs it"]
async fn box_disk_limit_is_crossed_by_a_filled_state_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let _tmpfs = peers::Tmpfs::mount(&state, "4m");
    let prober = BoxProber::new(state.clone(), None, false);
    // The default disk limits (docs/PROBES.md), the other measures not judged.
    let disk = limits(json!({ "disk_pct": { "warn": 85.0, "crit": 95.0 } }));
    let r = prober.check(&disk).await;
    assert_eq!(r.status, Status::Ok, "an empty tmpfs: {r:?}");
    std::fs::write(state.join("ballast"), vec![0u8; 4_100_000]).expect("ballast");
    let r = prober.check(&disk).await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert!(r.metrics["disk_pct"] > 95.0, "{r:?}");
    assert!(r.output.starts_with("disk 9"), "{r:?}");
    std::fs::remove_file(state.join("ballast")).expect("rm");
    std::fs::write(state.join("ballast"), vec![0u8; 3_600_000]).expect("ballast");
    let r = prober.check(&disk).await;
    assert_eq!(
        r.status,
        Status::Warning,
        "85 % < {} < 95 %: {r:?}",
        r.metrics["disk_pct"]
    );
}

struct Offset(f64);

impl Uplink for Offset {
    fn clock_offset_s(&self) -> Option<f64> {
        Some(self.0)
    }
}

fn result_at(ts: Timestamp, output: String) -> Record {
    Record {
        ts,
        body: Body::Result {
            status: State::Ok,
            state_type: StateType::Hard,
            attempt: 1,
            duration_ms: 1,
            output,
            metrics: Default::default(),
            in_availability_period: true,
            in_maintenance: false,
            flapping: false,
        },
    }
}

#[tokio::test]
async fn box_outbox_limits_are_crossed_by_records_nobody_acknowledges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = Store::open(dir.path(), 1 << 20).expect("store");
    let store = opened.store.clone();
    let origin = Arc::new(Origin {
        service: "s".into(),
        device: "d".into(),
        node: "n".into(),
        company: None,
    });
    // Two hours of records held back (a central server out of reach), 400 KB of them.
    let two_hours_ago = Timestamp::now() - jiff::SignedDuration::from_hours(2);
    let records = (0..400)
        .map(|i| (origin.clone(), result_at(two_hours_ago, format!("{i:01000}"))))
        .collect();
    store.append_committed(records, vec![]).await.expect("append");
    let prober = BoxProber::new(dir.path().to_path_buf(), Some(store.clone()), true);
    let r = prober.check(&limits(json!({}))).await;
    assert_eq!(r.status, Status::Warning, "{r:?}");
    let unsent = r.metrics["unsent_age_s"];
    assert!((7190.0..7300.0).contains(&unsent), "{r:?}");
    assert!(r.metrics["buffer_pct"] > 50.0, "{r:?}");
    assert!(r.output.contains("buffer ") && r.output.contains("unsent 72"), "{r:?}");
    assert!(
        r.output.contains("clock offset: not known before the first heartbeat"),
        "{r:?}"
    );
    // The syncer's clock offset, judged either way.
    prober.set_uplink(Arc::new(Offset(-70.0)));
    let r = prober.check(&limits(json!({}))).await;
    assert_eq!(r.status, Status::Critical, "{r:?}");
    assert_eq!(r.metrics["clock_offset_s"], -70.0);
    assert!(r.output.starts_with("clock offset -70.0 s (over ±60.0 s)"), "{r:?}");
    drop(opened);
}

#[test]
fn box_limits_are_checked_when_the_document_is_read() {
    let e = params::parse::<BoxParams>(json!({ "disk_pct": { "warn": 95, "crit": 85 } })).expect_err("backwards");
    assert_eq!(e.0, "disk_pct.warn");
    let e = params::parse::<BoxParams>(json!({ "load": { "warn": 1 } })).expect_err("unknown");
    assert!(e.1.contains("unknown field"), "{e:?}");
    // A measure's limits replace its defaults as a whole; `{}` measures without judging.
    let p: BoxParams = params::parse(json!({ "cpu_pct": {} , "memory_pct": { "crit": 99 } })).expect("valid");
    assert_eq!((p.cpu_pct.warn, p.cpu_pct.crit), (None, None));
    assert_eq!((p.memory_pct.warn, p.memory_pct.crit), (None, Some(99.0)));
    assert_eq!(p.disk_pct.crit, Some(95.0));
}

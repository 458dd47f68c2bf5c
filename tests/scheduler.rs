//! The scheduler on paused tokio time (R8, R9, R10, R11): spreading, retries to HARD, control
//! periods on a DST-change day, held notifications, recoveries, host-check suppression.
//! Checks are scripted (the probes have their own real-peer tests); the store is a real
//! SQLite file, and every assertion reads the records back from it.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use snbox::probe::{CheckResult, Status};
use snbox::record::ActionSource;
use snbox::schedule::{Action, Answer, Clock, Detail, Job, Metrics, Runner, Scheduler, TokioClock};
use snbox::settings::Limits;
use snbox::store::Store;

type Outcome = Box<dyn Fn(&str, Timestamp) -> Status + Send + Sync>;

/// Answers each check with `outcome(service, wall time)` and remembers when it ran.
struct Script {
    clock: Arc<TokioClock>,
    outcome: Outcome,
    calls: Mutex<Vec<(String, Timestamp)>>,
}

impl Runner for Script {
    fn run<'a>(
        &'a self,
        job: &'a Job,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = CheckResult> + Send + 'a>> {
        Box::pin(async move {
            let now = self.clock.now();
            self.calls.lock().expect("lock").push((job.service_id.to_string(), now));
            let status = (self.outcome)(&job.service_id, now);
            CheckResult::new(status, format!("scripted {status}")).took(Duration::from_millis(3))
        })
    }
}

impl Script {
    fn new(clock: Arc<TokioClock>, outcome: Outcome) -> Arc<Script> {
        Arc::new(Script {
            clock,
            outcome,
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls_of(&self, service: &str) -> Vec<Timestamp> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|(s, _)| s == service)
            .map(|(_, t)| *t)
            .collect()
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("instant")
}

/// A document: one partner in Paris, `devices` devices each with `services` ping services.
fn doc(devices: usize, services: usize, template: Value, extra_ranges: Value) -> Value {
    let mut d = json!({
        "version": "sched-1",
        "box": { "id": "bx", "node": "p" },
        "tree": [ { "id": "p", "kind": "partner", "name": "P", "timezone": "Europe/Paris" },
                  { "id": "c", "kind": "company", "name": "C", "parent": "p" } ],
        "time_ranges": [ { "id": "24x7", "name": "24x7", "weekly": [ { "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "00:00", "to": "24:00" } ] } ],
        "defaults": [
            { "aspect": "control", "time_range": "24x7" },
            { "aspect": "availability", "time_range": "24x7" },
            { "aspect": "notification", "time_range": "24x7" }
        ],
        "service_templates": [ template ],
        "devices": [], "services": []
    });
    for r in extra_ranges.as_array().cloned().unwrap_or_default() {
        common::push(&mut d, "time_ranges", r);
    }
    for i in 0..devices {
        common::push(
            &mut d,
            "devices",
            json!({ "id": format!("d{i}"), "node": "c", "name": "D", "address": format!("127.0.1.{}", i + 1) }),
        );
        for j in 0..services {
            common::push(
                &mut d,
                "services",
                json!({ "id": format!("d{i}-s{j}"), "device": format!("d{i}"), "template": "t" }),
            );
        }
    }
    d
}

fn ping(interval: u32, extra: Value) -> Value {
    let mut t = json!({ "id": "t", "kind": "icmp", "criticality": "high", "availability_rate": 99.0,
        "availability_period": "24x7", "control_period": "24x7", "interval_s": interval });
    if let (Some(o), Some(e)) = (t.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    t
}

struct Run {
    script: Arc<Script>,
    records: Vec<Value>,
    metrics: Arc<Metrics>,
}

/// Runs the scheduler on `document` for `duration` of paused time from `start`.
async fn run(document: &Value, start: &str, duration: Duration, outcome: Outcome) -> Run {
    run_acting(document, start, duration, outcome, Vec::new()).await.0
}

/// [`run`], asking `actions` at their offsets from the start; with each answer.
async fn run_acting(
    document: &Value,
    start: &str,
    duration: Duration,
    outcome: Outcome,
    actions: Vec<(Duration, Action)>,
) -> (Run, Vec<Answer>) {
    let plan = Arc::new(common::plan(document));
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = Store::open(dir.path(), 64 << 20).expect("store");
    let clock = Arc::new(TokioClock::starting_at(ts(start)));
    let script = Script::new(clock.clone(), outcome);
    let metrics = Arc::new(Metrics::default());
    let (scheduler, _snapshot) = Scheduler::new(
        plan,
        HashMap::new(),
        script.clone(),
        opened.store.clone(),
        clock,
        &Limits::default(),
        metrics.clone(),
    );
    let handle = scheduler.actions();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(cancel.clone(), Duration::from_secs(5)));
    let began = tokio::time::Instant::now();
    let mut answers = Vec::new();
    for (at, action) in actions {
        tokio::time::sleep_until(began + at).await;
        answers.push(handle.ask(action, ActionSource::Local, None).await);
    }
    tokio::time::sleep_until(began + duration).await;
    cancel.cancel();
    task.await.expect("scheduler ends");
    let records = opened.store.pending(0, 1_000_000).await.expect("records");
    let run = Run {
        script,
        records,
        metrics,
    };
    (run, answers)
}

fn of_kind<'a>(records: &'a [Value], kind: &str, service: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["kind"] == kind && r["service"] == service)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn r9_services_are_spread_over_their_interval() {
    let d = doc(60, 10, ping(60, json!({})), json!([]));
    let start = ts("2026-11-23T10:00:00Z");
    let r = run(
        &d,
        "2026-11-23T10:00:00Z",
        Duration::from_secs(61),
        Box::new(|_, _| Status::Ok),
    )
    .await;
    let calls: Vec<(String, Timestamp)> = r
        .script
        .calls
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, t)| t.as_second() - start.as_second() < 60)
        .cloned()
        .collect();
    let services: std::collections::HashSet<&String> = calls.iter().map(|(s, _)| s).collect();
    assert_eq!(
        (calls.len(), services.len()),
        (600, 600),
        "each service once in its first interval"
    );
    let mut per_10s = [0usize; 6];
    for (_, t) in &calls {
        per_10s[((t.as_second() - ts("2026-11-23T10:00:00Z").as_second()) / 10).clamp(0, 5) as usize] += 1;
    }
    for n in per_10s {
        assert!((60..=140).contains(&n), "600 checks over 60 s, by 10 s: {per_10s:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn r9_retries_every_retry_interval_until_hard_then_every_interval() {
    let d = doc(
        1,
        1,
        ping(60, json!({ "retry_interval_s": 10, "max_attempts": 3 })),
        json!([]),
    );
    let r = run(
        &d,
        "2026-11-23T10:00:00Z",
        Duration::from_secs(200),
        Box::new(|_, _| Status::Critical),
    )
    .await;
    let calls = r.script.calls_of("d0-s0");
    let gaps: Vec<i64> = calls.windows(2).map(|w| w[1].as_second() - w[0].as_second()).collect();
    assert_eq!(
        &gaps[..3],
        &[10, 10, 60],
        "first check, two retries (HARD at the third), then the interval: {gaps:?}"
    );
    let changes = of_kind(&r.records, "state_change", "d0-s0");
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(
        (changes[0]["to"].clone(), changes[0]["state_type"].clone()),
        (json!("critical"), json!("soft"))
    );
    assert_eq!(
        (changes[1]["to"].clone(), changes[1]["state_type"].clone()),
        (json!("critical"), json!("hard"))
    );
    let results = of_kind(&r.records, "result", "d0-s0");
    let attempts: Vec<&Value> = results.iter().take(3).map(|r| &r["attempt"]).collect();
    assert_eq!(attempts, [&json!(1), &json!(2), &json!(3)]);
    assert_eq!(of_kind(&r.records, "notification", "d0-s0").len(), 1);
    // R12: every record names its device, node and top company.
    assert!(
        r.records
            .iter()
            .all(|x| x["device"] == "d0" && x["node"] == "c" && x["company"] == "c")
    );
}

#[tokio::test(start_paused = true)]
async fn r9_no_check_outside_the_control_period_and_the_first_at_its_opening_on_a_dst_day() {
    // 2026-03-29: Paris springs forward at 02:00. Control period 08:00–18:00 local: the first
    // check runs at 08:00 CEST = 06:00Z, not at 08:00 CET and not before.
    let office = json!([{ "id": "office", "name": "Office", "weekly": [ { "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "08:00", "to": "18:00" } ] }]);
    // The only ping is the device's host check: it takes the device's control period (R6).
    let mut d = doc(1, 1, ping(60, json!({})), office);
    d["defaults"][0]["time_range"] = json!("office");
    let r = run(
        &d,
        "2026-03-29T00:30:00Z",
        Duration::from_secs(5 * 3600 + 1800 + 150),
        Box::new(|_, _| Status::Ok),
    )
    .await;
    let calls = r.script.calls_of("d0-s0");
    assert_eq!(calls.first().copied(), Some(ts("2026-03-29T06:00:00Z")), "{calls:?}");
    assert!(calls.len() <= 3, "{calls:?}");
    assert!(r.metrics.outside_control.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

#[tokio::test(start_paused = true)]
async fn r11_a_problem_outside_the_notification_period_is_held_until_it_opens() {
    let business = json!([{ "id": "bh", "name": "BH", "weekly": [ { "days": ["mon","tue","wed","thu","fri"], "from": "09:00", "to": "17:00" } ] }]);
    let mut d = doc(1, 1, ping(300, json!({ "max_attempts": 1 })), business);
    d["defaults"][2]["time_range"] = json!("bh");
    // Monday 2026-11-23 07:00Z is 08:00 in Paris: the period opens an hour later.
    let r = run(
        &d,
        "2026-11-23T07:00:00Z",
        Duration::from_secs(3900),
        Box::new(|_, _| Status::Critical),
    )
    .await;
    let notes = of_kind(&r.records, "notification", "d0-s0");
    assert_eq!(notes.len(), 1, "{notes:?}");
    let first = r.script.calls_of("d0-s0")[0];
    assert_eq!(notes[0]["ts"], "2026-11-23T08:00:00.000Z");
    assert_eq!(
        notes[0]["held_s"],
        json!(ts("2026-11-23T08:00:00Z").as_second() - first.as_second())
    );
    assert_eq!(notes[0]["type"], "problem");
}

#[tokio::test(start_paused = true)]
async fn r11_recovery_is_notified_after_a_notified_problem() {
    let d = doc(1, 1, ping(60, json!({ "max_attempts": 1 })), json!([]));
    let start = ts("2026-11-23T10:00:00Z");
    let r = run(
        &d,
        "2026-11-23T10:00:00Z",
        Duration::from_secs(300),
        Box::new(move |_, now| {
            if now.as_second() - start.as_second() < 100 {
                Status::Critical
            } else {
                Status::Ok
            }
        }),
    )
    .await;
    let types: Vec<Value> = of_kind(&r.records, "notification", "d0-s0")
        .iter()
        .map(|n| n["type"].clone())
        .collect();
    assert_eq!(types, [json!("problem"), json!("recovery")]);
}

#[tokio::test(start_paused = true)]
async fn r9_other_services_are_unreachable_while_the_host_check_is_hard_critical() {
    let mut d = doc(1, 1, ping(60, json!({ "max_attempts": 1 })), json!([]));
    common::push(
        &mut d,
        "service_templates",
        json!({ "id": "web", "kind": "http", "criticality": "low", "availability_rate": 99.0,
        "availability_period": "24x7", "control_period": "24x7", "interval_s": 60, "max_attempts": 1 }),
    );
    common::push(
        &mut d,
        "services",
        json!({ "id": "d0-web", "device": "d0", "template": "web" }),
    );
    let r = run(
        &d,
        "2026-11-23T10:00:00Z",
        Duration::from_secs(200),
        Box::new(|_, _| Status::Critical),
    )
    .await;
    let host_first = r.script.calls_of("d0-s0")[0];
    let web: Vec<&Value> = of_kind(&r.records, "result", "d0-web");
    let after_host: Vec<&&Value> = web
        .iter()
        .filter(|w| {
            w["ts"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .is_some_and(|t| t > host_first)
        })
        .collect();
    assert!(!after_host.is_empty());
    assert!(
        after_host.iter().all(|w| w["status"] == "unreachable"),
        "{after_host:?}"
    );
    assert!(
        of_kind(&r.records, "notification", "d0-web").is_empty(),
        "unreachable raises no notification"
    );
    assert_eq!(
        of_kind(&r.records, "notification", "d0-s0").len(),
        1,
        "the host check notifies"
    );
}

#[tokio::test(start_paused = true)]
async fn replan_keeps_the_state_and_schedule_of_services_that_stay() {
    // Plan A: d0-s0, d1-s0, d2-s0 every 60 s, all HARD critical after one check.
    let a = doc(3, 1, ping(60, json!({ "max_attempts": 1 })), json!([]));
    // Plan B: d0-s0 as it was; d1-s0 every 120 s; d2 gone; d3-s0 new.
    let mut b = doc(4, 1, ping(60, json!({ "max_attempts": 1 })), json!([]));
    b["version"] = json!("sched-2");
    common::retain(&mut b, "devices", |d| d["id"] != "d2");
    common::retain(&mut b, "services", |s| s["device"] != "d2");
    b["services"]
        .as_array_mut()
        .expect("services")
        .iter_mut()
        .filter(|s| s["id"] == "d1-s0")
        .for_each(|s| s["interval_s"] = json!(120));

    let dir = tempfile::tempdir().expect("tempdir");
    let opened = Store::open(dir.path(), 64 << 20).expect("store");
    let clock = Arc::new(TokioClock::starting_at(ts("2026-11-23T10:00:00Z")));
    let script = Script::new(clock.clone(), Box::new(|_, _| Status::Critical));
    let (mut scheduler, snapshots) = Scheduler::new(
        Arc::new(common::plan(&a)),
        HashMap::new(),
        script.clone(),
        opened.store.clone(),
        clock.clone(),
        &Limits::default(),
        Arc::new(Metrics::default()),
    );
    let (plans, plans_rx) = tokio::sync::watch::channel(Arc::new(common::plan(&a)));
    scheduler.follow(plans_rx);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(cancel.clone(), Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_secs(150)).await;
    let switched = clock.now();
    plans.send_replace(Arc::new(common::plan(&b)));
    tokio::time::sleep(Duration::from_secs(400)).await;
    let live = snapshots.get(Detail::States).await.expect("the scheduler answers");
    assert_eq!(live.plan.version, "sched-2", "the status sees the new plan");
    assert_eq!(live.services.len(), 3);
    drop(live);
    cancel.cancel();
    task.await.expect("scheduler ends");
    let records = opened.store.pending(0, 1_000_000).await.expect("records");

    let gaps = |service: &str, after: bool| -> Vec<i64> {
        let calls: Vec<Timestamp> = script
            .calls_of(service)
            .into_iter()
            .filter(|t| (*t > switched) == after || !after)
            .collect();
        calls.windows(2).map(|w| w[1].as_second() - w[0].as_second()).collect()
    };
    let kept = gaps("d0-s0", false);
    assert!(
        kept.len() >= 8 && kept.iter().all(|g| *g == 60),
        "same grid across the switch: {kept:?}"
    );
    assert_eq!(
        of_kind(&records, "state_change", "d0-s0").len(),
        1,
        "its HARD critical state carried over: no second ok → critical"
    );
    let slower = gaps("d1-s0", true);
    assert!(!slower.is_empty() && slower.iter().all(|g| *g == 120), "{slower:?}");
    assert_eq!(
        of_kind(&records, "state_change", "d1-s0").len(),
        1,
        "d1-s0 kept its state too"
    );
    assert!(
        script.calls_of("d2-s0").iter().all(|t| *t <= switched),
        "a removed service is not checked"
    );
    assert!(!script.calls_of("d3-s0").is_empty(), "a new service is checked");
    drop(opened.store);
    opened.writer.join().expect("writer");
    let db = rusqlite::Connection::open(dir.path().join("snbox.db")).expect("db");
    let saved: Vec<String> = db
        .prepare("SELECT service FROM service_state ORDER BY service")
        .expect("q")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        saved,
        ["d0-s0", "d1-s0", "d3-s0"],
        "the removed service's state is forgotten"
    );
}

/// A wall clock the test can step, as an operator's `date -s` or a bad NTP server would.
struct SteppedClock {
    inner: TokioClock,
    offset_s: std::sync::atomic::AtomicI64,
}

impl SteppedClock {
    fn step(&self, seconds: i64) {
        self.offset_s.fetch_add(seconds, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> Timestamp {
        let offset = jiff::SignedDuration::from_secs(self.offset_s.load(std::sync::atomic::Ordering::SeqCst));
        self.inner.now().checked_add(offset).unwrap_or(self.inner.now())
    }
}

/// Remembers each check's monotonic instant.
struct Stopwatch {
    calls: Mutex<Vec<(String, tokio::time::Instant)>>,
}

impl Runner for Stopwatch {
    fn run<'a>(
        &'a self,
        job: &'a Job,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = CheckResult> + Send + 'a>> {
        Box::pin(async move {
            let now = tokio::time::Instant::now();
            self.calls.lock().expect("lock").push((job.service_id.to_string(), now));
            CheckResult::new(Status::Ok, "ok".to_string()).took(Duration::from_millis(3))
        })
    }
}

/// R8/R9 with the wall clock stepped by hours (issue 7): checks keep their spacing on the
/// monotonic clock (no burst after a step forward, no stall after a step back), and the
/// control period is judged on the wall time of the moment.
#[tokio::test(start_paused = true)]
async fn r9_clock_steps_keep_the_spacing_and_a_step_back_no_longer_stalls_a_service_waiting_for_its_period() {
    // Office hours 08:00–18:00 Paris, every day; ten services every 60 s.
    let office = json!([{ "id": "office", "name": "Office", "weekly": [ { "days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "08:00", "to": "18:00" } ] }]);
    let mut d = doc(1, 10, ping(60, json!({ "control_period": "office" })), office);
    d["defaults"][0]["time_range"] = json!("office");
    let plan = Arc::new(common::plan(&d));
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = Store::open(dir.path(), 64 << 20).expect("store");
    let clock = Arc::new(SteppedClock {
        inner: TokioClock::starting_at(ts("2026-11-23T09:00:00Z")), // 10:00 in Paris
        offset_s: 0.into(),
    });
    let stopwatch = Arc::new(Stopwatch {
        calls: Mutex::new(Vec::new()),
    });
    let (scheduler, _snapshots) = Scheduler::new(
        plan,
        HashMap::new(),
        stopwatch.clone(),
        opened.store.clone(),
        clock.clone(),
        &Limits::default(),
        Arc::new(Metrics::default()),
    );
    let cancel = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(cancel.clone(), Duration::from_secs(5)));
    let minute = Duration::from_secs(60);
    let start = tokio::time::Instant::now();
    let count_between = |from: Duration, to: Duration| {
        stopwatch
            .calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, at)| *at >= start + from && *at < start + to)
            .count()
    };

    tokio::time::sleep(10 * minute).await;
    // Forward 3 h, still inside office hours (13:10 Paris): the same pace, no catching up.
    clock.step(3 * 3600);
    tokio::time::sleep(10 * minute).await;
    // Back 3 h (10:20 Paris): no stall waiting for the lost hours to come again.
    clock.step(-3 * 3600);
    tokio::time::sleep(10 * minute).await;
    // Forward 9 h: 19:30 Paris, outside office hours: checks stop.
    clock.step(9 * 3600);
    tokio::time::sleep(10 * minute).await;
    // Back 9 h: 10:40 Paris, inside again: checks resume within a minute, though the
    // period was next due to open in 12 hours by the clock of the moment it closed.
    clock.step(-9 * 3600);
    tokio::time::sleep(10 * minute).await;
    cancel.cancel();
    task.await.expect("scheduler ends");

    let window = |i: u32| count_between(i * 10 * minute + minute, (i + 1) * 10 * minute);
    // Nine whole minutes of each ten-minute stretch: 10 services × 9 checks.
    assert_eq!(window(0), 90, "steady before any step");
    assert_eq!(window(1), 90, "after a step forward: no burst, no gap");
    assert_eq!(window(2), 90, "after a step back: no stall");
    assert_eq!(
        count_between(30 * minute + Duration::from_secs(1), 40 * minute),
        0,
        "outside the control period"
    );
    assert_eq!(window(4), 90, "inside the period again, within a minute of the step");
    // Spacing: consecutive checks of one service never closer than the interval (less the
    // scheduler's rounding), whatever the wall clock did.
    let calls = stopwatch.calls.lock().expect("lock").clone();
    for service in (0..10).map(|j| format!("d0-s{j}")) {
        let times: Vec<_> = calls.iter().filter(|(s, _)| *s == service).map(|(_, t)| *t).collect();
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= Duration::from_secs(59), "{service}: checks {gap:?} apart");
        }
    }
}

/// What a crash leaves is what was committed while the scheduler ran (read from a copy of the
/// files, no final save): after a restart on it, availability counts the saved states until
/// the box's last mark of life (every minute), not only until the last saved states (every
/// five minutes).
#[tokio::test(start_paused = true)]
async fn r10_after_a_crash_availability_counts_until_the_last_mark_of_life() {
    let d = doc(2, 1, ping(30, json!({})), json!([]));
    let plan = Arc::new(common::plan(&d));
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = Store::open(dir.path(), 64 << 20).expect("store");
    let clock = Arc::new(TokioClock::starting_at(ts("2026-11-23T10:00:00Z")));
    let (scheduler, _snapshots) = Scheduler::new(
        plan.clone(),
        HashMap::new(),
        Script::new(clock.clone(), Box::new(|_, _| Status::Ok)),
        opened.store.clone(),
        clock.clone(),
        &Limits::default(),
        Arc::new(Metrics::default()),
    );
    let cancel = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(cancel.clone(), Duration::from_secs(5)));
    // 23.5 minutes: the last periodic save was at 20, the last mark of life at 23.
    tokio::time::sleep(Duration::from_secs(23 * 60 + 30)).await;
    let crash = clock.now();
    // Writes queued in the last (real) 2 s are committed, as the group commit would.
    opened
        .store
        .append_committed(Vec::new(), Vec::new())
        .await
        .expect("commit");
    let copy = tempfile::tempdir().expect("tempdir");
    for file in ["snbox.db", "snbox.db-wal"] {
        if dir.path().join(file).exists() {
            std::fs::copy(dir.path().join(file), copy.path().join(file)).expect("copy");
        }
    }
    cancel.cancel();
    task.await.expect("scheduler ends");

    let restarted = Store::open(copy.path(), 64 << 20).expect("the copy opens");
    let alive_until = restarted.alive_until.expect("a mark of life");
    assert!(
        crash.as_second() - alive_until.as_second() <= 61,
        "{alive_until} for a crash at {crash}"
    );
    let saved = restarted
        .states
        .into_iter()
        .map(|(id, json)| (id, serde_json::from_str(&json).expect("a saved state")))
        .collect();
    let clock = Arc::new(TokioClock::starting_at(crash));
    let (mut scheduler, snapshots) = Scheduler::new(
        plan,
        saved,
        Script::new(clock.clone(), Box::new(|_, _| Status::Ok)),
        restarted.store.clone(),
        clock,
        &Limits::default(),
        Arc::new(Metrics::default()),
    );
    scheduler.resume_availability(alive_until);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(cancel.clone(), Duration::from_secs(5)));
    let live = snapshots
        .get(Detail::Availability)
        .await
        .expect("the scheduler answers");
    for (view, availability) in live.services.iter().zip(&live.availability) {
        let counted = availability[1].available_s as i64;
        // Checks start within the first 30 s (spread); what is lost is the last minute at most.
        assert!(
            counted >= 23 * 60 + 30 - 30 - 61,
            "{}: {counted} s available counted for a box up 1,410 s",
            view.id
        );
    }
    drop(live);
    cancel.cancel();
    task.await.expect("scheduler ends");
}

/// Checks that take 20 s each, counting how many run at once on each device.
struct Slow {
    running: Mutex<HashMap<String, usize>>,
    most: Mutex<usize>,
}

impl Runner for Slow {
    fn run<'a>(
        &'a self,
        job: &'a Job,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = CheckResult> + Send + 'a>> {
        Box::pin(async move {
            let device = job.address().to_string();
            {
                let mut running = self.running.lock().expect("lock");
                let n = running.entry(device.clone()).or_default();
                *n += 1;
                let mut most = self.most.lock().expect("lock");
                *most = (*most).max(*n);
            }
            tokio::time::sleep(Duration::from_secs(20)).await;
            *self.running.lock().expect("lock").entry(device).or_default() -= 1;
            CheckResult::new(Status::Ok, "slow").took(Duration::from_secs(20))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_replan_keeps_the_per_device_limit_while_checks_hold_their_permits() {
    // One device, eight services checked every 30 s, at most two at once on the device.
    let a = doc(1, 8, ping(30, json!({ "timeout_s": 25 })), json!([]));
    let mut b = a.clone();
    b["version"] = json!("sched-2");
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = Store::open(dir.path(), 64 << 20).expect("store");
    let clock = Arc::new(TokioClock::starting_at(ts("2026-11-23T10:00:00Z")));
    let slow = Arc::new(Slow {
        running: Mutex::new(HashMap::new()),
        most: Mutex::new(0),
    });
    let limits = Limits {
        max_concurrent_per_device: 2,
        ..Limits::default()
    };
    let (mut scheduler, _snapshots) = Scheduler::new(
        Arc::new(common::plan(&a)),
        HashMap::new(),
        slow.clone(),
        opened.store.clone(),
        clock,
        &limits,
        Arc::new(Metrics::default()),
    );
    let (plans, plans_rx) = tokio::sync::watch::channel(Arc::new(common::plan(&a)));
    scheduler.follow(plans_rx);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(cancel.clone(), Duration::from_secs(30)));
    for i in 0..12 {
        tokio::time::sleep(Duration::from_secs(7)).await;
        // The same devices and services under a new version, while checks run.
        let mut next = if i % 2 == 0 { b.clone() } else { a.clone() };
        next["version"] = json!(format!("v{i}"));
        plans.send_replace(Arc::new(common::plan(&next)));
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    cancel.cancel();
    task.await.expect("scheduler ends");
    let most = *slow.most.lock().expect("lock");
    assert_eq!(most, 2, "checks at once on one device across re-plans");
}

fn types_of(records: &[Value], service: &str) -> Vec<String> {
    of_kind(records, "notification", service)
        .iter()
        .map(|n| n["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn r15_a_service_alternating_every_check_notifies_flapping_once_and_the_difference_after() {
    let d = doc(
        1,
        1,
        ping(60, json!({ "max_attempts": 1, "flap_detection": true })),
        json!([]),
    );
    let checks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = run(
        &d,
        "2026-11-23T10:00:00Z",
        Duration::from_secs(60 * 80),
        Box::new(move |_, _| {
            let n = checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // 40 checks alternating, then it settles critical.
            if n < 40 && n % 2 == 1 {
                Status::Ok
            } else {
                Status::Critical
            }
        }),
    )
    .await;
    assert_eq!(
        types_of(&r.records, "d0-s0"),
        [
            "problem",
            "recovery",
            "problem",
            "recovery",
            "problem",
            "recovery",
            "flapping_start",
            "flapping_end",
            "problem"
        ]
    );
    let results = of_kind(&r.records, "result", "d0-s0");
    let flapping: Vec<bool> = results.iter().map(|r| r["flapping"] == true).collect();
    assert_eq!(flapping.iter().position(|f| *f), Some(6), "the 7th result starts it");
    assert!(flapping[6..40].iter().all(|f| *f), "flapping while it alternates");
    assert!(!flapping[flapping.len() - 1], "settled");
}

#[tokio::test(start_paused = true)]
async fn r16_a_problem_is_renotified_every_renotify_s_inside_the_notification_period_only() {
    let business = json!([{ "id": "bh", "name": "BH", "weekly": [ { "days": ["mon","tue","wed","thu","fri"], "from": "09:00", "to": "17:00" } ] }]);
    let mut d = doc(
        1,
        1,
        ping(300, json!({ "max_attempts": 1, "renotify_s": 1800 })),
        business,
    );
    d["defaults"][2]["time_range"] = json!("bh");
    // Monday 15:00Z is 16:00 in Paris; the period closes at 16:00Z and opens again on
    // Tuesday at 08:00Z. The run ends at Tuesday 08:20Z.
    let r = run(
        &d,
        "2026-11-23T15:00:00Z",
        Duration::from_secs(17 * 3600 + 20 * 60),
        Box::new(|_, _| Status::Critical),
    )
    .await;
    let notes = of_kind(&r.records, "notification", "d0-s0");
    let repeats: Vec<i64> = notes.iter().map(|n| n["repeat"].as_i64().unwrap_or(-1)).collect();
    assert_eq!(repeats, [0, 1, 2], "{notes:?}");
    let first = ts(notes[0]["ts"].as_str().expect("ts"));
    let second = ts(notes[1]["ts"].as_str().expect("ts"));
    assert_eq!(second.as_second() - first.as_second(), 1800);
    assert!(second < ts("2026-11-23T16:00:00Z"));
    assert_eq!(notes[2]["ts"], "2026-11-24T08:00:00.000Z", "when the period opens");
    assert!(notes.iter().all(|n| n["type"] == "problem"));
}

/// One service on `d0` at 60 s, max_attempts 1, with `maintenances`.
fn maintained(maintenances: Value) -> Value {
    let mut d = doc(1, 1, ping(60, json!({ "max_attempts": 1 })), json!([]));
    d["maintenances"] = maintenances;
    d
}

/// Critical inside `[from, to)` seconds after the start, OK otherwise.
fn critical_between(start: &str, from: i64, to: i64) -> Outcome {
    let start = ts(start).as_second();
    Box::new(move |_, now| {
        let at = now.as_second() - start;
        if (from..to).contains(&at) {
            Status::Critical
        } else {
            Status::Ok
        }
    })
}

const FW: &str = r#"{ "id": "m-fw", "scope": { "device": "d0" },
    "start": "2026-11-23T10:10:00Z", "end": "2026-11-23T10:40:00Z", "comment": "firmware" }"#;

fn fw(extra: Value) -> Value {
    let mut m: Value = serde_json::from_str(FW).expect("json");
    if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    json!([m])
}

#[tokio::test(start_paused = true)]
async fn r13_problem_inside_maintenance_is_not_notified_and_still_hard_at_its_end_is_notified_once() {
    let r = run(
        &maintained(fw(json!({}))),
        "2026-11-23T10:00:00Z",
        Duration::from_secs(3600),
        critical_between("2026-11-23T10:00:00Z", 15 * 60, 7200),
    )
    .await;
    let notes = of_kind(&r.records, "notification", "d0-s0");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["type"], "problem");
    assert_eq!(notes[0]["ts"], "2026-11-23T10:40:00.000Z", "when the maintenance ends");
    for result in of_kind(&r.records, "result", "d0-s0") {
        let at = ts(result["ts"].as_str().expect("ts"));
        let inside = at >= ts("2026-11-23T10:10:00Z") && at < ts("2026-11-23T10:40:00Z");
        assert_eq!(result["in_maintenance"], inside, "{result}");
    }
}

#[tokio::test(start_paused = true)]
async fn r13_problem_that_recovered_inside_maintenance_is_never_notified() {
    let r = run(
        &maintained(fw(json!({}))),
        "2026-11-23T10:00:00Z",
        Duration::from_secs(3600),
        critical_between("2026-11-23T10:00:00Z", 15 * 60, 25 * 60),
    )
    .await;
    assert_eq!(types_of(&r.records, "d0-s0"), Vec::<String>::new());
    assert!(
        !of_kind(&r.records, "state_change", "d0-s0").is_empty(),
        "its state changed as usual"
    );
}

#[tokio::test(start_paused = true)]
async fn r13_notified_before_and_recovered_inside_gives_the_recovery_at_the_end() {
    let r = run(
        &maintained(fw(json!({}))),
        "2026-11-23T10:00:00Z",
        Duration::from_secs(3600),
        critical_between("2026-11-23T10:00:00Z", 0, 20 * 60),
    )
    .await;
    let notes = of_kind(&r.records, "notification", "d0-s0");
    let kinds: Vec<&Value> = notes.iter().map(|n| &n["type"]).collect();
    assert_eq!(kinds, [&json!("problem"), &json!("recovery")]);
    assert_eq!(notes[1]["ts"], "2026-11-23T10:40:00.000Z");
}

#[tokio::test(start_paused = true)]
async fn r13_collect_false_means_no_checks_while_covered() {
    let r = run(
        &maintained(fw(json!({ "collect": false }))),
        "2026-11-23T10:00:00Z",
        Duration::from_secs(3600),
        Box::new(|_, _| Status::Ok),
    )
    .await;
    let calls = r.script.calls_of("d0-s0");
    let inside = calls
        .iter()
        .filter(|t| **t >= ts("2026-11-23T10:10:00Z") && **t < ts("2026-11-23T10:40:00Z"))
        .count();
    assert_eq!(inside, 0, "{calls:?}");
    assert!(
        calls.iter().any(|t| *t >= ts("2026-11-23T10:40:00Z")),
        "checks resume at its end"
    );
    assert!(calls.iter().filter(|t| **t < ts("2026-11-23T10:10:00Z")).count() >= 9);
}

/// The last `day` availability record of `d0-s0`.
fn last_day(records: &[Value]) -> Value {
    of_kind(records, "availability", "d0-s0")
        .into_iter()
        .rfind(|a| a["window"] == "day")
        .cloned()
        .expect("a day availability record")
}

#[tokio::test(start_paused = true)]
async fn r13_availability_leaves_covered_time_out_unless_it_counts() {
    // Critical exactly while covered, then OK: an hour's availability record at about 11:00.
    let outcome = || critical_between("2026-11-23T10:00:00Z", 10 * 60, 40 * 60);
    let left_out = run(
        &maintained(fw(json!({}))),
        "2026-11-23T10:00:00Z",
        Duration::from_secs(65 * 60),
        outcome(),
    )
    .await;
    let day = last_day(&left_out.records);
    // The critical result just before the end holds until the next check (< 60 s).
    let down = day["unavailable_s"].as_i64().expect("seconds");
    assert!(down < 60, "{day}");
    let counted = run(
        &maintained(fw(json!({ "counts_in_availability": true }))),
        "2026-11-23T10:00:00Z",
        Duration::from_secs(65 * 60),
        outcome(),
    )
    .await;
    let day = last_day(&counted.records);
    let down = day["unavailable_s"].as_i64().expect("seconds");
    assert!((30 * 60..=30 * 60 + 60).contains(&down), "{day}");
}

#[tokio::test(start_paused = true)]
async fn r13_a_window_recorded_after_the_fact_changes_the_days_availability() {
    let start = "2026-11-23T10:00:00Z";
    let before = Arc::new(common::plan(&maintained(json!([]))));
    let after = Arc::new(common::plan(&maintained(fw(json!({})))));
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = Store::open(dir.path(), 64 << 20).expect("store");
    let clock = Arc::new(TokioClock::starting_at(ts(start)));
    let script = Script::new(clock.clone(), critical_between(start, 10 * 60, 40 * 60));
    let (mut scheduler, snapshots) = Scheduler::new(
        before.clone(),
        HashMap::new(),
        script,
        opened.store.clone(),
        clock,
        &Limits::default(),
        Arc::new(Metrics::default()),
    );
    let (tx, rx) = tokio::sync::watch::channel(before);
    scheduler.follow(rx);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(cancel.clone(), Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_secs(50 * 60)).await;
    let day_down = |live: &snbox::schedule::Snapshot| live.availability[0][0].unavailable_s;
    let live = snapshots.get(Detail::Availability).await.expect("snapshot");
    let down_before = day_down(&live);
    assert!(down_before >= 29 * 60, "the half hour counted as down: {down_before}");
    drop(live);
    // At 10:50 the central server records the 10:10–10:40 firmware upgrade after the fact.
    tx.send(after).expect("plan sent");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let live = snapshots.get(Detail::Availability).await.expect("snapshot");
    assert!(day_down(&live) <= 60, "left out now: {}", day_down(&live));
    drop(live);
    cancel.cancel();
    task.await.expect("scheduler ends");
    let records = opened.store.pending(0, 1_000_000).await.expect("records");
    let day = last_day(&records);
    assert!(
        day["unavailable_s"].as_i64().expect("s") <= 60,
        "sent again at once: {day}"
    );
    assert!(ts(day["ts"].as_str().expect("ts")) < ts("2026-11-23T10:51:00Z"));
    assert!(
        types_of(&records, "d0-s0")
            .iter()
            .all(|t| t == "problem" || t == "recovery"),
        "the past window changes availability only"
    );
}

fn ack(service: &str) -> Action {
    Action::Acknowledge {
        service: service.into(),
        author: "jo".into(),
        comment: "on it".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn r16_an_acknowledgement_stops_re_notification_and_recovery_clears_it() {
    let d = doc(
        1,
        1,
        ping(60, json!({ "max_attempts": 1, "renotify_s": 600 })),
        json!([]),
    );
    let start = ts("2026-11-23T10:00:00Z");
    let (r, answers) = run_acting(
        &d,
        "2026-11-23T10:00:00Z",
        Duration::from_secs(3 * 3600),
        // Critical for two hours, then OK, then critical again at 12:30.
        Box::new(move |_, now| match now.as_second() - start.as_second() {
            t if t < 7200 => Status::Critical,
            t if t < 9000 => Status::Ok,
            _ => Status::Critical,
        }),
        vec![(Duration::from_secs(15 * 60), ack("d0-s0"))],
    )
    .await;
    assert!(answers[0].ok, "{answers:?}");
    let notes = of_kind(&r.records, "notification", "d0-s0");
    let seen: Vec<(String, i64)> = notes
        .iter()
        .map(|n| {
            (
                n["type"].as_str().unwrap_or("").to_string(),
                n["repeat"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    // The first notice and one re-notification before the 10:15 acknowledgement; none after;
    // the recovery as usual; the next problem (12:30) is notified and re-notified again: the
    // acknowledgement ended with the recovery.
    let expected: Vec<(String, i64)> = [
        ("problem", 0),
        ("problem", 1),
        ("recovery", 0),
        ("problem", 0),
        ("problem", 1),
        ("problem", 2),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), *n))
    .collect();
    assert_eq!(seen, expected);
    let acks = of_kind(&r.records, "acknowledgement", "d0-s0");
    assert_eq!(acks.len(), 1);
    assert_eq!(
        (acks[0]["author"].clone(), acks[0]["source"].clone()),
        (json!("jo"), json!("local"))
    );
}

#[tokio::test(start_paused = true)]
async fn r16_an_acknowledgement_drops_a_held_problem_notification() {
    let business = json!([{ "id": "bh", "name": "BH", "weekly": [ { "days": ["mon","tue","wed","thu","fri"], "from": "09:00", "to": "17:00" } ] }]);
    let mut d = doc(1, 1, ping(300, json!({ "max_attempts": 1 })), business);
    d["defaults"][2]["time_range"] = json!("bh");
    // 07:00Z is 08:00 in Paris: the problem is held until 08:00Z; acknowledged at 07:30Z.
    let (r, answers) = run_acting(
        &d,
        "2026-11-23T07:00:00Z",
        Duration::from_secs(7200),
        Box::new(|_, _| Status::Critical),
        vec![(Duration::from_secs(1800), ack("d0-s0"))],
    )
    .await;
    assert!(answers[0].ok, "{answers:?}");
    assert_eq!(types_of(&r.records, "d0-s0"), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn s56_check_now_runs_at_once_and_keeps_the_service_on_its_grid() {
    let d = doc(1, 1, ping(300, json!({})), json!([]));
    let start = ts("2026-11-23T10:00:00Z");
    let (r, answers) = run_acting(
        &d,
        "2026-11-23T10:00:00Z",
        Duration::from_secs(1000),
        Box::new(|_, _| Status::Ok),
        vec![(
            Duration::from_secs(333),
            Action::CheckNow {
                service: "d0-s0".into(),
            },
        )],
    )
    .await;
    assert!(answers[0].ok, "{answers:?}");
    assert_eq!(answers[0].data.as_ref().map(|d| d["status"].clone()), Some(json!("ok")));
    let calls: Vec<i64> = r
        .script
        .calls_of("d0-s0")
        .iter()
        .map(|t| t.as_second() - start.as_second())
        .collect();
    assert!(calls.contains(&333), "{calls:?}");
    let on_grid: Vec<i64> = calls.iter().copied().filter(|t| *t != 333).collect();
    assert!(
        on_grid.windows(2).all(|w| w[1] - w[0] == 300),
        "the grid is kept: {calls:?}"
    );
    assert!(on_grid.len() >= 3, "{calls:?}");
    let unknown = run_acting(
        &d,
        "2026-11-23T10:00:00Z",
        Duration::from_secs(10),
        Box::new(|_, _| Status::Ok),
        vec![(Duration::from_secs(1), Action::CheckNow { service: "nope".into() })],
    )
    .await
    .1;
    assert!(!unknown[0].ok && unknown[0].message.contains("nope"), "{unknown:?}");
}

#[tokio::test(start_paused = true)]
async fn r13_a_maintenance_started_by_command_covers_at_once_and_ends_with_its_record() {
    let d = doc(1, 1, ping(60, json!({ "max_attempts": 1 })), json!([]));
    let maintenance: snbox::document::Maintenance = serde_json::from_value(json!({
        "id": "m-cmd", "scope": { "device": "d0" },
        "start": "2026-11-23T10:01:00Z", "end": "2026-11-23T10:11:00Z"
    }))
    .expect("maintenance");
    let (r, answers) = run_acting(
        &d,
        "2026-11-23T10:00:00Z",
        Duration::from_secs(20 * 60),
        critical_between("2026-11-23T10:00:00Z", 5 * 60, 7200),
        vec![(
            Duration::from_secs(60),
            Action::MaintenanceStart {
                maintenance,
                author: Some("jo".into()),
            },
        )],
    )
    .await;
    assert!(answers[0].ok, "{answers:?}");
    let notes = of_kind(&r.records, "notification", "d0-s0");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["ts"], "2026-11-23T10:11:00.000Z", "settled when it ends");
    let events: Vec<(Value, Value)> = r
        .records
        .iter()
        .filter(|x| x["kind"] == "maintenance")
        .map(|x| (x["event"].clone(), x["device"].clone()))
        .collect();
    assert_eq!(
        events,
        [(json!("created"), json!("d0")), (json!("end"), json!("d0"))],
        "created, then over"
    );
}

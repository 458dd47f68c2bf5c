//! `snbox run`: wires the daemon's tasks together and takes them down in order.
//!
//! Start-up validates the settings and the monitoring document before anything binds or
//! opens, so a bad input exits 2 with every error listed and changes nothing. Shutdown on
//! SIGTERM or SIGINT cancels one token: the scheduler stops starting checks, lets those in
//! flight finish (at most [`DRAIN`]), commits their records and every state; the status
//! endpoint stops last. The process exits 0 within ten seconds. While it runs, SIGHUP or a
//! change of the standalone file re-plans without a restart ([`source`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::central::identity::Identity;
use crate::central::trust::Trust;
use crate::central::{Client, Pace, SyncState, Syncer};
use crate::planning::{self, Rejected};
use crate::problem::Problems;
use crate::schedule::{Clock, Metrics, Probers, Saved, Scheduler};
use crate::settings::{Central, Mode, Settings};
use crate::source::{self, DocumentState};
use crate::status;
use crate::store::Store;

/// How long checks in flight may finish after a stop was asked.
pub const DRAIN: Duration = Duration::from_secs(8);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the monitoring document {path} is invalid:\n{problems}")]
    Document { path: PathBuf, problems: Problems },
    #[error(
        "this box is not paired: run `snbox pair --central URL --token TOKEN`, or give the settings a [standalone] document"
    )]
    Unpaired,
    #[error(transparent)]
    Identity(#[from] crate::central::identity::IdentityError),
    #[error(
        "the settings name the central server {settings} but the box is paired with {paired}: pair again with `snbox pair --force`, or fix [central] url"
    )]
    IdentityMismatch { settings: String, paired: String },
    #[error("cannot set up TLS to the central server: {0}")]
    Tls(String),
    #[error("{}: [status]: {why}", settings.display())]
    StatusTls { settings: PathBuf, why: String },
    #[error("{}: [notify]: {why}", settings.display())]
    Notify { settings: PathBuf, why: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr} for the status endpoint: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("{}: {problem}", settings.display())]
    Settings {
        settings: PathBuf,
        problem: crate::problem::Problem,
    },
    #[error("stopped with {records} records the store could not commit: they are lost")]
    Lost { records: u64 },
    #[error("the store's writer did not finish in time: records queued for it may be lost")]
    WriterStuck,
}

impl AppError {
    /// Bad input (exit 2) rather than a failure of the machine (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            AppError::Document { .. }
                | AppError::Unpaired
                | AppError::IdentityMismatch { .. }
                | AppError::Settings { .. }
                | AppError::Notify { .. }
                | AppError::StatusTls { .. }
        )
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(settings: Settings, clock: Arc<dyn Clock>) -> Result<(), AppError> {
    let cancel = CancellationToken::new();
    let signals = signals(cancel.clone())?;
    let result = run_until(settings, clock, cancel).await;
    signals.abort();
    result
}

/// Runs the daemon until `cancel` (the tests' way in).
pub async fn run_until(settings: Settings, clock: Arc<dyn Clock>, cancel: CancellationToken) -> Result<(), AppError> {
    let started = Instant::now();
    use crate::settings::StateDirProblem;
    if let Some(StateDirProblem::Unusable(problem) | StateDirProblem::NotWritableHere(problem)) =
        crate::settings::state_dir_problem(&settings.state_dir)
    {
        return Err(AppError::Settings {
            settings: settings.path.clone(),
            problem,
        });
    }
    for w in &settings.warnings {
        tracing::warn!(settings = %settings.path.display(), "{w}");
    }
    let documents = documents_of(&settings)?;
    let plan = match &documents {
        Documents::Standalone(document) => {
            planning::plan_from_file(document, &settings.timezone, settings.limits.max_document_bytes).map_err(
                |Rejected { problems, .. }| AppError::Document {
                    path: document.clone(),
                    problems,
                },
            )?
        }
        Documents::Central(c) => last_good_plan(&settings, &c.1)?,
    };
    for (field, node) in tokens_outside(&settings.status.tokens, &plan) {
        tracing::warn!(
            field,
            node,
            "this status token's node is not in the document: it sees nothing (403)"
        );
    }
    let plan = Arc::new(plan);
    let channels = Arc::new(
        crate::notify::Channels::new(&settings.notify).map_err(|why| AppError::Notify {
            settings: settings.path.clone(),
            why,
        })?,
    );
    let mut opened = Store::open(&settings.state_dir, settings.buffer.max_bytes)?;
    let saved: HashMap<String, Saved> = opened
        .states
        .into_iter()
        .filter_map(|(id, json)| serde_json::from_str(&json).ok().map(|s| (id, s)))
        .collect();
    let status_tls = status::tls::ServerTls::new(
        &settings.status.tls,
        &settings.state_dir,
        status::tls::names_for(settings.status.listen),
    )
    .map_err(|why| AppError::StatusTls {
        settings: settings.path.clone(),
        why,
    })?
    .map(Arc::new);
    if let Some(view) = status_tls.as_ref().and_then(|t| t.view()) {
        tracing::info!(
            listen = %settings.status.listen,
            fingerprint = %view.fingerprint,
            cert = %view.cert_file.display(),
            "the status endpoint speaks HTTPS; compare this fingerprint with the browser's"
        );
    }
    let listener = tokio::net::TcpListener::bind(settings.status.listen)
        .await
        .map_err(|source| AppError::Listen {
            addr: settings.status.listen,
            source,
        })?;
    let metrics = Arc::new(Metrics::default());
    let probers = Arc::new(Probers::for_daemon(&settings, opened.store.clone()));
    let (scheduler, snapshots) = Scheduler::new(
        plan.clone(),
        saved,
        probers.clone(),
        opened.store.clone(),
        clock.clone(),
        &settings.limits,
        metrics.clone(),
    );
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        document = %plan.version,
        box_id = %plan.box_id,
        devices = plan.accepted_devices().count(),
        services = plan.accepted_services().count(),
        listen = %settings.status.listen,
        state_dir = %settings.state_dir.display(),
        "snbox started"
    );
    crate::systemd::ready(plan.accepted_services().count());
    let (plans, plans_rx) = tokio::sync::watch::channel(plan.clone());
    let (document_state, document_rx) = tokio::sync::watch::channel(DocumentState::new(documents.describe(), &plan));
    let mut scheduler = scheduler;
    if let Some(alive_until) = opened.alive_until {
        scheduler.resume_availability(alive_until);
    }
    scheduler.follow(plans_rx);
    scheduler.keep_maintenances(&opened.kept.maintenances);
    let actions = scheduler.actions();
    let trap_stats = Arc::new(crate::traps::TrapStats::default());
    // R18: each company's day counted and sent after its local midnight.
    let inventory = tokio::spawn(crate::inventory::run(
        plans.subscribe(),
        opened.store.clone(),
        clock,
        cancel.child_token(),
    ));
    let traps = tokio::spawn(crate::traps::run(
        settings.traps_listen,
        settings.state_dir.clone(),
        plans.subscribe(),
        scheduler.passive(),
        trap_stats.clone(),
        cancel.child_token(),
    ));
    // The technician's command line; the box monitors without it if the socket cannot be made.
    let control = match crate::control::bind(&settings.control_socket) {
        Ok(listener) => {
            tracing::info!(socket = %settings.control_socket.display(), "control socket ready");
            Some(tokio::spawn(crate::control::serve(
                listener,
                settings.control_socket.clone(),
                actions.clone(),
                cancel.child_token(),
            )))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no control socket: `snbox maintenance|ack|check` cannot reach this daemon");
            None
        }
    };
    let notify_state = Arc::new(crate::notify::NotifyState::default());
    let notifier_plans = plans.subscribe();
    // Standalone: records and finished deliveries; paired: finished deliveries only (the
    // central server acknowledges records).
    let (keep_days, expire_records) = match &settings.mode {
        Mode::Standalone { keep_days, .. } => (*keep_days, true),
        _ => (PAIRED_DELIVERIES_KEEP_DAYS, false),
    };
    let (follower, sync) = match documents {
        Documents::Standalone(document) => (
            tokio::spawn(source::follow_file(
                document,
                settings.timezone.clone(),
                settings.limits.max_document_bytes,
                plans,
                document_state,
                cancel.child_token(),
            )),
            None,
        ),
        Documents::Central(c) => {
            let (central, identity) = *c;
            let trust = match (&identity.pin, &central.ca_file) {
                (Some(pin), _) => Trust::Pinned(pin.sha256.clone()),
                (None, Some(ca)) => Trust::CaFile(ca.clone()),
                (None, None) => Trust::System,
            };
            let client =
                Client::new(&identity.central_url, &trust, Some(identity.credential.clone())).map_err(AppError::Tls)?;
            let state = Arc::new(SyncState::new(identity.central_url.as_str(), &identity.box_id));
            probers.boxes.set_uplink(state.clone());
            let syncer = Syncer {
                client: Arc::new(client),
                identity,
                store: opened.store.clone(),
                state: state.clone(),
                pace: Pace {
                    config_poll: Duration::from_secs(u64::from(central.config_poll_s)),
                    heartbeat: Duration::from_secs(u64::from(central.heartbeat_s)),
                    retry_min: Duration::from_millis(u64::from(central.retry_min_ms)),
                    retry_max: Duration::from_secs(u64::from(central.retry_max_s)),
                    replay_per_s: Some(central.replay_records_per_s).filter(|r| *r > 0),
                    timeout: Duration::from_secs(u64::from(central.timeout_s)),
                },
                plans,
                document: document_state,
                zone: settings.timezone.clone(),
                state_dir: settings.state_dir.clone(),
                metrics: metrics.clone(),
                started,
                max_document_bytes: settings.limits.max_document_bytes,
                notify: notify_state.clone(),
                traps: trap_stats.clone(),
                commands: Some(crate::central::commands::Commands {
                    actions: actions.clone(),
                    census: settings.census,
                    interrupted: std::mem::take(&mut opened.kept.interrupted),
                    last: opened.kept.last_command.take(),
                }),
            };
            (tokio::spawn(syncer.run(cancel.child_token())), Some(state))
        }
    };
    // The scheduler holds the probers from here; this handle would keep the box kind's store
    // handle, and so the store's writer, alive past the shutdown.
    drop(probers);
    let notifier = crate::notify::Notifier {
        store: opened.store.clone(),
        settings: settings.notify.clone(),
        role: match &sync {
            Some(state) => crate::notify::Role::Paired(state.clone()),
            None => crate::notify::Role::Standalone,
        },
        plans: notifier_plans,
        channels,
        state: notify_state.clone(),
    };
    let notifier = tokio::spawn(notifier.run(cancel.child_token()));
    let history_hours = if expire_records {
        (keep_days * 24).max(settings.status.history_hours)
    } else {
        settings.status.history_hours
    };
    let retention = tokio::spawn(keep_for(
        opened.store.clone(),
        Keep {
            days: keep_days,
            records: expire_records,
            history_hours,
        },
        cancel.child_token(),
    ));
    let snapshots_for_watchdog = snapshots.clone();
    let shared = status::Shared {
        document: document_rx,
        snapshots,
        store: opened.store.clone(),
        metrics,
        started,
        tokens: Arc::new(settings.status.tokens.clone()),
        no_token_from: Arc::new(settings.status.no_token_from.clone()),
        mode: if sync.is_some() { "central" } else { "standalone" },
        sync,
        notify: notify_state,
        tls: status_tls.clone(),
        listen: settings.status.listen,
        sessions: Default::default(),
        history_hours: settings.status.history_hours,
        traps: trap_stats,
    };
    let renewal = status_tls.map(|tls| tokio::spawn(status::renew_daily(tls, cancel.child_token())));
    let stop_status = CancellationToken::new();
    let server = {
        let stop = stop_status.clone();
        tokio::spawn(async move { status::serve(listener, shared, async move { stop.cancelled().await }).await })
    };
    let watchdog = tokio::spawn(crate::systemd::watchdog(
        snapshots_for_watchdog,
        opened.store.clone(),
        cancel.child_token(),
    ));
    scheduler.run(cancel.clone(), DRAIN).await;
    crate::systemd::stopping();
    watchdog.abort();
    // The syncer ends its exchange in flight (each has a deadline) before the store closes.
    if tokio::time::timeout(Duration::from_secs(2), follower).await.is_err() {
        tracing::warn!("the document follower or syncer did not stop in time");
    }
    // Attempts in flight finish and are recorded (the notifier waits at most its own drain).
    if tokio::time::timeout(crate::notify::DRAIN + Duration::from_millis(500), notifier)
        .await
        .is_err()
    {
        tracing::warn!("the notifier did not stop in time");
    }
    retention.abort();
    traps.abort();
    // A record being made is committed (or was not sent: the day is made again next start).
    if tokio::time::timeout(Duration::from_secs(2), inventory).await.is_err() {
        tracing::warn!("the inventory did not stop in time");
    }
    if let Some(control) = control
        && tokio::time::timeout(Duration::from_secs(1), control).await.is_err()
    {
        tracing::warn!("the control socket did not close in time");
    }
    if let Some(renewal) = renewal {
        renewal.abort();
    }
    stop_status.cancel();
    match tokio::time::timeout(Duration::from_secs(1), server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the status endpoint stopped with an error"),
        Err(_) => tracing::warn!("the status endpoint did not stop in time"),
        _ => {}
    }
    drop(opened.store);
    // The writer thread ends once every handle is gone; it has committed everything queued,
    // or says how many records it could not.
    let writer = opened.writer;
    let lost = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::task::spawn_blocking(move || writer.join()),
    )
    .await;
    tracing::info!(uptime_s = started.elapsed().as_secs(), "snbox stopped");
    match lost {
        Ok(Ok(Ok(0))) => Ok(()),
        Ok(Ok(Ok(records))) => Err(AppError::Lost { records }),
        _ => Err(AppError::WriterStuck),
    }
}

/// How long a paired box keeps its finished deliveries (the records went to the central).
const PAIRED_DELIVERIES_KEEP_DAYS: u32 = 30;

/// What the store keeps, and how long.
struct Keep {
    /// Finished deliveries, and with `records` every record, this many days.
    days: u32,
    /// Standalone: nothing acknowledges records, so they go by age.
    records: bool,
    /// State changes for `/history`, this many hours.
    history_hours: u32,
}

/// Retention, each hour and at start.
async fn keep_for(store: Store, keep: Keep, cancel: CancellationToken) {
    let (keep_days, records) = (keep.days, keep.records);
    loop {
        let now = jiff::Timestamp::now();
        let history = now - jiff::SignedDuration::from_hours(i64::from(keep.history_hours));
        if let Err(e) = store.prune_history(history).await {
            tracing::warn!(error = %e, "old state changes could not be deleted");
        }
        let before = now - jiff::SignedDuration::from_hours(24 * i64::from(keep_days));
        match store.expire(before, records).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, keep_days, "records older than standalone.keep_days deleted"),
            Err(e) => tracing::warn!(error = %e, "the standalone retention could not delete old records"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// Status tokens scoped to a node `plan` does not have: `(status.tokens[i].node, node)`.
pub fn tokens_outside<'a>(tokens: &'a [crate::settings::Token], plan: &crate::rules::Plan) -> Vec<(String, &'a str)> {
    tokens
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((i, t.node.as_deref()?)))
        .filter(|(_, node)| plan.tree.get(node).is_none())
        .map(|(i, node)| (format!("status.tokens[{i}].node"), node))
        .collect()
}

/// Where this run takes its documents from.
enum Documents {
    Standalone(PathBuf),
    Central(Box<(Central, Identity)>),
}

impl Documents {
    fn describe(&self) -> String {
        match self {
            Documents::Standalone(path) => path.display().to_string(),
            Documents::Central(c) => format!("central {}", c.1.central_url),
        }
    }
}

/// Standalone with a document; central once paired (settings without either section use the
/// identity's server with default periods).
fn documents_of(settings: &Settings) -> Result<Documents, AppError> {
    let identity = match &settings.mode {
        Mode::Standalone { document, .. } => return Ok(Documents::Standalone(document.clone())),
        _ => Identity::load(&settings.state_dir)?.ok_or(AppError::Unpaired)?,
    };
    let central = match &settings.mode {
        Mode::Central(c) => {
            if c.url.as_str().trim_end_matches('/') != identity.central_url.as_str().trim_end_matches('/') {
                return Err(AppError::IdentityMismatch {
                    settings: c.url.to_string(),
                    paired: identity.central_url.to_string(),
                });
            }
            c.clone()
        }
        _ => Central::defaults(identity.central_url.clone(), identity.config_poll_s),
    };
    Ok(Documents::Central(Box::new((central, identity))))
}

/// The last good document kept in the state directory, or an empty plan until the first pull.
fn last_good_plan(settings: &Settings, identity: &Identity) -> Result<crate::rules::Plan, AppError> {
    let path = settings.state_dir.join(crate::central::sync::DOCUMENT_FILE);
    if path.exists() {
        match planning::plan_from_file(&path, &settings.timezone, settings.limits.max_document_bytes) {
            Ok(plan) => return Ok(plan),
            Err(Rejected { problems, .. }) => {
                tracing::error!(path = %path.display(), "the last good document no longer plans; polling nothing until the next pull:\n{problems}")
            }
        }
    }
    let empty = serde_json::json!({
        "version": "",
        "box": { "id": identity.box_id, "node": identity.node },
        "tree": [ { "id": identity.node, "kind": "partner", "name": identity.node } ],
    });
    planning::plan_from_str(&empty.to_string(), crate::document::Format::Json, &settings.timezone).map_err(
        |Rejected { problems, .. }| AppError::Document {
            path: Identity::path(&settings.state_dir),
            problems,
        },
    )
}

fn signals(cancel: CancellationToken) -> Result<tokio::task::JoinHandle<()>, AppError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        cancel.cancel();
    }))
}

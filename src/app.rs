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

use crate::planning::{self, Rejected};
use crate::problem::Problems;
use crate::schedule::{Clock, Metrics, Probers, Saved, Scheduler};
use crate::settings::{Settings, Source};
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
    #[error("central mode needs the sync module, which is not built yet; use [standalone] for now")]
    CentralNotBuilt,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr} for the status endpoint: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
}

impl AppError {
    /// Bad input (exit 2) rather than a failure of the machine (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, AppError::Document { .. } | AppError::Unpaired)
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
    let (document, mode) = match &settings.source {
        Source::Standalone { document } => (document.clone(), "standalone"),
        Source::Central(_) => return Err(AppError::CentralNotBuilt),
        Source::Unpaired => return Err(AppError::Unpaired),
    };
    let plan = planning::plan_from_file(&document, &settings.timezone).map_err(|Rejected { problems, .. }| {
        AppError::Document {
            path: document.clone(),
            problems,
        }
    })?;
    let plan = Arc::new(plan);
    let opened = Store::open(&settings.state_dir, settings.buffer.max_bytes)?;
    let saved: HashMap<String, Saved> = opened
        .states
        .into_iter()
        .filter_map(|(id, json)| serde_json::from_str(&json).ok().map(|s| (id, s)))
        .collect();
    let listener = tokio::net::TcpListener::bind(settings.status.listen)
        .await
        .map_err(|source| AppError::Listen {
            addr: settings.status.listen,
            source,
        })?;
    let metrics = Arc::new(Metrics::default());
    let probers = Arc::new(Probers::new(&settings.limits));
    let (scheduler, snapshots) = Scheduler::new(
        plan.clone(),
        saved,
        probers,
        opened.store.clone(),
        clock,
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
    let (plans, plans_rx) = tokio::sync::watch::channel(plan.clone());
    let (document_state, document_rx) =
        tokio::sync::watch::channel(DocumentState::new(document.display().to_string(), &plan));
    let mut scheduler = scheduler;
    scheduler.follow(plans_rx);
    let follower = tokio::spawn(source::follow_file(
        document.clone(),
        settings.timezone.clone(),
        plans,
        document_state,
        cancel.child_token(),
    ));
    let shared = status::Shared {
        document: document_rx,
        snapshots,
        store: opened.store.clone(),
        metrics,
        started,
        tokens: Arc::new(settings.status.tokens.clone()),
        no_token_from: Arc::new(settings.status.no_token_from.clone()),
        mode,
    };
    let stop_status = CancellationToken::new();
    let server = {
        let stop = stop_status.clone();
        tokio::spawn(async move { status::serve(listener, shared, async move { stop.cancelled().await }).await })
    };
    scheduler.run(cancel.clone(), DRAIN).await;
    follower.abort();
    stop_status.cancel();
    match tokio::time::timeout(Duration::from_secs(1), server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the status endpoint stopped with an error"),
        Err(_) => tracing::warn!("the status endpoint did not stop in time"),
        _ => {}
    }
    drop(opened.store);
    // The writer thread ends once every handle is gone; it has committed everything queued.
    let writer = opened.writer;
    if tokio::time::timeout(
        Duration::from_secs(2),
        tokio::task::spawn_blocking(move || writer.join()),
    )
    .await
    .is_err()
    {
        tracing::warn!("the store's writer did not finish in time");
    }
    tracing::info!(uptime_s = started.elapsed().as_secs(), "snbox stopped");
    Ok(())
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

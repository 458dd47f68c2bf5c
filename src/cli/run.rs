//! `snbox run` (the daemon) and `snbox status` (its status endpoint, for a person).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::bad;
use snbox::app;
use snbox::schedule::SystemClock;
use snbox::settings::{self, Settings};

pub(super) fn settings_from(config: Option<PathBuf>) -> anyhow::Result<Settings> {
    let path = config.unwrap_or_else(|| PathBuf::from(settings::DEFAULT_PATH));
    Settings::load(&path).map_err(|problems| {
        for p in &problems.0 {
            eprintln!("{}: {p}", path.display());
        }
        bad(format!("{}: invalid settings", path.display()))
    })
}

/// Logs to the journal, with structured fields, when stderr is the journal's stream; to
/// stderr otherwise (colour only on a terminal). `SNBOX_LOG` overrides the settings' level.
/// tracing-journald rather than systemd-journal-logger: the latter is a `log` backend, and
/// through tracing's `log` bridge fields were flattened into the message and spans lost.
fn init_logging(level: &str) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = std::env::var("SNBOX_LOG").unwrap_or_else(|_| format!("snbox={level},warn"));
    let filter =
        tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journal = if snbox::systemd::stderr_is_journal() {
        match tracing_journald::layer() {
            Ok(layer) => Some(layer.with_syslog_identifier("snbox".into())),
            Err(e) => {
                // No journald socket (a container, qemu): the stream still reaches a reader.
                eprintln!("snbox: the journal is not reachable ({e}); logging to stderr");
                None
            }
        }
    } else {
        None
    };
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match journal {
        Some(layer) => registry.with(layer).try_init(),
        None => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let stderr = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi);
            registry.with(stderr).try_init()
        }
    };
}

pub fn run(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let settings = settings_from(config)?;
    init_logging(&settings.log.level);
    // One thread runs every task: checks wait on the network, and handing wake-ups between
    // worker threads cost a third of the CPU (1,000 ICMP services: 0.51 ms per check against
    // 0.74 with two workers). CPU-heavy work (planning, status reports) runs on the blocking
    // pool, SQLite on its own thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("snbox")
        .build()?;
    match runtime.block_on(app::run(settings, Arc::new(SystemClock))) {
        Ok(()) => {
            runtime.shutdown_timeout(Duration::from_secs(1));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is_bad_input() => Err(bad(e.to_string())),
        Err(e) => Err(anyhow::Error::new(e)),
    }
}

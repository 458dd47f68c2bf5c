//! `snbox run` (the daemon) and `snbox status` (its status endpoint, for a person).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::{OutputFormat, bad};
use snbox::app;
use snbox::schedule::SystemClock;
use snbox::settings::{self, Settings};

fn settings_from(config: Option<PathBuf>) -> anyhow::Result<Settings> {
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
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

pub fn status(config: Option<PathBuf>, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let settings = settings_from(config)?;
    let addr = local_address(settings.status.listen);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let text = runtime
        .block_on(async {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()?;
            client
                .get(format!("http://{addr}/status"))
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        })
        .with_context(|| format!("no answer from the status endpoint at {addr}: is `snbox run` running?"))?;
    let body: serde_json::Value =
        serde_json::from_str(&text).context("the status endpoint answered something that is not JSON")?;
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default()),
        OutputFormat::Text => print_status(&body),
    }
    Ok(ExitCode::SUCCESS)
}

/// Where to reach a listener from this machine: a wildcard address means loopback.
fn local_address(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port()),
        _ => listen,
    }
}

fn print_status(s: &serde_json::Value) {
    println!(
        "snbox {}, up {} s, {} mode",
        s["version"].as_str().unwrap_or("?"),
        s["uptime_s"],
        s["mode"].as_str().unwrap_or("?")
    );
    println!(
        "box {} at node {}",
        s["box"]["id"].as_str().unwrap_or("?"),
        s["box"]["node"].as_str().unwrap_or("?")
    );
    println!("document {}", s["config"]["version"].as_str().unwrap_or("?"));
    println!(
        "devices: {} accepted, {} rejected",
        s["devices"]["accepted"], s["devices"]["rejected"]
    );
    let states = s["services"]["states"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", "));
    println!(
        "services: {} polled ({})",
        s["services"]["polled"],
        states.unwrap_or_default()
    );
    let b = &s["buffer"];
    println!(
        "buffer: {} records, {} bytes, {} dropped, oldest {}{}",
        b["records"],
        b["bytes"],
        b["dropped"],
        b["oldest_ts"].as_str().unwrap_or("-"),
        if b["disk_full"] == true {
            " — DISK FULL: the oldest results are being dropped"
        } else {
            ""
        }
    );
    println!(
        "scheduling lateness: p50 ≤ {} ms, p99 ≤ {} ms",
        s["scheduling"]["lateness_p50_ms"], s["scheduling"]["lateness_p99_ms"]
    );
    if let Some(error) = s["config"]["last_error"].as_str() {
        println!("document refused: {error}");
    }
    let c = &s["central"];
    if c.is_object() {
        println!(
            "central {}: {}, last sync {}, {} records sent, {} sync errors",
            c["url"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?"),
            c["last_sync"].as_str().unwrap_or("never"),
            c["records_sent"],
            c["sync_errors"]
        );
        for key in ["last_error", "clock_warning"] {
            if let Some(text) = c[key].as_str() {
                println!("  {}: {text}", key.replace('_', " "));
            }
        }
    }
}

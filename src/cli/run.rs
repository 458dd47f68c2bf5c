//! `snbox run` (the daemon) and `snbox status` (its status endpoint, for a person).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;

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

/// How `snbox status` trusts an HTTPS status endpoint.
pub struct Pin {
    pub fingerprint: Option<String>,
    pub insecure: bool,
}

/// The client for the endpoint, and its scheme: over HTTPS, pinned to the fingerprint given,
/// or to the certificate the settings name (the box's own file).
fn status_client(settings: &settings::Settings, pin: &Pin) -> anyhow::Result<(reqwest::Client, &'static str)> {
    let builder = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5));
    let cert_file = match &settings.status.tls {
        settings::StatusTls::Plain => return Ok((builder.build()?, "http")),
        settings::StatusTls::Files { cert, .. } => cert.clone(),
        settings::StatusTls::Generated => settings.state_dir.join(snbox::status::tls::CERT_FILE),
    };
    if pin.insecure {
        eprintln!("snbox: WARNING: --insecure: any certificate is accepted, and the token could be read on the way");
        return Ok((builder.danger_accept_invalid_certs(true).build()?, "https"));
    }
    let fingerprint = match &pin.fingerprint {
        Some(text) => snbox::central::trust::parse_fingerprint(text).map_err(bad)?,
        None => {
            let der = rustls::pki_types::CertificateDer::from_pem_file(&cert_file).map_err(|e| {
                bad(format!(
                    "the status endpoint speaks HTTPS and its certificate {} cannot be read here ({e}): \
                     give --fingerprint sha256:… (the daemon logs it at start), or --insecure",
                    cert_file.display()
                ))
            })?;
            snbox::tls::fingerprint(&der)
        }
    };
    let tls =
        snbox::central::trust::client_config(&snbox::central::trust::Trust::Pinned(fingerprint), Default::default())
            .map_err(anyhow::Error::msg)?;
    Ok((builder.use_preconfigured_tls(tls).build()?, "https"))
}

pub fn status(
    config: Option<PathBuf>,
    format: OutputFormat,
    token: Option<String>,
    pin: Pin,
) -> anyhow::Result<ExitCode> {
    let settings = settings_from(config)?;
    let addr = settings::local_address(settings.status.listen);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (client, scheme) = status_client(&settings, &pin)?;
    let (code, text) = runtime
        .block_on(async {
            let mut request = client.get(format!("{scheme}://{addr}/status"));
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let answer = request.send().await?;
            let code = answer.status();
            Ok::<_, reqwest::Error>((code, answer.text().await?))
        })
        .with_context(|| format!("no answer from the status endpoint at {addr}: is `snbox run` running?"))?;
    if !code.is_success() {
        let hint = match (code.as_u16(), &token) {
            (401, None) => " (give a token of status.tokens with --token or SNBOX_STATUS_TOKEN)",
            (401, Some(_)) => " (the token is not one of status.tokens)",
            _ => "",
        };
        anyhow::bail!("the status endpoint at {addr} answered {code}: {}{hint}", text.trim());
    }
    let body: serde_json::Value =
        serde_json::from_str(&text).context("the status endpoint answered something that is not JSON")?;
    match format {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&body).unwrap_or_default()),
        OutputFormat::Text => print_status(&body)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(s: &serde_json::Value) -> anyhow::Result<()> {
    outln!(
        "snbox {}, up {} s, {} mode",
        s["version"].as_str().unwrap_or("?"),
        s["uptime_s"],
        s["mode"].as_str().unwrap_or("?")
    );
    outln!(
        "box {} at node {}",
        s["box"]["id"].as_str().unwrap_or("?"),
        s["box"]["node"].as_str().unwrap_or("?")
    );
    outln!("document {}", s["config"]["version"].as_str().unwrap_or("?"));
    outln!(
        "devices: {} accepted, {} rejected",
        s["devices"]["accepted"],
        s["devices"]["rejected"]
    );
    let states = s["services"]["states"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", "));
    outln!(
        "services: {} polled ({})",
        s["services"]["polled"],
        states.unwrap_or_default()
    );
    let b = &s["buffer"];
    outln!(
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
    if b["healthy"] == false {
        outln!(
            "  STORE CANNOT COMMIT for {} s ({} records kept in memory): {}",
            b["failing_s"],
            b["unsaved"],
            b["commit_error"].as_str().unwrap_or("?")
        );
    }
    let problems = s["services"]["problems"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !problems.is_empty() {
        outln!("not ok:");
        for p in problems {
            outln!(
                "  {} on {}: {} {} — {}",
                p["service"].as_str().unwrap_or("?"),
                p["device"].as_str().unwrap_or("?"),
                p["state"].as_str().unwrap_or("?"),
                p["state_type"].as_str().unwrap_or("?"),
                p["output"].as_str().unwrap_or("")
            );
        }
        let more = s["services"]["problems_more"].as_u64().unwrap_or(0);
        if more > 0 {
            outln!("  … and {more} more (snbox status --format json, or /services)");
        }
    }
    outln!(
        "scheduling lateness: p50 ≤ {} ms, p99 ≤ {} ms",
        s["scheduling"]["lateness_p50_ms"],
        s["scheduling"]["lateness_p99_ms"]
    );
    if let Some(error) = s["config"]["last_error"].as_str() {
        outln!("document refused: {error}");
    }
    let c = &s["central"];
    if c.is_object() {
        outln!(
            "central {}: {}, last sync {}, {} records sent, {} sync errors",
            c["url"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?"),
            c["last_sync"].as_str().unwrap_or("never"),
            c["records_sent"],
            c["sync_errors"]
        );
        for key in ["last_error", "clock_warning"] {
            if let Some(text) = c[key].as_str() {
                outln!("  {}: {text}", key.replace('_', " "));
            }
        }
    }
    print_endpoint(&s["endpoint"])?;
    print_notify(&s["notify"])
}

/// The endpoint's scheme and, over HTTPS, the certificate's fingerprint to compare.
fn print_endpoint(e: &serde_json::Value) -> anyhow::Result<()> {
    if e["https"] == true {
        outln!(
            "status endpoint: https on {}, certificate {} ({}, until {})",
            e["listen"].as_str().unwrap_or("?"),
            e["fingerprint"].as_str().unwrap_or("?"),
            if e["generated"] == true {
                "made by the box"
            } else {
                "the operator's"
            },
            e["not_after"].as_str().unwrap_or("?")
        );
    } else if e.is_object() {
        outln!("status endpoint: http on {}", e["listen"].as_str().unwrap_or("?"));
    }
    Ok(())
}

/// R17: the channels the box delivers through, and how its deliveries stand.
fn print_notify(n: &serde_json::Value) -> anyhow::Result<()> {
    let channels = n["channels"].as_array().map(Vec::as_slice).unwrap_or_default();
    if channels.is_empty() {
        outln!("notify: no channel ([notify] has neither smtp nor webhook)");
        return Ok(());
    }
    let names: Vec<String> = channels
        .iter()
        .map(|c| match c["channel"].as_str() {
            Some("smtp") => format!(
                "smtp {} ({})",
                c["server"].as_str().unwrap_or("?"),
                c["security"].as_str().unwrap_or("?")
            ),
            _ => format!("webhook {}", c["url"].as_str().unwrap_or("?")),
        })
        .collect();
    let who = match (n["delivering"].as_bool(), n["central_unreachable_since"].as_str()) {
        (Some(true), Some(since)) => format!("the box delivers: the central server is out of reach since {since}"),
        (Some(true), None) => "the box delivers".to_string(),
        _ => "the central server delivers".to_string(),
    };
    outln!("notify: {}; {who}", names.join(", "));
    outln!(
        "  deliveries: {} pending, {} delivered, {} failed",
        n["pending"],
        n["delivered"],
        n["failed"]
    );
    if let Some(error) = n["last_error"].as_str() {
        outln!("  last error ({}): {error}", n["last_error_at"].as_str().unwrap_or("?"));
    }
    Ok(())
}

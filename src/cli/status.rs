//! `snbox status`: the running daemon's `/status` (and `/devices`, for the text's grouping),
//! over HTTPS pinned to the box's certificate when the endpoint speaks it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use serde_json::Value;

use super::run::settings_from;
use super::{OutputFormat, bad};
use snbox::settings;

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
    let get = |path: &str| {
        let mut request = client.get(format!("{scheme}://{addr}{path}"));
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        runtime.block_on(async {
            let answer = request.send().await?;
            let code = answer.status();
            Ok::<_, reqwest::Error>((code, answer.text().await?))
        })
    };
    let (code, text) = get("/status")
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
        OutputFormat::Text => {
            // The grouping needs every device; without it the summary still prints.
            let devices = get("/devices")
                .ok()
                .filter(|(code, _)| code.is_success())
                .and_then(|(_, text)| serde_json::from_str::<Value>(&text).ok());
            print_status(&body, devices.as_ref())?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Companies → sites → devices with their counts per state, as the page groups them; a
/// device's services are named when one is not OK.
fn print_groups(devices: &Value) -> anyhow::Result<()> {
    type Site<'a> = BTreeMap<&'a str, Vec<&'a Value>>;
    let mut tree: BTreeMap<&str, BTreeMap<&str, Site<'_>>> = BTreeMap::new();
    for d in devices.as_array().map(Vec::as_slice).unwrap_or_default() {
        if d["accepted"] != true {
            continue;
        }
        let live = &d["live"];
        let company = live["company_name"].as_str().unwrap_or("(no company)");
        let site = live["node_name"].as_str().unwrap_or("?");
        let name = d["id"].as_str().unwrap_or("?");
        tree.entry(company)
            .or_default()
            .entry(site)
            .or_default()
            .entry(name)
            .or_default()
            .extend(live["services"].as_array().map(Vec::as_slice).unwrap_or_default());
    }
    let counts = |services: &mut dyn Iterator<Item = &&Value>| {
        let mut by: BTreeMap<&str, u32> = BTreeMap::new();
        for s in services {
            *by.entry(s["state"].as_str().unwrap_or("?")).or_default() += 1;
        }
        by.iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (company, sites) in &tree {
        let all = &mut sites.values().flat_map(|s| s.values()).flatten();
        outln!("{company}: {}", counts(all));
        for (site, devices) in sites {
            outln!("  {site}: {}", counts(&mut devices.values().flatten()));
            for (device, services) in devices {
                let bad: Vec<String> = services
                    .iter()
                    .filter(|s| !matches!(s["state"].as_str(), Some("ok") | Some("pending")))
                    .map(|s| {
                        format!(
                            "{} {}",
                            s["service"].as_str().unwrap_or("?"),
                            s["state"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                let tail = if bad.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", bad.join(", "))
                };
                outln!("    {device}: {}{tail}", counts(&mut services.iter()));
            }
        }
    }
    Ok(())
}

fn print_status(s: &serde_json::Value, devices: Option<&Value>) -> anyhow::Result<()> {
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
    if let Some(devices) = devices {
        print_groups(devices)?;
    }
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

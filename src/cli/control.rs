//! `snbox maintenance start|end|list`, `snbox ack`, `snbox check`: the technician on site acts
//! through the running daemon's control socket (R13, R16), with no central server needed.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::{OutputFormat, bad};
use snbox::control;
use snbox::schedule::Answer;
use snbox::settings::{self, Settings};

/// Where a maintenance applies: exactly one (clap enforces it).
pub struct Scope {
    pub node: Option<String>,
    pub device: Option<String>,
    pub service: Option<String>,
}

pub fn maintenance_start(
    config: Option<PathBuf>,
    scope: Scope,
    minutes: u32,
    comment: Option<String>,
    no_collect: bool,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let id = format!("m-local-{}", jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"));
    let request = json!({
        "kind": "maintenance_start",
        "author": author(),
        "maintenance": {
            "id": id,
            "scope": { "node": scope.node, "device": scope.device, "service": scope.service },
            "minutes": minutes,
            "collect": !no_collect,
            "comment": comment,
        }
    });
    send(config, strip_nulls(request), format)
}

pub fn maintenance_end(config: Option<PathBuf>, id: String, format: OutputFormat) -> anyhow::Result<ExitCode> {
    send(
        config,
        json!({ "kind": "maintenance_end", "maintenance": id, "author": author() }),
        format,
    )
}

pub fn maintenance_list(config: Option<PathBuf>, format: OutputFormat) -> anyhow::Result<ExitCode> {
    send(config, json!({ "kind": "maintenance_list" }), format)
}

pub fn ack(
    config: Option<PathBuf>,
    service: String,
    comment: String,
    author_name: Option<String>,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let request = json!({ "kind": "acknowledge", "service": service, "comment": comment,
        "author": author_name.unwrap_or_else(author) });
    send(config, request, format)
}

pub fn check(config: Option<PathBuf>, service: String, format: OutputFormat) -> anyhow::Result<ExitCode> {
    send(config, json!({ "kind": "check_now", "service": service }), format)
}

/// Who acts: the user behind sudo, else the caller.
fn author() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "technician".into());
    match snbox::host_name() {
        Some(host) => format!("{user}@{host}"),
        None => user,
    }
}

/// The settings' socket; the default one when the default settings file is absent.
fn socket(config: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let (path, given) = match config {
        Some(p) => (p, true),
        None => (PathBuf::from(settings::DEFAULT_PATH), false),
    };
    if !given && !path.exists() {
        return Ok(PathBuf::from(settings::DEFAULT_CONTROL_SOCKET));
    }
    let settings = Settings::load(&path).map_err(|problems| {
        for p in &problems.0 {
            eprintln!("{}: {p}", path.display());
        }
        bad(format!("{}: invalid settings", path.display()))
    })?;
    Ok(settings.control_socket)
}

fn send(config: Option<PathBuf>, request: Value, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let socket = socket(config)?;
    let answer: Answer = control::ask(&socket, &request)?;
    match format {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&answer)?),
        OutputFormat::Text if !answer.ok => {}
        OutputFormat::Text => {
            outln!("{}", answer.message);
            if let Some(Value::Array(items)) = &answer.data {
                for m in items {
                    outln!("{}", maintenance_line(m));
                }
            } else if let Some(data) = &answer.data
                && let Some(output) = data.get("output").and_then(Value::as_str)
            {
                outln!("{output}");
            }
        }
    }
    if answer.ok {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(bad(answer.message))
    }
}

fn maintenance_line(m: &Value) -> String {
    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
    let scope = m["scope"]
        .as_object()
        .and_then(|o| o.iter().next())
        .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("")))
        .unwrap_or_default();
    let window = match (s("start"), s("end"), s("time_range")) {
        (start, end, _) if !start.is_empty() => format!("{start} → {end}"),
        (_, _, tr) => format!("time range {tr}"),
    };
    let state = if m["active"] == true { "ACTIVE" } else { "coming" };
    format!(
        "  {:<28} {state:<7} {scope:<24} {window}  ({}{})",
        s("id"),
        s("source"),
        m.get("author")
            .and_then(Value::as_str)
            .map(|a| format!(", by {a}"))
            .unwrap_or_default()
    )
}

fn strip_nulls(mut v: Value) -> Value {
    if let Value::Object(o) = &mut v {
        o.retain(|_, x| !x.is_null());
        for x in o.values_mut() {
            *x = strip_nulls(std::mem::take(x));
        }
    }
    v
}

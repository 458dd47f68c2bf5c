//! `snbox config check` and `snbox config explain`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::{OutputFormat, bad};
use snbox::explain::{self, Report};
use snbox::planning::plan_from_file;
use snbox::problem::Problems;
use snbox::rules::Plan;
use snbox::settings::{self, Mode, Settings};

fn print_problems(file: &Path, problems: &Problems) {
    for p in &problems.0 {
        eprintln!("{}: {p}", file.display());
    }
}

pub fn check(
    config: Option<PathBuf>,
    monitoring: Option<PathBuf>,
    strict: bool,
    resolve: bool,
) -> anyhow::Result<ExitCode> {
    let config = config.or_else(|| monitoring.is_none().then(|| PathBuf::from(settings::DEFAULT_PATH)));
    let mut failed = false;
    let mut zone = TimeZone::UTC;
    let mut max_bytes = snbox::input::DEFAULT_MAX_DOCUMENT_BYTES;
    let mut document = monitoring;
    let mut settings = None;
    if let Some(path) = &config {
        match Settings::load(path) {
            Ok(s) => {
                let (problems, cautions) = runnable(&s);
                if problems.is_empty() {
                    outln!("{}: settings are valid", path.display());
                } else {
                    print_problems(path, &Problems(problems));
                    failed = true;
                }
                for w in s.warnings.iter().chain(&cautions) {
                    outln!("{}: warning: {w}", path.display());
                    failed |= strict;
                }
                zone = s.timezone.clone();
                max_bytes = s.limits.max_document_bytes;
                if let (None, Mode::Standalone { document: d, .. }) = (&document, &s.mode) {
                    document = Some(d.clone());
                }
                settings = Some((path, s));
            }
            Err(problems) => {
                print_problems(path, &problems);
                failed = true;
            }
        }
    }
    if let Some(path) = &document {
        match plan_from_file(path, &zone, max_bytes) {
            Ok(plan) => {
                failed |= summarize(path, &plan, resolve)? && strict;
                if let Some((config, s)) = &settings {
                    for (field, node) in snbox::app::tokens_outside(&s.status.tokens, &plan) {
                        outln!(
                            "{}: warning: {field}: node {node:?} is not in the document {}: this token sees nothing (403)",
                            config.display(),
                            path.display()
                        );
                        failed |= strict;
                    }
                }
            }
            Err(rejected) => {
                print_problems(path, &rejected.problems);
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// Prints what a valid document resolves to; true when anything was rejected or set aside.
fn summarize(path: &Path, plan: &Plan, resolve: bool) -> anyhow::Result<bool> {
    let devices = plan.accepted_devices().count();
    let services = plan.accepted_services().count();
    outln!(
        "{}: document {} is valid: {devices} of {} devices accepted, {services} of {} services polled",
        path.display(),
        plan.version,
        plan.devices.len(),
        plan.services.len()
    );
    let mut notes = 0;
    for w in &plan.warnings {
        outln!("{}: warning: {w}", path.display());
        notes += 1;
    }
    for d in &plan.devices {
        for w in &d.warnings {
            outln!("{}: devices[{}] ({}): warning: {w}", path.display(), d.index, d.id);
            notes += 1;
        }
        for r in d.outcome.as_ref().err().into_iter().flatten() {
            outln!("{}: {}: device {:?} rejected: {}", path.display(), r.path, d.id, r.code);
            notes += 1;
        }
    }
    let unresolved = if resolve { unresolved_names(plan) } else { Vec::new() };
    for (d, answered) in unresolved {
        outln!(
            "{}: devices[{}].address: warning: device {:?}: the host name {:?} does not resolve on this machine{} (it is resolved at each check)",
            path.display(),
            d.index,
            d.id,
            d.address,
            if answered { "" } else { " within 5 s" }
        );
        notes += 1;
    }
    for s in &plan.services {
        for r in s.outcome.as_ref().err().into_iter().flatten() {
            outln!(
                "{}: {}: service {:?} rejected: {}",
                path.display(),
                r.path,
                s.id,
                r.code
            );
            notes += 1;
        }
    }
    Ok(notes > 0)
}

/// How long `config check` spends resolving host names, at most.
const RESOLVE_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// Accepted devices whose host name does not resolve here (within [`RESOLVE_BUDGET`], 32 at a
/// time): worth a warning, not a refusal, since the box's resolver may know names this
/// machine's does not.
fn unresolved_names(plan: &Plan) -> Vec<(&snbox::rules::DevicePlan, bool)> {
    use std::net::ToSocketAddrs as _;
    let named: Vec<_> = plan
        .accepted_devices()
        .map(|(d, _)| d)
        .filter(|d| snbox::rules::address_kind(&d.address) == Some(snbox::rules::AddressKind::HostName))
        .collect();
    let mut names: Vec<String> = named.iter().map(|d| d.address.clone()).collect();
    names.sort();
    names.dedup();
    let (tx, rx) = std::sync::mpsc::channel();
    let deadline = std::time::Instant::now() + RESOLVE_BUDGET;
    let mut resolved = std::collections::HashSet::new();
    let mut answered = std::collections::HashSet::new();
    for chunk in names.chunks(32) {
        for name in chunk {
            let (tx, name) = (tx.clone(), name.clone());
            std::thread::spawn(move || {
                let ok = (name.as_str(), 0)
                    .to_socket_addrs()
                    .is_ok_and(|mut a| a.next().is_some());
                let _ = tx.send((name, ok));
            });
        }
        for _ in chunk {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok((name, ok)) => {
                    if ok {
                        resolved.insert(name.clone());
                    }
                    answered.insert(name);
                }
                Err(_) => break,
            }
        }
    }
    named
        .into_iter()
        .filter(|d| !resolved.contains(&d.address))
        .map(|d| (d, answered.contains(&d.address)))
        .collect()
}

/// What `snbox run` would refuse in settings that parse, in the same words: errors, and
/// warnings for what depends on the user (`config check` may not run as the daemon's user).
fn runnable(settings: &Settings) -> (Vec<snbox::problem::Problem>, Vec<snbox::problem::Problem>) {
    use snbox::settings::StateDirProblem;
    let (mut problems, mut cautions) = (Vec::new(), Vec::new());
    match snbox::settings::state_dir_problem(&settings.state_dir) {
        Some(StateDirProblem::Unusable(p)) => problems.push(p),
        Some(StateDirProblem::NotWritableHere(mut p)) => {
            p.message.push_str(": the daemon's user must be able to write it");
            cautions.push(p);
        }
        None => {}
    }
    if matches!(settings.mode, Mode::Unpaired)
        && matches!(snbox::central::identity::Identity::load(&settings.state_dir), Ok(None))
    {
        problems.push(snbox::problem::Problem::new(
            "not_paired",
            "",
            snbox::app::AppError::Unpaired.to_string(),
        ));
    }
    (problems, cautions)
}

pub fn explain(
    monitoring: &Path,
    at: Option<&str>,
    format: OutputFormat,
    config: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let at = at
        .map(|s| {
            s.parse::<Timestamp>().map_err(|e| {
                bad(format!(
                    "--at {s:?} is not an RFC 3339 instant such as 2027-03-28T00:30:00Z ({e})"
                ))
            })
        })
        .transpose()?;
    let (zone, max_bytes) = match config {
        Some(path) => {
            let settings = Settings::load(path).map_err(|problems| {
                print_problems(path, &problems);
                bad(format!("{}: invalid settings", path.display()))
            })?;
            (settings.timezone, settings.limits.max_document_bytes)
        }
        None => (TimeZone::UTC, snbox::input::DEFAULT_MAX_DOCUMENT_BYTES),
    };
    let outcome = plan_from_file(monitoring, &zone, max_bytes);
    let (report, code) = match &outcome {
        Ok(plan) => (Report::of_plan(plan, at), ExitCode::SUCCESS),
        Err(rejected) => {
            let doc = rejected.document.as_deref();
            let version = doc.map(|d| d.version.as_str());
            let box_node = doc.map(|d| d.box_.node.as_str());
            (
                Report::of_errors(version, box_node, &rejected.problems),
                ExitCode::from(2),
            )
        }
    };
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout);
    match format {
        OutputFormat::Json => {
            report.write_json(&mut out).context("writing the report")?;
            writeln!(out).context("writing the report")?;
        }
        OutputFormat::Text => write!(out, "{}", explain::to_text(&report)).context("writing the report")?,
    }
    out.flush().context("writing the report")?;
    Ok(code)
}

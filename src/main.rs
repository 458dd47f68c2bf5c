//! The `snbox` command line: parses arguments, runs one command, maps the outcome to an exit
//! code (0 ok, 1 runtime failure, 2 bad usage or bad input). Nothing else lives here.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use snbox::explain::{self, Report};
use snbox::planning::plan_from_file;
use snbox::problem::Problems;
use snbox::rules::Plan;
use snbox::settings::{self, Settings, Source};

#[derive(Parser)]
#[command(name = "snbox", version, about = "The ServiceNav Box agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check or explain settings and monitoring documents.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the settings and a monitoring document; exit 2 listing every error.
    Check {
        /// The settings file (default /etc/snbox/snbox.toml when no document is given).
        #[arg(long, env = "SNBOX_CONFIG")]
        config: Option<PathBuf>,
        /// A monitoring document, JSON or TOML (default: the settings' standalone document).
        #[arg(long)]
        monitoring: Option<PathBuf>,
        /// Also fail (exit 2) when a device or service is rejected or a warning is raised.
        #[arg(long)]
        strict: bool,
    },
    /// Print, for every device and service, the decision and every effective value with its source.
    Explain {
        /// The monitoring document, JSON or TOML.
        #[arg(long)]
        monitoring: PathBuf,
        /// Also say whether each period is open at this instant (RFC 3339) and when that changes.
        #[arg(long)]
        at: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
        format: OutputFormat,
        /// Settings file whose `timezone` is the box's zone (R7); UTC without one.
        #[arg(long, env = "SNBOX_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Json,
    Text,
}

/// A failure the user caused (exit 2) rather than the machine (exit 1).
#[derive(Debug)]
struct BadInput(String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("snbox: {e:#}");
            if e.downcast_ref::<BadInput>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Config(ConfigCommand::Check {
            config,
            monitoring,
            strict,
        }) => check(config, monitoring, strict),
        Command::Config(ConfigCommand::Explain {
            monitoring,
            at,
            format,
            config,
        }) => explain(&monitoring, at.as_deref(), format, config.as_deref()),
    }
}

fn bad(message: impl Into<String>) -> anyhow::Error {
    BadInput(message.into()).into()
}

fn print_problems(file: &Path, problems: &Problems) {
    for p in &problems.0 {
        eprintln!("{}: {p}", file.display());
    }
}

fn check(config: Option<PathBuf>, monitoring: Option<PathBuf>, strict: bool) -> anyhow::Result<ExitCode> {
    let config = config.or_else(|| monitoring.is_none().then(|| PathBuf::from(settings::DEFAULT_PATH)));
    let mut failed = false;
    let mut zone = TimeZone::UTC;
    let mut document = monitoring;
    if let Some(path) = &config {
        match Settings::load(path) {
            Ok(s) => {
                println!("{}: settings are valid", path.display());
                zone = s.timezone.clone();
                if let (None, Source::Standalone { document: d }) = (&document, &s.source) {
                    document = Some(d.clone());
                }
            }
            Err(problems) => {
                print_problems(path, &problems);
                failed = true;
            }
        }
    }
    if let Some(path) = &document {
        match plan_from_file(path, &zone) {
            Ok(plan) => failed |= summarize(path, &plan) && strict,
            Err(rejected) => {
                print_problems(path, &rejected.problems);
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// Prints what a valid document resolves to; true when anything was rejected or set aside.
fn summarize(path: &Path, plan: &Plan) -> bool {
    let devices = plan.accepted_devices().count();
    let services = plan.accepted_services().count();
    println!(
        "{}: document {} is valid: {devices} of {} devices accepted, {services} of {} services polled",
        path.display(),
        plan.version,
        plan.devices.len(),
        plan.services.len()
    );
    let mut notes = 0;
    for w in &plan.warnings {
        println!("{}: warning: {w}", path.display());
        notes += 1;
    }
    for d in &plan.devices {
        for w in &d.warnings {
            println!("{}: devices[{}] ({}): warning: {w}", path.display(), d.index, d.id);
            notes += 1;
        }
        for r in d.outcome.as_ref().err().into_iter().flatten() {
            println!("{}: {}: device {:?} rejected: {}", path.display(), r.path, d.id, r.code);
            notes += 1;
        }
    }
    for s in &plan.services {
        for r in s.outcome.as_ref().err().into_iter().flatten() {
            println!(
                "{}: {}: service {:?} rejected: {}",
                path.display(),
                r.path,
                s.id,
                r.code
            );
            notes += 1;
        }
    }
    notes > 0
}

fn explain(
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
    let zone = match config {
        Some(path) => {
            let settings = Settings::load(path).map_err(|problems| {
                print_problems(path, &problems);
                bad(format!("{}: invalid settings", path.display()))
            })?;
            settings.timezone
        }
        None => TimeZone::UTC,
    };
    let outcome = plan_from_file(monitoring, &zone);
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

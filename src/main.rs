//! The `snbox` command line: parses arguments, runs one command, maps the outcome to an exit
//! code (0 ok, 1 runtime failure, 2 bad usage or bad input). The commands live in `cli/`.

#[macro_use]
mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::{BadInput, OutputFormat};

#[derive(Parser)]
#[command(name = "snbox", version, about = "The ServiceNav Box agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: poll, buffer, serve status (foreground; systemd runs it).
    Run {
        /// The settings file (default /etc/snbox/snbox.toml).
        #[arg(long, env = "SNBOX_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Provision the box: trade a one-time token for its identity with the central server.
    Pair {
        /// The central server's base URL, e.g. https://central.example.net/api/box/v1.
        #[arg(long)]
        central: String,
        /// The one-time pairing token (or env SNBOX_PAIR_TOKEN, kept out of the process list).
        #[arg(long, env = "SNBOX_PAIR_TOKEN", hide_env_values = true)]
        token: String,
        /// Trust the server on first contact only if its certificate has this hash (sha256:HEX).
        #[arg(long)]
        ca_cert_hash: Option<String>,
        /// Pair again even if the box is already paired.
        #[arg(long)]
        force: bool,
        #[arg(long, env = "SNBOX_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Ask the running daemon's status endpoint and print it.
    Status {
        #[arg(long, env = "SNBOX_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// A token of `status.tokens`, for an endpoint that asks for one (or env SNBOX_STATUS_TOKEN).
        #[arg(long, env = "SNBOX_STATUS_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Over HTTPS: the certificate's fingerprint (`sha256:HEX`) to expect, when this user
        /// cannot read the certificate file.
        #[arg(long)]
        fingerprint: Option<String>,
        /// Over HTTPS: accept any certificate (anyone on the path could read the token).
        #[arg(long)]
        insecure: bool,
    },
    /// Check or explain settings and monitoring documents.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run one check now and print its result (for the technician on site).
    #[command(subcommand)]
    Probe(Box<cli::probe::ProbeCommand>),
    /// A census of address ranges: what answers ICMP, SNMP and TCP, and what it is (for the
    /// technician setting up a site).
    Discover(Box<cli::discover::DiscoverArgs>),
    /// The channels the box delivers notifications through itself (R17).
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Maintenances started on site (R13), through the running daemon's control socket.
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
    /// Acknowledge a service's current problem (R16): no more re-notifications.
    Ack {
        /// The service id.
        service: String,
        /// Why, for whoever reads it next.
        #[arg(long)]
        comment: String,
        /// Who (default: the user behind sudo, at this box).
        #[arg(long)]
        author: Option<String>,
        #[arg(long, env = "SNBOX_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = cli::OutputFormat::Text)]
        format: cli::OutputFormat,
    },
    /// Check a service now, in the running daemon, and print the result.
    Check {
        /// The service id.
        service: String,
        #[arg(long, env = "SNBOX_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = cli::OutputFormat::Text)]
        format: cli::OutputFormat,
    },
}

#[derive(Subcommand)]
enum MaintenanceCommand {
    /// Start a maintenance now for some minutes: nothing it covers is notified.
    Start {
        #[arg(long, group = "scope", required = true)]
        node: Option<String>,
        #[arg(long, group = "scope")]
        device: Option<String>,
        #[arg(long, group = "scope")]
        service: Option<String>,
        /// How long, from now.
        #[arg(long)]
        minutes: u32,
        #[arg(long)]
        comment: Option<String>,
        /// Do not check what it covers while it lasts.
        #[arg(long)]
        no_collect: bool,
        #[arg(long, env = "SNBOX_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = cli::OutputFormat::Text)]
        format: cli::OutputFormat,
    },
    /// End a maintenance started by a command or on site, now.
    End {
        id: String,
        #[arg(long, env = "SNBOX_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = cli::OutputFormat::Text)]
        format: cli::OutputFormat,
    },
    /// The maintenances in force and coming.
    List {
        #[arg(long, env = "SNBOX_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = cli::OutputFormat::Text)]
        format: cli::OutputFormat,
    },
}

#[derive(Subcommand)]
enum NotifyCommand {
    /// Send a test message through every configured channel and print what each server answered.
    Test {
        #[arg(long, env = "SNBOX_CONFIG")]
        config: Option<PathBuf>,
        /// A mail address for the test mail (repeatable; default: notify.admin).
        #[arg(long)]
        to: Vec<String>,
    },
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
        /// Also resolve devices' host names here, warning about those that do not resolve
        /// (this machine's resolver, which may not be the box's).
        #[arg(long)]
        resolve: bool,
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

/// glibc gives each thread that allocates its own arena, and each keeps the memory it freed:
/// at 50,000 services that was 32 MB of the daemon's 156 MB (the runtime, the blocking pool
/// and the store's thread allocate little at a time: one arena costs no CPU we could measure).
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable; called first thing, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // Like a tool killed by SIGPIPE, quietly (128 + 13).
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            eprintln!("snbox: {}", cli::error_text(&e));
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
            resolve,
        }) => cli::config::check(config, monitoring, strict, resolve),
        Command::Config(ConfigCommand::Explain {
            monitoring,
            at,
            format,
            config,
        }) => cli::config::explain(&monitoring, at.as_deref(), format, config.as_deref()),
        Command::Probe(probe) => cli::probe::run(*probe),
        Command::Discover(args) => cli::discover::run(*args),
        Command::Run { config } => cli::run::run(config),
        Command::Pair {
            central,
            token,
            ca_cert_hash,
            force,
            config,
        } => cli::pair::run(cli::pair::Args {
            config,
            central,
            token,
            ca_cert_hash,
            force,
        }),
        Command::Status {
            config,
            format,
            token,
            fingerprint,
            insecure,
        } => cli::status::status(config, format, token, cli::status::Pin { fingerprint, insecure }),
        Command::Notify(NotifyCommand::Test { config, to }) => cli::notify::test(config, to),
        Command::Maintenance(MaintenanceCommand::Start {
            node,
            device,
            service,
            minutes,
            comment,
            no_collect,
            config,
            format,
        }) => cli::control::maintenance_start(
            config,
            cli::control::Scope { node, device, service },
            minutes,
            comment,
            no_collect,
            format,
        ),
        Command::Maintenance(MaintenanceCommand::End { id, config, format }) => {
            cli::control::maintenance_end(config, id, format)
        }
        Command::Maintenance(MaintenanceCommand::List { config, format }) => {
            cli::control::maintenance_list(config, format)
        }
        Command::Ack {
            service,
            comment,
            author,
            config,
            format,
        } => cli::control::ack(config, service, comment, author, format),
        Command::Check {
            service,
            config,
            format,
        } => cli::control::check(config, service, format),
    }
}

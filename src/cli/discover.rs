//! `snbox discover RANGE...`: a census for the technician (protocol.md §8), with a progress
//! bar on a terminal, printed as a table or JSON (with `--suggest`, a document fragment too).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{OutputFormat, bad};
use snbox::census::{self, Options, range};
use snbox::document::Snmp;
use snbox::secret::Secret;

/// Ports tried unless `--ports` says otherwise (census::DEFAULT_PORTS).
const DEFAULT_PORTS: &str = "22,80,443,445,3389,9100,5060";

#[derive(Args)]
pub struct DiscoverArgs {
    /// CIDR blocks (192.0.2.0/24) or A-B ranges, IPv4 or IPv6; 65,536 addresses at most in all.
    #[arg(required = true)]
    ranges: Vec<String>,
    /// An SNMP v1/v2c community to try (repeatable, tried in order; shown by its index only;
    /// `public` when no community and no v3 user is given).
    /// Prefer the environment variable (comma-separated): a command line is visible to every user.
    #[arg(
        long = "community",
        env = "SNBOX_SNMP_COMMUNITIES",
        value_delimiter = ',',
        hide_env_values = true
    )]
    communities: Vec<String>,
    /// A v3 user to try after the communities.
    #[arg(long)]
    v3_user: Option<String>,
    /// noAuthNoPriv, authNoPriv or authPriv.
    #[arg(long)]
    v3_level: Option<String>,
    /// md5, sha, sha224, sha256, sha384 or sha512.
    #[arg(long)]
    v3_auth_protocol: Option<String>,
    #[arg(long, env = "SNBOX_SNMP_AUTH_KEY", hide_env_values = true)]
    v3_auth_key: Option<String>,
    /// des, aes (aes128), aes192 or aes256.
    #[arg(long)]
    v3_priv_protocol: Option<String>,
    #[arg(long, env = "SNBOX_SNMP_PRIV_KEY", hide_env_values = true)]
    v3_priv_key: Option<String>,
    /// Also try the communities over SNMPv1 when v2c gets no answer.
    #[arg(long)]
    snmp_v1: bool,
    /// The agents' UDP port.
    #[arg(long, default_value_t = 161)]
    snmp_port: u16,
    /// SNMP and TCP even for addresses that do not answer the ICMP echo.
    #[arg(long)]
    snmp_all: bool,
    /// TCP ports to try, comma-separated (`none`: no TCP).
    #[arg(long, default_value = DEFAULT_PORTS)]
    ports: String,
    /// Probes per second at most (echoes, SNMP requests and TCP connects together).
    #[arg(long, default_value_t = census::DEFAULT_RATE)]
    rate: u32,
    /// How long one probe waits for its answer, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    probe_timeout_ms: u64,
    /// Seconds the whole census may take; it then prints what it found.
    #[arg(long, default_value_t = 1800.0)]
    timeout: f64,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// Template ids (comma-separated): print a document fragment with the devices found and a
    /// service of each template per device (JSON output).
    #[arg(long, value_delimiter = ',')]
    suggest: Vec<String>,
    /// The node the suggested devices are placed on.
    #[arg(long, default_value = "SITE")]
    node: String,
}

impl DiscoverArgs {
    fn options(&self) -> anyhow::Result<Options> {
        let ranges = range::parse_all(&self.ranges, range::MAX_ADDRESSES).map_err(|e| bad(e.to_string()))?;
        if self.rate == 0 || self.rate > 10_000 {
            return Err(bad("--rate: from 1 to 10000 probes per second"));
        }
        if !(0.1..=86_400.0).contains(&self.timeout) {
            return Err(bad("--timeout: from 0.1 to 86400 seconds"));
        }
        Ok(Options {
            ranges,
            communities: self.communities()?,
            v3: self.v3()?,
            snmp_v1: self.snmp_v1,
            snmp_port: self.snmp_port,
            snmp_all: self.snmp_all,
            ports: ports(&self.ports)?,
            rate: self.rate,
            probe_timeout: Duration::from_millis(self.probe_timeout_ms.clamp(50, 30_000)),
            timeout: Duration::from_secs_f64(self.timeout),
        })
    }

    /// The communities given, or `public` when neither they nor a v3 user are.
    fn communities(&self) -> anyhow::Result<Vec<Secret>> {
        let given: Vec<Secret> = self
            .communities
            .iter()
            .filter(|c| !c.is_empty())
            .cloned()
            .map(Secret::new)
            .collect();
        Ok(if given.is_empty() && self.v3_user.is_none() {
            vec![Secret::new("public")]
        } else {
            given
        })
    }

    fn v3(&self) -> anyhow::Result<Option<Snmp>> {
        let Some(user) = &self.v3_user else {
            return Ok(None);
        };
        let block = json!({
            "version": "3", "user": user, "level": self.v3_level.as_deref().unwrap_or("authPriv"),
            "auth_protocol": self.v3_auth_protocol.as_deref().unwrap_or("sha"),
            "priv_protocol": self.v3_priv_protocol.as_deref().unwrap_or("aes"),
        });
        let mut snmp: Snmp = serde_json::from_value(block).map_err(|e| bad(format!("the v3 flags: {e}")))?;
        snmp.auth_key = self.v3_auth_key.clone().map(Secret::new);
        snmp.priv_key = self.v3_priv_key.clone().map(Secret::new);
        let missing = snmp.missing_fields();
        if !missing.is_empty() {
            let flags: Vec<String> = missing
                .iter()
                .map(|f| format!("--v3-{}", f.replace('_', "-")))
                .collect();
            return Err(bad(format!("the v3 user needs {}", flags.join(", "))));
        }
        Ok(Some(snmp))
    }
}

/// `22,80,443` → ports; `none` or empty → no TCP.
pub fn ports(text: &str) -> anyhow::Result<Vec<u16>> {
    if text.trim().is_empty() || text.trim() == "none" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|p| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(format!("--ports: {p:?} is not a port")))
        })
        .collect()
}

pub fn run(args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    let options = args.options()?;
    let total = range::addresses(&options.ranges).len() as u64;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} addresses, {elapsed} (about {eta} left)")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        // Ctrl-C ends the census with what it found.
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        });
        census::run(&options, |done| bar.set_position(done), &cancel).await
    });
    bar.finish_and_clear();
    match args.format {
        OutputFormat::Text => {
            outln!("{}", census::table::render(&report));
            if !args.suggest.is_empty() {
                outln!("(--suggest prints its document fragment with --format json)");
            }
        }
        OutputFormat::Json => {
            let mut out = serde_json::to_value(&report)?;
            if !args.suggest.is_empty() {
                out["suggested"] = census::suggest::fragment(&report, &options, &args.suggest, &args.node);
            }
            outln!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

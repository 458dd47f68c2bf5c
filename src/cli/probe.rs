//! `snbox probe icmp|snmp|http`: one check now, printed as text or as JSON
//! (`{"status", "output", "metrics", "duration_ms"}`). The exit code is 0 whenever the check
//! ran, whatever its status; 2 for bad arguments.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{OutputFormat, bad};
use snbox::document::params::{Direction, HttpParams, IcmpParams, SnmpParams};
use snbox::document::{AuthProtocol, PrivProtocol, SecurityLevel, Snmp, SnmpVersion};
use snbox::probe::CheckResult;
use snbox::probe::http::HttpProber;
use snbox::probe::icmp::IcmpProber;
use snbox::probe::snmp::SnmpProber;
use snbox::secret::Secret;

#[derive(Subcommand)]
pub enum ProbeCommand {
    /// Ping an address (IPv4 or IPv6).
    Icmp {
        address: IpAddr,
        #[arg(long)]
        packets: Option<u32>,
        #[arg(long)]
        interval_ms: Option<u32>,
        #[arg(long)]
        warn_rtt_ms: Option<f64>,
        #[arg(long)]
        crit_rtt_ms: Option<f64>,
        #[arg(long)]
        warn_loss_pct: Option<f64>,
        #[arg(long)]
        crit_loss_pct: Option<f64>,
        #[command(flatten)]
        common: Common,
    },
    /// Read OIDs from an SNMP agent.
    Snmp(SnmpArgs),
    /// Request a URL.
    Http {
        url: String,
        #[arg(long)]
        method: Option<String>,
        /// An accepted status code (repeatable); any 2xx when none is given.
        #[arg(long = "expect-status")]
        expect_status: Vec<u16>,
        #[arg(long)]
        body_contains: Option<String>,
        #[arg(long)]
        body_regex: Option<String>,
        #[arg(long)]
        warn_ms: Option<f64>,
        #[arg(long)]
        crit_ms: Option<f64>,
        #[arg(long)]
        tls_warn_days: Option<u32>,
        #[arg(long)]
        tls_crit_days: Option<u32>,
        #[arg(long)]
        no_follow_redirects: bool,
        /// Accept any server certificate (its expiry is still reported).
        #[arg(long)]
        insecure_tls: bool,
        /// PEM file of CA certificates to trust besides the system's.
        #[arg(long)]
        ca_file: Option<String>,
        #[arg(long)]
        username: Option<String>,
        /// Prefer the environment variable: a command line is visible to every user.
        #[arg(long, env = "SNBOX_HTTP_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args)]
pub struct Common {
    /// Seconds the whole check may take.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
}

#[derive(Args)]
pub struct SnmpArgs {
    address: String,
    /// An OID to GET (repeatable: several OIDs go in one request).
    #[arg(long)]
    oid: Vec<String>,
    /// A subtree to walk (GETBULK on v2c/v3, GETNEXT on v1).
    #[arg(long, conflicts_with = "oid")]
    walk: Option<String>,
    #[arg(long = "snmp-version", default_value = "2c", value_parser = ["1", "2c", "3"])]
    version: String,
    #[arg(long, default_value_t = 161)]
    port: u16,
    /// v1/v2c community (default "public"). Prefer the environment variable.
    #[arg(long, env = "SNBOX_SNMP_COMMUNITY", hide_env_values = true)]
    community: Option<String>,
    #[arg(long)]
    user: Option<String>,
    /// noAuthNoPriv, authNoPriv or authPriv.
    #[arg(long)]
    level: Option<String>,
    /// md5, sha, sha224, sha256, sha384 or sha512.
    #[arg(long)]
    auth_protocol: Option<String>,
    #[arg(long, env = "SNBOX_SNMP_AUTH_KEY", hide_env_values = true)]
    auth_key: Option<String>,
    /// des, aes (aes128), aes192 or aes256.
    #[arg(long)]
    priv_protocol: Option<String>,
    #[arg(long, env = "SNBOX_SNMP_PRIV_KEY", hide_env_values = true)]
    priv_key: Option<String>,
    #[arg(long)]
    warn: Option<f64>,
    #[arg(long)]
    crit: Option<f64>,
    /// Thresholds are lower limits (default: upper limits).
    #[arg(long)]
    below: bool,
    /// Judge the rate per second of a counter (two samples, one second apart).
    #[arg(long)]
    as_rate: bool,
    #[arg(long)]
    expect: Option<String>,
    #[command(flatten)]
    common: Common,
}

pub fn run(command: ProbeCommand) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (result, common) = runtime.block_on(async {
        match command {
            ProbeCommand::Icmp {
                address,
                packets,
                interval_ms,
                warn_rtt_ms,
                crit_rtt_ms,
                warn_loss_pct,
                crit_loss_pct,
                common,
            } => {
                let params = IcmpParams {
                    packets,
                    interval_ms,
                    warn_rtt_ms,
                    crit_rtt_ms,
                    warn_loss_pct,
                    crit_loss_pct,
                };
                let timeout = timeout(&common)?;
                Ok((IcmpProber::new(64).check(address, &params, timeout).await, common))
            }
            ProbeCommand::Http {
                url,
                method,
                expect_status,
                body_contains,
                body_regex,
                warn_ms,
                crit_ms,
                tls_warn_days,
                tls_crit_days,
                no_follow_redirects,
                insecure_tls,
                ca_file,
                username,
                password,
                common,
            } => {
                let params = HttpParams {
                    url: Some(url),
                    method,
                    expect_status: (!expect_status.is_empty()).then_some(expect_status),
                    body_contains,
                    body_regex,
                    warn_ms,
                    crit_ms,
                    tls_warn_days,
                    tls_crit_days,
                    follow_redirects: Some(!no_follow_redirects),
                    insecure_tls: Some(insecure_tls),
                    ca_file,
                    username,
                    password: password.map(Secret::new),
                };
                let timeout = timeout(&common)?;
                Ok((HttpProber::new().check("", &params, timeout).await, common))
            }
            ProbeCommand::Snmp(args) => {
                let (snmp, params) = snmp_of(&args)?;
                let timeout = timeout(&args.common)?;
                let result = SnmpProber::new()
                    .check("probe", &args.address, &snmp, &params, timeout)
                    .await;
                Ok::<_, anyhow::Error>((result, args.common))
            }
        }
    })?;
    print(&result, common.format)?;
    Ok(std::process::ExitCode::SUCCESS)
}

fn timeout(common: &Common) -> anyhow::Result<Duration> {
    if !(common.timeout > 0.0 && common.timeout <= 3600.0) {
        return Err(bad(format!(
            "--timeout {} is not a number of seconds from 0 to 3600",
            common.timeout
        )));
    }
    Ok(Duration::from_secs_f64(common.timeout))
}

/// The device's SNMP block and the check's params, from the flags, parsed as a document's are.
fn snmp_of(args: &SnmpArgs) -> anyhow::Result<(Snmp, SnmpParams)> {
    fn named<T: serde::de::DeserializeOwned>(flag: &str, value: &Option<String>) -> anyhow::Result<Option<T>> {
        value
            .as_ref()
            .map(|v| {
                serde_json::from_value(serde_json::Value::String(v.clone()))
                    .map_err(|_| bad(format!("--{flag} {v:?} is not known")))
            })
            .transpose()
    }
    let version = match args.version.as_str() {
        "1" => SnmpVersion::V1,
        "3" => SnmpVersion::V3,
        _ => SnmpVersion::V2c,
    };
    let snmp = Snmp {
        version,
        port: Some(args.port),
        community: Some(Secret::new(args.community.clone().unwrap_or_else(|| "public".into()))),
        user: args.user.clone(),
        level: named::<SecurityLevel>("level", &args.level)?,
        auth_protocol: named::<AuthProtocol>("auth-protocol", &args.auth_protocol)?,
        auth_key: args.auth_key.clone().map(Secret::new),
        priv_protocol: named::<PrivProtocol>("priv-protocol", &args.priv_protocol)?,
        priv_key: args.priv_key.clone().map(Secret::new),
        context: None,
    };
    let missing = snmp.missing_fields();
    if !missing.is_empty() {
        let flags: Vec<String> = missing.iter().map(|f| format!("--{}", f.replace('_', "-"))).collect();
        return Err(bad(format!(
            "SNMP v{} at this security level needs {}",
            args.version,
            flags.join(", ")
        )));
    }
    if args.oid.is_empty() && args.walk.is_none() {
        return Err(bad("give --oid OID (repeatable) or --walk OID"));
    }
    let params = SnmpParams {
        oid: None,
        oids: (!args.oid.is_empty()).then(|| args.oid.clone()),
        walk: args.walk.clone(),
        warn: args.warn,
        crit: args.crit,
        direction: args.below.then_some(Direction::Below),
        as_rate: args.as_rate.then_some(true),
        expect: args.expect.clone(),
    };
    Ok((snmp, params))
}

fn print(result: &CheckResult, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => outln!("{}", result.to_json()),
        OutputFormat::Text => {
            outln!(
                "{}: {} ({:.1} ms)",
                result.status.as_str().to_uppercase(),
                result.output,
                result.duration.as_secs_f64() * 1e3
            );
            for (name, value) in &result.metrics {
                outln!("  {name} = {value}");
            }
        }
    }
    Ok(())
}

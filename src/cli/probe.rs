//! `snbox probe icmp|snmp|http|tcp|dns|plugin|box`: one check now, printed as text or as JSON
//! (`{"status", "output", "metrics", "duration_ms"}`). The exit code is 0 whenever the check
//! ran, whatever its status; 2 for bad arguments.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{OutputFormat, bad};
use serde_json::json;
use snbox::document::params::{self, Checked, DnsParams, HttpParams, IcmpParams, PluginParams, SnmpParams, TcpParams};
use snbox::document::{AuthProtocol, PrivProtocol, SecurityLevel, Snmp, SnmpVersion};
use snbox::probe::CheckResult;
use snbox::probe::http::HttpProber;
use snbox::probe::icmp::IcmpProber;
use snbox::probe::plugin::{PluginRunner, Target};
use snbox::probe::snmp::SnmpProber;
use snbox::probe::tcp::TcpProber;
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
    /// Connect to a TCP port (optionally TLS), send a line, look for the answer.
    Tcp {
        /// An IP address or host name.
        host: String,
        #[arg(long)]
        port: u16,
        /// Text to send once connected; `\n` and `\r` are turned into line ends.
        #[arg(long)]
        send: Option<String>,
        #[arg(long)]
        expect: Option<String>,
        #[arg(long, conflicts_with = "expect")]
        expect_regex: Option<String>,
        #[arg(long)]
        tls: bool,
        #[arg(long, requires = "tls")]
        insecure_tls: bool,
        /// PEM file of CA certificates to trust besides the system's.
        #[arg(long, requires = "tls")]
        ca_file: Option<String>,
        #[arg(long, requires = "tls")]
        tls_warn_days: Option<u32>,
        #[arg(long, requires = "tls")]
        tls_crit_days: Option<u32>,
        #[arg(long)]
        warn_ms: Option<f64>,
        #[arg(long)]
        crit_ms: Option<f64>,
        #[command(flatten)]
        common: Common,
    },
    /// Ask a DNS server for a name's records (UDP, then TCP when truncated).
    Dns {
        /// The server asked: an IP address or host name.
        server: String,
        /// The name asked for.
        name: String,
        /// A, AAAA, CNAME, MX, NS, TXT, SOA or PTR.
        #[arg(long, default_value = "A")]
        record_type: String,
        #[arg(long)]
        port: Option<u16>,
        /// A value the answer must hold (repeatable), as this command prints values.
        #[arg(long)]
        expect: Vec<String>,
        #[arg(long)]
        warn_ms: Option<f64>,
        #[arg(long)]
        crit_ms: Option<f64>,
        #[command(flatten)]
        common: Common,
    },
    /// Run a Nagios-compatible plugin from the plugin directories, as a plugin check does.
    Plugin {
        /// The plugin's file name (never a path).
        command: String,
        /// Its arguments (after `--` when they start with `-`); `$ADDRESS$`, `$HOSTNAME$` and
        /// `$DEVICE$` are replaced.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
        /// What `$ADDRESS$` stands for.
        #[arg(long, default_value = "127.0.0.1")]
        address: String,
        /// What `$HOSTNAME$` and `$DEVICE$` stand for.
        #[arg(long, default_value = "probe")]
        device: String,
        /// A directory to look the plugin up in (repeatable; default: the [plugins] dirs'
        /// defaults, /usr/lib/nagios/plugins and /etc/snbox/plugins).
        #[arg(long = "plugin-dir")]
        plugin_dirs: Vec<std::path::PathBuf>,
        /// NAME=VALUE in the plugin's environment (repeatable).
        #[arg(long)]
        env: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// The box's own CPU, memory and state-directory disk, judged by the box kind's default
    /// limits (the daemon's outbox and clock offset are on `snbox status`).
    Box {
        /// The state directory whose filesystem is measured.
        #[arg(long, default_value = snbox::settings::DEFAULT_STATE_DIR)]
        state_dir: std::path::PathBuf,
        #[command(flatten)]
        common: Common,
    },
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
    /// The agent's UDP port (default 161; `ADDRESS:PORT` says it too).
    #[arg(long)]
    port: Option<u16>,
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
                let params: IcmpParams = checked(json!({
                    "packets": packets, "interval_ms": interval_ms,
                    "warn_rtt_ms": warn_rtt_ms, "crit_rtt_ms": crit_rtt_ms,
                    "warn_loss_pct": warn_loss_pct, "crit_loss_pct": crit_loss_pct,
                }))?;
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
                let params: HttpParams = checked(json!({
                    "url": url, "method": method,
                    "expect_status": (!expect_status.is_empty()).then_some(expect_status),
                    "body_contains": body_contains, "body_regex": body_regex,
                    "warn_ms": warn_ms, "crit_ms": crit_ms,
                    "tls_warn_days": tls_warn_days, "tls_crit_days": tls_crit_days,
                    "follow_redirects": !no_follow_redirects, "insecure_tls": insecure_tls,
                    "ca_file": ca_file, "username": username, "password": password,
                }))?;
                let timeout = timeout(&common)?;
                Ok((HttpProber::new().check("", &params, timeout).await, common))
            }
            ProbeCommand::Tcp {
                host,
                port,
                send,
                expect,
                expect_regex,
                tls,
                insecure_tls,
                ca_file,
                tls_warn_days,
                tls_crit_days,
                warn_ms,
                crit_ms,
                common,
            } => {
                let send = send.map(|s| s.replace("\\r", "\r").replace("\\n", "\n"));
                let params: TcpParams = checked(json!({
                    "port": port, "send": send, "expect": expect, "expect_regex": expect_regex,
                    "tls": tls, "insecure_tls": insecure_tls, "ca_file": ca_file,
                    "tls_warn_days": tls_warn_days, "tls_crit_days": tls_crit_days,
                    "warn_ms": warn_ms, "crit_ms": crit_ms,
                }))?;
                let timeout = timeout(&common)?;
                Ok((TcpProber::new().check(&host, &params, timeout).await, common))
            }
            ProbeCommand::Dns {
                server,
                name,
                record_type,
                port,
                expect,
                warn_ms,
                crit_ms,
                common,
            } => {
                let record_type: params::DnsType = record_type
                    .parse()
                    .map_err(|e: String| bad(format!("--record-type {e}")))?;
                let params: DnsParams = checked(json!({
                    "name": name, "record_type": record_type.as_str(), "port": port, "expect": expect,
                    "warn_ms": warn_ms, "crit_ms": crit_ms,
                }))?;
                let timeout = timeout(&common)?;
                Ok((snbox::probe::dns::check(&server, &params, timeout).await, common))
            }
            ProbeCommand::Plugin {
                command,
                args,
                address,
                device,
                plugin_dirs,
                env,
                common,
            } => {
                let mut vars = serde_json::Map::new();
                for pair in &env {
                    let (name, value) = pair
                        .split_once('=')
                        .ok_or_else(|| bad(format!("--env {pair:?} is not NAME=VALUE")))?;
                    vars.insert(name.to_string(), json!(value));
                }
                let params: PluginParams = checked(json!({ "command": command, "args": args, "env": vars }))?;
                let dirs = if plugin_dirs.is_empty() {
                    snbox::settings::DEFAULT_PLUGIN_DIRS
                        .iter()
                        .map(std::path::PathBuf::from)
                        .collect()
                } else {
                    plugin_dirs
                };
                let target = Target {
                    address: &address,
                    name: &device,
                    id: &device,
                };
                let timeout = timeout(&common)?;
                Ok((PluginRunner::new(dirs).check(&target, &params, timeout).await, common))
            }
            ProbeCommand::Box { state_dir, common } => {
                let params: params::BoxParams = checked(json!({}))?;
                let prober = snbox::probe::box_health::BoxProber::new(state_dir, None, false);
                Ok((prober.check(&params).await, common))
            }
            ProbeCommand::Snmp(args) => {
                let (address, snmp, params) = snmp_of(&args)?;
                let timeout = timeout(&args.common)?;
                let result = SnmpProber::new()
                    .check("probe", &address, &snmp, &params, timeout)
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
            "--timeout {} is not a number of seconds above 0 and at most 3600",
            common.timeout
        )));
    }
    Ok(Duration::from_secs_f64(common.timeout))
}

/// The device's SNMP block and the check's params, from the flags, parsed as a document's are.
fn snmp_of(args: &SnmpArgs) -> anyhow::Result<(String, Snmp, SnmpParams)> {
    fn named<T: serde::de::DeserializeOwned>(flag: &str, value: &Option<String>) -> anyhow::Result<Option<T>> {
        value
            .as_ref()
            .map(|v| {
                serde_json::from_value(serde_json::Value::String(v.clone()))
                    .map_err(|_| bad(format!("--{flag} {v:?} is not known")))
            })
            .transpose()
    }
    let (address, port) = host_and_port(&args.address, args.port)?;
    let version = match args.version.as_str() {
        "1" => SnmpVersion::V1,
        "3" => SnmpVersion::V3,
        _ => SnmpVersion::V2c,
    };
    let snmp = Snmp {
        version,
        port: Some(port.unwrap_or(161)),
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
    let params: SnmpParams = checked(json!({
        "oids": (!args.oid.is_empty()).then(|| args.oid.clone()), "walk": args.walk,
        "warn": args.warn, "crit": args.crit,
        "direction": if args.below { "below" } else { "above" },
        "as_rate": args.as_rate, "expect": args.expect,
    }))?;
    Ok((address, snmp, params))
}

/// The flags as a document's `params`, checked the same way; a refusal names the flag.
fn checked<T: Checked>(mut fields: serde_json::Value) -> anyhow::Result<T> {
    if let Some(map) = fields.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    params::parse(fields).map_err(|(field, message)| {
        let flag = match field.split(['.', '[']).next().unwrap_or_default() {
            "oids" => "--oid".to_string(),
            "direction" => "--below".to_string(),
            "url" => "URL".to_string(),
            "name" => "NAME".to_string(),
            "command" => "COMMAND".to_string(),
            "follow_redirects" => "--no-follow-redirects".to_string(),
            other => format!("--{}", other.replace('_', "-")),
        };
        bad(format!("{flag}: {message}"))
    })
}

/// `host`, `host:port` or `[v6]:port` as net-snmp's tools take them; `--port` when none is
/// written, and both at once only if they agree.
fn host_and_port(text: &str, flag_port: Option<u16>) -> anyhow::Result<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, "")) => (v6, None),
            Some((v6, tail)) => match tail.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(port)) => (v6, Some(port)),
                _ => return Err(bad(format!("{text:?} is not [IPv6]:port"))),
            },
            None => return Err(bad(format!("{text:?} is not [IPv6]:port"))),
        }
    } else {
        match text.rsplit_once(':') {
            // More than one colon: an IPv6 address without a port.
            Some((host, _)) if host.contains(':') => (text, None),
            Some((host, port)) => match port.parse::<u16>() {
                Ok(port) => (host, Some(port)),
                Err(_) => return Err(bad(format!("{text:?}: {port:?} is not a port"))),
            },
            None => (text, None),
        }
    };
    match (port, flag_port) {
        (Some(a), Some(b)) if a != b => Err(bad(format!("{text} and --port {b} disagree"))),
        (a, b) => Ok((host.to_string(), a.or(b))),
    }
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

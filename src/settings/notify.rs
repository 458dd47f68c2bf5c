//! `[notify]`: the channels through which the box delivers notifications itself (rules.md
//! R17), and when.

use std::path::PathBuf;

use serde::Deserialize;

use crate::problem::Problem;
use crate::secret::Secret;

/// `[notify]`, validated.
#[derive(Debug, Clone)]
pub struct Notify {
    /// Paired: the box delivers once the central server has had no successful exchange for this long.
    pub fallback_after_s: u32,
    /// A delivery is retried for this long after it was made, then given up.
    pub retry_for_s: u32,
    /// The first retry waits this long; each next one twice as long, up to an hour.
    pub retry_first_s: u32,
    /// Told when the central server is out of reach for `fallback_after_s`, and when it is back.
    pub admin: Vec<String>,
    pub smtp: Option<Smtp>,
    pub webhooks: Vec<Webhook>,
    /// Deliveries in flight at once, all channels together.
    pub max_in_flight: u32,
    /// Deadline of one exchange with a mail server or a webhook.
    pub timeout_s: u32,
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            fallback_after_s: 120,
            retry_for_s: 86_400,
            retry_first_s: 30,
            admin: Vec::new(),
            smtp: None,
            webhooks: Vec::new(),
            max_in_flight: 4,
            timeout_s: 30,
        }
    }
}

impl Notify {
    /// Whether any channel is configured.
    pub fn has_channels(&self) -> bool {
        self.smtp.is_some() || !self.webhooks.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain SMTP, upgraded with STARTTLS (refused if the server does not offer it).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: only to a loopback server (a local relay).
    None,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// The `From:` header, `Name <address>` or an address.
    pub from: String,
    /// Trust only the CAs of this PEM file instead of the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl Smtp {
    /// `host:port`, as the status endpoint shows it.
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: url::Url,
    pub bearer_token: Option<Secret>,
    pub ca_file: Option<PathBuf>,
}

impl Webhook {
    /// The URL without its query or credentials: what logs, records and the status endpoint show.
    pub fn shown(&self) -> String {
        shown_url(&self.url)
    }
}

/// A URL without user, password, query or fragment (any of which may hold a secret).
pub fn shown_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    #[serde(default)]
    fallback_after_s: Option<u32>,
    #[serde(default)]
    retry_for_s: Option<u32>,
    #[serde(default)]
    retry_first_s: Option<u32>,
    #[serde(default)]
    admin: Vec<String>,
    #[serde(default)]
    smtp: Option<RawSmtp>,
    #[serde(default)]
    webhook: Vec<RawWebhook>,
    #[serde(default)]
    max_in_flight: Option<u32>,
    #[serde(default)]
    timeout_s: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    server: String,
    #[serde(default = "starttls")]
    security: Security,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<Secret>,
    from: String,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

fn starttls() -> Security {
    Security::Starttls
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    #[serde(default)]
    bearer_token: Option<Secret>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

/// `[notify]` checked field by field; `resolve` makes relative paths relative to the settings file.
pub(super) fn notify_of(raw: RawNotify, resolve: &dyn Fn(PathBuf) -> PathBuf, problems: &mut Vec<Problem>) -> Notify {
    let defaults = Notify::default();
    let mut positive = |field: &str, value: Option<u32>, default: u32| match value {
        Some(0) => {
            problems.push(Problem::new(
                "invalid_value",
                format!("notify.{field}"),
                "must be at least 1",
            ));
            default
        }
        Some(v) => v,
        None => default,
    };
    let notify = Notify {
        fallback_after_s: positive("fallback_after_s", raw.fallback_after_s, defaults.fallback_after_s),
        retry_for_s: positive("retry_for_s", raw.retry_for_s, defaults.retry_for_s),
        retry_first_s: positive("retry_first_s", raw.retry_first_s, defaults.retry_first_s),
        max_in_flight: positive("max_in_flight", raw.max_in_flight, defaults.max_in_flight),
        timeout_s: positive("timeout_s", raw.timeout_s, defaults.timeout_s),
        admin: raw.admin,
        smtp: None,
        webhooks: Vec::new(),
    };
    for (i, address) in notify.admin.iter().enumerate() {
        if let Err(why) = check_address(address) {
            problems.push(Problem::new("invalid_value", format!("notify.admin[{i}]"), why));
        }
    }
    let smtp = raw.smtp.and_then(|s| smtp_of(s, resolve, problems));
    if smtp.is_none() && !notify.admin.is_empty() {
        problems.push(Problem::new(
            "invalid_value",
            "notify.admin",
            "admin addresses are mailed: set [notify.smtp] too",
        ));
    }
    let webhooks = raw
        .webhook
        .into_iter()
        .enumerate()
        .filter_map(|(i, w)| webhook_of(i, w, resolve, problems))
        .collect();
    Notify {
        smtp,
        webhooks,
        ..notify
    }
}

fn smtp_of(raw: RawSmtp, resolve: &dyn Fn(PathBuf) -> PathBuf, problems: &mut Vec<Problem>) -> Option<Smtp> {
    let mut ok = true;
    let mut bad = |field: &str, why: String| {
        problems.push(Problem::new("invalid_value", format!("notify.smtp.{field}"), why));
        ok = false;
    };
    let default_port = if raw.security == Security::Tls { 465 } else { 587 };
    let (host, port) = match split_host_port(&raw.server, default_port) {
        Ok(hp) => hp,
        Err(why) => {
            bad("server", why);
            (String::new(), 0)
        }
    };
    if raw.security == Security::None && !host.is_empty() && !is_loopback_host(&host) {
        bad(
            "security",
            format!("\"none\" sends the password and the mail in clear: allowed only to a loopback server, not {host}"),
        );
    }
    if let Err(why) = check_address(&raw.from) {
        bad("from", why);
    }
    match (&raw.user, &raw.password) {
        (Some(_), None) => bad("password", "a user needs a password".into()),
        (None, Some(_)) => bad("user", "a password needs a user".into()),
        _ => {}
    }
    ok.then(|| Smtp {
        host,
        port,
        security: raw.security,
        user: raw.user,
        password: raw.password,
        from: raw.from,
        ca_file: raw.ca_file.map(resolve),
    })
}

fn webhook_of(
    i: usize,
    raw: RawWebhook,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
    problems: &mut Vec<Problem>,
) -> Option<Webhook> {
    let url = match url::Url::parse(&raw.url) {
        Ok(u) => u,
        Err(e) => {
            problems.push(Problem::new(
                "invalid_value",
                format!("notify.webhook[{i}].url"),
                format!("not a URL ({e})"),
            ));
            return None;
        }
    };
    if let Err(why) = super::check_central_url(&url) {
        problems.push(Problem::new("invalid_value", format!("notify.webhook[{i}].url"), why));
        return None;
    }
    if let Some(token) = &raw.bearer_token
        && (token.is_empty() || !token.expose().bytes().all(|b| b.is_ascii_graphic()))
    {
        problems.push(Problem::new(
            "invalid_value",
            format!("notify.webhook[{i}].bearer_token"),
            "a bearer token is printable ASCII without spaces",
        ));
        return None;
    }
    Some(Webhook {
        url,
        bearer_token: raw.bearer_token,
        ca_file: raw.ca_file.map(resolve),
    })
}

/// `host:port`, `[v6]:port` or a host alone (then `default_port`).
fn split_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("{text:?}: expected host:port, such as \"smtp.example.net:587\"");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(bad()),
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(bad()),
            None => (text, None),
        }
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
        None => default_port,
    };
    Ok((host.to_string(), port))
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A mail address as lettre reads one, with or without a display name.
pub fn check_address(text: &str) -> Result<(), String> {
    text.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| format!("{text:?} is not a mail address ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_forms() {
        assert_eq!(
            split_host_port("smtp.example.net:587", 25),
            Ok(("smtp.example.net".into(), 587))
        );
        assert_eq!(
            split_host_port("smtp.example.net", 465),
            Ok(("smtp.example.net".into(), 465))
        );
        assert_eq!(split_host_port("[::1]:2525", 25), Ok(("::1".into(), 2525)));
        assert!(split_host_port("smtp.example.net:0", 25).is_err());
        assert!(split_host_port("::1:25", 25).is_err());
        assert!(split_host_port("", 25).is_err());
    }

    fn problems(text: &str) -> Vec<String> {
        match crate::settings::Settings::parse(text, std::path::Path::new("/etc/snbox/snbox.toml")) {
            Ok(_) => Vec::new(),
            Err(p) => p.0.iter().map(|p| format!("{} {}", p.path, p.message)).collect(),
        }
    }

    const STANDALONE: &str = "[standalone]\ndocument = \"doc.json\"\n";

    #[test]
    fn r17_config_check_names_each_bad_notify_field() {
        let text = format!(
            "{STANDALONE}[notify]\nretry_for_s = 0\nadmin = [\"not an address\"]\n\
             [notify.smtp]\nserver = \"smtp.example.net:99999\"\nsecurity = \"none\"\nuser = \"u\"\nfrom = \"x@y\"\n\
             [[notify.webhook]]\nurl = \"http://hooks.example.net/x\"\n"
        );
        let found = problems(&text);
        for field in [
            "notify.retry_for_s",
            "notify.admin[0]",
            "notify.smtp.server",
            "notify.smtp.password",
            "notify.webhook[0].url",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(field)),
                "{field} not named: {found:#?}"
            );
        }
    }

    #[test]
    fn r17_plain_smtp_only_to_a_loopback_server() {
        let smtp = |server: &str| {
            format!(
                "{STANDALONE}[notify.smtp]\nserver = \"{server}\"\nsecurity = \"none\"\nfrom = \"box@example.net\"\n"
            )
        };
        assert!(problems(&smtp("127.0.0.1:25")).is_empty());
        assert!(problems(&smtp("localhost:25")).is_empty());
        let found = problems(&smtp("smtp.example.net:25"));
        assert!(
            found.iter().any(|p| p.starts_with("notify.smtp.security")),
            "{found:#?}"
        );
    }

    #[test]
    fn r17_fallback_must_outlast_the_heartbeat() {
        let text =
            "[central]\nurl = \"https://central.example.net/api\"\nheartbeat_s = 30\n[notify]\nfallback_after_s = 30\n";
        let found = problems(text);
        assert!(
            found.iter().any(|p| p.starts_with("notify.fallback_after_s")),
            "{found:#?}"
        );
    }

    #[test]
    fn r17_the_smtp_password_is_never_in_an_error() {
        let text = format!(
            "{STANDALONE}[notify.smtp]\nserver = \"smtp.example.net\"\npassword = [\"Smtp-S3cret-1\"]\nfrom = \"a@b\"\n"
        );
        let found = problems(&text).join("\n");
        assert!(!found.is_empty());
        assert!(!found.contains("Smtp-S3cret-1"), "{found}");
    }

    #[test]
    fn shown_url_hides_credentials_and_query() {
        let url = url::Url::parse("https://user:pw@hooks.example.net/x?token=abc#f").expect("url");
        assert_eq!(shown_url(&url), "https://hooks.example.net/x");
    }
}

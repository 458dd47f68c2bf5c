//! No secret ever reaches a log, a status answer, an explain report, an error or the outbox
//! (issue 7). One document full of distinctive secrets; every command and the daemon at debug
//! level, through checks that succeed and checks that fail, pairing (refused and accepted),
//! and sync with the central server. Each place is searched for every secret.

#[path = "common/central.rs"]
mod central;
#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/peers.rs"]
mod peers;
#[path = "common/snbox.rs"]
mod snbox_daemon;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use central::Token;
use snbox_daemon::Daemon;

const COMMUNITY: &str = "Comm-S3cr3t-7781";
const WRONG_COMMUNITY: &str = "Comm-S3cr3t-0042";
/// The test agent's real v3 keys for the user `sha256-aes`.
const AUTH_KEY: &str = "AuthKey-sha256";
const PRIV_KEY: &str = "PrivKey-aes128";
const WRONG_AUTH_KEY: &str = "AuthKey-S3cr3t-4410";
const WRONG_PRIV_KEY: &str = "PrivKey-S3cr3t-9921";
const HTTP_PASSWORD: &str = "HttpPass-S3cr3t-5530";
/// A password in a URL's user information.
const URL_PASSWORD: &str = "UrlPass-S3cr3t-3318";
const STATUS_TOKEN: &str = "StatusTok-S3cr3t-2291";
const PAIR_TOKEN: &str = "PairTok-S3cr3t-6603";
const REFUSED_PAIR_TOKEN: &str = "PairTok-S3cr3t-1177";
const SMTP_PASSWORD: &str = "SmtpPass-S3cr3t-8812";
const WEBHOOK_TOKEN: &str = "HookTok-S3cr3t-4467";

const SECRETS: [&str; 13] = [
    URL_PASSWORD,
    COMMUNITY,
    WRONG_COMMUNITY,
    AUTH_KEY,
    PRIV_KEY,
    WRONG_AUTH_KEY,
    WRONG_PRIV_KEY,
    HTTP_PASSWORD,
    STATUS_TOKEN,
    PAIR_TOKEN,
    REFUSED_PAIR_TOKEN,
    SMTP_PASSWORD,
    WEBHOOK_TOKEN,
];

/// Fails naming the place and the secret found in it.
fn assert_clean(place: &str, text: &str, extra: &[&str]) {
    for secret in SECRETS.iter().chain(extra) {
        assert!(!text.contains(secret), "{place} holds the secret {secret}:\n{text}");
    }
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Environment variables for one command.
type Envs<'a> = Vec<(&'a str, &'a str)>;

fn snbox(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_snbox"));
    command.args(args).env("SNBOX_LOG", "snbox=debug");
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("snbox runs")
}

fn document(agent_port: u16, web: &str) -> Value {
    let v3 = |auth: &str, privacy: &str| {
        json!({ "version": "3", "port": agent_port, "user": "sha256-aes", "level": "authPriv",
                "auth_protocol": "sha256", "auth_key": auth, "priv_protocol": "aes", "priv_key": privacy })
    };
    let device =
        |id: &str, snmp: Value| json!({ "id": id, "node": "s", "name": id, "address": "127.0.0.1", "snmp": snmp });
    central::document(
        "secrets-1",
        json!([
            { "id": "uptime", "kind": "snmp", "criticality": "low", "availability_rate": 99.0, "availability_period": "24x7",
              "control_period": "24x7", "interval_s": 2, "timeout_s": 1, "max_attempts": 1, "params": { "oid": "1.3.6.1.2.1.1.3.0" } },
            { "id": "web", "kind": "http", "criticality": "medium", "availability_rate": 99.0, "availability_period": "24x7",
              "control_period": "24x7", "interval_s": 2, "timeout_s": 1, "max_attempts": 1 }
        ]),
        json!([
            device(
                "v2c",
                json!({ "version": "2c", "port": agent_port, "community": COMMUNITY })
            ),
            device(
                "v2c-wrong",
                json!({ "version": "2c", "port": agent_port, "community": WRONG_COMMUNITY })
            ),
            device("v3", v3(AUTH_KEY, PRIV_KEY)),
            device("v3-wrong", v3(WRONG_AUTH_KEY, WRONG_PRIV_KEY)),
        ]),
        json!([
            { "id": "v2c-uptime", "device": "v2c", "template": "uptime" },
            { "id": "v2c-wrong-uptime", "device": "v2c-wrong", "template": "uptime" },
            { "id": "v3-uptime", "device": "v3", "template": "uptime" },
            { "id": "v3-wrong-uptime", "device": "v3-wrong", "template": "uptime" },
            { "id": "web-ok", "device": "v2c", "template": "web",
              "params": { "url": format!("{web}/ok"), "username": "tech", "password": HTTP_PASSWORD } },
            { "id": "web-down", "device": "v2c", "template": "web",
              "params": { "url": "http://127.0.0.1:9/", "username": "tech", "password": HTTP_PASSWORD } },
            { "id": "web-userinfo-ok", "device": "v2c", "template": "web",
              "params": { "url": web.replacen("http://", &format!("http://tech:{URL_PASSWORD}@"), 1) + "/ok" } },
            { "id": "web-userinfo-down", "device": "v2c", "template": "web",
              "params": { "url": format!("http://tech:{URL_PASSWORD}@127.0.0.1:9/") } }
        ]),
    )
}

fn settings(central: &central::Central, port: u16) -> String {
    format!(
        "state_dir = \"state\"\n[central]\nurl = \"{}\"\nca_file = \"{}\"\nconfig_poll_s = 1\nheartbeat_s = 1\n\
         retry_min_ms = 100\nretry_max_s = 1\n[status]\nlisten = \"127.0.0.1:{port}\"\n\
         [[status.tokens]]\ntoken = \"{STATUS_TOKEN}\"\n\
         [notify]\ntimeout_s = 2\n[notify.smtp]\nserver = \"127.0.0.1:9\"\nsecurity = \"none\"\nuser = \"box\"\n\
         password = \"{SMTP_PASSWORD}\"\nfrom = \"box@example.net\"\n\
         [[notify.webhook]]\nurl = \"https://127.0.0.1:9/hook?key=1\"\nbearer_token = \"{WEBHOOK_TOKEN}\"\n",
        central.url(),
        central.ca_file.display()
    )
}

#[test]
#[ignore = "needs snmpd: bash .ci/run installs it and runs this"]
fn no_secret_reaches_logs_status_explain_errors_or_the_outbox() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let agent = peers::Snmpd::start_with_communities(&[COMMUNITY]);
    let web = runtime.block_on(http_server::start(None));
    let central = runtime.block_on(central::start(&[
        (PAIR_TOKEN, Token::Valid),
        (REFUSED_PAIR_TOKEN, Token::Expired),
    ]));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("snbox.toml");
    std::fs::write(&config, settings(&central, 0)).expect("settings");
    let config = config.display().to_string();
    let url = central.url();

    // Pairing: refused (the error), then accepted with the token from the environment.
    let refused = snbox(
        &[
            "pair",
            "--central",
            &url,
            "--token",
            REFUSED_PAIR_TOKEN,
            "--config",
            &config,
        ],
        &[],
    );
    assert!(!refused.status.success());
    assert_clean("a refused `snbox pair`", &output_text(&refused), &[]);
    let paired = snbox(
        &["pair", "--central", &url, "--config", &config],
        &[("SNBOX_PAIR_TOKEN", PAIR_TOKEN)],
    );
    assert!(paired.status.success(), "{}", output_text(&paired));
    assert_clean("`snbox pair`", &output_text(&paired), &[]);
    let credentials = central.with(|c| c.credentials.clone());
    let credential: Vec<&str> = credentials.iter().map(String::as_str).collect();
    assert!(!credential.is_empty());

    // The daemon at debug level, through good and failing checks and sync.
    let doc = document(agent.port, &web.url(""));
    central.set_document(&doc);
    let daemon = Daemon::start(dir.path(), |port| settings(&central, port));
    daemon.wait_for(
        || {
            daemon
                .json("/services")
                .as_array()
                .is_some_and(|s| s.len() == 8 && s.iter().all(|x| x["live"]["last_check"].is_string()))
        },
        "every service checked",
    );
    let services = daemon.json("/services");
    let state = |id: &str| {
        services
            .as_array()
            .and_then(|s| s.iter().find(|x| x["id"] == id))
            .map(|x| x["live"]["state"].clone())
    };
    assert_eq!(state("v2c-uptime"), Some(json!("ok")), "{services}");
    assert_eq!(state("v3-uptime"), Some(json!("ok")), "{services}");
    assert_eq!(state("web-ok"), Some(json!("ok")), "{services}");
    assert_ne!(state("v2c-wrong-uptime"), Some(json!("ok")), "{services}");
    assert_ne!(state("v3-wrong-uptime"), Some(json!("ok")), "{services}");
    assert_ne!(state("web-down"), Some(json!("ok")), "{services}");
    assert_eq!(state("web-userinfo-ok"), Some(json!("ok")), "{services}");
    assert_ne!(state("web-userinfo-down"), Some(json!("ok")), "{services}");
    daemon.wait_for(
        || central.with(|c| c.records.len() >= 12 && !c.heartbeats.is_empty()),
        "records and a heartbeat at the central",
    );
    for path in ["/status", "/services", "/devices", "/metrics", "/", "/healthz"] {
        let (_, body) = daemon.get(path).expect("answer");
        assert_clean(&format!("GET {path}"), &body, &credential);
    }
    let status = snbox(&["status", "--config", &config], &[]);
    assert_clean("`snbox status`", &output_text(&status), &credential);
    let check = snbox(&["config", "check", "--config", &config], &[]);
    assert_clean("`snbox config check`", &output_text(&check), &credential);
    // R17's channels, both refused: the errors name the servers, never the credentials.
    let test = snbox(
        &["notify", "test", "--to", "tech@example.net", "--config", &config],
        &[],
    );
    assert!(!test.status.success(), "{}", output_text(&test));
    assert!(output_text(&test).contains("127.0.0.1:9"), "{}", output_text(&test));
    assert_clean("`snbox notify test`", &output_text(&test), &credential);

    // The explain report, and errors about a document that holds secrets.
    let doc_path = dir.path().join("doc.json");
    std::fs::write(&doc_path, serde_json::to_string_pretty(&doc).expect("json")).expect("doc");
    let doc_arg = doc_path.display().to_string();
    for format in ["text", "json"] {
        let out = snbox(
            &["config", "explain", "--monitoring", &doc_arg, "--format", format],
            &[],
        );
        assert!(out.status.success(), "{}", output_text(&out));
        assert_clean(&format!("`config explain --format {format}`"), &output_text(&out), &[]);
    }
    let text = std::fs::read_to_string(&doc_path).expect("doc");
    let broken = [
        // A syntax error on the secret's own line.
        text.replacen(&format!("\"{COMMUNITY}\""), &format!("\"{COMMUNITY}\" ,,"), 1),
        // The secret where an object belongs.
        text.replacen(
            &format!("\"{HTTP_PASSWORD}\""),
            &format!("{{\"x\": \"{HTTP_PASSWORD}\"}}"),
            1,
        ),
        // The secret, cut short: an unterminated string.
        text[..text.find(AUTH_KEY).map_or(0, |i| i + AUTH_KEY.len())].to_string(),
    ];
    for (i, bad) in broken.iter().enumerate() {
        let path = dir.path().join(format!("broken-{i}.json"));
        std::fs::write(&path, bad).expect("broken doc");
        let out = snbox(&["config", "explain", "--monitoring", &path.display().to_string()], &[]);
        assert!(!out.status.success(), "broken document {i} accepted");
        assert_clean(&format!("the error about broken document {i}"), &output_text(&out), &[]);
    }

    // `snbox probe`, secrets from the command line and from the environment, good and bad.
    let port = agent.port.to_string();
    let oid = "1.3.6.1.2.1.1.3.0";
    let snmp = |more: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = ["snmp", "127.0.0.1", "--port", &port, "--oid", oid]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend(more.iter().map(|a| a.to_string()));
        args
    };
    const V3: [&str; 10] = [
        "--snmp-version",
        "3",
        "--user",
        "sha256-aes",
        "--level",
        "authPriv",
        "--auth-protocol",
        "sha256",
        "--priv-protocol",
        "aes",
    ];
    let wrong_v3_keys = [
        "--auth-key",
        WRONG_AUTH_KEY,
        "--priv-key",
        WRONG_PRIV_KEY,
        "--timeout",
        "2",
    ];
    let probes: Vec<(Vec<String>, Envs)> = vec![
        (snmp(&["--community", COMMUNITY]), vec![]),
        (
            snmp(&["--timeout", "1"]),
            vec![("SNBOX_SNMP_COMMUNITY", WRONG_COMMUNITY)],
        ),
        (
            snmp(&V3),
            vec![("SNBOX_SNMP_AUTH_KEY", AUTH_KEY), ("SNBOX_SNMP_PRIV_KEY", PRIV_KEY)],
        ),
        (snmp(&[&V3[..], &wrong_v3_keys[..]].concat()), vec![]),
    ];
    let ok_url = web.url("/ok");
    let userinfo_ok = ok_url.replacen("http://", &format!("http://tech:{URL_PASSWORD}@"), 1);
    let userinfo_down = format!("http://tech:{URL_PASSWORD}@127.0.0.1:9/");
    let http = |args: &[&str]| -> Vec<String> { args.iter().map(|a| a.to_string()).collect() };
    let probes = probes.into_iter().chain([
        (
            http(&["http", &ok_url, "--username", "tech", "--password", HTTP_PASSWORD]),
            vec![],
        ),
        (
            http(&["http", "http://127.0.0.1:9/", "--username", "tech"]),
            vec![("SNBOX_HTTP_PASSWORD", HTTP_PASSWORD)],
        ),
        (http(&["http", &userinfo_ok]), vec![]),
        (http(&["http", &userinfo_down]), vec![]),
    ]);
    for (args, envs) in probes {
        for format in ["text", "json"] {
            let mut all = vec!["probe"];
            all.extend(args.iter().map(String::as_str));
            all.extend(["--format", format]);
            let out = snbox(&all, &envs);
            assert_clean(&format!("`snbox {}`", all.join(" ")), &output_text(&out), &[]);
        }
    }

    // The log, the central's view of every request (but the pairing request itself, which
    // carries the token to the one place it belongs) and the outbox's own files.
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
    let log = daemon_log(dir.path());
    assert!(log.contains("DEBUG"), "the daemon logged at debug level");
    assert_clean("the daemon's debug log", &log, &credential);
    central.with(|c| {
        for body in c.bodies.iter().filter(|b| !b.contains("\"token\"")) {
            assert_clean("a request to the central", body, &credential);
        }
    });
    for name in ["snbox.db", "snbox.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join("state").join(name)) {
            assert_clean(name, &String::from_utf8_lossy(&bytes), &credential);
        }
    }
}

fn daemon_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
}

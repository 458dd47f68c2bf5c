//! The status endpoint on a LAN (protocol.md §7): HTTPS by default off loopback, with a
//! certificate the box makes; browser access (Basic, a login form and its session cookie);
//! failed logins limited per address. The box listens on a non-loopback address inside a
//! network namespace the test creates; the test's clients enter that namespace (a thread that
//! `setns`es), so no packet leaves the machine.

#[path = "common/central.rs"]
mod central;
#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/peers.rs"]
mod peers;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use peers::Netns;

const FULL_TOKEN: &str = "Full-Token-0123456789abcdef";
const SITE_TOKEN: &str = "Site-Token-0123456789abcdef";
const ADDRESS: &str = "10.231.0.1";
const PORT: u16 = 8730;

fn addr() -> SocketAddr {
    SocketAddr::new(ADDRESS.parse().expect("ip"), PORT)
}

/// A namespace whose loopback interface also holds [`ADDRESS`]: an address of no loopback
/// block (the box treats it as the LAN's), reachable only inside the namespace.
fn namespace(tag: &str) -> Netns {
    Netns::new(tag, &[&format!("ip addr add {ADDRESS}/32 dev lo")])
}

/// Runs `f` on a thread inside the namespace `ns` (its sockets are the namespace's).
fn inside<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("the namespace's file");
        // SAFETY: setns on this thread only, with a valid descriptor of a network namespace.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("the thread in the namespace")
}

/// Two sites; a scoped token sees `s2` only.
fn document() -> Value {
    let mut doc = central::document(
        "tls-1",
        json!([ { "id": "web", "kind": "http", "criticality": "high", "availability_rate": 99.0,
                  "availability_period": "24x7", "control_period": "24x7", "interval_s": 5, "timeout_s": 1,
                  "max_attempts": 1 } ]),
        json!([ { "id": "d1", "node": "s", "name": "D1", "address": "127.0.0.1" },
                { "id": "d2", "node": "s2", "name": "D2", "address": "127.0.0.1" } ]),
        json!([ { "id": "d1-web", "device": "d1", "template": "web", "params": { "url": "http://127.0.0.1:9/" } },
                { "id": "d2-web", "device": "d2", "template": "web", "params": { "url": "http://127.0.0.1:9/" } } ]),
    );
    doc["tree"]
        .as_array_mut()
        .expect("tree")
        .push(json!({ "id": "s2", "kind": "site", "name": "S2", "parent": "c" }));
    doc
}

struct Box_ {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Box_ {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Box_ {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }
}

/// `snbox run` inside `ns`, listening on [`ADDRESS`]; returns once it accepts connections.
fn start(ns: &Netns, status_extra: &str) -> Box_ {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("doc.json"), document().to_string()).expect("doc");
    std::fs::write(
        dir.path().join("snbox.toml"),
        format!(
            "state_dir = \"state\"\n[standalone]\ndocument = \"doc.json\"\n[status]\nlisten = \"{}\"\n{status_extra}\n\
             [[status.tokens]]\ntoken = \"{FULL_TOKEN}\"\n[[status.tokens]]\ntoken = \"{SITE_TOKEN}\"\nnode = \"s2\"\n",
            addr()
        ),
    )
    .expect("settings");
    let log = std::fs::File::create(dir.path().join("daemon.log")).expect("log");
    let child = ns
        .command(env!("CARGO_BIN_EXE_snbox"))
        .args(["run", "--config"])
        .arg(dir.path().join("snbox.toml"))
        .env("SNBOX_LOG", "snbox=debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("snbox run");
    let b = Box_ { child, dir };
    let up = listening(ns);
    assert!(up, "the box did not listen on {}:\n{}", addr(), b.log());
    b
}

/// Whether the box accepts connections on [`ADDRESS`] within 30 s (looked at from inside `ns`).
fn listening(ns: &Netns) -> bool {
    inside(ns, || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr(), Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    })
}

/// The fingerprint of the certificate the box made.
fn made_fingerprint(dir: &Path) -> String {
    use rustls::pki_types::pem::PemObject;
    let der =
        rustls::pki_types::CertificateDer::from_pem_file(dir.join("state/status-cert.pem")).expect("made certificate");
    snbox::tls::fingerprint(&der)
}

/// An HTTPS client that trusts only the certificate with `fingerprint`.
fn pinned(fingerprint: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = snbox::central::trust::client_config(
        &snbox::central::trust::Trust::Pinned(fingerprint.to_string()),
        Default::default(),
    )
    .expect("client config");
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

fn get(client: &reqwest::Client, path: &str, auth: Option<(&str, &str)>) -> Answer {
    request(client, client.get(format!("https://{}{path}", addr())), auth)
}

fn request(_client: &reqwest::Client, mut r: reqwest::RequestBuilder, auth: Option<(&str, &str)>) -> Answer {
    match auth {
        Some(("bearer", token)) => r = r.bearer_auth(token),
        Some(("basic", token)) => r = r.basic_auth("tech", Some(token)),
        Some(("cookie", cookie)) => r = r.header("cookie", cookie),
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let answer = r.send().await.expect("an answer");
        Answer {
            status: answer.status().as_u16(),
            headers: answer.headers().clone(),
            body: answer.text().await.unwrap_or_default(),
        }
    })
}

/// A plain-text HTTP/1.1 request on a raw socket: the answer's text ("" if closed).
fn plain(request: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr(), Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

#[test]
#[ignore = "needs root: network namespaces (bash .ci/run runs it)"]
fn status_off_loopback_speaks_https_with_a_made_certificate_and_never_takes_a_token_in_clear() {
    let ns = namespace("https");
    let b = start(&ns, "");
    let dir = b.dir.path().to_path_buf();
    let fingerprint = made_fingerprint(&dir);
    let mode = std::fs::metadata(dir.join("state/status-key.pem"))
        .expect("key")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600,
        "the key is 0600"
    );
    assert!(
        b.log().contains(&fingerprint),
        "the log names the fingerprint:\n{}",
        b.log()
    );

    let fp = fingerprint.clone();
    inside(&ns, move || {
        // Plain HTTP with a token: refused before the request is read.
        let answer = plain(&format!(
            "GET /status HTTP/1.1\r\nhost: {ADDRESS}\r\nauthorization: Bearer {FULL_TOKEN}\r\n\r\n"
        ));
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("speaks HTTPS"), "{answer}");
        // Over TLS, pinned to the made certificate: no token 401, a token 200.
        let client = pinned(&fp);
        let none = get(&client, "/status", None);
        assert_eq!(none.status, 401);
        let status = get(&client, "/status", Some(("bearer", FULL_TOKEN)));
        assert_eq!(status.status, 200, "{}", status.body);
        let status: Value = serde_json::from_str(&status.body).expect("json");
        assert_eq!(status["endpoint"]["https"], true);
        assert_eq!(
            status["endpoint"]["fingerprint"],
            fp.as_str(),
            "the served certificate is the one printed"
        );
        assert_eq!(status["endpoint"]["generated"], true);
        // The token as a Basic password (the browser's prompt) works too; scoped as its token.
        let devices = get(&client, "/devices", Some(("basic", SITE_TOKEN)));
        assert_eq!(devices.status, 200, "{}", devices.body);
        assert!(
            devices.body.contains("\"d2\"") && !devices.body.contains("\"d1\""),
            "{}",
            devices.body
        );
        // A slow handshake is cut off like a slow head: a TLS record started, never finished.
        let started = Instant::now();
        let mut s = TcpStream::connect_timeout(&addr(), Duration::from_secs(2)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        s.write_all(&[0x16, 0x03, 0x01]).expect("write");
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
        let cut = started.elapsed();
        assert!(cut < Duration::from_secs(8), "the handshake was left open {cut:?}");
    });

    // `snbox status` on the box connects over HTTPS pinned to the made certificate.
    let out = ns
        .command(env!("CARGO_BIN_EXE_snbox"))
        .args(["status", "--config"])
        .arg(dir.join("snbox.toml"))
        .env("SNBOX_STATUS_TOKEN", FULL_TOKEN)
        .output()
        .expect("snbox status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains(&format!(
            "status endpoint: https on {}, certificate {fingerprint}",
            addr()
        )),
        "{text}"
    );
    // With another fingerprint it refuses to talk (it would send its token to an impostor).
    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = ns
        .command(env!("CARGO_BIN_EXE_snbox"))
        .args(["status", "--fingerprint", &wrong, "--config"])
        .arg(dir.join("snbox.toml"))
        .env("SNBOX_STATUS_TOKEN", FULL_TOKEN)
        .output()
        .expect("snbox status");
    assert!(!out.status.success());

    // A restart keeps the made certificate.
    let mut b = b;
    let _ = b.child.kill();
    let _ = b.child.wait();
    let mut again = start_in(&ns, &dir);
    assert_eq!(
        made_fingerprint(&dir),
        fingerprint,
        "the certificate is kept across restarts"
    );
    let _ = again.kill();
    let _ = again.wait();
}

/// Restarts a box on the settings already in `dir`.
fn start_in(ns: &Netns, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("daemon2.log")).expect("log");
    let child = ns
        .command(env!("CARGO_BIN_EXE_snbox"))
        .args(["run", "--config"])
        .arg(dir.join("snbox.toml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("snbox run");
    let up = listening(ns);
    assert!(up);
    child
}

#[test]
#[ignore = "needs root: network namespaces (bash .ci/run runs it)"]
fn a_browser_signs_in_with_a_form_gets_a_strict_cookie_and_wrong_tokens_are_rate_limited() {
    let ns = namespace("login");
    let b = start(&ns, "");
    let fingerprint = made_fingerprint(b.dir.path());
    inside(&ns, move || {
        let client = pinned(&fingerprint);
        // The page without a token: the Basic challenge and the login form.
        let page = get(&client, "/", None);
        assert_eq!(page.status, 401);
        assert!(page.body.contains("action=\"/login\""), "{}", page.body);
        let challenge = page.headers["www-authenticate"]
            .to_str()
            .unwrap_or_default()
            .to_string();
        assert!(challenge.contains("Basic"), "{challenge}");
        // Signing in with the site's token.
        let login = request(
            &client,
            client
                .post(format!("https://{}/login", addr()))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={SITE_TOKEN}")),
            None,
        );
        assert_eq!(login.status, 303, "{}", login.body);
        let cookie = login.headers["set-cookie"].to_str().unwrap_or_default().to_string();
        for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
        }
        let session = cookie.split(';').next().unwrap_or_default().to_string();
        let page = get(&client, "/", Some(("cookie", &session)));
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("d2-web") && !page.body.contains("d1-web"),
            "the page is scoped"
        );
        let status: Value =
            serde_json::from_str(&get(&client, "/status", Some(("cookie", &session))).body).expect("json");
        assert_eq!(status["services"]["polled"], 1, "{status}");
        // The cookie is never taken over plain HTTP.
        let answer = plain(&format!(
            "GET /status HTTP/1.1\r\nhost: {ADDRESS}\r\ncookie: {session}\r\n\r\n"
        ));
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        // Logging out ends the session.
        let out = request(
            &client,
            client.post(format!("https://{}/logout", addr())),
            Some(("cookie", &session)),
        );
        assert_eq!(out.status, 303);
        assert_eq!(get(&client, "/status", Some(("cookie", &session))).status, 401);
        // Wrong tokens: refused, then the address is refused for a while, the right token too.
        for _ in 0..10 {
            let wrong = request(
                &client,
                client
                    .post(format!("https://{}/login", addr()))
                    .body("token=Wrong-Token-0000000000000000"),
                None,
            );
            assert_eq!(wrong.status, 401);
        }
        let limited = get(&client, "/status", Some(("bearer", FULL_TOKEN)));
        assert_eq!(limited.status, 429, "{}", limited.body);
        assert!(limited.headers.contains_key("retry-after"));
    });
    let log = b.log();
    assert!(log.contains("wrong token: refused"), "failed logins are logged:\n{log}");
    assert!(
        !log.contains("Wrong-Token-0000000000000000") && !log.contains(SITE_TOKEN),
        "a token in the log"
    );
}

#[test]
#[ignore = "needs root: network namespaces (bash .ci/run runs it)"]
fn allow_plain_http_serves_plain_says_so_at_start_and_refuses_to_sign_in() {
    let ns = namespace("plain");
    let b = start(&ns, "allow_plain_http = true");
    assert!(
        !b.dir.path().join("state/status-cert.pem").exists(),
        "no certificate made"
    );
    inside(&ns, || {
        let answer = plain(&format!(
            "GET /status HTTP/1.1\r\nhost: {ADDRESS}\r\nauthorization: Bearer {FULL_TOKEN}\r\nconnection: close\r\n\r\n"
        ));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let login = plain(&format!(
            "POST /login HTTP/1.1\r\nhost: {ADDRESS}\r\ncontent-length: {}\r\nconnection: close\r\n\r\ntoken={FULL_TOKEN}",
            FULL_TOKEN.len() + 6
        ));
        assert!(login.starts_with("HTTP/1.1 403"), "{login}");
        assert!(!login.to_ascii_lowercase().contains("set-cookie"), "{login}");
    });
    let log = b.log();
    assert!(log.contains("speaks plain HTTP"), "the start says so:\n{log}");
}

#[test]
#[ignore = "needs root and chromium: bash .ci/run installs it and runs this"]
fn headless_chromium_signs_in_with_a_scoped_token_and_sees_only_its_subtree() {
    let chromium = peers::chromium();
    let ns = namespace("chrome");
    let b = start(&ns, "");
    let profile = tempfile::tempdir().expect("profile");
    // The token as the Basic password, answered to the page's challenge.
    let out = ns
        .command(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--ignore-certificate-errors",
            "--timeout=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("https://tech:{SITE_TOKEN}@{}/", addr()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("d2-web"),
        "the scoped page: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !dom.contains("d1-web"),
        "another site's service on a scoped page: {dom}"
    );
    drop(b);
}

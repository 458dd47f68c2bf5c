#![allow(dead_code)] // shared by several test crates, each using part of it
//! The peers of R17's tests: a real SMTP server (aiosmtpd, from PyPI: `.ci/run` installs it in
//! a venv) with STARTTLS and AUTH, SMTP servers that misbehave (hang, close mid-DATA), and a
//! webhook receiver over HTTPS in the test process. Everything listens on 127.0.0.1 only and
//! every connection is bounded in time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;

pub const SMTP_USER: &str = "box-test";
pub const SMTP_PASSWORD: &str = "Smtp-Secret-7c41e09b";
pub const WEBHOOK_TOKEN: &str = "Hook-Token-2b8d5f11";

/// The Python with aiosmtpd: `SNBOX_AIOSMTPD_PYTHON`, or the venv `.ci/run` makes.
pub fn aiosmtpd_python() -> PathBuf {
    std::env::var_os("SNBOX_AIOSMTPD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/snbox-aiosmtpd/bin/python"))
}

/// A CA and a server certificate for 127.0.0.1 and localhost, as PEM: (CA, certificate, key).
pub fn certificate() -> (String, String, String) {
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "snbox notify test CA");
    ca_params.not_before = now - time::Duration::days(1);
    ca_params.not_after = now + time::Duration::days(365);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "snbox notify test server");
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365);
    let key = KeyPair::generate().expect("server key");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// A mail the sink stored.
#[derive(Debug, Clone)]
pub struct Mail {
    pub rcpt: String,
    pub message_id: String,
    pub subject: String,
    pub text: String,
}

/// aiosmtpd on 127.0.0.1 with STARTTLS (a fresh CA, whose PEM is `ca_file`) and AUTH.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub ca_file: PathBuf,
    _tmp: tempfile::TempDir,
}

impl SmtpSink {
    pub fn start(refuse: bool) -> SmtpSink {
        Self::start_on(free_port(), refuse)
    }

    pub fn start_on(port: u16, refuse: bool) -> SmtpSink {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("mail");
        std::fs::create_dir(&dir).expect("mail dir");
        let (ca, cert, key) = certificate();
        let ca_file = tmp.path().join("ca.pem");
        std::fs::write(&ca_file, ca).expect("ca");
        std::fs::write(tmp.path().join("cert.pem"), cert).expect("cert");
        std::fs::write(tmp.path().join("key.pem"), key).expect("key");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smtp_sink.py");
        let mut command = Command::new(aiosmtpd_python());
        command
            .arg(script)
            .args(["--port", &port.to_string(), "--dir"])
            .arg(&dir)
            .arg("--cert")
            .arg(tmp.path().join("cert.pem"))
            .arg("--key")
            .arg(tmp.path().join("key.pem"))
            .args(["--auth", &format!("{SMTP_USER}:{SMTP_PASSWORD}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if refuse {
            command.arg("--refuse");
        }
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "{} cannot start ({e}): run .ci/run's aiosmtpd step",
                aiosmtpd_python().display()
            )
        });
        let mut ready = String::new();
        if let Some(out) = child.stdout.as_mut() {
            use std::io::BufRead;
            let _ = std::io::BufReader::new(out).read_line(&mut ready);
        }
        assert_eq!(ready.trim(), "READY", "aiosmtpd did not start");
        SmtpSink {
            child,
            port,
            dir,
            ca_file,
            _tmp: tmp,
        }
    }

    /// `[notify.smtp]` for this sink.
    pub fn settings(&self, from: &str) -> String {
        format!(
            "[notify.smtp]\nserver = \"127.0.0.1:{}\"\nsecurity = \"starttls\"\nuser = \"{SMTP_USER}\"\n\
             password = \"{SMTP_PASSWORD}\"\nfrom = \"{from}\"\nca_file = \"{}\"\n",
            self.port,
            self.ca_file.display()
        )
    }

    pub fn mails(&self) -> Vec<Mail> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        let n = name.strip_suffix(".eml")?.parse().ok()?;
                        Some((n, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|(_, p)| parse_mail(&std::fs::read_to_string(p).ok()?))
            .collect()
    }

    /// Waits until `enough(mails)`, at most `within`.
    pub fn wait(&self, within: Duration, mut enough: impl FnMut(&[Mail]) -> bool) -> Vec<Mail> {
        let deadline = Instant::now() + within;
        loop {
            let mails = self.mails();
            if enough(&mails) || Instant::now() > deadline {
                return mails;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_mail(text: &str) -> Option<Mail> {
    let (head, body) = text.split_once("\r\n\r\n").or_else(|| text.split_once("\n\n"))?;
    // Unfold continuation lines.
    let head = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let field = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    Some(Mail {
        rcpt: field("X-Sink-Rcpt"),
        message_id: field("Message-ID"),
        subject: field("Subject"),
        text: decode_body(body, &field("Content-Transfer-Encoding")),
    })
}

/// Plain, quoted-printable or base64 bodies, as lettre may encode them.
fn decode_body(body: &str, encoding: &str) -> String {
    use base64::Engine as _;
    match encoding.to_ascii_lowercase().as_str() {
        "base64" => {
            let joined: String = body.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(joined)
                .map(|b| String::from_utf8_lossy(&b).to_string())
                .unwrap_or_default()
        }
        "quoted-printable" => {
            let mut out = Vec::new();
            let text = body.replace("=\r\n", "").replace("=\n", "");
            let bytes = text.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'='
                    && i + 2 < bytes.len()
                    && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
                {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(bytes[i]);
                i += 1;
            }
            String::from_utf8_lossy(&out).to_string()
        }
        _ => body.to_string(),
    }
}

/// SMTP servers that misbehave, in the test process.
#[derive(Debug, Clone, Copy)]
pub enum BadSmtp {
    /// Accepts the connection and never says a word.
    Hangs,
    /// Greets and takes the envelope, answers DATA with 354, then closes mid-message.
    ClosesMidData,
}

/// Starts `kind` on a free port; returns the port. The server lives as long as the runtime.
pub async fn bad_smtp(kind: BadSmtp) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let talk = async move {
                    match kind {
                        BadSmtp::Hangs => tokio::time::sleep(Duration::from_secs(60)).await,
                        BadSmtp::ClosesMidData => {
                            let _ = s.write_all(b"220 bad.test ESMTP\r\n").await;
                            let mut buf = vec![0u8; 4096];
                            loop {
                                let Ok(n) = s.read(&mut buf).await else { return };
                                if n == 0 {
                                    return;
                                }
                                let line = String::from_utf8_lossy(&buf[..n]).to_ascii_uppercase();
                                let answer: &[u8] = if line.starts_with("EHLO") || line.starts_with("HELO") {
                                    b"250 bad.test\r\n"
                                } else if line.starts_with("DATA") {
                                    let _ = s.write_all(b"354 go ahead\r\n").await;
                                    let _ = s.read(&mut buf).await;
                                    return; // closed mid-DATA
                                } else if line.starts_with("QUIT") {
                                    b"221 bye\r\n"
                                } else {
                                    b"250 ok\r\n"
                                };
                                if s.write_all(answer).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(60), talk).await;
            });
        }
    });
    port
}

/// One webhook call as received.
#[derive(Debug, Clone)]
pub struct Call {
    pub authorization: Option<String>,
    pub body: serde_json::Value,
}

/// An HTTPS webhook receiver: records every call; the first `fail_first` answer 500.
pub struct Webhooks {
    pub port: u16,
    pub ca_file: PathBuf,
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub answers: Arc<Mutex<Vec<u16>>>,
    _tmp: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Webhooks {
    pub async fn start(fail_first: usize) -> Webhooks {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = certificate();
        let ca_file = tmp.path().join("ca.pem");
        std::fs::write(&ca_file, &ca).expect("ca");
        let cert = rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert der");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key der");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let (c, a) = (calls.clone(), answers.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, calls, answers) = (acceptor.clone(), c.clone(), a.clone());
                tokio::spawn(async move {
                    let serve = async move {
                        let Ok(mut s) = acceptor.accept(tcp).await else { return };
                        let Some((head, body)) = read_request(&mut s).await else {
                            return;
                        };
                        let authorization = head.lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("authorization").then(|| v.trim().to_string())
                        });
                        let status = {
                            let mut answers = answers.lock().expect("answers");
                            let status = if answers.len() < fail_first { 500 } else { 200 };
                            answers.push(status);
                            status
                        };
                        if status == 200 {
                            calls.lock().expect("calls").push(Call {
                                authorization,
                                body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                            });
                        }
                        let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                        let _ = s.write_all(reply.as_bytes()).await;
                        let _ = s.shutdown().await;
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(30), serve).await;
                });
            }
        });
        Webhooks {
            port,
            ca_file,
            calls,
            answers,
            _tmp: tmp,
            task,
        }
    }

    /// `[[notify.webhook]]` for this receiver.
    pub fn settings(&self) -> String {
        format!(
            "[[notify.webhook]]\nurl = \"https://127.0.0.1:{}/hook\"\nbearer_token = \"{WEBHOOK_TOKEN}\"\nca_file = \"{}\"\n",
            self.port,
            self.ca_file.display()
        )
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }
}

async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 || data.len() > 1 << 20 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length.min(1 << 20) {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some((head, body))
}

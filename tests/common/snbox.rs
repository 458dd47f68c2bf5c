#![allow(dead_code)] // shared by several test crates, each using part of it
//! `snbox run`, the real binary, as the end-to-end tests drive it: started on settings the
//! test writes, asked over its status endpoint, stopped by SIGTERM or killed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Daemon {
    /// Writes `dir/snbox.toml` from `settings(status port)` and starts `snbox run` on it,
    /// returning once `/healthz` answers 200 (or 401, when no address is trusted).
    pub fn start(dir: &Path, settings: impl FnOnce(u16) -> String) -> Daemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        std::fs::write(dir.join("snbox.toml"), settings(port)).expect("settings");
        let log = std::fs::File::create(dir.join("daemon.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_snbox"))
            .args(["run", "--config"])
            .arg(dir.join("snbox.toml"))
            .env("SNBOX_LOG", "snbox=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("snbox run starts");
        let daemon = Daemon {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        // 401: settings that trust no address; the endpoint is up all the same.
        daemon.wait_for(
            || {
                daemon
                    .get("/healthz")
                    .is_some_and(|(code, _)| code == 200 || code == 401)
            },
            "the status endpoint",
        );
        daemon
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A GET from 127.0.0.1 (or from `from`, with an optional bearer token): status and body.
    pub fn request(&self, path: &str, from: Option<IpAddr>, token: Option<&str>) -> Option<(u16, String)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5));
            if let Some(ip) = from {
                client = client.local_address(ip);
            }
            let mut request = client.build().ok()?.get(self.url(path));
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let response = request.send().await.ok()?;
            let code = response.status().as_u16();
            Some((code, response.text().await.ok()?))
        })
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.request(path, None, None)
    }

    pub fn json(&self, path: &str) -> Value {
        let (code, body) = self.get(path).unwrap_or_else(|| panic!("no answer to {path}"));
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
    }

    pub fn wait_for(&self, mut ready: impl FnMut() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if ready() {
                return;
            }
            if self.exited() {
                panic!("snbox exited before {what}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{what} not ready within 30 s; log:\n{}", self.log());
    }

    /// The process has ended (a zombie until it is waited for).
    fn exited(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// SIGTERM, and the exit code within `within`.
    pub fn terminate(mut self, within: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standalone settings on `doc.json` whose status endpoint on `status` needs no token from
/// 127.0.0.1 and has one token scoped to `node`.
pub fn standalone_with_scoped_token(status: u16, token: &str, node: &str) -> String {
    format!(
        "state_dir = \"state\"\n[standalone]\ndocument = \"doc.json\"\n[status]\nlisten = \"127.0.0.1:{status}\"\n\
         no_token_from = [\"127.0.0.1/32\"]\n[[status.tokens]]\ntoken = \"{token}\"\nnode = \"{node}\"\n"
    )
}

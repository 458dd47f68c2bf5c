#![allow(dead_code)] // shared by several test crates, each using part of it
//! Real peers started by the tests themselves, on loopback or in network namespaces the tests
//! create: Debian's `snmpd` with v2c and v3 users, and silent namespaces for ICMP.
//! Each peer is stopped when its handle drops, and runs under `timeout` in case a test dies.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The v3 users of the test snmpd: (user, level, auth protocol, auth key, priv protocol, priv key).
pub const V3_USERS: [(&str, &str, &str, &str, &str, &str); 5] = [
    ("noauth", "noAuthNoPriv", "", "", "", ""),
    ("sha-auth", "authNoPriv", "sha", "AuthKey-sha-1", "", ""),
    (
        "sha256-aes",
        "authPriv",
        "sha256",
        "AuthKey-sha256",
        "aes",
        "PrivKey-aes128",
    ),
    ("md5-des", "authPriv", "md5", "AuthKey-md5-x", "des", "PrivKey-des-x"),
    (
        "sha512-aes256",
        "authPriv",
        "sha512",
        "AuthKey-sha512",
        "aes256",
        "PrivKey-aes256",
    ),
];
pub const COMMUNITY: &str = "Comm-7e3d9a";
pub const LOCATION: &str = "snbox-test-rack";

/// A peer process run under `timeout` (so that it dies even if the test process is killed),
/// stopped with SIGTERM, which `timeout` passes on to the peer, when the handle drops.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    pub fn spawn(program: &std::path::Path, args: &[String], envs: &[(&str, String)]) -> Daemon {
        let child = Command::new("timeout")
            .args(["-k", "5", "900"])
            .arg(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", program.display()));
        Daemon { child }
    }
}

impl Daemon {
    /// The peer's own process id (the child of the `timeout` wrapper).
    pub fn program_pid(&self) -> Option<u32> {
        child_of(self.child.id())
    }
}

/// The first child of process `parent` (a program started under `timeout`), within 5 s.
pub fn child_of(parent: u32) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next().and_then(|p| p.parse().ok()) {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Snmpd {
    pub port: u16,
    _daemon: Daemon,
    _dir: tempfile::TempDir,
}

/// Waits until a v2c GET of sysDescr with `community` answers on `port`.
fn wait_for_agent(address: &str, port: u16, community: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let ok = Command::new("snmpget")
            .args(["-v2c", "-c", community, "-t", "0.5", "-r", "0", "-m", ""])
            .arg(format!("{address}:{port}"))
            .arg("1.3.6.1.2.1.1.1.0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

fn require(binary: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = PathBuf::from(dir).join(binary);
        if p.exists() {
            return p;
        }
    }
    panic!("{binary} is not installed: run `bash .ci/run`, or apt-get install snmpd snmp iproute2");
}

impl Snmpd {
    pub fn start() -> Snmpd {
        Snmpd::start_with_communities(&[])
    }

    /// Stops this agent and starts a new one on the same port, with a new engine (ID, boots
    /// and time), as after a reboot or a replacement.
    pub fn restart(self) -> Snmpd {
        let port = self.port;
        drop(self);
        Snmpd::start_at("127.0.0.1", port, &[], true)
    }

    /// With more v2c communities besides [`COMMUNITY`] (each one a distinct agent for the prober).
    pub fn start_with_communities(extra: &[&str]) -> Snmpd {
        Snmpd::start_at("127.0.0.1", free_udp_port(), extra, true)
    }

    /// On `address:port`, with only the `communities` given (none: only the v3 users), or
    /// with [`COMMUNITY`] and them when `default_community`.
    pub fn start_at(address: &str, port: u16, extra: &[&str], default_community: bool) -> Snmpd {
        let snmpd = require("snmpd");
        require("snmpget");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conf = format!("sysLocation {LOCATION}\nsysContact test@localhost\nsysName snmpd-{address}\n");
        if default_community {
            conf.push_str(&format!("rocommunity {COMMUNITY} 127.0.0.1\n"));
        }
        for community in extra {
            conf.push_str(&format!("rocommunity {community} 127.0.0.1\n"));
        }
        for (user, level, auth, auth_key, privacy, priv_key) in V3_USERS {
            let auth_name = match auth {
                "sha" => "SHA",
                "sha256" => "SHA-256",
                "sha512" => "SHA-512",
                "md5" => "MD5",
                _ => "",
            };
            let priv_name = match privacy {
                "aes" => "AES",
                "aes256" => "AES-256",
                "des" => "DES",
                _ => "",
            };
            let (create, access) = match level {
                "noAuthNoPriv" => (format!("createUser {user}\n"), format!("rouser {user} noauth\n")),
                "authNoPriv" => (
                    format!("createUser {user} {auth_name} \"{auth_key}\"\n"),
                    format!("rouser {user} auth\n"),
                ),
                _ => (
                    format!("createUser {user} {auth_name} \"{auth_key}\" {priv_name} \"{priv_key}\"\n"),
                    format!("rouser {user} priv\n"),
                ),
            };
            conf.push_str(&create);
            conf.push_str(&access);
        }
        let conf_path = dir.path().join("snmpd.conf");
        std::fs::write(&conf_path, conf).expect("write snmpd.conf");
        let args: Vec<String> = ["-f", "-I", "-smux", "-C", "-c"]
            .iter()
            .map(|a| a.to_string())
            .chain([
                conf_path.display().to_string(),
                "-Lf".into(),
                dir.path().join("snmpd.log").display().to_string(),
                format!("udp:{address}:{port}"),
            ])
            .collect();
        let envs = [
            ("SNMP_PERSISTENT_DIR", dir.path().join("persist").display().to_string()),
            ("MIBS", String::new()),
        ];
        let daemon = Daemon::spawn(&snmpd, &args, &envs);
        let probe = if default_community {
            COMMUNITY
        } else {
            extra.first().copied().unwrap_or(COMMUNITY)
        };
        if default_community || !extra.is_empty() {
            assert!(
                wait_for_agent(address, port, probe, Duration::from_secs(15)),
                "snmpd did not answer on {address}:{port} within 15 s"
            );
        } else {
            // v3 users only: give it the time it takes to start.
            std::thread::sleep(Duration::from_millis(500));
        }
        Snmpd {
            port,
            _daemon: daemon,
            _dir: dir,
        }
    }
}

/// snmpsim serving real device recordings of snmpsim-data; the community selects the device.
pub struct Snmpsim {
    pub port: u16,
    _daemon: Daemon,
    _dir: tempfile::TempDir,
}

/// The recordings served: a Cisco Catalyst 3560 switch and a Linux host.
pub const CISCO_C3560: &str = "network/switch/cisco-c3560";
pub const LINUX_HOST: &str = "os/linux/unknown-006";

impl Snmpsim {
    pub fn start() -> Snmpsim {
        Snmpsim::start_at("127.0.0.1", free_udp_port())
    }

    pub fn start_at(address: &str, port: u16) -> Snmpsim {
        use std::os::unix::fs::PermissionsExt;
        let venv = std::env::var("SNBOX_SNMPSIM_VENV").unwrap_or_else(|_| "/opt/snbox-snmpsim".into());
        let responder = PathBuf::from(&venv).join("bin/snmpsim-command-responder");
        assert!(
            responder.exists(),
            "snmpsim is not installed in {venv}: run `bash .ci/run` (it creates that venv)"
        );
        require("snmpget");
        let data_src = Command::new(PathBuf::from(&venv).join("bin/python"))
            .args([
                "-c",
                "import os, snmpsim_data; print(os.path.join(os.path.dirname(snmpsim_data.__file__), 'data'))",
            ])
            .output()
            .expect("the venv's python runs");
        let data_src = PathBuf::from(String::from_utf8_lossy(&data_src.stdout).trim());
        // snmpsim drops to `nobody`: everything it reads or writes must be open to it.
        let dir = tempfile::tempdir().expect("tempdir");
        let open = |p: &std::path::Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        open(dir.path(), 0o755);
        for device in [CISCO_C3560, LINUX_HOST] {
            let target = dir.path().join("data").join(format!("{device}.snmprec"));
            std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
            // Served decompressed: snmpsim re-reads a .bz2 from its start at every seek.
            let out = Command::new("bzcat")
                .arg(data_src.join(format!("{device}.snmprec.bz2")))
                .output()
                .expect("bzcat runs");
            assert!(out.status.success(), "cannot read the {device} recording");
            std::fs::write(&target, out.stdout).expect("write recording");
        }
        for entry in walk_dirs(&dir.path().join("data")) {
            open(&entry, 0o755);
        }
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(&cache).expect("cache dir");
        open(&cache, 0o777);
        let args = vec![
            format!("--data-dir={}", dir.path().join("data").display()),
            format!("--cache-dir={}", cache.display()),
            format!("--agent-udpv4-endpoint={address}:{port}"),
            "--v3-user=simulator".into(),
            "--v3-auth-key=auctoritas".into(),
            "--v3-auth-proto=SHA".into(),
            "--process-user=nobody".into(),
            "--process-group=nogroup".into(),
            "--logging-method=null".into(),
        ];
        let daemon = Daemon::spawn(&responder, &args, &[]);
        assert!(
            wait_for_agent(address, port, CISCO_C3560, Duration::from_secs(120)),
            "snmpsim did not answer on {address}:{port} within 120 s"
        );
        Snmpsim {
            port,
            _daemon: daemon,
            _dir: dir,
        }
    }
}

fn walk_dirs(root: &std::path::Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = std::fs::read_dir(&out[i]) {
            out.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        i += 1;
    }
    out
}

/// A network namespace of the test's own, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A namespace whose loopback is up; `setup` lines are run in it with `sh -c`.
    pub fn new(tag: &str, setup: &[&str]) -> Netns {
        require("ip");
        let name = format!("snbox-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip runs");
        assert!(
            status.success(),
            "cannot create network namespace {name} (the tests run as root in CI)"
        );
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        for line in setup {
            ns.run(&["sh", "-c", line]);
        }
        ns
    }

    /// A namespace on a LAN of its own, 192.0.2.1/24 on a veth whose other end has no host:
    /// every other address of the /24 stays silent (ARP is never answered).
    pub fn silent_lan(tag: &str) -> Netns {
        Netns::new(
            tag,
            &[
                "ip link add v0 type veth peer name v1",
                "ip addr add 192.0.2.1/24 dev v0",
                "ip link set v0 up",
                "ip link set v1 up",
            ],
        )
    }

    pub fn run(&self, args: &[&str]) {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .status()
            .expect("ip netns exec");
        assert!(status.success(), "in {}: {args:?} failed", self.name);
    }

    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// The SNMP block of a v2c device on a loopback port (for the probe tests and benchmarks).
pub fn v2c(port: u16, community: &str) -> snbox::document::Snmp {
    snbox::document::Snmp::with_community(
        snbox::document::SnmpVersion::V2c,
        port,
        snbox::secret::Secret::new(community),
    )
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}

/// A web server on 127.0.0.1:`port` answering 200 to every request from now on (a thread,
/// bounded in connections; it ends with the test's process). Binding fails if the port is taken.
pub fn answer_200_on(port: u16) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the web port");
    std::thread::spawn(move || {
        for conn in listener.incoming().take(10_000) {
            let Ok(mut s) = conn else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
}

/// Debian's chromium (`bash .ci/run` installs it).
pub fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium is not installed: run `bash .ci/run`, or apt-get install chromium")
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_tcp(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Debian's nginx on 127.0.0.1, one worker, answering `GET /health` with `ok`.
pub struct Nginx {
    pub port: u16,
    _daemon: Daemon,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start() -> Nginx {
        let nginx = require("nginx");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_tcp_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::create_dir_all(dir.path().join("tmp")).expect("dir");
        std::fs::write(
            &conf,
            format!(
                "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 4096; }}\n\
                 http {{ access_log off; client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;\n\
                 fastcgi_temp_path {d}/tmp/fastcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;\n\
                 server {{ listen 127.0.0.1:{port}; location = /health {{ default_type text/plain; return 200 \"ok\\n\"; }} }} }}\n",
                d = dir.path().display()
            ),
        )
        .expect("nginx.conf");
        let daemon = Daemon::spawn(
            &nginx,
            &[
                "-e".into(),
                dir.path().join("error.log").display().to_string(),
                "-c".into(),
                conf.display().to_string(),
                "-g".into(),
                "daemon off;".into(),
            ],
            &[],
        );
        assert!(
            wait_tcp(port, Duration::from_secs(10)),
            "nginx does not answer on {port}"
        );
        Nginx {
            port,
            _daemon: daemon,
            _dir: dir,
        }
    }
}

/// Debian's `dnsmasq` answering for `snbox.test` on a loopback port (UDP and TCP), from
/// records given on its command line; any other name in the zone is NXDOMAIN.
pub struct Dnsmasq {
    pub port: u16,
    _daemon: Daemon,
}

/// Four 200-byte strings: over 512 bytes, so the UDP answer is truncated and read over TCP.
pub fn big_txt() -> String {
    big_txt_strings().concat()
}

fn big_txt_strings() -> Vec<String> {
    (b'a'..=b'd').map(|c| String::from(c as char).repeat(200)).collect()
}

impl Dnsmasq {
    pub fn start() -> Dnsmasq {
        let dnsmasq = require("dnsmasq");
        let port = free_udp_port();
        let big = big_txt_strings();
        let args: Vec<String> = [
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--user=nobody",
            "--pid-file=",
            "--local=/snbox.test/",
            "--host-record=www.snbox.test,192.0.2.10,2001:db8::10",
            "--host-record=www2.snbox.test,192.0.2.11",
            "--cname=alias.snbox.test,www.snbox.test",
            "--mx-host=snbox.test,mail.snbox.test,10",
            "--txt-record=txt.snbox.test,v=spf1 -all",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            format!("--port={port}"),
            format!("--txt-record=big.snbox.test,{}", big.join(",")),
        ])
        .collect();
        let daemon = Daemon::spawn(&dnsmasq, &args, &[]);
        // Ready when its TCP side accepts (it binds UDP and TCP together).
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "dnsmasq did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Dnsmasq { port, _daemon: daemon }
    }
}

/// A tmpfs of `size` mounted on `path` for the test's life (needs root, as CI runs).
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    pub fn mount(path: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount");
        assert!(status.success(), "mounting a tmpfs needs root (CI runs as root)");
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

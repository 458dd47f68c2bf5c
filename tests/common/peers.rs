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

pub struct Snmpd {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        let snmpd = require("snmpd");
        require("snmpget");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conf =
            format!("rocommunity {COMMUNITY} 127.0.0.1\nsysLocation {LOCATION}\nsysContact test@localhost\n");
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
        let port = free_udp_port();
        let child = Command::new("timeout")
            .args(["-k", "5", "600"])
            .arg(&snmpd)
            .args(["-f", "-I", "-smux", "-C", "-c"])
            .arg(&conf_path)
            .arg("-Lf")
            .arg(dir.path().join("snmpd.log"))
            .arg(format!("udp:127.0.0.1:{port}"))
            .env("SNMP_PERSISTENT_DIR", dir.path().join("persist"))
            .env("MIBS", "")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("snmpd starts");
        let peer = Snmpd { port, child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let ok = Command::new("snmpget")
                .args(["-v2c", "-c", COMMUNITY, "-t", "0.5", "-r", "0", "-m", ""])
                .arg(format!("127.0.0.1:{port}"))
                .arg("1.3.6.1.2.1.1.3.0")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return peer;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("snmpd did not answer on 127.0.0.1:{port} within 15 s");
    }
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

//! The box's identity once paired (protocol.md §5.1): which central server, which box, its
//! credential and, when pairing pinned it, the server's certificate.
//!
//! Kept in `state_dir/identity.json`, mode 0600, written atomically (temp file, fsync, rename,
//! fsync of the folder): a power cut leaves the old identity or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

pub const FILE: &str = "identity.json";

#[derive(Debug, Clone)]
pub struct Identity {
    pub central_url: url::Url,
    pub box_id: String,
    pub node: String,
    pub credential: Secret,
    pub pin: Option<Pin>,
    /// The poll period the central server asked for at pairing.
    pub config_poll_s: Option<u32>,
    pub paired_at: Timestamp,
}

/// The central server's certificate, accepted at pairing by the hash the operator gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// `sha256:` and the hex SHA-256 of the leaf certificate's DER.
    pub sha256: String,
    pub certificate_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read the identity {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the identity {path} is damaged ({why}): pair the box again with `snbox pair --force`")]
    Damaged { path: PathBuf, why: String },
    #[error("cannot write the identity {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The file's form. The credential is written here and nowhere else.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    central_url: String,
    box_id: String,
    node: String,
    credential: String,
    #[serde(default)]
    pin: Option<Pin>,
    #[serde(default)]
    config_poll_s: Option<u32>,
    paired_at: Timestamp,
}

impl Identity {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE)
    }

    /// The identity in `state_dir`, or `None` if the box was never paired.
    pub fn load(state_dir: &Path) -> Result<Option<Identity>, IdentityError> {
        let path = Identity::path(state_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(IdentityError::Read { path, source }),
        };
        let damaged = |why: String| IdentityError::Damaged {
            path: path.clone(),
            why,
        };
        // serde's message could quote the credential: say where, not what.
        let raw: OnDisk = serde_json::from_str(&text).map_err(|e| {
            damaged(format!(
                "not the expected JSON at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        let central_url = url::Url::parse(&raw.central_url).map_err(|e| damaged(format!("central_url: {e}")))?;
        if raw.box_id.is_empty() || raw.credential.is_empty() {
            return Err(damaged("box_id or credential is empty".into()));
        }
        Ok(Some(Identity {
            central_url,
            box_id: raw.box_id,
            node: raw.node,
            credential: Secret::new(raw.credential),
            pin: raw.pin,
            config_poll_s: raw.config_poll_s,
            paired_at: raw.paired_at,
        }))
    }

    /// Writes the identity into `state_dir` atomically, readable by its owner only.
    pub fn save(&self, state_dir: &Path) -> Result<(), IdentityError> {
        let path = Identity::path(state_dir);
        let raw = OnDisk {
            central_url: self.central_url.to_string(),
            box_id: self.box_id.clone(),
            node: self.node.clone(),
            credential: self.credential.expose().to_string(),
            pin: self.pin.clone(),
            config_poll_s: self.config_poll_s,
            paired_at: self.paired_at,
        };
        let text = serde_json::to_string_pretty(&raw).unwrap_or_default();
        write_atomically(&path, text.as_bytes(), 0o600).map_err(|source| IdentityError::Write { path, source })
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder: fsync, rename, fsync
/// of the folder. The file has `mode` from its creation, so it is never readable by others.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

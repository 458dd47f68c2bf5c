//! The control socket: how `snbox maintenance|ack|check` on the box reach the running daemon,
//! so that a technician on site can act with no central server (protocol.md §2).
//!
//! A Unix socket (`[control] socket`, default `/run/snbox/control.sock`) of mode 0600, owned
//! by the daemon's user: only that user and root may connect. One request per connection: a
//! command as the central server sends them (`command.rs`), one JSON line; one JSON line back,
//! the [`Answer`].

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::command::{self, Parsed};
use crate::record::ActionSource;
use crate::schedule::{Actions, Answer};

/// A request's line, at most (a maintenance with its comment fits many times over).
const MAX_REQUEST: usize = 64 * 1024;
/// An answer's size, at most (a list of maintenances, a check's output).
const MAX_ANSWER: u64 = 16 * 1024 * 1024;
/// How long a client has to send its request.
const REQUEST_WAIT: Duration = Duration::from_secs(5);
/// How long the command line waits for the answer (a check may take its whole timeout).
const ANSWER_WAIT: Duration = Duration::from_secs(160);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the daemon is not running (nothing listens on {0}); start it with `systemctl start snbox`")]
    NotRunning(PathBuf),
    #[error("permission denied on {0}: run this as root (sudo) or as the daemon's user")]
    Denied(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: the daemon's answer could not be read: {why}")]
    Answer { path: PathBuf, why: String },
    #[error("{0} exists and is not a socket: refusing to replace it")]
    NotASocket(PathBuf),
    #[error("another daemon listens on {0}")]
    InUse(PathBuf),
}

/// Binds the socket (mode 0600), replacing a stale one a crash left behind.
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => return Err(ControlError::NotASocket(path.to_path_buf())),
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Serves requests until `cancel`, then removes the socket.
pub async fn serve(listener: UnixListener, path: PathBuf, actions: Actions, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let actions = actions.clone();
                    tokio::spawn(async move { answer(stream, actions).await });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the control socket could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn answer(stream: UnixStream, actions: Actions) {
    let uid = stream.peer_cred().ok().map(|c| c.uid());
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    let mut reader = tokio::io::BufReader::new(read).take(MAX_REQUEST as u64 + 1);
    let read = tokio::time::timeout(REQUEST_WAIT, reader.read_until(b'\n', &mut line)).await;
    let answer = match read {
        Err(_) => Answer::refused("no request within 5 s"),
        Ok(Err(e)) => Answer::refused(format!("the request could not be read: {e}")),
        Ok(Ok(_)) if line.len() > MAX_REQUEST => Answer::refused("the request is too long"),
        Ok(Ok(_)) => match serde_json::from_slice::<Value>(&line) {
            Ok(Value::Object(request)) => {
                let kind = request.get("kind").and_then(Value::as_str).unwrap_or("?").to_string();
                tracing::info!(kind, uid, "control request");
                match command::parse(&request, jiff::Timestamp::now()) {
                    Parsed::Action(action) => actions.ask_in_time(action, ActionSource::Local, None).await,
                    Parsed::Discover(_) => Answer::refused("discover: run `snbox discover` itself on the box"),
                    Parsed::Refused(why) => Answer::refused(why),
                }
            }
            Ok(_) => Answer::refused("a request is a JSON object"),
            Err(e) => Answer::refused(format!("the request is not JSON: {e}")),
        },
    };
    let mut text = serde_json::to_vec(&answer).unwrap_or_default();
    text.push(b'\n');
    let _ = write.write_all(&text).await;
}

/// Sends one request to the running daemon and reads its answer (the command line's side).
pub fn ask(path: &Path, request: &Value) -> Result<Answer, ControlError> {
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ControlError::NotRunning(path.to_path_buf())
        }
        std::io::ErrorKind::PermissionDenied => ControlError::Denied(path.to_path_buf()),
        _ => ControlError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    stream.set_read_timeout(Some(ANSWER_WAIT)).map_err(io)?;
    stream.set_write_timeout(Some(REQUEST_WAIT)).map_err(io)?;
    let mut line = serde_json::to_vec(request).unwrap_or_default();
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(std::io::Read::take(stream, MAX_ANSWER))
        .read_line(&mut answer)
        .map_err(|e| ControlError::Answer {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    serde_json::from_str(&answer).map_err(|e| ControlError::Answer {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

//! Answers written on the blocking pool and sent while they are written: a report of 50,000
//! services holds a few chunks in memory, not the whole answer (built as `serde_json` values
//! first, it took 800 MB).

use std::io;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::mpsc;

/// What is sent at a time.
const CHUNK: usize = 64 * 1024;
/// Chunks written ahead of the client.
const AHEAD: usize = 2;

/// An answer of type `content_type`, written by `write` off the runtime. A failure while
/// writing cuts the connection, so a client never takes half an answer for a whole one.
pub fn streamed(
    content_type: &'static str,
    write: impl FnOnce(&mut Chunks) -> io::Result<()> + Send + 'static,
) -> Response {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut chunks = Chunks {
            buf: Vec::with_capacity(CHUNK),
            tx,
        };
        let written = write(&mut chunks).and_then(|()| io::Write::flush(&mut chunks));
        if let Err(e) = written
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            let _ = chunks.tx.blocking_send(Err(e));
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    ([(header::CONTENT_TYPE, content_type)], Body::from_stream(body)).into_response()
}

/// A JSON array of `items`, each serialized as it comes.
pub fn json_array<T: Serialize>(out: &mut Chunks, items: impl IntoIterator<Item = T>) -> io::Result<()> {
    use io::Write as _;
    out.write_all(b"[")?;
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, &item)?;
    }
    out.write_all(b"]")
}

/// The writer an answer is written to; full chunks go to the client.
pub struct Chunks {
    buf: Vec<u8>,
    tx: mpsc::Sender<io::Result<Bytes>>,
}

impl io::Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

//! The status endpoint's listener: what a client on the LAN may hold of the box.
//!
//! At most [`MAX_CONNECTIONS`] connections at once (one more is closed at once), request heads
//! of at most [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`] headers, [`HEAD_READ`] to send a head
//! (slow-loris), and [`LIFETIME`] per connection. hyper's HTTP/1 server with these limits,
//! because `axum::serve` sets none of them. With TLS, the handshake counts as the head: it
//! must be done within [`HEAD_READ`] too; a client speaking plain HTTP to the TLS port gets a
//! plain `400` saying to use `https://` (and its request is never read).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const MAX_CONNECTIONS: usize = 64;
/// hyper's read buffer, which bounds a request's line and headers (its floor is 8 KiB).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 32;
pub const HEAD_READ: Duration = Duration::from_secs(5);
pub const LIFETIME: Duration = Duration::from_secs(60);
/// How long a request in flight may finish when the daemon stops.
const DRAIN: Duration = Duration::from_secs(2);

/// Marks a request that came over TLS (a session cookie is accepted only then).
#[derive(Debug, Clone, Copy)]
pub struct OverTls(pub bool);

/// Serves `router` on `listener` until `shutdown` resolves; each request carries its peer's
/// address as [`ConnectInfo`] and whether it came over TLS as [`OverTls`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<Arc<super::tls::ServerTls>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let connections = TaskTracker::new();
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: let some connections end.
                    tracing::warn!(error = %e, "the status endpoint cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "{MAX_CONNECTIONS} status connections already: this one is closed");
            continue;
        };
        let (router, stop, tls) = (router.clone(), stop.clone(), tls.clone());
        connections.spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_connection(stream, peer, false, router, stop).await,
                Some(tls) => {
                    if let Some(stream) = handshake(stream, peer, &tls).await {
                        serve_connection(stream, peer, true, router, stop).await;
                    }
                }
            }
        });
    }
    stop.cancel();
    connections.close();
    let _ = tokio::time::timeout(DRAIN + Duration::from_secs(1), connections.wait()).await;
    Ok(())
}

/// The TLS handshake, within [`HEAD_READ`]; a plain HTTP request gets a plain 400.
async fn handshake(
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: &super::tls::ServerTls,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HEAD_READ, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 0x16 => {} // a TLS handshake record
        Ok(Ok(1)) => {
            tracing::debug!(%peer, "plain HTTP to the HTTPS status endpoint: refused");
            let _ = stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: 52\r\n\r\nthis status endpoint speaks HTTPS: use https:// ...\n",
                )
                .await;
            let _ = stream.shutdown().await;
            return None;
        }
        _ => return None,
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config()?);
    match tokio::time::timeout(HEAD_READ, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "a TLS handshake with the status endpoint failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "a TLS handshake with the status endpoint took too long: cut off");
            None
        }
    }
}

async fn serve_connection<I>(stream: I, peer: SocketAddr, over_tls: bool, router: Router, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(OverTls(over_tls));
        tower::ServiceExt::oneshot(router.clone(), request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_READ)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = tokio::time::sleep(LIFETIME) => {}
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, connection).await;
        }
    }
}

//! The status endpoint's listener: what a client on the LAN may hold of the box.
//!
//! At most [`MAX_CONNECTIONS`] connections at once (one more is closed at once), request heads
//! of at most [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`] headers, [`HEAD_READ`] to send a head
//! (slow-loris), and [`LIFETIME`] per connection. hyper's HTTP/1 server with these limits,
//! because `axum::serve` sets none of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
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

/// Serves `router` on `listener` until `shutdown` resolves; each request carries its peer's
/// address as [`ConnectInfo`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
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
        let (router, stop) = (router.clone(), stop.clone());
        connections.spawn(async move {
            let _permit = permit;
            serve_connection(stream, peer, router, stop).await;
        });
    }
    stop.cancel();
    connections.close();
    let _ = tokio::time::timeout(DRAIN + Duration::from_secs(1), connections.wait()).await;
    Ok(())
}

async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, router: Router, stop: CancellationToken) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
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

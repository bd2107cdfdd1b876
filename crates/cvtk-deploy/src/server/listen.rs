//! The accept loop: hyper's server (HTTP/1 and HTTP/2) with a header-read
//! timeout and a cap on open connections, so that clients which open
//! connections and send half a request, or nothing, cannot hold the
//! service's file descriptors. (`axum::serve` runs hyper without a timer, so
//! hyper's header-read timeout never fires there, and it has no cap.)

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// How long in-flight requests get to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and waits (up to 30 s) for the open connections' requests to
/// finish. At most `max_connections` are open at once: one more is closed at
/// once (and logged). A connection that has not sent a whole request head
/// within `header_timeout` (also while idle between keep-alive requests) is
/// closed.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    app: Router,
    max_connections: usize,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(header_timeout));
    tokio::pin!(shutdown);
    let mut refused = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    refused += 1;
                    if refused.is_power_of_two() {
                        tracing::warn!(
                            "{peer}: connection closed: {max_connections} are open, the limit \
                             (--max-connections); {refused} refused so far"
                        );
                    }
                    drop(stream);
                    continue;
                };
                let service = TowerToHyperService::new(app.clone());
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    // hyper's timer starts with the first byte (the protocol
                    // detection before it waits forever): a client that sends
                    // nothing gets the same time as one that sends half a head.
                    let mut first = [0u8; 1];
                    match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => {
                            tracing::debug!("{peer}: closed: nothing sent within {header_timeout:?}");
                            drop(permit);
                            return;
                        }
                    }
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!("{peer}: connection ended: {e}");
                    }
                    drop(permit);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open {DRAIN:?} after shutdown began; closing them");
    }
}

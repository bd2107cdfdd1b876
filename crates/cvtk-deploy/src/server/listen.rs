//! The accept loop: hyper's server (HTTP/1 and HTTP/2) with a deadline on
//! every connection that has no request in flight, and a cap on open
//! connections that only clients with requests in flight can fill.
//!
//! Why not hyper's own timers: `axum::serve` runs hyper without a timer, so
//! hyper's header-read timeout never fires there, and it has no cap; with a
//! timer, hyper-util's protocol detection still waits forever while the bytes
//! read so far are a prefix of the HTTP/2 preface (one byte `P` holds a
//! connection), and HTTP/2 has no idle timeout at all (a client that answers
//! pings holds its connection forever). So each connection here counts its
//! requests in flight (from a complete request head until the response body
//! is sent or dropped), and:
//!
//! - one with none in flight for `header_timeout` (since it opened, or since
//!   its last response) is closed, whatever the protocol and whatever it is
//!   doing: detecting the protocol, reading an HTTP/1 head, an HTTP/2
//!   preface, SETTINGS, pings, or nothing. HTTP/2 gets a GOAWAY first and a
//!   second to go; HTTP/1 between requests is closed at once;
//! - at `max_connections`, a new connection closes one with no request in
//!   flight to take its slot: the oldest that has never sent a whole request
//!   head, else the one idle the longest (a keep-alive client between two
//!   requests is idle for moments, a stalled one for seconds); only when
//!   every open connection has a request in flight is the new one refused. So clients that open
//!   connections and never finish a request head cannot lock anybody out:
//!   honest requests keep being served however many such connections come.
//!
//! No cap per client address: behind an ingress, a load balancer or a mesh
//! every client has the proxy's address, and a cap per address would refuse
//! honest clients before attackers.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::ServiceExt;

/// How long in-flight requests get to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(30);

/// How long a connection asked to close (a GOAWAY sent, keep-alive off) gets
/// before it is dropped.
const GRACE: Duration = Duration::from_secs(1);

/// One open connection, as the accept loop and its own task see it.
struct Conn {
    /// Requests whose head is complete and whose response is not yet sent.
    in_flight: AtomicUsize,
    /// Whether a whole request head ever came on it.
    served: AtomicBool,
    /// When it last had no request in flight, in ms since the server started.
    idle_since_ms: AtomicU64,
    /// Set, then notified, to close it now (its slot was taken).
    evicted: AtomicBool,
    evict: tokio::sync::Notify,
}

/// The open connections, oldest first.
struct Registry {
    start: Instant,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    changed: tokio::sync::Notify,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers connection `id`, evicting the oldest idle one when `max` are
    /// open; None when all `max` have requests in flight.
    fn admit(&self, id: u64, max: usize) -> Option<Arc<Conn>> {
        let mut open = self.lock();
        if open.len() >= max {
            let idle = || open.iter().filter(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0);
            let never_served = idle().find(|(_, c)| !c.served.load(Ordering::Acquire)).map(|(k, _)| *k);
            let idle_longest = || idle().min_by_key(|(_, c)| c.idle_since_ms.load(Ordering::Acquire)).map(|(k, _)| *k);
            let victim = never_served.or_else(idle_longest)?;
            if let Some(c) = open.remove(&victim) {
                c.evicted.store(true, Ordering::Release);
                c.evict.notify_one();
            }
        }
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            evicted: AtomicBool::new(false),
            evict: tokio::sync::Notify::new(),
        });
        open.insert(id, conn.clone());
        Some(conn)
    }

    fn remove(&self, id: u64) {
        let mut open = self.lock();
        open.remove(&id);
        if open.is_empty() {
            self.changed.notify_waiters();
        }
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Counts one request in flight on a connection until dropped.
struct InFlight {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl InFlight {
    fn begin(conn: &Arc<Conn>, registry: &Arc<Registry>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.served.store(true, Ordering::Release);
        InFlight { conn: conn.clone(), registry: registry.clone() }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.idle_since_ms.store(self.registry.now_ms(), Ordering::Release);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted in flight until it has
/// been sent (or dropped).
struct Counted {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for Counted {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting, asks every connection to close once its requests are done, and
/// waits up to 30 s for them. See the module's documentation for the limits.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    app: Router,
    max_connections: usize,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let registry = Arc::new(Registry {
        start: Instant::now(),
        open: Mutex::new(BTreeMap::new()),
        changed: tokio::sync::Notify::new(),
    });
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(header_timeout));
    tokio::pin!(shutdown);
    let (mut next_id, mut refused, mut evicted) = (0u64, 0u64, 0u64);
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
                next_id += 1;
                let full = registry.lock().len() >= max_connections;
                let Some(conn) = registry.admit(next_id, max_connections) else {
                    refused += 1;
                    if refused.is_power_of_two() {
                        tracing::warn!(
                            "{peer}: connection closed: {max_connections} are open (--max-connections), all \
                             with requests in flight; {refused} refused so far"
                        );
                    }
                    drop(stream);
                    continue;
                };
                if full {
                    evicted += 1;
                    if evicted.is_power_of_two() {
                        tracing::warn!(
                            "{max_connections} connections open (--max-connections): closed one with no request in \
                             flight to admit {peer}; {evicted} closed so far"
                        );
                    }
                }
                let (id, registry, app, builder, stopping) =
                    (next_id, registry.clone(), app.clone(), builder.clone(), stopping.clone());
                tokio::spawn(async move {
                    serve_one(stream, peer, &conn, &registry, app, &builder, header_timeout, stopping).await;
                    registry.remove(id);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    let drained = async {
        loop {
            let changed = registry.changed.notified();
            if registry.is_empty() {
                return;
            }
            changed.await;
        }
    };
    if tokio::time::timeout(DRAIN, drained).await.is_err() {
        tracing::warn!("connections still open {DRAIN:?} after shutdown began; closing them");
    }
}

/// Serves one connection until it ends, is evicted, idles past
/// `header_timeout` or the server stops.
#[allow(clippy::too_many_arguments)]
async fn serve_one(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    conn: &Arc<Conn>,
    registry: &Arc<Registry>,
    app: Router,
    builder: &Builder<TokioExecutor>,
    header_timeout: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let (counted, in_registry) = (conn.clone(), registry.clone());
    let service = tower::service_fn(move |request: axum::http::Request<hyper::body::Incoming>| {
        let in_flight = InFlight::begin(&counted, &in_registry);
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await?;
            Ok::<_, std::convert::Infallible>(response.map(|inner| Body::new(Counted { inner, _in_flight: in_flight })))
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(connection);
    // When the connection was asked to close (idle or shutdown) and must be
    // gone by.
    let mut closing: Option<Instant> = None;
    let mut stop_seen = *stopping.borrow();
    if stop_seen {
        return;
    }
    loop {
        let idle_deadline = match closing {
            Some(by) => by,
            None => {
                let since = conn.idle_since_ms.load(Ordering::Acquire);
                registry.start + Duration::from_millis(since) + header_timeout
            }
        };
        let evicted = conn.evict.notified();
        if conn.evicted.load(Ordering::Acquire) {
            tracing::debug!("{peer}: closed to admit a new connection (--max-connections reached)");
            return;
        }
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!("{peer}: connection ended: {e}");
                }
                return;
            }
            () = evicted => {}
            changed = stopping.changed(), if !stop_seen => {
                stop_seen = true;
                if changed.is_ok() && closing.is_none() {
                    connection.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + DRAIN);
                }
            }
            () = tokio::time::sleep_until(idle_deadline) => {
                let busy = conn.in_flight.load(Ordering::Acquire) > 0;
                if closing.is_some() {
                    if stop_seen || !busy {
                        tracing::debug!("{peer}: closed: did not close when asked");
                        return;
                    }
                    // A request began as the GOAWAY went out: let it finish.
                    closing = None;
                }
                if busy {
                    // Counted again from its last response.
                    conn.idle_since_ms.store(registry.now_ms(), Ordering::Release);
                    continue;
                }
                let idle = registry.now_ms().saturating_sub(conn.idle_since_ms.load(Ordering::Acquire));
                if idle < header_timeout.as_millis() as u64 {
                    continue;
                }
                tracing::debug!("{peer}: closed: no request for {header_timeout:?}");
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + GRACE);
            }
        }
    }
}

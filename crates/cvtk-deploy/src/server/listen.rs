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
//! - one whose oldest request has been in flight for the request time limit
//!   plus `header_timeout` is stuck: the handler answered long ago (or timed
//!   out), and the client does not read the response (an HTTP/2 window of
//!   zero, say). It is closed;
//! - at `max_connections`, a new connection closes one to take its slot: the
//!   oldest that has never sent a whole request head, else a stuck one, else
//!   the one idle the longest (a keep-alive client between two requests is
//!   idle for moments, a stalled one for seconds; it is asked to go, with a
//!   GOAWAY, rather than cut off); only when every open connection has a
//!   request in flight, none stuck, is the new one refused. So clients that open
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
    /// When each of them began (ms since the server started), by number:
    /// the first is the oldest.
    started: Mutex<BTreeMap<u64, u64>>,
    /// Numbers the requests.
    requests: AtomicU64,
    /// Whether a whole request head ever came on it.
    served: AtomicBool,
    /// When it last had no request in flight, in ms since the server started.
    idle_since_ms: AtomicU64,
    /// Set, then notified, to close it now (its slot was taken).
    evicted: AtomicBool,
    evict: tokio::sync::Notify,
}

impl Conn {
    /// When its oldest request in flight began, if it has one.
    fn oldest_ms(&self) -> Option<u64> {
        self.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().next().copied()
    }
}

/// The open connections, oldest first.
struct Registry {
    start: Instant,
    /// How long a request may stay in flight before its connection counts as
    /// stuck: the request time limit (the handler has answered by then) and
    /// the header timeout, for a client that does not read its response (an
    /// HTTP/2 flow-control window of zero, say).
    stuck_after: Duration,
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

    /// Whether `conn`'s oldest request has been in flight past `stuck_after`.
    fn stuck(&self, conn: &Conn) -> bool {
        conn.oldest_ms().is_some_and(|t| self.now_ms().saturating_sub(t) > self.stuck_after.as_millis() as u64)
    }

    /// Registers connection `id`; when `max` are open, first closes one: the
    /// oldest idle one that never sent a request, else a stuck one, else the
    /// one idle the longest. None when all `max` have requests in flight.
    fn admit(&self, id: u64, max: usize) -> Option<Arc<Conn>> {
        let mut open = self.lock();
        if open.len() >= max {
            let idle = || open.iter().filter(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0);
            let never_served = idle().find(|(_, c)| !c.served.load(Ordering::Acquire)).map(|(k, _)| *k);
            let stuck = || open.iter().find(|(_, c)| self.stuck(c)).map(|(k, _)| *k);
            let idle_longest = || idle().min_by_key(|(_, c)| c.idle_since_ms.load(Ordering::Acquire)).map(|(k, _)| *k);
            let victim = never_served.or_else(stuck).or_else(idle_longest)?;
            if let Some(c) = open.remove(&victim) {
                c.evicted.store(true, Ordering::Release);
                c.evict.notify_one();
            }
        }
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            started: Mutex::new(BTreeMap::new()),
            requests: AtomicU64::new(0),
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

/// Takes a connection out of the registry when its task ends, panics included.
struct Registered {
    id: u64,
    registry: Arc<Registry>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// Counts one request in flight on a connection until dropped.
struct InFlight {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    number: u64,
}

impl InFlight {
    fn begin(conn: &Arc<Conn>, registry: &Arc<Registry>) -> Self {
        let number = conn.requests.fetch_add(1, Ordering::AcqRel);
        conn.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(number, registry.now_ms());
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.served.store(true, Ordering::Release);
        InFlight { conn: conn.clone(), registry: registry.clone(), number }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.number);
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
    request_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let registry = Arc::new(Registry {
        start: Instant::now(),
        stuck_after: request_timeout.saturating_add(header_timeout),
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
                    let _registered = Registered { id, registry: registry.clone() };
                    serve_one(stream, peer, &conn, &registry, app, &builder, header_timeout, stopping).await;
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
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(connection);
    // Why and since when the connection was asked to close (a GOAWAY sent,
    // keep-alive off), if it was.
    let mut asked: Option<(Instant, Ask)> = None;
    let mut evict_seen = false;
    let mut stop_seen = *stopping.borrow();
    if stop_seen {
        return;
    }
    let ms = |t: u64| registry.start.checked_add(Duration::from_millis(t)).unwrap_or_else(far_future);
    let after = |t: Instant, d: Duration| t.checked_add(d).unwrap_or_else(far_future);
    loop {
        let now = Instant::now();
        let busy = conn.in_flight.load(Ordering::Acquire) > 0;
        let idle_since = ms(conn.idle_since_ms.load(Ordering::Acquire));
        let deadline = match (asked, busy) {
            // Shutting down: requests in flight get the drain (checked each
            // GRACE, to see them end); an idle connection GRACE to go.
            (Some((at, Ask::Stop)), true) => after(at, DRAIN).min(after(now, GRACE)),
            (Some((at, Ask::Stop)), false) => after(at.max(idle_since), GRACE),
            (Some((at, Ask::Idle)), _) => after(at, GRACE),
            (None, true) => after(conn.oldest_ms().map_or(now, ms), registry.stuck_after),
            (None, false) => after(idle_since, header_timeout),
        };
        let evicted = conn.evict.notified();
        if conn.evicted.load(Ordering::Acquire) && !evict_seen {
            evict_seen = true;
            if !conn.served.load(Ordering::Acquire) {
                tracing::debug!("{peer}: closed to admit a new connection (--max-connections reached)");
                return;
            }
            // A client that has been served (keep-alive, between requests):
            // asked to go, so that a request it is sending is not reset.
            tracing::debug!("{peer}: asked to close to admit a new connection (--max-connections reached)");
            connection.as_mut().graceful_shutdown();
            asked = Some((now, Ask::Idle));
            continue;
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
                if changed.is_ok() && !matches!(asked, Some((_, Ask::Stop))) {
                    connection.as_mut().graceful_shutdown();
                    asked = Some((Instant::now(), Ask::Stop));
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                let busy = conn.in_flight.load(Ordering::Acquire) > 0;
                match asked {
                    Some((at, Ask::Stop)) => {
                        if (busy && now >= after(at, DRAIN)) || (!busy && now >= after(at.max(idle_since), GRACE)) {
                            tracing::debug!("{peer}: closed: still open when the server stopped");
                            return;
                        }
                    }
                    Some((_, Ask::Idle)) => {
                        if !busy {
                            tracing::debug!("{peer}: closed: did not close when asked");
                            return;
                        }
                        // A request began as the GOAWAY went out: let it finish.
                        asked = None;
                    }
                    None if busy => {
                        if registry.stuck(conn) {
                            tracing::debug!(
                                "{peer}: closed: a request in flight for over {:?} (its response is not being read)",
                                registry.stuck_after
                            );
                            return;
                        }
                    }
                    None => {
                        let idle = registry.now_ms().saturating_sub(conn.idle_since_ms.load(Ordering::Acquire));
                        if idle >= header_timeout.as_millis() as u64 {
                            tracing::debug!("{peer}: closed: no request for {header_timeout:?}");
                            connection.as_mut().graceful_shutdown();
                            asked = Some((now, Ask::Idle));
                        }
                    }
                }
            }
        }
    }
}

/// Why a connection was asked to close.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// No request for the header timeout, or its slot was taken.
    Idle,
    /// The server is stopping.
    Stop,
}

/// A deadline that never comes (what tokio uses for "no timeout").
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

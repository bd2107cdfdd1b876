//! Prometheus metrics: requests by route and status, `/score` latency, batch
//! sizes and queue depth, in the text exposition format at `/metrics`.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub route: String,
    pub status: String,
}

/// The service's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Histogram,
    pub explain_latency: Histogram,
    pub batch_size: Histogram,
    pub images: Counter,
    pub decoded: Counter,
    pub decodes_cancelled: Counter,
    pub decode_memory_waits: Counter,
    pub queue_depth: Gauge<i64, AtomicI64>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cvtk");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        let latency = Histogram::new(exponential_buckets(0.0005, 2.0, 18));
        registry.register("score_latency_seconds", "Time to answer POST /score, queueing included", latency.clone());
        let explain_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 18));
        registry.register(
            "explain_latency_seconds",
            "Time to answer POST /explain, queueing included",
            explain_latency.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register("batch_size_images", "Images per forward pass of the model", batch_size.clone());
        let images = Counter::default();
        registry.register("images_scored", "Images scored", images.clone());
        let decoded = Counter::default();
        registry.register("images_decoded", "Images decoded (before scoring)", decoded.clone());
        let decodes_cancelled = Counter::default();
        registry.register(
            "decodes_cancelled",
            "Requests whose decoding stopped early because the request timed out or its client left",
            decodes_cancelled.clone(),
        );
        let decode_memory_waits = Counter::default();
        registry.register(
            "decode_memory_waits",
            "Images that waited for decoding memory (--decode-memory-mb) before decoding",
            decode_memory_waits.clone(),
        );
        let queue_depth = Gauge::<i64, AtomicI64>::default();
        registry.register("queue_depth", "Requests waiting for the model", queue_depth.clone());
        Metrics {
            registry,
            requests,
            latency,
            explain_latency,
            batch_size,
            images,
            decoded,
            decodes_cancelled,
            decode_memory_waits,
            queue_depth,
        }
    }

    pub fn count(&self, route: &str, status: u16) {
        self.requests.get_or_create(&RequestLabels { route: route.into(), status: status.to_string() }).inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

//! JSON bodies that would amplify in memory (millions of tiny list items,
//! under the body limit) get a 4xx within seconds, and the process's peak
//! memory grows by at most a few hundred MB. The test runs again in a child
//! process of this binary, so that the peak (`VmHWM` in `/proc/self/status`)
//! is this test's alone, not that of the tests running beside it.

use std::time::{Duration, Instant};

use crate::common::*;
use cvtk_deploy::ScoringService;

/// The process's peak resident memory, in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kb / 1024.0
}

/// `n` copies of `item`, comma-separated, inside `open` ... `close`.
fn repeated(open: &str, item: &str, n: usize, close: &str) -> Vec<u8> {
    let mut s = String::with_capacity(open.len() + n * (item.len() + 1) + close.len());
    s.push_str(open);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(item);
    }
    s.push_str(close);
    s.into_bytes()
}

#[test]
fn amplifying_json_bodies_get_a_4xx_within_seconds_without_growing_memory() {
    match crate::isolated::alone(
        module_path!(),
        "amplifying_json_bodies_get_a_4xx_within_seconds_without_growing_memory",
    ) {
        Some(log) => assert!(log.contains("peak memory grew by"), "{log}"),
        None => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(bodies()),
    }
}

/// The test itself, in a process of its own.
async fn bodies() {
    let s = ScoringService::with_classifier(config().check().unwrap(), Box::new(Fake::new(Duration::ZERO))).unwrap();
    s.wait_ready(Duration::from_secs(5)).unwrap();
    let app = s.router();
    // Each body is 30 MB, under the 32 MiB limit: 15 million list items, or
    // one row of 15 million values, or 5 million empty objects.
    let bodies = [
        ("15M numbers", repeated("[", "1", 15_000_000, "]"), "too_many_images"),
        ("a row of 15M values", repeated("{\"data\":[[", "1", 15_000_000, "]]}"), "bad_pixels"),
        ("15M rows", repeated("{\"data\":[", "[]", 10_000_000, "]}"), "too_many_images"),
        ("5M objects", repeated("[", "{}", 10_000_000, "]"), "too_many_images"),
        ("deep nesting", repeated("", "[", 5_000_000, ""), "bad_json"),
    ];
    // Building the bodies is the test's own memory; the baseline starts after.
    let before = peak_mib();
    for (what, body, code) in bodies {
        let start = Instant::now();
        let (status, _, v) = call(&app, score_req("application/json", body)).await;
        assert!(status.is_client_error(), "{what}: {status} {v}");
        assert_eq!(v["error"]["code"], code, "{what}: {v}");
        assert!(start.elapsed() < Duration::from_secs(5), "{what} took {:?}", start.elapsed());
    }
    let grown = peak_mib() - before;
    // The body itself (30 MB) is held once or twice; nothing per item.
    assert!(grown < 300.0, "peak memory grew by {grown:.0} MiB");
    eprintln!("peak memory grew by {grown:.0} MiB over five 30 MB bodies");
}

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

/// Resets the process's peak to its current resident memory (Linux's
/// `clear_refs`), so that a measurement after it sees what came after, not a
/// peak reached while the test built its bodies; the new peak, in MiB.
fn reset_peak_mib() -> f64 {
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting the peak through /proc/self/clear_refs (Linux)");
    peak_mib()
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
        Some(log) => {
            assert!(log.contains("tiny parameter values"), "{log}");
            log.lines().filter(|l| l.contains("peak memory grew")).for_each(|l| eprintln!("{l}"));
        }
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
    let s = ScoringService::with_scorer(config().check().unwrap(), Box::new(Fake::new(Duration::ZERO))).unwrap();
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
    // Building the bodies is the test's own memory; each measurement starts after.
    let mut grown = 0f64;
    for (what, body, code) in bodies {
        let request = score_req("application/json", body);
        let before = reset_peak_mib();
        let start = Instant::now();
        let (status, _, v) = call(&app, request).await;
        grown = grown.max(peak_mib() - before);
        assert!(status.is_client_error(), "{what}: {status} {v}");
        assert_eq!(v["error"]["code"], code, "{what}: {v}");
        assert!(start.elapsed() < Duration::from_secs(5), "{what} took {:?}", start.elapsed());
    }
    // The body itself (30 MB) is held once or twice; nothing per item.
    assert!(grown < 300.0, "peak memory grew by {grown:.0} MiB");
    eprintln!("peak memory grew by at most {grown:.0} MiB for each of five 30 MB bodies");
    v2_bodies(&app).await;
}

/// The same on the Open Inference Protocol's infer route (issue 27): a
/// request for 300,000 outputs (7 MB) is refused at once, and 30 MB of tiny
/// parameter values cost no more than `/score`'s bodies.
async fn v2_bodies(app: &axum::Router) {
    let infer = |body: Vec<u8>| {
        axum::http::Request::post("/v2/models/model/infer")
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    let input = format!(r#"[{{"name":"image","datatype":"BYTES","shape":[1],"data":["{}"]}}]"#, b64(&png(8, 8, 1)));
    let outputs = infer(repeated(&format!(r#"{{"inputs":{input},"outputs":["#), r#"{"name":"label"}"#, 300_000, "]}"));
    let before = reset_peak_mib();
    let start = Instant::now();
    let (status, _, v) = call(app, outputs).await;
    assert_eq!(status, 400, "300,000 outputs: {v}");
    assert!(v["error"].as_str().is_some_and(|m| m.contains("more than 2 outputs")), "{v}");
    assert!(start.elapsed() < Duration::from_secs(1), "300,000 outputs took {:?}", start.elapsed());
    let grown = peak_mib() - before;
    assert!(grown < 64.0, "300,000 outputs: peak memory grew by {grown:.0} MiB");
    eprintln!("peak memory grew by {grown:.0} MiB over a request for 300,000 outputs");
    let mut grown = 0f64;
    for (what, parameters) in [
        ("5M tiny values", repeated("{", r#""p":1"#, 5_000_000, "}")),
        ("15M list items", repeated(r#"{"p":["#, "1", 15_000_000, "]}")),
    ] {
        let mut body = br#"{"parameters":"#.to_vec();
        body.extend_from_slice(&parameters);
        body.extend_from_slice(format!(r#","inputs":{input}}}"#).as_bytes());
        drop(parameters);
        let request = infer(body);
        let before = reset_peak_mib();
        let start = Instant::now();
        let (status, _, v) = call(app, request).await;
        grown = grown.max(peak_mib() - before);
        // Unknown parameters are skipped: the image is scored.
        assert_eq!(status, 200, "{what}: {v}");
        assert!(start.elapsed() < Duration::from_secs(10), "{what} took {:?}", start.elapsed());
    }
    assert!(grown < 300.0, "30 MB of /v2 parameters: peak memory grew by {grown:.0} MiB");
    eprintln!("peak memory grew by at most {grown:.0} MiB for each of two 30 MB /v2 bodies of tiny parameter values");
}

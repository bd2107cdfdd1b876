//! `cvtk serve` against hostile clients on a real socket (loopback only,
//! bounded in count and time): half-open connections are closed within the
//! header timeout while honest requests are answered (HTTP/1 heads, HTTP/2
//! prefaces and idle HTTP/2 connections alike), at the connection cap a new
//! connection takes an idle one's slot and is refused only when all have
//! requests in flight, and a body declared over the limit gets 413 before
//! any of it is read; a model that fails (out of memory included) fails only
//! the request it was scoring, in chunks of `max_batch`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bombs;
use crate::common::*;
use cvtk_deploy::{ScoringService, ServeConfig};
use image::ImageEncoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A service on 127.0.0.1 with `config`; its address, and the sender that stops it.
async fn serve(config: ServeConfig) -> (String, tokio::sync::oneshot::Sender<()>) {
    let s = ScoringService::with_scorer(config.check().unwrap(), Box::new(Fake::new(Duration::ZERO))).unwrap();
    s.wait_ready(Duration::from_secs(5)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let s = Arc::new(s);
    tokio::spawn(async move {
        cvtk_deploy::serve_on(listener, &s, async {
            let _ = stop_rx.await;
        })
        .await
    });
    (addr, stop_tx)
}

/// An honest scoring request; its status and how long it took.
async fn honest(addr: &str) -> (u16, Duration) {
    let start = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/score"))
        .bearer_auth(KEY)
        .header("content-type", "image/png")
        .body(png(8, 8, 1))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), start.elapsed())
}

/// Whether the server has closed `conn` (a read gives end of file or an
/// error) within `within`.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            // A 408 or other answer before the close: keep reading.
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_within_the_header_timeout_while_honest_requests_are_answered() {
    let config = ServeConfig { header_timeout: Duration::from_secs(1), ..config() };
    let (addr, _stop) = serve(config).await;
    let mut abusers = Vec::new();
    // One that asks once, then keeps the connection open and idle.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 512];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    abusers.push(idle);
    for i in 0..300 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        // Half of them send half a request head, the others nothing at all.
        if i % 2 == 0 {
            c.write_all(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n").await.unwrap();
        }
        abusers.push(c);
    }
    let (status, took) = honest(&addr).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(2), "an honest request took {took:?} beside 300 half-open connections");
    let start = Instant::now();
    for (i, c) in abusers.iter_mut().enumerate() {
        let left = Duration::from_secs(4).saturating_sub(start.elapsed());
        assert!(closed_within(c, left).await, "half-open connection {i} still open 4 s after the 1 s header timeout");
    }
    assert_eq!(honest(&addr).await.0, 200);
}

/// A connection with a request in flight: a head declaring a body, and only
/// part of the body.
async fn uploading(addr: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: image/png\r\n\
         Content-Length: 1000\r\n\r\n0123456789"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_a_new_connection_is_refused_only_when_every_open_one_has_a_request_in_flight() {
    let config = ServeConfig { max_connections: 8, header_timeout: Duration::from_secs(30), ..config() };
    let (addr, _stop) = serve(config).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(uploading(&addr).await);
    }
    // Let the server read all eight heads before the ninth.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ninth = TcpStream::connect(&addr).await.unwrap();
    assert!(closed_within(&mut ninth, Duration::from_secs(1)).await, "the ninth connection was kept");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(honest(&addr).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_a_new_connection_takes_the_slot_of_the_oldest_that_never_sent_a_request() {
    let config = ServeConfig { max_connections: 8, header_timeout: Duration::from_secs(30), ..config() };
    let (addr, _stop) = serve(config).await;
    // The oldest connection is a keep-alive client between two requests: it
    // goes last, after those that never sent a request.
    let mut keep_alive = TcpStream::connect(&addr).await.unwrap();
    keep_alive.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 512];
    let n = keep_alive.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut busy = vec![uploading(&addr).await, uploading(&addr).await];
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Each honest client (a new connection, kept open by its pool) closes one.
    let mut clients = Vec::new();
    for i in 0..3 {
        let client = reqwest::Client::new();
        let r = client.get(format!("http://{addr}/health")).timeout(Duration::from_secs(5)).send().await.unwrap();
        assert_eq!(r.status(), 200, "honest client {i} at the cap");
        clients.push(client);
    }
    // The three oldest that never sent a request are gone; the others, the
    // busy ones and the keep-alive client are kept.
    for (i, c) in idle.iter_mut().enumerate() {
        let closed = closed_within(c, Duration::from_millis(if i < 3 { 1000 } else { 100 })).await;
        assert_eq!(closed, i < 3, "idle connection {i}");
    }
    for c in &mut busy {
        assert!(
            !closed_within(c, Duration::from_millis(100)).await,
            "a connection with a request in flight was closed"
        );
    }
    assert!(!closed_within(&mut keep_alive, Duration::from_millis(100)).await, "the keep-alive client was closed");
}

/// Opens `n` connections to `addr` that each send `bytes` and nothing more.
async fn stalled(addr: &str, n: usize, bytes: &[u8]) -> Vec<TcpStream> {
    let mut conns = Vec::new();
    for _ in 0..n {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(bytes).await.unwrap();
        conns.push(c);
    }
    conns
}

/// How many of `conns` the server closes within `within`, all together.
async fn count_closed(conns: Vec<TcpStream>, within: Duration) -> usize {
    let waits = conns.into_iter().map(|mut c| tokio::spawn(async move { closed_within(&mut c, within).await }));
    let mut closed = 0;
    for w in waits {
        closed += usize::from(w.await.unwrap());
    }
    closed
}

/// The attacks of issue 27: connections that stop inside protocol detection
/// (one byte of the HTTP/2 preface) or after an HTTP/2 preface and SETTINGS.
async fn stalled_connections_are_closed_and_honest_requests_served(bytes: &'static [u8]) {
    let config = ServeConfig { max_connections: 64, header_timeout: Duration::from_secs(2), ..config() };
    let (addr, _stop) = serve(config).await;
    let start = Instant::now();
    let conns = stalled(&addr, 80, bytes).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counting = tokio::spawn(count_closed(conns, Duration::from_secs(15)));
    let (status, took) = honest(&addr).await;
    assert_eq!(status, 200, "an honest request beside 80 stalled connections");
    assert!(took < Duration::from_secs(2), "an honest request took {took:?} beside 80 stalled connections");
    let closed = counting.await.unwrap();
    assert!(closed >= 72, "only {closed} of 80 stalled connections closed within 15 s");
    assert!(start.elapsed() < Duration::from_secs(10), "closing them took {:?}", start.elapsed());
    assert_eq!(honest(&addr).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_stalled_in_protocol_detection_are_closed_and_lock_nobody_out() {
    stalled_connections_are_closed_and_honest_requests_served(b"P").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed_and_lock_nobody_out() {
    // The client preface and an empty SETTINGS frame, then nothing.
    stalled_connections_are_closed_and_honest_requests_served(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_declared_over_the_limit_gets_413_before_it_is_sent() {
    let config = ServeConfig { max_body_bytes: 1 << 20, ..config() };
    let (addr, _stop) = serve(config).await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: image/png\r\n\
         Content-Length: 80000000\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&vec![0u8; 64 << 10]).await.unwrap();
    let start = Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut answer))
        .await
        .expect("no answer within 2 s to a body declared at 80 MB")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("too_large"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_fails_answers_that_request_500_and_the_service_keeps_serving() {
    let mut fake = Fake::new(Duration::ZERO);
    fake.panics = true;
    let s = ScoringService::with_scorer(config().check().unwrap(), Box::new(fake)).unwrap();
    s.wait_ready(Duration::from_secs(5)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let s = Arc::new(s);
    let server = tokio::spawn(async move { cvtk_deploy::serve_on(listener, &s, std::future::pending()).await });
    for _ in 0..3 {
        assert_eq!(honest(&addr).await.0, 500);
    }
    assert_eq!(reqwest::get(format!("http://{addr}/ready")).await.unwrap().status(), 200);
    assert!(!server.is_finished(), "the service stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_scored_in_chunks_of_max_batch_and_out_of_memory_is_a_503_that_leaves_the_service_up() {
    // The model has memory for 4 images at once, and the service batches 4:
    // a request of 10 images is scored in chunks of 4, 4 and 2.
    let mut fake = Fake::new(Duration::ZERO);
    fake.memory_for = Some(4);
    let batches = fake.batches.clone();
    let chunked = ServeConfig { max_batch: 4, ..config() };
    let s = ScoringService::with_scorer(chunked.check().unwrap(), Box::new(fake)).unwrap();
    s.wait_ready(Duration::from_secs(5)).unwrap();
    let app = s.router();
    let client_body = |n: usize| -> Vec<u8> {
        let items: Vec<serde_json::Value> =
            (0..n).map(|i| serde_json::json!({ "image_in_base64": b64(&png(8, 8, i as u8)) })).collect();
        serde_json::to_vec(&items).unwrap()
    };
    let (status, _, v) = call(&app, score_req("application/json", client_body(10))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 10);
    assert_eq!(*batches.lock().unwrap(), vec![4, 4, 2]);
    // With room for only 2, the chunk of 4 runs out of memory: a 503 to retry,
    // and the service goes on serving.
    let mut fake = Fake::new(Duration::ZERO);
    fake.memory_for = Some(2);
    let s =
        ScoringService::with_scorer(ServeConfig { max_batch: 4, ..config() }.check().unwrap(), Box::new(fake)).unwrap();
    s.wait_ready(Duration::from_secs(5)).unwrap();
    let app = s.router();
    let (status, headers, v) = call(&app, score_req("application/json", client_body(3))).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "out_of_memory", "{v}");
    assert_eq!(headers["retry-after"], "1");
    let (status, _, v) = call(&app, score_req("application/json", client_body(2))).await;
    assert_eq!(status, 200, "{v}");
    let (status, _, _) = call(&app, axum::http::Request::get("/ready").body(axum::body::Body::empty()).unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompression_bombs_in_every_compiled_in_format_get_413_at_once() {
    use image::ImageFormat as F;
    let (addr, _stop) = serve(config()).await;
    let client = reqwest::Client::new();
    for format in [F::Png, F::Jpeg, F::Gif, F::Bmp, F::Tiff, F::WebP] {
        let body = bombs::bomb(format, 60_000);
        let start = Instant::now();
        let r = client
            .post(format!("http://{addr}/score"))
            .bearer_auth(KEY)
            .header("content-type", "application/octet-stream")
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status, 413, "{format:?}: {v}");
        assert_eq!(v["error"]["code"], "image_too_large", "{format:?}: {v}");
        assert!(start.elapsed() < Duration::from_secs(1), "{format:?} took {:?}", start.elapsed());
    }
}

/// A counter from `/metrics`.
async fn metric(addr: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_request_stops_decoding_and_frees_its_slot() {
    // 256 black 3000x3000 PNGs, compressed hard: about 30 KB each to send (9 MB
    // in all), tens of ms each to decode, so seconds of decoding on one thread.
    // The time limit (2 s) is far above what reading and parsing the body takes
    // on a busy machine, so decoding has started when it passes, and far below
    // the decoding itself, so it stops part way.
    let mut black = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut black,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(&vec![0u8; 3000 * 3000 * 3], 3000, 3000, image::ExtendedColorType::Rgb8)
    .unwrap();
    let items: Vec<_> = (0..256).map(|_| serde_json::json!({ "image_in_base64": b64(&black) })).collect();
    let config = ServeConfig { request_timeout: Duration::from_secs(2), decode_threads: 1, ..config() };
    let (addr, _stop) = serve(config).await;
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/score"))
        .bearer_auth(KEY)
        .json(&items)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(status, 504, "{}", r.text().await.unwrap());
    // Decoding stops after the image in hand: the count stops growing (polled
    // until it stands still for a second, however slow the machine) ...
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut decoded = metric(&addr, "cvtk_images_decoded_total").await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = metric(&addr, "cvtk_images_decoded_total").await;
        if now == decoded {
            break;
        }
        assert!(Instant::now() < deadline, "decoding went on for 30 s after the 504 ({now} images)");
        decoded = now;
    }
    assert!(decoded > 0.0, "no image was decoded before the time limit: the test did not exercise cancelling");
    assert!(decoded < 256.0, "all {decoded} images were decoded");
    eprintln!("{decoded} of 256 images decoded when the 2 s limit stopped decoding");
    assert_eq!(metric(&addr, "cvtk_decodes_cancelled_total").await, 1.0);
    // ... and its only decoding slot is free again.
    assert_eq!(honest(&addr).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decodings_share_one_memory_budget_whatever_the_number_of_decoding_threads() {
    // Four decoding threads, and memory for one 2048x2048 RGBA image (11
    // bytes a pixel, 44 MiB): four requests of four such images each decode
    // one image at a time, the others waiting for the memory, and all are
    // answered; with 512 MiB none waits.
    let mut black = Vec::new();
    image::codecs::png::PngEncoder::new(&mut black)
        .write_image(&vec![0u8; 2048 * 2048 * 4], 2048, 2048, image::ExtendedColorType::Rgba8)
        .unwrap();
    let items: Vec<serde_json::Value> = (0..4).map(|_| serde_json::json!({ "image_in_base64": b64(&black) })).collect();
    let body = serde_json::to_vec(&items).unwrap();
    for (budget, waits) in [(48u64 << 20, true), (512 << 20, false)] {
        let config =
            ServeConfig { decode_threads: 4, max_pixels: 2048 * 2048, decode_memory_bytes: budget, ..config() };
        let (addr, _stop) = serve(config).await;
        let client = reqwest::Client::new();
        let sends = (0..4).map(|_| {
            let request = client
                .post(format!("http://{addr}/score"))
                .bearer_auth(KEY)
                .header("content-type", "application/json")
                .body(body.clone())
                .timeout(Duration::from_secs(20))
                .send();
            tokio::spawn(request)
        });
        for s in sends.collect::<Vec<_>>() {
            assert_eq!(s.await.unwrap().unwrap().status(), 200);
        }
        let waited = metric(&addr, "cvtk_decode_memory_waits_total").await;
        assert_eq!(waited > 0.0, waits, "budget {} MiB: {waited} images waited for memory", budget >> 20);
    }
}

/// An HTTP/2 client that asks for `/health` with a flow-control window of
/// zero, so the answer can never be sent, and answers every ping and
/// SETTINGS, so HTTP/2's keep-alive never gives up on it. Returns when the
/// server closes the connection.
async fn never_reading_http2(addr: String) {
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS: INITIAL_WINDOW_SIZE (0x4) = 0.
    out.extend_from_slice(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
    // HEADERS on stream 1, END_STREAM | END_HEADERS: GET http://x/health (HPACK).
    let block = [&[0x82, 0x86, 0x44, 7][..], b"/health", &[0x41, 1], b"x"].concat();
    out.extend_from_slice(&[0, 0, block.len() as u8, 1, 5, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    c.write_all(&out).await.unwrap();
    loop {
        let mut head = [0u8; 9];
        if c.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        if c.read_exact(&mut payload).await.is_err() {
            return;
        }
        let (kind, ack) = (head[3], head[4] & 1 == 1);
        let reply = match (kind, ack) {
            (4, false) => vec![0, 0, 0, 4, 1, 0, 0, 0, 0],
            (6, false) => [&[0, 0, 8, 6, 1, 0, 0, 0, 0][..], &payload].concat(),
            _ => continue,
        };
        if c.write_all(&reply).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_whose_answers_are_never_read_are_closed_once_stuck_and_lock_nobody_out() {
    // Requests may take 1 s, heads 1 s: a request still in flight after 2 s
    // is an answer its client does not read.
    let config = ServeConfig {
        max_connections: 4,
        header_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        ..config()
    };
    let (addr, _stop) = serve(config).await;
    let start = Instant::now();
    let stuck: Vec<_> = (0..4).map(|_| tokio::spawn(never_reading_http2(addr.clone()))).collect();
    for s in stuck {
        let left = Duration::from_secs(6).saturating_sub(start.elapsed());
        tokio::time::timeout(left, s)
            .await
            .expect("a connection whose answer is never read still open 6 s after it became stuck at 2 s")
            .unwrap();
    }
    assert!(start.elapsed() >= Duration::from_millis(1500), "closed before it was stuck: {:?}", start.elapsed());
    assert_eq!(honest(&addr).await.0, 200);
}

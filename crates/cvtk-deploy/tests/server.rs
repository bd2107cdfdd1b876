//! The scoring service's HTTP behaviour, driven through the router without a
//! socket (except where shutdown or URL fetching needs one): payload forms,
//! every kind of bad input, auth, limits, back-pressure, timeouts, batching.

use std::time::Duration;

use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use cvtk_deploy::api::ErrorCode;
use cvtk_deploy::{ScoringService, ServeConfig, UrlPolicy};
use serde_json::{json, Value};

fn service() -> ScoringService {
    let s = ScoringService::with_scorer(config().check().unwrap(), Box::new(tiny_model())).unwrap();
    s.wait_ready(Duration::from_secs(30)).unwrap();
    s
}

fn scores(v: &Value, i: usize) -> Vec<f64> {
    v["results"][i]["scores"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// A good request after each bad one must still be served.
async fn assert_still_serves(app: &axum::Router) {
    let (status, _, v) = call(app, json_req(&json!([{ "image_in_base64": b64(&png(20, 20, 1)) }]))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["scores"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payload_form_gives_the_same_scores() {
    let s = service();
    let app = s.router();
    let (img, gray) = gray_png(28, 28, 3);
    let forms = [
        json_req(&json!([{ "image_in_base64": b64(&img), "parameters": { "add_softmax": true } }])),
        json_req(&json!([{ "image_in_base64": format!("b'{}'", b64(&img)), "parameters": { "add_softmax": true } }])),
        json_req(&json!({ "image_in_base64": b64(&img), "parameters": { "add_softmax": true } })),
        json_req(&json!({ "data": [gray], "parameters": { "add_softmax": true } })),
        {
            let mut r = score_req("image/png", img.clone());
            *r.uri_mut() = "/score?add_softmax=true".parse().unwrap();
            r
        },
        {
            let boundary = "XyZ";
            let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n").into_bytes();
            body.extend_from_slice(&img);
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            let mut r = score_req(&format!("multipart/form-data; boundary={boundary}"), body);
            *r.uri_mut() = "/score?add_softmax=true".parse().unwrap();
            r
        },
    ];
    let mut all = Vec::new();
    for req in forms {
        let (status, _, v) = call(&app, req).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["labels"], json!(["a", "b", "c"]));
        assert_eq!(v["results"][0]["softmax"], json!(true));
        let s = scores(&v, 0);
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{s:?}");
        all.push(s);
    }
    for s in &all[1..] {
        for (a, b) in s.iter().zip(&all[0]) {
            assert!((a - b).abs() < 1e-6, "{s:?} vs {:?}", all[0]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_scores_unless_softmax_is_asked_and_one_bad_image_fails_alone() {
    let s = service();
    let app = s.router();
    let body = json!([
        { "image_in_base64": b64(&png(30, 30, 1)) },
        { "image_in_base64": "!!!not base64!!!" },
        { "image_in_base64": b64(b"just text, not an image") },
        { "image_in_base64": b64(&png(12, 40, 9)), "parameters": { "add_softmax": true } },
    ]);
    let (status, _, v) = call(&app, json_req(&body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0]["softmax"], json!(false));
    assert_eq!(r[1]["error"]["code"], json!("bad_base64"));
    assert_eq!(r[2]["error"]["code"], json!("bad_image"));
    let message = r[2]["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("cannot decode image #3 of the request: "), "counted from 1, said once: {message}");
    assert_eq!(r[3]["softmax"], json!(true));
    let top = r[0]["score"].as_f64().unwrap();
    assert!(scores(&v, 0).iter().all(|x| *x <= top));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probabilities_use_the_models_calibration_temperature_and_say_their_kind() {
    let s = ScoringService::with_scorer(config().check().unwrap(), Box::new(Fake::new(Duration::ZERO))).unwrap();
    s.wait_ready(Duration::from_secs(5)).unwrap();
    let app = s.router();
    let img = b64(&png(8, 8, 200));
    let body = json!([{ "image_in_base64": img }, { "image_in_base64": img, "parameters": { "add_softmax": true } }]);
    let (status, _, v) = call(&app, json_req(&body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let r = v["results"].as_array().unwrap();
    assert_eq!(r[0]["score_kind"], json!({ "kind": "logits", "temperature": FAKE_TEMPERATURE }));
    assert_eq!(r[1]["score_kind"], json!({ "kind": "probabilities" }));
    // softmax(raw / T), computed here by hand from the raw logits.
    let raw = scores(&v, 0);
    let t = f64::from(FAKE_TEMPERATURE);
    let e: Vec<f64> = raw.iter().map(|z| (z / t).exp()).collect();
    let want: Vec<f64> = e.iter().map(|x| x / e.iter().sum::<f64>()).collect();
    for (p, w) in scores(&v, 1).iter().zip(&want) {
        assert!((p - w).abs() < 1e-6, "{p} vs {w} (raw {raw:?})");
    }
    // Plain softmax, without the temperature, would be sharper.
    assert!((raw[0] - raw[1]).abs() > 0.1, "{raw:?}");
    let plain = 1.0 / (1.0 + (raw[1] - raw[0]).exp());
    assert!((scores(&v, 1)[0] - plain).abs() > 1e-3);
}

/// (name, request, expected status, expected code)
fn bad_requests() -> Vec<(&'static str, Request<Body>, StatusCode, &'static str)> {
    let mut truncated = jpeg(64, 64, 1);
    truncated.truncate(truncated.len() / 3);
    let bomb = images::png_claiming(50_000, 50_000);
    vec![
        (
            "malformed JSON",
            score_req("application/json", "[{\"image_in_base64\": "),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        ("wrong type in an item", json_req(&json!([{ "image_in_base64": 5 }])), StatusCode::BAD_REQUEST, "bad_request"),
        ("unknown field", json_req(&json!([{ "image": "x" }])), StatusCode::BAD_REQUEST, "bad_request"),
        ("wrong type for data", json_req(&json!({ "data": "pixels" })), StatusCode::BAD_REQUEST, "bad_request"),
        ("a JSON number", json_req(&json!(42)), StatusCode::BAD_REQUEST, "bad_request"),
        ("bad base64", json_req(&json!([{ "image_in_base64": "@@@" }])), StatusCode::BAD_REQUEST, "bad_base64"),
        (
            "non-image bytes",
            json_req(&json!([{ "image_in_base64": b64(b"%PDF-1.4 hello") }])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_image",
        ),
        ("truncated JPEG", score_req("image/jpeg", truncated), StatusCode::UNPROCESSABLE_ENTITY, "bad_image"),
        ("50000x50000 PNG", score_req("image/png", bomb), StatusCode::PAYLOAD_TOO_LARGE, "image_too_large"),
        ("empty list", json_req(&json!([])), StatusCode::BAD_REQUEST, "empty"),
        ("empty data", json_req(&json!({ "data": [] })), StatusCode::BAD_REQUEST, "empty"),
        (
            "pixel row of the wrong length",
            json_req(&json!({ "data": [[1.0, 2.0, 3.0]] })),
            StatusCode::BAD_REQUEST,
            "bad_pixels",
        ),
        ("pixel out of range", json_req(&json!({ "data": [vec![300.0; 784]] })), StatusCode::BAD_REQUEST, "bad_pixels"),
        (
            "unsupported content type",
            score_req("text/plain", "hello"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "bad add_softmax",
            {
                let mut r = score_req("image/png", png(4, 4, 0));
                *r.uri_mut() = "/score?add_softmax=maybe".parse().unwrap();
                r
            },
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "image URL while URLs are off",
            json_req(&json!([{ "image_url": "http://169.254.169.254/latest" }])),
            StatusCode::BAD_REQUEST,
            "url_not_allowed",
        ),
        (
            "missing key",
            Request::post("/score").header("content-type", "image/png").body(Body::from(png(4, 4, 0))).unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "wrong key",
            Request::post("/score")
                .header("authorization", "Bearer test-key-0123456789abcdeX")
                .header("content-type", "image/png")
                .body(Body::from(png(4, 4, 0)))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "key without Bearer",
            Request::post("/score").header("authorization", KEY).body(Body::from(png(4, 4, 0))).unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "GET on /score",
            Request::get("/score").header("authorization", format!("Bearer {KEY}")).body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "unknown path",
            Request::get("/../../etc/passwd").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_json_4xx_and_the_next_request_is_served() {
    let s = service();
    let app = s.router();
    for (name, req, want_status, want_code) in bad_requests() {
        let (status, headers, v) = call(&app, req).await;
        assert_eq!(status, want_status, "{name}: {v}");
        assert_eq!(v["error"]["code"], json!(want_code), "{name}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty(), "{name}");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(headers["www-authenticate"], "Bearer", "{name}");
        }
        assert_still_serves(&app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_and_too_many_images_400() {
    let cfg = ServeConfig { max_body_bytes: 4096, max_images_per_request: 3, ..config() };
    let s = ScoringService::with_scorer(cfg.check().unwrap(), Box::new(tiny_model())).unwrap();
    s.wait_ready(Duration::from_secs(30)).unwrap();
    let app = s.router();
    for req in [score_req("image/png", vec![0u8; 10_000]), json_req(&json!([{ "image_in_base64": "A".repeat(8000) }]))]
    {
        let (status, _, v) = call(&app, req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
        assert_eq!(v["error"]["code"], json!("body_too_large"));
    }
    let four = Value::Array(vec![json!({ "image_in_base64": b64(&png(2, 2, 0)) }); 4]);
    let (status, _, v) = call(&app, json_req(&four)).await;
    assert_eq!((status, v["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!("too_many_images")));
    assert_still_serves(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_answers_503_with_retry_after() {
    let cfg = ServeConfig { queue_capacity: 1, max_delay: Duration::ZERO, ..config() };
    let s = ScoringService::with_scorer(cfg.check().unwrap(), Box::new(Fake::new(Duration::from_millis(300)))).unwrap();
    s.wait_ready(Duration::from_secs(5)).unwrap();
    let app = s.router();
    let send = |i: u8| {
        let app = app.clone();
        tokio::spawn(async move { call(&app, score_req("image/png", png(8, 8, i))).await })
    };
    // The first request reaches the model (which takes 300 ms); then five at once.
    let mut tasks = vec![send(0)];
    tokio::time::sleep(Duration::from_millis(100)).await;
    tasks.extend((1..6).map(send));
    let mut statuses = Vec::new();
    for t in tasks {
        let (status, headers, v) = t.await.unwrap();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(v["error"]["code"], json!("overloaded"));
            assert_eq!(headers["retry-after"], "1");
        }
        statuses.push(status);
    }
    // One is scored, one waits in the queue; the rest are turned away.
    assert!(statuses.iter().filter(|s| **s == StatusCode::OK).count() >= 2, "{statuses:?}");
    assert!(statuses.contains(&StatusCode::SERVICE_UNAVAILABLE), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_is_bounded_in_images_not_only_in_requests() {
    // Room for 64 requests, but for 4 images only.
    let cfg = ServeConfig { max_queued_images: 4, max_images_per_request: 4, max_delay: Duration::ZERO, ..config() };
    let fake = Fake::new(Duration::from_millis(1000));
    let batches = fake.batches.clone();
    let s = ScoringService::with_scorer(cfg.check().unwrap(), Box::new(fake)).unwrap();
    s.wait_ready(Duration::from_secs(5)).unwrap();
    let app = s.router();
    let four = json!([{ "image_in_base64": b64(&png(8, 8, 0)) }, { "image_in_base64": b64(&png(8, 8, 1)) },
                      { "image_in_base64": b64(&png(8, 8, 2)) }, { "image_in_base64": b64(&png(8, 8, 3)) }]);
    let first = {
        let app = app.clone();
        tokio::spawn(async move { call(&app, json_req(&four)).await })
    };
    // Until the model holds the four (it records a batch as it starts it, then
    // takes a second): a fixed wait was too short on a loaded machine.
    let started = std::time::Instant::now();
    while batches.lock().unwrap().as_slice() != [4] {
        assert!(started.elapsed() < Duration::from_secs(10), "the four images never reached the model");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Four images are in the model: one more is over the budget.
    let (status, headers, v) = call(&app, score_req("image/png", png(8, 8, 9))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], json!("overloaded"));
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    // Scored and dropped: the budget is free again.
    assert_eq!(call(&app, score_req("image/png", png(8, 8, 9))).await.0, StatusCode::OK);
    let too_small = ServeConfig { max_queued_images: 10, ..config() }.check().unwrap_err().to_string();
    assert!(too_small.contains("max_images_per_request"), "{too_small}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_model_gives_504_after_the_request_timeout() {
    let cfg = ServeConfig { request_timeout: Duration::from_millis(100), ..config() };
    let s = ScoringService::with_scorer(cfg.check().unwrap(), Box::new(Fake::new(Duration::from_millis(600)))).unwrap();
    s.wait_ready(Duration::from_secs(5)).unwrap();
    let (status, _, v) = call(&s.router(), score_req("image/png", png(8, 8, 0))).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{v}");
    assert_eq!(v["error"]["code"], json!("timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_are_batched_within_the_delay_and_not_when_it_is_zero() {
    // One decoding slot serialises decoding but still lets requests meet in a batch.
    let cases =
        [(Duration::from_millis(300), 0, true), (Duration::ZERO, 0, false), (Duration::from_millis(300), 1, true)];
    for (delay, decode_threads, want_batched) in cases {
        let fake = Fake::new(Duration::from_millis(20));
        let batches = fake.batches.clone();
        let cfg = ServeConfig { max_delay: delay, max_batch: 8, decode_threads, ..config() };
        let s = ScoringService::with_scorer(cfg.check().unwrap(), Box::new(fake)).unwrap();
        s.wait_ready(Duration::from_secs(5)).unwrap();
        let app = s.router();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move { call(&app, score_req("image/png", png(8, 8, i))).await.0 })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), StatusCode::OK);
        }
        let seen = batches.lock().unwrap().clone();
        assert_eq!(seen.iter().sum::<usize>(), 4, "{seen:?}");
        assert_eq!(seen.iter().any(|n| *n > 1), want_batched, "delay {delay:?}: {seen:?}");
        let (_, _, metrics) = call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
        let text = metrics.as_str().unwrap().to_string();
        assert!(text.contains("cvtk_batch_size_images_count"), "{text}");
        assert!(text.contains("cvtk_http_requests_total{route=\"/score\",status=\"200\"} 4"), "{text}");
        assert!(text.contains("cvtk_queue_depth 0"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_live_at_once_and_ready_only_after_loading() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let s = ScoringService::start(config().check().unwrap(), move || {
        rx.recv().ok();
        Ok(Box::new(tiny_model()) as Box<dyn cvtk_model::Classifier>)
    })
    .unwrap();
    let app = s.router();
    let get = |p: &str| Request::get(p).body(Body::empty()).unwrap();
    assert_eq!(call(&app, get("/health")).await.0, StatusCode::OK);
    let (status, headers, v) = call(&app, get("/ready")).await;
    assert_eq!((status, v["error"]["code"].clone()), (StatusCode::SERVICE_UNAVAILABLE, json!("not_ready")));
    assert_eq!(headers["retry-after"], "1");
    let (status, _, _) = call(&app, score_req("image/png", png(8, 8, 0))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    tx.send(()).unwrap();
    s.wait_ready(Duration::from_secs(30)).unwrap();
    assert_eq!(call(&app, get("/ready")).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_fails_to_load_is_reported_not_ready_with_the_reason() {
    let s = ScoringService::start(config().check().unwrap(), || {
        Err(cvtk_model::Error::InvalidInput("weights are corrupt".into()))
    })
    .unwrap();
    assert!(s.wait_ready(Duration::from_secs(5)).unwrap_err().to_string().contains("weights are corrupt"));
    let (status, _, v) = call(&s.router(), Request::get("/ready").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(v["error"]["message"].as_str().unwrap().contains("weights are corrupt"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_the_endpoints() {
    let s = service();
    let (status, _, v) = call(&s.router(), Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/score", "/health", "/ready", "/metrics", "/v2", "/v2/models/{name}", "/v2/models/{name}/infer"] {
        assert!(v["paths"][path].is_object(), "{path}");
    }
    // Every error code the server can send is listed, and nothing else.
    let listed: Vec<ErrorCode> =
        serde_json::from_value(v["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"].clone())
            .unwrap();
    assert!(!listed.contains(&ErrorCode::Unknown), "a code the service does not know is listed: {listed:?}");
    for (name, _, _, code) in bad_requests() {
        assert!(listed.iter().any(|c| c.name() == code), "{name}: {code} not in {listed:?}");
    }
    let annotation_page_only = [
        ErrorCode::UnknownLabel,
        ErrorCode::Invalid,
        ErrorCode::ManifestReadOnly,
        ErrorCode::Conflict,
        ErrorCode::NothingToUndo,
        ErrorCode::CannotSave,
    ];
    for code in ErrorCode::ALL.iter().filter(|c| !annotation_page_only.contains(c)) {
        assert!(listed.contains(code), "the service can send {code}, openapi.json does not list it");
    }
}

#[test]
fn serving_without_a_key_needs_the_explicit_flag_and_loopback() {
    let no_key = ServeConfig { keys: vec![], ..config() };
    assert!(no_key.check().is_err(), "the check refuses it before any service starts");
    let open_wide = ServeConfig { auth_disabled: true, host: "0.0.0.0".into(), ..no_key.clone() };
    assert!(open_wide.check().is_err());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let open_local = ServeConfig { auth_disabled: true, ..no_key };
    let s = ScoringService::with_scorer(open_local.check().unwrap(), Box::new(tiny_model())).unwrap();
    s.wait_ready(Duration::from_secs(30)).unwrap();
    let req = Request::post("/score").header("content-type", "image/png").body(Body::from(png(8, 8, 0))).unwrap();
    assert_eq!(rt.block_on(call(&s.router(), req)).0, StatusCode::OK);
}

/// A loopback server for URL tests: an image, a big file, a redirect away.
async fn image_host() -> (String, tokio::task::JoinHandle<()>) {
    use axum::response::Redirect;
    use axum::routing::get;
    let img = png(16, 16, 4);
    let app = axum::Router::new()
        .route("/cat.png", get(move || async move { ([("content-type", "image/png")], img.clone()) }))
        .route("/big.png", get(|| async { vec![0u8; 300_000] }))
        .route("/away", get(|| async { Redirect::temporary("http://localhost.invalid/x.png") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (url, tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_urls_are_fetched_only_from_allowed_hosts_within_limits() {
    let (host, server) = image_host().await;
    // The image host is on loopback: private addresses must be allowed.
    let policy = UrlPolicy {
        allow_hosts: vec!["127.0.0.1".into()],
        max_bytes: 100_000,
        timeout: Duration::from_secs(5),
        allow_private: true,
    };
    let s =
        ScoringService::with_scorer(ServeConfig { urls: policy, ..config() }.check().unwrap(), Box::new(tiny_model()))
            .unwrap();
    s.wait_ready(Duration::from_secs(30)).unwrap();
    let body = json!([
        { "image_url": format!("{host}/cat.png") },
        { "image_url": format!("{host}/big.png") },
        { "image_url": format!("{host}/missing.png") },
        { "image_url": format!("{host}/away") },
        { "image_url": "http://example.com/cat.png" },
        { "image_url": "file:///etc/passwd" },
    ]);
    let (status, _, v) = call(&s.router(), json_req(&body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let r = v["results"].as_array().unwrap();
    assert!(r[0]["label"].is_string(), "{v}");
    let codes: Vec<&str> = r[1..].iter().map(|x| x["error"]["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        ["url_fetch_failed", "url_fetch_failed", "url_fetch_failed", "url_not_allowed", "url_not_allowed"],
        "{v}"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_hosts_that_resolve_to_private_addresses_are_refused_before_any_connection() {
    let (host, server) = image_host().await;
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let port = host.rsplit(':').next().unwrap().to_string();
    // A listener that counts connections: nothing may reach it.
    let trap = std::net::TcpListener::bind("127.0.0.1:80").ok();
    let counter = hits.clone();
    if let Some(t) = trap.as_ref().map(|t| t.try_clone().unwrap()) {
        std::thread::spawn(move || {
            for _ in t.incoming() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    // Allowed by name; default policy: public addresses on ports 80/443 only.
    let policy = UrlPolicy {
        allow_hosts: vec!["localhost".into(), "127.0.0.1".into(), "169.254.169.254".into()],
        ..UrlPolicy::default()
    };
    let s =
        ScoringService::with_scorer(ServeConfig { urls: policy, ..config() }.check().unwrap(), Box::new(tiny_model()))
            .unwrap();
    s.wait_ready(Duration::from_secs(30)).unwrap();
    let body = json!([
        { "image_url": "http://localhost/cat.png" },
        { "image_url": format!("http://localhost:{port}/cat.png") },
        { "image_url": format!("{host}/cat.png") },
        { "image_url": "http://169.254.169.254/latest/meta-data/" },
        { "image_url": "http://127.0.0.1/cat.png" },
    ]);
    let (status, _, v) = call(&s.router(), json_req(&body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["error"]["code"], "url_not_allowed", "{v}");
    }
    let messages = v["results"].to_string();
    assert!(messages.contains("not public") && messages.contains("port"), "{messages}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0, "a connection reached port 80");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_urls_of_one_request_share_a_download_budget() {
    let (host, server) = image_host().await;
    let one = png(16, 16, 4).len();
    let policy = UrlPolicy { allow_hosts: vec!["127.0.0.1".into()], allow_private: true, ..UrlPolicy::default() };
    // The budget is the body limit: room for two images, not three.
    let config = ServeConfig { urls: policy, max_body_bytes: one * 2 + one / 2, ..config() };
    let s = ScoringService::with_scorer(config.check().unwrap(), Box::new(tiny_model())).unwrap();
    s.wait_ready(Duration::from_secs(30)).unwrap();
    let body = json!([
        { "image_url": format!("{host}/cat.png") },
        { "image_url": format!("{host}/cat.png") },
        { "image_url": format!("{host}/cat.png") },
        { "image_url": format!("{host}/cat.png") },
    ]);
    let (status, _, v) = call(&s.router(), json_req(&body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let r = v["results"].as_array().unwrap();
    assert!(r[0]["label"].is_string() && r[1]["label"].is_string(), "{v}");
    for x in &r[2..] {
        assert_eq!(x["error"]["code"], "url_fetch_failed", "{v}");
        assert!(x["error"]["message"].as_str().unwrap().contains("budget"), "{v}");
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_lets_a_request_in_flight_finish() {
    let s = ScoringService::with_scorer(config().check().unwrap(), Box::new(Fake::new(Duration::from_millis(500))))
        .unwrap();
    s.wait_ready(Duration::from_secs(5)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/score", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let s = std::sync::Arc::new(s);
    let s2 = s.clone();
    let server = tokio::spawn(async move {
        cvtk_deploy::serve_on(listener, &s2, async {
            let _ = stop_rx.await;
        })
        .await
    });
    let request = tokio::spawn(
        reqwest::Client::new()
            .post(&url)
            .bearer_auth(KEY)
            .header("content-type", "image/png")
            .body(png(8, 8, 1))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop_tx.send(()).unwrap();
    let response = request.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["results"][0]["label"], json!("x"));
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
    // Stopped: new connections are refused.
    assert!(reqwest::Client::new().post(&url).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_only_requests_addressed_to_loopback_are_scored() {
    // --no-auth is allowed on loopback only; a page the user opens may still
    // reach the port through DNS rebinding, with its own name as the Host.
    let config = ServeConfig { keys: vec![], auth_disabled: true, ..config() };
    let s = ScoringService::with_scorer(config.check().unwrap(), Box::new(Fake::new(Duration::ZERO))).unwrap();
    s.wait_ready(Duration::from_secs(5)).unwrap();
    let app = s.router();
    let body = json!([{ "image_in_base64": b64(&png(8, 8, 1)) }]).to_string();
    for (host, want) in
        [("evil.example.com", 403), ("127.0.0.1.nip.io:8080", 403), ("127.0.0.1:8080", 200), ("localhost", 200)]
    {
        let req = Request::post("/score")
            .header("host", host)
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        let (status, _, v) = call(&app, req).await;
        assert_eq!(status.as_u16(), want, "Host: {host}: {v}");
        if want == 403 {
            assert_eq!(v["error"]["code"], "host_not_allowed", "{v}");
        }
    }
}

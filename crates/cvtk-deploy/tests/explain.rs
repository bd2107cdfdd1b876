//! `POST /explain`: maps with the same inputs, key and limits as `/score`,
//! a bounded number of images, an error per bad image, clear refusals (a
//! label the model lacks, a model without maps), and the socket-level
//! hardening (a body declared over the limit, stalled uploads).

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use cvtk_deploy::api::MAX_EXPLAIN_IMAGES;
use cvtk_deploy::{ScoringService, ServeConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn explain_req(query: &str, body: &Value) -> Request<Body> {
    Request::post(format!("/explain{query}"))
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn service_with(scorer: Box<dyn cvtk_model::Scorer + Send>) -> ScoringService {
    let s = ScoringService::with_scorer(config().check().unwrap(), scorer).unwrap();
    s.wait_ready(Duration::from_secs(30)).unwrap();
    s
}

/// An 8x8 image, dark but for its top-right quadrant.
fn bright_top_right() -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(8, 8, |x, y| if x >= 4 && y < 4 { image::Rgb([250; 3]) } else { image::Rgb([20; 3]) });
    images::encode(&img, image::ImageFormat::Png)
}

fn decode_b64_png(v: &Value) -> image::RgbImage {
    let bytes = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
    image::load_from_memory(&bytes).unwrap().to_rgb8()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_maps_each_image_and_fails_bad_ones_alone() {
    let s = service_with(Box::new(Fake::new(Duration::ZERO)));
    let app = s.router();
    let body = json!([{ "image_in_base64": b64(&bright_top_right()) }, { "image_in_base64": "@@@" }]);
    let (status, _, v) = call(&app, explain_req("", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["labels"], json!(["x", "y"]));
    assert_eq!(v["method"], "cam");
    let r = &v["results"][0];
    assert_eq!((r["label"].as_str(), r["predicted"].as_str()), (Some("x"), Some("x")));
    let values: Vec<f64> = r["map"]["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!((r["map"]["height"].as_u64(), r["map"]["width"].as_u64()), (Some(2), Some(2)));
    let hottest = (0..4).max_by(|&a, &b| values[a].total_cmp(&values[b])).unwrap();
    assert_eq!(hottest, 1, "the top-right cell is the bright one: {values:?}");
    // The probabilities are /score's.
    let (_, _, scored) = call(
        &app,
        json_req(&json!([{ "image_in_base64": b64(&bright_top_right()), "parameters": { "add_softmax": true } }])),
    )
    .await;
    let p = scored["results"][0]["scores"][0].as_f64().unwrap();
    assert!((r["probability"].as_f64().unwrap() - p).abs() < 1e-6, "{r} vs {scored}");
    // Two pictures: the map alone, and over the 8x8 image with a colour scale.
    assert_eq!(decode_b64_png(&r["map_png_base64"]).dimensions(), (112, 112));
    let overlay = decode_b64_png(&r["overlay_png_base64"]);
    assert!(overlay.width() > 8 && overlay.height() == 8, "{:?}", overlay.dimensions());
    let (hot, cold) = (overlay.get_pixel(6, 1).0, overlay.get_pixel(1, 6).0);
    assert!(hot[0] > hot[2], "the bright cell is drawn hot: {hot:?}");
    assert!(cold != hot);
    assert_eq!(v["results"][1]["error"]["code"], "bad_base64");

    // Another label's map; a label the model lacks is refused, naming them.
    let (_, _, y) =
        call(&app, explain_req("?label=y", &json!([{ "image_in_base64": b64(&bright_top_right()) }]))).await;
    assert_eq!((y["results"][0]["label"].as_str(), y["results"][0]["predicted"].as_str()), (Some("y"), Some("x")));
    let (status, _, e) =
        call(&app, explain_req("?label=zebra", &json!([{ "image_in_base64": b64(&png(8, 8, 1)) }]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("no label 'zebra'") && message.contains("x, y"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_takes_the_key_and_a_bounded_number_of_images() {
    let s = service_with(Box::new(Fake::new(Duration::ZERO)));
    let app = s.router();
    let one = json!([{ "image_in_base64": b64(&png(8, 8, 1)) }]);
    let no_key =
        Request::post("/explain").header("content-type", "application/json").body(Body::from(one.to_string())).unwrap();
    assert_eq!(call(&app, no_key).await.0, StatusCode::UNAUTHORIZED);
    let wrong = Request::post("/explain")
        .header("authorization", "Bearer nope")
        .header("content-type", "application/json")
        .body(Body::from(one.to_string()))
        .unwrap();
    assert_eq!(call(&app, wrong).await.0, StatusCode::UNAUTHORIZED);
    let many: Vec<Value> =
        (0..=MAX_EXPLAIN_IMAGES).map(|i| json!({ "image_in_base64": b64(&png(8, 8, i as u8)) })).collect();
    let (status, _, v) = call(&app, explain_req("", &Value::Array(many.clone()))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "too_many_images");
    let (status, _, v) = call(&app, explain_req("", &Value::Array(many[..MAX_EXPLAIN_IMAGES].to_vec()))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), MAX_EXPLAIN_IMAGES);
    let (status, _, v) = call(&app, explain_req("", &json!([]))).await;
    assert_eq!((status, v["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("empty")));
    // The document lists the route.
    let (_, _, doc) = call(&app, Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    assert!(doc["paths"]["/explain"]["post"].is_object());
    assert!(doc["components"]["schemas"]["ExplainResponse"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_maps_is_a_clear_400_and_scoring_goes_on() {
    let s = service_with(Box::new(tiny_model()));
    let app = s.router();
    let (img, _) = gray_png(28, 28, 3);
    let (status, _, v) = call(&app, explain_req("", &json!([{ "image_in_base64": b64(&img) }]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("cannot explain") && message.contains("no feature map"), "{message}");
    let (status, _, _) = call(&app, json_req(&json!([{ "image_in_base64": b64(&img) }]))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_socket_explain_refuses_declared_oversize_and_stalled_uploads_lock_nobody_out() {
    let config = ServeConfig { max_body_bytes: 1 << 20, max_connections: 8, ..config() };
    let s =
        Arc::new(ScoringService::with_scorer(config.check().unwrap(), Box::new(Fake::new(Duration::ZERO))).unwrap());
    s.wait_ready(Duration::from_secs(5)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (_stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = s.clone();
    tokio::spawn(async move {
        cvtk_deploy::serve_on(listener, &served, async {
            let _ = stop_rx.await;
        })
        .await
    });
    let head = |length: usize| {
        format!(
            "POST /explain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: image/png\r\n\
             Content-Length: {length}\r\n\r\n"
        )
    };
    // Declared over the limit: 413 at once.
    let mut big = tokio::net::TcpStream::connect(&addr).await.unwrap();
    big.write_all(head(80_000_000).as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), big.read(&mut answer)).await.expect("no answer").unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 413"));
    // Six uploads that stall mid-body; an honest explain is still answered.
    let mut stalled = Vec::new();
    for _ in 0..6 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(format!("{}0123456789", head(1000)).as_bytes()).await.unwrap();
        stalled.push(c);
    }
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/explain"))
        .bearer_auth(KEY)
        .header("content-type", "image/png")
        .body(png(8, 8, 1))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["results"][0]["predicted"], "x");
    drop(stalled);
}

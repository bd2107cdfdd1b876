//! The Open Inference Protocol routes through the router: server and model
//! metadata, health, readiness, and inference with encoded images (base64 in
//! JSON, raw in the binary extension) and preprocessed tensors (JSON and
//! binary), outputs in JSON or binary; and every malformed request's 4xx in
//! the protocol's error shape.

use std::time::Duration;

use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use cvtk_dataset::ImageLoader;
use cvtk_deploy::{ScoringService, ServeConfig};
use cvtk_model::Scorer;
use serde_json::{json, Value};
use tower::ServiceExt;

const MODEL: &str = "/v2/models/fake";

fn service(config: ServeConfig) -> ScoringService {
    let config = ServeConfig { model_name: Some("fake".into()), model_version: Some("7".into()), ..config };
    let s = ScoringService::with_scorer(config.check().unwrap(), Box::new(Fake::new(Duration::ZERO))).unwrap();
    s.wait_ready(Duration::from_secs(5)).unwrap();
    s
}

/// Sends a request; the status, the `Inference-Header-Content-Length`
/// header, and the body.
async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Option<usize>, Vec<u8>) {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let length = r.headers().get("inference-header-content-length").map(|v| v.to_str().unwrap().parse().unwrap());
    (status, length, axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap().to_vec())
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(app, Request::get(path).body(Body::empty()).unwrap()).await;
    (status, serde_json::from_slice(&body).unwrap())
}

fn infer_req(path: &str, body: Vec<u8>, header_length: Option<usize>) -> Request<Body> {
    let mut r = Request::post(path).header("authorization", format!("Bearer {KEY}"));
    r = match header_length {
        Some(n) => r.header("content-type", "application/octet-stream").header("inference-header-content-length", n),
        None => r.header("content-type", "application/json"),
    };
    r.body(Body::from(body)).unwrap()
}

async fn infer(app: &Router, body: Value) -> (StatusCode, Value) {
    let (status, _, bytes) = send(app, infer_req(&format!("{MODEL}/infer"), body.to_string().into_bytes(), None)).await;
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// `/score`'s probabilities for these images, in order.
async fn score_probabilities(app: &Router, images: &[Vec<u8>]) -> Vec<Vec<f32>> {
    let items: Vec<Value> =
        images.iter().map(|b| json!({ "image_in_base64": b64(b), "parameters": { "add_softmax": true } })).collect();
    let (status, _, v) = call(app, json_req(&json!(items))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["results"].as_array().unwrap().iter().map(|r| floats(&r["scores"])).collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn output<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["outputs"].as_array().unwrap().iter().find(|o| o["name"] == name).unwrap()
}

fn assert_rows_close(flat: &[f32], rows: &[Vec<f32>]) {
    let expected: Vec<f32> = rows.iter().flatten().copied().collect();
    assert_eq!(flat.len(), expected.len());
    for (a, b) in flat.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-6, "{flat:?} vs {expected:?}");
    }
}

/// The tensor cvtk's loader makes of these images, as the metadata's
/// contract describes it.
fn preprocessed(images: &[Vec<u8>]) -> Vec<f32> {
    let loader = ImageLoader::new(Fake::new(Duration::ZERO).loader_config()).unwrap();
    let decoded: Vec<_> = images.iter().map(|b| loader.load_image_bytes(b, "x").unwrap()).collect();
    loader.to_batch(&decoded).unwrap().data().to_vec()
}

#[tokio::test]
async fn health_metadata_and_readiness_routes_answer_in_the_protocols_shape() {
    let s = service(config());
    let app = s.router();
    let (status, v) = get(&app, "/v2").await;
    assert_eq!(status, 200);
    assert_eq!(v["name"], "cvtk");
    assert!(v["extensions"].as_array().unwrap().contains(&json!("binary_tensor_data")));
    assert_eq!(get(&app, "/v2/health/live").await, (StatusCode::OK, json!({ "live": true })));
    assert_eq!(get(&app, "/v2/health/ready").await, (StatusCode::OK, json!({ "ready": true })));
    for path in [MODEL.to_string(), format!("{MODEL}/versions/7")] {
        let (status, m) = get(&app, &path).await;
        assert_eq!(status, 200, "{m}");
        assert_eq!((m["name"].as_str(), &m["versions"]), (Some("fake"), &json!(["7"])));
        assert_eq!(m["inputs"][0], json!({ "name": "image", "datatype": "BYTES", "shape": [-1] }));
        assert_eq!(m["inputs"][1], json!({ "name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8] }));
        assert_eq!(m["outputs"][0], json!({ "name": "probabilities", "datatype": "FP32", "shape": [-1, 2] }));
        assert_eq!(m["parameters"]["labels"], json!(["x", "y"]));
        assert_eq!(m["parameters"]["input_contract"]["color"], "gray");
        assert!(m["platform"].is_string());
    }
    for path in [format!("{MODEL}/ready"), format!("{MODEL}/versions/7/ready")] {
        assert_eq!(get(&app, &path).await, (StatusCode::OK, json!({ "name": "fake", "ready": true })));
    }
    for path in ["/v2/models/other", "/v2/models/other/ready", "/v2/models/fake/versions/8"] {
        let (status, v) = get(&app, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(v["error"].as_str().unwrap().contains("fake"), "{path}: {v}");
    }
}

#[tokio::test]
async fn encoded_images_and_preprocessed_tensors_score_as_score_does_in_json_and_binary() {
    let s = service(config());
    let app = s.router();
    let images: Vec<Vec<u8>> = vec![png(8, 8, 10), jpeg(20, 12, 200), png(3, 5, 90)];
    let expected = score_probabilities(&app, &images).await;

    // BYTES as base64 in JSON, with an id echoed back and top-2 labels.
    let b64s: Vec<String> = images.iter().map(|b| b64(b)).collect();
    let (status, v) = infer(
        &app,
        json!({
            "id": "req-1",
            "parameters": { "top_k": 2 },
            "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [3], "data": b64s }],
        }),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["model_name"].as_str(), v["model_version"].as_str(), v["id"].as_str()),
        (Some("fake"), Some("7"), Some("req-1"))
    );
    let p = output(&v, "probabilities");
    assert_eq!((p["datatype"].as_str(), &p["shape"]), (Some("FP32"), &json!([3, 2])));
    assert_rows_close(&floats(&p["data"]), &expected);
    let labels = output(&v, "label");
    assert_eq!((labels["datatype"].as_str(), &labels["shape"]), (Some("BYTES"), &json!([3, 2])));
    for (i, row) in expected.iter().enumerate() {
        let best = if row[0] >= row[1] { ["x", "y"] } else { ["y", "x"] };
        assert_eq!(labels["data"][2 * i], best[0]);
        assert_eq!(labels["data"][2 * i + 1], best[1]);
    }

    // FP32 preprocessed, as nested JSON arrays.
    let tensor = preprocessed(&images);
    let nested: Vec<Vec<f32>> = tensor.chunks(64).map(<[f32]>::to_vec).collect();
    let (status, v) = infer(
        &app,
        json!({
            "inputs": [{ "name": "input", "datatype": "FP32", "shape": [3, 1, 8, 8], "data": nested }],
            "outputs": [{ "name": "probabilities" }],
        }),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["outputs"].as_array().unwrap().len(), 1, "only the output asked for");
    assert_rows_close(&floats(&output(&v, "probabilities")["data"]), &expected);

    // Raw scores with softmax off: the logits (the fake's mean and its negation).
    let (_, v) = infer(
        &app,
        json!({
            "parameters": { "softmax": false },
            "inputs": [{ "name": "input", "datatype": "FP32", "shape": [3, 1, 8, 8], "data": tensor }],
        }),
    )
    .await;
    let raw = floats(&output(&v, "probabilities")["data"]);
    assert!((raw[0] + raw[1]).abs() < 1e-6 && (raw[0] - tensor[..64].iter().sum::<f32>() / 64.0).abs() < 1e-5);

    // The binary extension both ways: BYTES elements and FP32 values after
    // the JSON header, outputs in binary as Triton's client asks by default.
    for (input, data) in [
        (
            json!({ "name": "image", "datatype": "BYTES", "shape": [3] }),
            images
                .iter()
                .flat_map(|b| (b.len() as u32).to_le_bytes().into_iter().chain(b.iter().copied()))
                .collect::<Vec<u8>>(),
        ),
        (
            json!({ "name": "input", "datatype": "FP32", "shape": [3, 1, 8, 8] }),
            tensor.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    ] {
        let mut input = input;
        input["parameters"] = json!({ "binary_data_size": data.len() });
        let head = json!({ "inputs": [input], "parameters": { "binary_data_output": true } }).to_string().into_bytes();
        let n = head.len();
        let (status, length, body) =
            send(&app, infer_req(&format!("{MODEL}/versions/7/infer"), [head, data].concat(), Some(n))).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let length = length.expect("a binary answer says its JSON header's length");
        let answer: Value = serde_json::from_slice(&body[..length]).unwrap();
        let p = output(&answer, "probabilities");
        let size = p["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
        assert_eq!(size, 3 * 2 * 4);
        let flat: Vec<f32> =
            body[length..length + size].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_rows_close(&flat, &expected);
        // The label output follows: 4-byte length, then the name, per element.
        let rest = &body[length + size..];
        assert_eq!(rest.len(), output(&answer, "label")["parameters"]["binary_data_size"].as_u64().unwrap() as usize);
        assert_eq!(&rest[..4], &1u32.to_le_bytes());
    }
}

#[tokio::test]
async fn malformed_infer_requests_get_a_4xx_in_the_protocols_shape_naming_the_problem() {
    let s = service(ServeConfig { max_images_per_request: 2, ..config() });
    let app = s.router();
    let img = b64(&png(8, 8, 1));
    let image_input = |shape: Value, data: Value| json!({ "inputs": [{ "name": "image", "datatype": "BYTES", "shape": shape, "data": data }] });
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("missing inputs", json!({ "inputs": [] }), 400, "send exactly one"),
        ("no inputs field", json!({ "id": "x" }), 400, "inputs"),
        (
            "two inputs",
            json!({ "inputs": [
                { "name": "image", "datatype": "BYTES", "shape": [1], "data": [img] },
                { "name": "image", "datatype": "BYTES", "shape": [1], "data": [img] },
            ] }),
            400,
            "send exactly one",
        ),
        (
            "unknown input",
            json!({ "inputs": [{ "name": "pixels", "datatype": "FP32", "shape": [1], "data": [1] }] }),
            400,
            "unknown input 'pixels'",
        ),
        (
            "wrong datatype",
            json!({ "inputs": [{ "name": "image", "datatype": "FP32", "shape": [1], "data": [1.0] }] }),
            400,
            "takes BYTES",
        ),
        (
            "wrong datatype for the tensor",
            json!({ "inputs": [{ "name": "input", "datatype": "INT64", "shape": [1, 1, 8, 8], "data": [1] }] }),
            400,
            "takes FP32",
        ),
        ("shape and data disagree", image_input(json!([2]), json!([img])), 400, "holds 1 elements"),
        ("more data than the shape", image_input(json!([1]), json!([img, img])), 400, "more elements than its shape"),
        (
            "a tensor of the wrong size",
            json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 3, 8, 8], "data": [0.0] }] }),
            400,
            "this model takes [N, 1, 8, 8]",
        ),
        (
            "too few values",
            json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0.0, 1.0] }] }),
            400,
            "(64 values) but holds 2",
        ),
        ("not base64", image_input(json!([1]), json!(["%%%"])), 400, "element 0 is not base64"),
        ("not an image", image_input(json!([2]), json!([img, b64(b"hello, not an image")])), 422, "element 1"),
        ("too many images", image_input(json!([3]), json!([img, img, img])), 400, "at most 2"),
        ("zero images", image_input(json!([0]), json!([])), 400, "at least 1"),
        (
            "unknown output",
            json!({ "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [1], "data": [img] }], "outputs": [{ "name": "logits" }] }),
            400,
            "unknown output 'logits'",
        ),
        (
            "an output asked for twice",
            json!({ "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [1], "data": [img] }], "outputs": [{ "name": "label" }, { "name": "label" }] }),
            400,
            "output 'label' is asked for twice",
        ),
        (
            "more outputs than the model has",
            json!({ "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [1], "data": [img] }], "outputs": [{ "name": "label" }, { "name": "probabilities" }, { "name": "label" }] }),
            400,
            "more than 2 outputs",
        ),
        (
            "a shape of 9 dimensions",
            image_input(json!([1, 1, 1, 1, 1, 1, 1, 1, 1]), json!([img])),
            400,
            "more than 8 dimensions",
        ),
        (
            "a flag that is a list",
            json!({ "parameters": { "softmax": [true, false] }, "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [1], "data": [img] }] }),
            400,
            "parameter 'softmax' must be true or false, not a list",
        ),
        (
            "a binary size that is a string",
            json!({ "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [1], "parameters": { "binary_data_size": "9" } }] }),
            400,
            "binary_data_size must be a byte count, not \"9\"",
        ),
        (
            "bad top_k",
            json!({ "parameters": { "top_k": 9 }, "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [1], "data": [img] }] }),
            400,
            "top_k",
        ),
        (
            "data and binary at once",
            json!({ "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [1], "data": [img], "parameters": { "binary_data_size": 0 } }] }),
            400,
            "one of the two",
        ),
    ];
    for (what, body, status, needle) in cases {
        let (got, v) = infer(&app, body).await;
        assert_eq!(got.as_u16(), status, "{what}: {v}");
        let message = v["error"].as_str().unwrap_or_else(|| panic!("{what}: not the protocol's error shape: {v}"));
        assert!(message.contains(needle), "{what}: {message}");
    }
    // Unknown parameters are skipped, whatever they hold.
    let (status, v) = infer(
        &app,
        json!({ "parameters": { "priority": 3, "blob": { "a": [1, 2, [3]] } }, "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [1], "data": [img], "parameters": { "x": [1] } }], "outputs": [{ "name": "label", "parameters": { "classification": 2 } }] }),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    // Unknown routes and wrong methods under /v2 answer in the protocol's shape.
    for (method, path, want) in
        [("GET", "/v2/nothing", 404), ("GET", "/v2/models/fake/explain", 404), ("GET", "/v2/models/fake/infer", 405)]
    {
        let (status, _, body) =
            send(&app, Request::builder().method(method).uri(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status.as_u16(), want, "{method} {path}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].is_string(), "{method} {path}: not the protocol's error shape: {v}");
    }
    // Not JSON; an unknown model; a binary size past the body; no key; too large.
    let (status, _, body) = send(&app, infer_req(&format!("{MODEL}/infer"), b"{not json".to_vec(), None)).await;
    assert_eq!(status, 400);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"].is_string());
    let (status, v) = {
        let (s, _, b) = send(&app, infer_req("/v2/models/nope/infer", b"{}".to_vec(), None)).await;
        (s, serde_json::from_slice::<Value>(&b).unwrap())
    };
    assert_eq!(status, 404, "{v}");
    let head = json!({ "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [1], "parameters": { "binary_data_size": 99 } }] }).to_string();
    let n = head.len();
    let (status, _, body) =
        send(&app, infer_req(&format!("{MODEL}/infer"), [head.into_bytes(), vec![0; 10]].concat(), Some(n))).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("binary_data_size 99"));
    let unkeyed = Request::post(format!("{MODEL}/infer"))
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, body) = send(&app, unkeyed).await;
    assert_eq!(status, 401);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"].is_string(), "{}", String::from_utf8_lossy(&body));
    let small = service(ServeConfig { max_body_bytes: 1000, ..config() });
    let big =
        json!({ "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [1], "data": [b64(&vec![0u8; 5000])] }] });
    let (status, _, body) =
        send(&small.router(), infer_req(&format!("{MODEL}/infer"), big.to_string().into_bytes(), None)).await;
    assert_eq!(status, 413);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"].is_string());
}

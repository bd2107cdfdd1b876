//! Property tests of the parsers that take a client's bytes, through the
//! whole `/score` route: generated JSON payloads (valid, near-valid and
//! random) and damaged multipart bodies. Every answer is a JSON 200 or 4xx,
//! never a panic or a 5xx, and nothing past the request limits is accepted.

use std::sync::OnceLock;
use std::time::Duration;

use crate::common::*;
use axum::Router;
use cvtk_deploy::{ScoringService, ServeConfig};
use proptest::prelude::*;
use serde_json::{json, Value};

/// One service for every case: a fake model with 8x8 gray input, at most 4
/// images per request.
fn router() -> &'static (tokio::runtime::Runtime, Router) {
    static APP: OnceLock<(tokio::runtime::Runtime, Router)> = OnceLock::new();
    APP.get_or_init(|| {
        let config = ServeConfig { max_images_per_request: 4, ..config() };
        let s = ScoringService::with_scorer(config.check().unwrap(), Box::new(Fake::new(Duration::ZERO))).unwrap();
        s.wait_ready(Duration::from_secs(5)).unwrap();
        let app = s.router();
        // The service lives as long as the test process.
        std::mem::forget(s);
        (tokio::runtime::Runtime::new().unwrap(), app)
    })
}

/// Sends `content_type` and `body`; checks the answer's shape, and returns it.
fn answer(content_type: &str, body: Vec<u8>) -> Result<(u16, Value), TestCaseError> {
    let (rt, app) = router();
    let (status, _, v) = rt.block_on(call(app, score_req(content_type, body)));
    let code = status.as_u16();
    prop_assert!(code == 200 || (400..500).contains(&code), "{code}: {v}");
    if code == 200 {
        let results = v["results"].as_array().expect("results");
        prop_assert!(!results.is_empty() && results.len() <= 4, "{v}");
    } else {
        prop_assert!(v["error"]["code"].is_string(), "{code}: {v}");
    }
    Ok((code, v))
}

/// JSON values shaped like the payloads, and anything else.
fn payload() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (0..300u32).prop_map(Value::from),
        "[a-zA-Z0-9+/=_:;,. -]{0,24}".prop_map(Value::from),
        Just(Value::from(b64(&png(8, 8, 3)))),
        Just(Value::from(format!("data:image/png;base64,{}", b64(&png(5, 9, 1))))),
    ];
    let value = leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("image_in_base64".to_string()),
                        Just("image_url".to_string()),
                        Just("data".to_string()),
                        Just("parameters".to_string()),
                        Just("add_softmax".to_string()),
                        Just("max_value".to_string()),
                        "[a-z]{1,6}",
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    });
    prop_oneof![
        value.clone(),
        prop::collection::vec(value.clone(), 0..6)
            .prop_map(|items| json!(items.into_iter().map(|v| json!({ "image_in_base64": v })).collect::<Vec<_>>())),
        prop::collection::vec(prop::collection::vec(0.0..300.0f64, 0..80), 0..6)
            .prop_map(|rows| json!({ "data": rows })),
    ]
}

/// A multipart body with an image part and a text part, then damaged.
fn multipart() -> impl Strategy<Value = Vec<u8>> {
    let mut base = Vec::new();
    base.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n",
    );
    base.extend_from_slice(&png(8, 8, 2));
    base.extend_from_slice(b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nhello\r\n--XyZ--\r\n");
    let n = base.len();
    (prop::collection::vec((0..n, any::<u8>()), 0..6), 0..n, 0..3u8).prop_map(move |(edits, cut, how)| {
        let mut v = base.clone();
        for (i, x) in edits {
            v[i] = x;
        }
        if how == 0 {
            v.truncate(cut);
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_json_payloads_get_a_json_200_or_4xx(v in payload()) {
        answer("application/json", v.to_string().into_bytes())?;
    }

    #[test]
    fn arbitrary_bytes_as_json_get_a_4xx(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let (code, v) = answer("application/json", bytes)?;
        prop_assert!(code >= 400, "{v}");
    }

    #[test]
    fn damaged_multipart_bodies_get_a_json_200_or_4xx(body in multipart()) {
        answer("multipart/form-data; boundary=XyZ", body)?;
    }
}

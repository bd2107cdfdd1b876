//! `create_from_queries` against a loopback HTTP server that serves images,
//! slow responses, redirects, 404s, HTML pretending to be an image, a flaky
//! route, an oversized body and a canned Bing v7 search answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{encode, write_image};
use axum::extract::{Query as UrlQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cvtk_collect::{CollectOptions, CreateFromQueries, Error, ImageSearch, Queries, Query};
use cvtk_dataset::ClassificationDataset;
use image::{ImageFormat, RgbImage};
use serde_json::json;

#[derive(Clone, Default)]
struct Hits(Arc<Mutex<HashMap<String, usize>>>);

impl Hits {
    fn hit(&self, path: &str) -> usize {
        let mut m = self.0.lock().unwrap();
        let n = m.entry(path.to_string()).or_default();
        *n += 1;
        *n
    }
    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }
    fn get(&self, path: &str) -> usize {
        self.0.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn png(seed: u8) -> Vec<u8> {
    encode(&RgbImage::from_fn(24, 16, |x, y| image::Rgb([seed, x as u8 * 9, y as u8 * 13])), ImageFormat::Png)
}

fn image_response(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "image/png")], bytes).into_response()
}

/// Starts the test server on a thread; returns its address and the hit counter.
fn start_server() -> (SocketAddr, Hits) {
    let hits = Hits::default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/img/{name}",
            get(|State(h): State<Hits>, axum::extract::Path(name): axum::extract::Path<String>| async move {
                h.hit(&format!("/img/{name}"));
                let seed = name.bytes().fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
                image_response(png(seed))
            }),
        )
        .route(
            "/copy-of-a.png",
            get(|State(h): State<Hits>| async move {
                h.hit("/copy-of-a.png");
                let seed = "a.png".bytes().fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
                image_response(png(seed))
            }),
        )
        .route(
            "/slow.png",
            get(|State(h): State<Hits>| async move {
                h.hit("/slow.png");
                tokio::time::sleep(Duration::from_secs(3)).await;
                image_response(png(1))
            }),
        )
        .route(
            "/redirect",
            get(|State(h): State<Hits>| async move {
                h.hit("/redirect");
                (StatusCode::FOUND, [(header::LOCATION, "/img/redirected.png")]).into_response()
            }),
        )
        .route(
            "/missing.png",
            get(|State(h): State<Hits>| async move {
                h.hit("/missing.png");
                StatusCode::NOT_FOUND.into_response()
            }),
        )
        .route(
            "/fake.jpg",
            get(|State(h): State<Hits>| async move {
                h.hit("/fake.jpg");
                ([(header::CONTENT_TYPE, "image/jpeg")], "<html><body>Sign in to see this image</body></html>")
                    .into_response()
            }),
        )
        .route(
            "/flaky.png",
            get(|State(h): State<Hits>| async move {
                if h.hit("/flaky.png") == 1 {
                    StatusCode::SERVICE_UNAVAILABLE.into_response()
                } else {
                    image_response(png(200))
                }
            }),
        )
        .route(
            "/huge.png",
            get(|State(h): State<Hits>| async move {
                h.hit("/huge.png");
                image_response(vec![0u8; 300_000])
            }),
        )
        .route(
            "/search",
            get(
                |State(h): State<Hits>, headers: HeaderMap, UrlQuery(q): UrlQuery<HashMap<String, String>>| async move {
                    h.hit("/search");
                    if headers.get("Ocp-Apim-Subscription-Key").and_then(|v| v.to_str().ok()) != Some("test-key") {
                        return (StatusCode::UNAUTHORIZED, "bad key").into_response();
                    }
                    let count: usize = q.get("count").and_then(|c| c.parse().ok()).unwrap_or(1);
                    let text = q.get("q").cloned().unwrap_or_default().replace(' ', "-");
                    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    let value: Vec<_> = (0..count)
                        .map(|i| {
                            json!({ "name": format!("{text} {i}"),
                                    "contentUrl": format!("http://{host}/img/s-{text}-{i}.png") })
                        })
                        .collect();
                    axum::Json(json!({ "_type": "Images", "value": value })).into_response()
                },
            ),
        )
        .with_state(hits.clone());
    std::thread::spawn(move || {
        rt.block_on(async move { axum::serve(listener, app).await.unwrap() });
    });
    (addr, hits)
}

fn options() -> CollectOptions {
    CollectOptions {
        timeout: Duration::from_millis(800),
        max_bytes: 100_000,
        retries: 2,
        backoff: Duration::from_millis(20),
        search_count: 3,
        // The test server is on loopback, over http.
        allow_private_urls: true,
        allow_http_search: true,
        ..CollectOptions::default()
    }
}

#[test]
fn collects_folders_urls_and_searches_reports_failures_and_resumes() {
    let (addr, hits) = start_server();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("my photos/bowls");
    for i in 0..3u8 {
        write_image(&local.join(format!("b{i}.png")), 20, 20, [i * 60, 10, 10]);
    }
    std::fs::write(local.join("notes.txt"), "not an image").unwrap();
    // The same bytes as b0.png under another name: a duplicate.
    std::fs::copy(local.join("b0.png"), local.join("b0-copy.png")).unwrap();
    let u = |p: &str| format!("http://{addr}{p}");
    let queries = json!({
        "bowl": ["my photos/bowls", u("/img/a.png"), u("/copy-of-a.png"), u("/missing.png"), u("/fake.jpg")],
        "cup": [u("/img/c.png"), u("/redirect"), u("/slow.png"), u("/flaky.png"), u("/huge.png"),
                { "search": "mug", "count": 2 }],
    });
    let file = dir.path().join("queries.json");
    std::fs::write(&file, queries.to_string()).unwrap();
    let search = Some(ImageSearch { endpoint: u("/search"), key: Some("test-key".into()) });
    let out = dir.path().join("collected");

    let (ds, report) = ClassificationDataset::create_from_queries_into(
        &file,
        &out,
        &CollectOptions { image_search: search.clone(), ..options() },
    )
    .unwrap();
    let failures: HashMap<String, String> =
        report.failures.iter().map(|f| (f.source.clone(), f.reason.clone())).collect();

    assert_eq!(ds.label_names(), ["bowl", "cup"]);
    let counts = ds.counts_per_label();
    assert_eq!(counts[0], 4, "3 local + a.png; b0-copy and copy-of-a are duplicates: {report:#?}");
    assert!(failures[&u("/missing.png")].contains("404"), "{failures:?}");
    let fake = &failures[&u("/fake.jpg")];
    assert!(fake.contains("not an image") && fake.contains("image/jpeg") && fake.contains("<html>"), "{fake}");
    assert!(failures[&u("/slow.png")].contains("timed out"), "{failures:?}");
    assert_eq!(hits.get("/slow.png"), 3, "a timeout is retried (1 + 2 retries)");
    assert!(failures[&u("/huge.png")].contains("over the limit"), "{failures:?}");
    assert_eq!(hits.get("/huge.png"), 1, "an oversized body is not retried");
    assert_eq!(hits.get("/missing.png"), 1, "a 404 is not retried");
    assert_eq!(hits.get("/flaky.png"), 2, "a 503 is retried once, then succeeds");
    assert!(!failures.contains_key(&u("/flaky.png")));
    let dups: Vec<&str> = report.duplicates.iter().map(|d| d.source.as_str()).collect();
    assert_eq!(dups.len(), 2, "{dups:?}");
    // Files are taken in name order, so b0-copy.png comes first and b0.png is the duplicate.
    assert!(dups.iter().any(|d| d.ends_with("bowls/b0.png")) && dups.contains(&u("/copy-of-a.png").as_str()));
    // The search went out once with the key, and its two results were downloaded.
    assert_eq!(hits.get("/search"), 1);
    assert_eq!((hits.get("/img/s-mug-0.png"), hits.get("/img/s-mug-1.png")), (1, 1));
    // cup: c.png, the redirect's target, flaky.png and the two search results.
    assert_eq!(counts[1], 5, "{report:#?}");
    assert_eq!(hits.get("/img/redirected.png"), 1, "the redirect was followed");
    for f in &report.added {
        let bytes = std::fs::read(out.join(&f.file)).unwrap();
        image::load_from_memory(&bytes).unwrap();
    }

    // A re-run downloads nothing that it already has; failures are tried again.
    let before = hits.total();
    let (ds2, report2) = ClassificationDataset::create_from_queries_into(
        &file,
        &out,
        &CollectOptions { image_search: search.clone(), ..options() },
    )
    .unwrap();
    assert_eq!(ds2.counts_per_label(), counts);
    assert!(report2.added.is_empty(), "{:?}", report2.added);
    assert_eq!(report2.already_there, report.added.len() + report.duplicates.len());
    let fetched_again: usize = hits.total() - before;
    // Only the failed URLs went out again (missing 1, fake 1, slow 3, huge 1); the search was remembered.
    assert_eq!(fetched_again, 6, "{:?}", hits.0.lock().unwrap());
}

#[test]
fn search_results_use_the_default_count_and_a_wrong_key_is_reported() {
    let (addr, hits) = start_server();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.json");
    std::fs::write(&file, json!({ "mug": ["coffee mug"], "plate": [{ "search": "plate", "count": 2 }] }).to_string())
        .unwrap();
    let endpoint = format!("http://{addr}/search");
    let search = Some(ImageSearch { endpoint: endpoint.clone(), key: Some("test-key".into()) });
    let (ds, report) = ClassificationDataset::create_from_queries_into(
        &file,
        &dir.path().join("out"),
        &CollectOptions { image_search: search.clone(), ..options() },
    )
    .unwrap();
    assert_eq!(ds.counts_per_label(), vec![3, 2], "search_count 3 for mug, count 2 for plate: {report:#?}");
    assert_eq!(hits.get("/img/s-coffee-mug-0.png"), 1);

    let search = Some(ImageSearch { endpoint, key: Some("wrong".into()) });
    let err = ClassificationDataset::create_from_queries_into(
        &file,
        &dir.path().join("out2"),
        &CollectOptions { image_search: search.clone(), ..options() },
    )
    .unwrap_err();
    assert!(matches!(err, Error::NothingCollected { .. }), "{err}");
    assert!(err.to_string().contains("refused the key"), "{err}");
}

#[test]
fn text_queries_without_an_endpoint_are_a_clear_error_before_any_download() {
    let (addr, hits) = start_server();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.json");
    std::fs::write(&file, json!({ "cup": [format!("http://{addr}/img/x.png"), "red cup"] }).to_string()).unwrap();
    let search: Option<ImageSearch> = None;
    let err = ClassificationDataset::create_from_queries_into(
        &file,
        &dir.path().join("o"),
        &CollectOptions { image_search: search.clone(), ..options() },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("\"red cup\"") && msg.contains("CVTK_IMAGE_SEARCH_ENDPOINT"), "{msg}");
    assert_eq!(hits.total(), 0, "nothing was downloaded");
}

#[test]
fn query_files_are_parsed_and_bad_ones_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("photos")).unwrap();
    let write = |v: serde_json::Value| {
        let p = dir.path().join("q.json");
        std::fs::write(&p, v.to_string()).unwrap();
        p
    };
    let q = Queries::from_file(
        write(json!({ "a": ["photos", "./photos", "https://x/y.png", "red cup", { "search": "s", "count": 4 }] })),
        7,
    )
    .unwrap();
    let got = &q.labels[0].1;
    assert_eq!(got[0], Query::Dir(dir.path().join("photos")));
    assert_eq!(got[1], Query::Dir(dir.path().join("./photos")));
    assert_eq!(got[2], Query::Url("https://x/y.png".into()));
    assert_eq!(got[3], Query::Search { text: "red cup".into(), count: 7 });
    assert_eq!(got[4], Query::Search { text: "s".into(), count: 4 });

    for (bad, says) in [
        (json!(["a"]), "JSON object"),
        (json!({}), "no labels"),
        (json!({ "a": [] }), "no queries"),
        (json!({ "a/b": ["x"] }), "cannot be a label"),
        (json!({ "a": ["./nowhere"] }), "does not exist"),
        (json!({ "a": [{ "url": "ftp://x" }] }), "not an http(s) URL"),
        (json!({ "a": [{ "dir": "photos", "url": "https://x" }] }), "exactly one"),
        (json!({ "a": [{ "search": "x", "count": 0 }] }), "count of 1 or more"),
        (json!({ "a": [3] }), "list of strings"),
        (json!({ "a": [""] }), "empty query"),
    ] {
        let err = Queries::from_file(write(bad.clone()), 5).unwrap_err();
        assert!(matches!(err, Error::Queries { .. }) && err.to_string().contains(says), "{bad}: {err}");
    }
}

#[test]
fn linked_local_files_point_at_the_originals() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_image(&src.join("one.png"), 10, 10, [200, 0, 0]);
    let file = dir.path().join("q.json");
    std::fs::write(&file, json!({ "red": ["src"] }).to_string()).unwrap();
    let search: Option<ImageSearch> = None;
    let opts = CollectOptions { link: true, image_search: search, ..options() };
    let out = dir.path().join("o");
    let (_, report) = ClassificationDataset::create_from_queries_into(&file, &out, &opts).unwrap();
    let linked = out.join(&report.added[0].file);
    assert!(std::fs::symlink_metadata(&linked).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_link(&linked).unwrap(), std::path::absolute(src.join("one.png")).unwrap());
    assert!(Path::new(&linked).is_file());
}

#[test]
fn by_default_only_public_addresses_are_fetched_and_the_search_endpoint_must_be_https() {
    let (addr, hits) = start_server();
    let dir = tempfile::tempdir().unwrap();
    let u = |p: &str| format!("http://{addr}{p}");
    let file = dir.path().join("queries.json");
    std::fs::write(&file, json!({ "cup": [u("/img/c.png"), { "search": "mug", "count": 2 }] }).to_string()).unwrap();
    let strict = CollectOptions {
        image_search: Some(ImageSearch { endpoint: u("/search"), key: Some("test-key".into()) }),
        allow_private_urls: false,
        allow_http_search: false,
        ..options()
    };
    let run = |options: &CollectOptions, out: &str| match ClassificationDataset::create_from_queries_into(
        &file,
        &dir.path().join(out),
        options,
    ) {
        Ok((_, report)) => format!("{:?}", report.failures),
        Err(e) => e.to_string(),
    };
    // The loopback address (and its port) are refused, for the URL and the endpoint alike.
    let text = run(&strict, "a");
    assert!(text.matches("only 80 and 443").count() == 2, "{text}");
    // Private addresses allowed, the endpoint is still refused for being http.
    let text = run(&CollectOptions { allow_private_urls: true, ..strict.clone() }, "b");
    assert!(text.contains("is not https") && text.contains("--allow-http-search"), "{text}");
    assert_eq!(hits.get("/search"), 0, "the key was sent over http");
    assert_eq!(hits.get("/img/c.png"), 1, "the URL allowed by --allow-private-urls");
}

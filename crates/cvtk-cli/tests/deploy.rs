//! Deployment end to end: train a tiny model with `cvtk train`, deploy it as a
//! background service, score over HTTP in every payload form and compare with
//! in-process scores, list, load-test on loopback, delete, and check that the
//! process is gone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use cvtk_deploy::api::{ImageItem, ItemResult, Parameters};
use cvtk_model::{load_scorer, DeviceChoice, EngineChoice, Scorer};

/// Trains a small CNN (28x28 gray input) for one pass on the colour tree.
fn tiny_model(dir: &Path) -> PathBuf {
    let (_, manifest) = split_colours(dir);
    let model = dir.join("model");
    train_small_cnn(&manifest, &model, 1, &[]);
    model
}

/// Gray 28x28 PNGs (R = G = B, the model's input size) and their pixel values.
fn gray_images(dir: &Path, n: u8) -> Vec<(PathBuf, Vec<f64>)> {
    std::fs::create_dir_all(dir).unwrap();
    (0..n)
        .map(|i| {
            let img =
                image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * 9 + y * 5) as u8).wrapping_mul(i + 1)]));
            let path = dir.join(format!("g{i}.png"));
            image::DynamicImage::ImageLuma8(img.clone()).to_rgb8().save(&path).unwrap();
            (path, img.pixels().map(|p| f64::from(p[0])).collect())
        })
        .collect()
}

fn scores(r: &ItemResult) -> Vec<f32> {
    match r {
        ItemResult::Scored(s) => s.scores.clone(),
        ItemResult::Failed { error } => panic!("scoring failed: {error}"),
    }
}

fn assert_close(http: &[f32], local: &[f32], what: &str) {
    assert_eq!(http.len(), local.len(), "{what}");
    for (a, b) in http.iter().zip(local) {
        assert!((a - b).abs() <= 1e-5, "{what}: HTTP {http:?} vs in-process {local:?}");
    }
}

/// Whether process `pid` is gone (no /proc entry, or a zombie awaiting its reaper).
fn process_gone(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

fn wait_gone(pid: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process_gone(pid) {
        assert!(Instant::now() < deadline, "process {pid} still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn deploy_score_in_every_form_list_loadtest_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let model = tiny_model(dir.path());
    let images = gray_images(&dir.path().join("score"), 4);

    // In-process probabilities, the reference.
    let local = load_scorer(&model, DeviceChoice::Cpu, EngineChoice::Auto).unwrap();
    let expected: Vec<Vec<f32>> = images.iter().map(|(p, _)| local.predict(p).unwrap().probabilities).collect();

    let created = json(&cvtk_in(
        &home,
        &["deploy", "create", "tiny", "--model", model.to_str().unwrap(), "--device", "cpu", "--json"],
    ));
    let pid = created["pid"].as_u64().unwrap();
    let storage = cvtk_core::StorageContext::new().with_persistent(&home);
    let record = cvtk_deploy::get_deployment(&storage, "tiny").unwrap();
    assert_eq!(record.url, created["url"].as_str().unwrap());
    assert!(cvtk_deploy::is_existing_service(&storage, "tiny"));
    let client = record.client().unwrap();
    let on = Parameters { add_softmax: true };

    // 1. The original's JSON list of base64 items.
    let paths: Vec<&Path> = images.iter().map(|(p, _)| p.as_path()).collect();
    let listed = client.score_files(&paths, true).unwrap();
    // 2. The Python client's "b'...'" strings.
    let items: Vec<ImageItem> = images
        .iter()
        .map(|(p, _)| {
            let mut it = ImageItem::from_bytes(&std::fs::read(p).unwrap(), on);
            it.image_in_base64 = it.image_in_base64.map(|s| format!("b'{s}'"));
            it
        })
        .collect();
    let python = client.score_items(&items).unwrap().results;
    // 3. The MNIST tutorial's {"data": [[pixels]]}.
    let pixels = client.score_pixels(images.iter().map(|(_, v)| v.clone()).collect(), 255.0, true).unwrap();
    // 4. Multipart upload.
    let parts = images.iter().map(|(p, _)| ("x.png".to_string(), std::fs::read(p).unwrap())).collect();
    let multipart = client.score_multipart(parts, true).unwrap();
    for (i, want) in expected.iter().enumerate() {
        assert_close(&scores(&listed[i]), want, "base64 list");
        assert_close(&scores(&python[i]), want, "b'...' strings");
        assert_close(&scores(&pixels[i]), want, "pixel rows");
        assert_close(&scores(&multipart[i]), want, "multipart");
        // 5. A raw image/png body, and the original's score_image.
        let bytes = std::fs::read(&images[i].0).unwrap();
        assert_close(&scores(&client.score_raw(bytes, "image/png", true).unwrap()), want, "raw body");
        assert_close(&scores(&record.score_image(images[i].0.as_path(), None, on).unwrap()), want, "score_image");
    }
    let existing = cvtk_deploy::score_existing_service_with_image(
        images[0].0.as_path(),
        &format!("{}/score", record.url),
        Some(record.key().unwrap()),
    )
    .unwrap();
    assert_close(&scores(&existing), &expected[0], "score_existing_service_with_image");

    // The CLI scores too, and lists the deployment as running.
    let cli_scores = json(&cvtk_in(&home, &["deploy", "score", "tiny", images[1].0.to_str().unwrap(), "--json"]));
    let cli_first: Vec<f32> =
        cli_scores[0]["scores"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_close(&cli_first, &expected[1], "cvtk deploy score");

    // One prediction shape: `cvtk predict --json`, `cvtk score`'s rows and
    // `/score`'s results give an image's `top` as the same {label,
    // probability} entries, best first, and name the image `path`.
    let (folder, m) = (dir.path().join("score"), model.to_str().unwrap());
    let predicted = cvtk(&["predict", folder.to_str().unwrap(), "--model", m, "--top", "3", "--json"]);
    let predicted: Vec<serde_json::Value> = serde_json::from_slice(&predicted.stdout).unwrap();
    let rows_file = dir.path().join("rows.jsonl");
    let scored =
        cvtk(&["score", folder.to_str().unwrap(), "--model", m, "--top", "3", "--out", rows_file.to_str().unwrap()]);
    assert!(scored.status.success(), "{}", String::from_utf8_lossy(&scored.stderr));
    let rows: Vec<serde_json::Value> =
        std::fs::read_to_string(&rows_file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!((predicted.len(), rows.len()), (images.len(), images.len()));
    for (path, _) in &images {
        let path = path.to_str().unwrap();
        let p = predicted.iter().find(|p| p["path"] == path).expect("predict names the image `path`");
        let row = rows.iter().find(|r| r["path"] == path).expect("a row for the image");
        let served = client.score_raw(std::fs::read(path).unwrap(), "image/png", false).unwrap();
        let served = serde_json::to_value(served.into_result().unwrap()).unwrap();
        for top in [&row["top"], &served["top"]] {
            let (a, b) = (p["top"].as_array().unwrap(), top.as_array().unwrap());
            assert_eq!(a.len().min(3), b.len().min(3), "{p} {top}");
            for (x, y) in a.iter().zip(b) {
                let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
                assert_eq!(keys(x), ["label", "probability"]);
                assert_eq!(keys(x), keys(y), "{p} {top}");
                assert_eq!(x["label"], y["label"], "{p} {top}");
                let (px, py) = (x["probability"].as_f64().unwrap(), y["probability"].as_f64().unwrap());
                assert!((px - py).abs() < 1e-5, "{p} {top}");
            }
        }
    }
    let listed = json(&cvtk_in(&home, &["deploy", "list", "--json"]));
    assert_eq!(listed[0]["name"], "tiny");
    assert_eq!(listed[0]["status"], "running");
    let shown = String::from_utf8(cvtk_in(&home, &["deploy", "show", "tiny"]).stdout).unwrap();
    let key_file = record.key_file.to_str().unwrap();
    assert!(shown.contains("curl") && shown.contains(&format!("$(cat '{key_file}')")), "{shown}");
    assert!(!shown.contains(&record.key().unwrap()), "deploy show printed the key: {shown}");
    // The Open Inference Protocol URL it prints answers: the model's name is the deployment's.
    assert!(shown.contains(&format!("{}/v2/models/tiny/infer", record.url)), "{shown}");
    let v2 = json(&cvtk_in(&home, &["deploy", "show", "tiny", "--json"]))["v2_infer_url"].as_str().unwrap().to_string();
    let body = serde_json::json!({ "inputs": [{ "name": "image", "datatype": "BYTES", "shape": [1],
        "data": [base64::engine::Engine::encode(&base64::engine::general_purpose::STANDARD, std::fs::read(&images[1].0).unwrap())] }] });
    let answer =
        reqwest::blocking::Client::new().post(&v2).bearer_auth(record.key().unwrap()).json(&body).send().unwrap();
    assert_eq!(answer.status(), 200, "{v2}: {}", answer.text().unwrap());

    // A second deployment under the same name is refused while this one runs.
    let again = cvtk_in(&home, &["deploy", "create", "tiny", "--model", model.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));

    // Load test on loopback: concurrency 32 for 30 s, no 5xx but deliberate 503s.
    let plot = dir.path().join("latency.svg");
    let report = json(&cvtk_in(
        &home,
        &[
            "loadtest",
            "--deployment",
            "tiny",
            "--images",
            dir.path().join("score").to_str().unwrap(),
            "--concurrency",
            "32",
            "--duration",
            "30",
            "--plot",
            plot.to_str().unwrap(),
            "--json",
        ],
    ));
    assert!(report["ok"].as_u64().unwrap() > 100, "{report}");
    assert_eq!(report["server_errors"], 0, "{report}");
    let non_503_failures: u64 = report["errors"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "http_503")
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(non_503_failures, 0, "{report}");
    assert!(report["latency_ms"]["p99"].as_f64().unwrap() >= report["latency_ms"]["p50"].as_f64().unwrap());
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));

    // The raw payload (each image as the body, as TorchServe takes it), sent to
    // the URL as given.
    let score_url = format!("{}/score", record.url);
    let key_file = record.key_file.to_str().unwrap().to_string();
    let images = dir.path().join("score");
    let raw_args =
        ["loadtest", "--endpoint", &score_url, "--key-file", &key_file, "--raw", "--images", images.to_str().unwrap()];
    let raw = json(&cvtk_in(&home, &[&raw_args[..], &["--requests", "20", "--concurrency", "4", "--json"]].concat()));
    assert_eq!(raw["ok"], 20, "{raw}");
    assert_eq!(raw["endpoint"], score_url.as_str(), "{raw}");
    // Every request refused (a wrong key), or no service there: the run fails, saying so.
    let wrong_key = dir.path().join("wrong.key");
    std::fs::write(&wrong_key, "not-the-key-0123456789").unwrap();
    let images_arg = images.to_str().unwrap();
    for (what, endpoint, key) in [
        ("a wrong key", score_url.as_str(), wrong_key.to_str().unwrap()),
        ("a dead port", "http://127.0.0.1:1", wrong_key.to_str().unwrap()),
    ] {
        let args = ["loadtest", "--endpoint", endpoint, "--key-file", key, "--images", images_arg, "--requests", "4"];
        let out = cvtk_in(&home, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains("no request succeeded"), "{what}: {err}");
    }
    let batched = cvtk_in(&home, &[&raw_args[..], &["--requests", "2", "--batch", "2"]].concat());
    assert_eq!(batched.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&batched.stderr).contains("a raw request carries one image"));

    // Delete: the record goes and so does the process.
    let deleted = cvtk_in(&home, &["deploy", "delete", "tiny"]);
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    wait_gone(pid);
    assert!(!cvtk_deploy::is_existing_service(&storage, "tiny"));
    assert_eq!(json(&cvtk_in(&home, &["deploy", "list", "--json"])), serde_json::json!([]));
    assert_eq!(cvtk_in(&home, &["deploy", "delete", "tiny"]).status.code(), Some(1));
}

#[test]
fn a_deployment_whose_process_died_is_reported_dead_and_can_be_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let model = tiny_model(dir.path());
    let created = json(&cvtk_in(
        &home,
        &["deploy", "create", "gone", "--model", model.to_str().unwrap(), "--device", "cpu", "--json"],
    ));
    let pid = created["pid"].as_u64().unwrap();
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    wait_gone(pid);
    let listed = json(&cvtk_in(&home, &["deploy", "list", "--json"]));
    assert_eq!(listed[0]["status"], "dead", "{listed}");
    let score = cvtk_in(&home, &["deploy", "score", "gone", "x.png"]);
    assert_eq!(score.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&score.stderr).contains("not running"));
    // Creating it again replaces the dead record; a model served under another /v2 name is shown under it.
    let again = json(&cvtk_in(
        &home,
        &[
            "deploy",
            "create",
            "gone",
            "--model",
            model.to_str().unwrap(),
            "--device",
            "cpu",
            "--json",
            "--",
            "--model-name",
            "other",
        ],
    ));
    assert_ne!(again["pid"], created["pid"]);
    let shown = json(&cvtk_in(&home, &["deploy", "show", "gone", "--json"]));
    let v2 = shown["v2_infer_url"].as_str().unwrap();
    assert_eq!(v2, format!("{}/v2/models/other/infer", shown["url"].as_str().unwrap()));
    let key = std::fs::read_to_string(shown["key_file"].as_str().unwrap()).unwrap();
    let metadata =
        reqwest::blocking::Client::new().get(v2.trim_end_matches("/infer")).bearer_auth(key.trim()).send().unwrap();
    assert_eq!(metadata.status(), 200, "the shown /v2 model answers");
    assert!(cvtk_in(&home, &["deploy", "delete", "gone"]).status.success());
    wait_gone(again["pid"].as_u64().unwrap());
}

#[test]
fn serve_stops_cleanly_on_sigterm_and_refuses_a_missing_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let addr = dir.path().join("addr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cvtk"))
        .args([
            "serve",
            "--model",
            model.to_str().unwrap(),
            "--port",
            "0",
            "--no-auth",
            "--device",
            "cpu",
            "--addr-file",
            addr.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        if let Ok(u) = std::fs::read_to_string(&addr) {
            let c = cvtk_deploy::Client::new(&u, None).unwrap();
            if c.ready() {
                break u;
            }
        }
        assert!(Instant::now() < deadline, "not ready");
        std::thread::sleep(Duration::from_millis(50));
    };
    // No key needed: --no-auth on loopback.
    let c = cvtk_deploy::Client::new(&url, None).unwrap();
    let img = gray_images(&dir.path().join("g"), 1);
    assert!(matches!(c.score_files(&[&img[0].0], false).unwrap()[0], ItemResult::Scored(_)));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");

    let missing = cvtk(&["serve", "--model", dir.path().join("nothing").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("model.json"));
    let open_wide =
        cvtk(&["serve", "--model", model.to_str().unwrap(), "--no-auth", "--host", "0.0.0.0", "--port", "0"]);
    assert_eq!(open_wide.status.code(), Some(2), "a flag the service's settings refuse is a usage error");
    assert!(String::from_utf8_lossy(&open_wide.stderr).contains("loopback"));
}

#[test]
fn keys_come_from_files_or_the_environment_and_are_never_printed() {
    // On the command line, every local user would see them: refused, value not repeated.
    for args in [
        &["serve", "--model", "m", "--key", "s3cr3t-value"][..],
        &["loadtest", "--endpoint", "http://127.0.0.1:1", "--requests", "1", "--key", "s3cr3t-value"],
        &["deploy", "k8s", "x", "--out", "o", "--key", "s3cr3t-value"],
        &["dataset", "collect", "q.txt", "--out", "o", "--search-key", "s3cr3t-value"],
    ] {
        let out = cvtk(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("visible to every user") && err.contains("-file FILE"), "{args:?}: {err}");
        assert!(!err.contains("s3cr3t-value"), "{args:?} repeated the key: {err}");
    }

    // Without a key, serve generates one into an owner-only file and prints its path, not the key.
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let addr = dir.path().join("addr");
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cvtk"))
        .args(["serve", "--model", model.to_str().unwrap(), "--port", "0", "--device", "cpu"])
        .args(["--addr-file", addr.to_str().unwrap()])
        .env("HOME", dir.path())
        .env_remove("CVTK_SERVICE_KEY")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let key_file = dir.path().join(format!(".cvtk/keys/serve-pid{}.key", child.id()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        if let (Ok(u), true) = (std::fs::read_to_string(&addr), key_file.exists()) {
            if cvtk_deploy::Client::new(&u, None).unwrap().ready() {
                break u;
            }
        }
        assert!(Instant::now() < deadline, "not ready: {}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    };
    let key = std::fs::read_to_string(&key_file).unwrap().trim().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let img = gray_images(&dir.path().join("g"), 1);
    let keyed = cvtk_deploy::Client::new(&url, Some(key.clone())).unwrap();
    assert!(matches!(keyed.score_files(&[&img[0].0], false).unwrap()[0], ItemResult::Scored(_)));
    assert!(cvtk_deploy::Client::new(&url, None).unwrap().score_files(&[&img[0].0], false).is_err());
    child.kill().unwrap();
    child.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(stderr.contains(key_file.to_str().unwrap()), "{stderr}");
    assert!(!stderr.contains(&key), "the key was printed: {stderr}");

    // A second server on a busy port fails without replacing the key file of the one there.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let there = dir.path().join(format!(".cvtk/keys/serve-{port}.key"));
    std::fs::write(&there, "the-running-servers-key").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cvtk"))
        .args(["serve", "--model", model.to_str().unwrap(), "--port", &port, "--device", "cpu"])
        .env("HOME", dir.path())
        .env_remove("CVTK_SERVICE_KEY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot listen on") && err.contains("left as it is"), "{err}");
    assert!(
        err.contains("another program") && !err.contains("invalid port"),
        "a busy port is busy, not invalid: {err}"
    );
    assert_eq!(std::fs::read_to_string(&there).unwrap(), "the-running-servers-key");
    // With a key given, the service itself finds the port busy, and says so alike.
    let out = Command::new(env!("CARGO_BIN_EXE_cvtk"))
        .args(["serve", "--model", model.to_str().unwrap(), "--port", &port, "--device", "cpu"])
        .env("HOME", dir.path())
        .env("CVTK_SERVICE_KEY", "a-key-of-its-own")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot listen on 127.0.0.1:") && err.contains("another program"), "{err}");
    assert!(!err.contains("invalid port"), "{err}");
    drop(busy);
}

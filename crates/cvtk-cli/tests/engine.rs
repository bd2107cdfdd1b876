//! The scoring engines from the command line: `cvtk export`, `--engine` on
//! predict and serve, the model folder's cached `model.onnx` (rebuilt when
//! corrupt or stale), and what happens without onnxruntime
//! (`CVTK_ONNXRUNTIME_LIB=none`): auto falls back with one log line, asking
//! for onnxruntime is an error that says how to install it, and a service
//! stays up but not ready.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use cvtk_model::OnnxModel;

/// `cvtk` with `env` set and logs at `log`.
fn cvtk_env(args: &[&str], env: &[(&str, &str)], log: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvtk")).args(args).envs(env.iter().copied()).env("RUST_LOG", log).output().unwrap()
}

fn probabilities(pred: &serde_json::Value) -> Vec<Vec<f64>> {
    pred.as_array()
        .unwrap()
        .iter()
        .map(|r| r["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect())
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn export_predict_on_both_engines_and_the_cached_graph() {
    let dir = tempfile::tempdir().unwrap();
    let (data, manifest) = split_colours(dir.path());
    let model = dir.path().join("model");
    train_resnet18(&manifest, &model, 1, &[]);
    let m = model.to_str().unwrap();
    let imgs: Vec<String> =
        ["red/0.png", "green/1.png", "blue/2.png"].iter().map(|i| data.join(i).display().to_string()).collect();

    // Export: JSON says what was written, the file reads back with the
    // model's labels and input contract.
    let out = dir.path().join("exports/model.onnx");
    let o = out.to_str().unwrap();
    let written = json(&cvtk(&["export", m, "--format", "onnx", "--out", o, "--json"]));
    assert_eq!(written["opset"], 17);
    assert_eq!(written["input"], "images");
    assert_eq!(written["metadata"]["labels"], serde_json::json!(["blue", "green", "red"]));
    assert_eq!(written["metadata"]["input"]["width"], 32);
    let exported = OnnxModel::read(&out).unwrap();
    assert_eq!(written["bytes"].as_u64().unwrap() as usize, exported.bytes().len());
    // Over an existing file: replaced whole, no temporary left beside it.
    std::fs::write(&out, b"an older export").unwrap();
    json(&cvtk(&["export", m, "--out", o, "--json"]));
    assert_eq!(OnnxModel::read(&out).unwrap().bytes(), exported.bytes());
    assert_eq!(std::fs::read_dir(out.parent().unwrap()).unwrap().count(), 1, "a temporary file was left");
    // To a path that cannot be written: an error naming it.
    let blocked = dir.path().join("a-file");
    std::fs::write(&blocked, b"x").unwrap();
    let bad = cvtk(&["export", m, "--out", blocked.join("x.onnx").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("a-file"), "{}", stderr(&bad));

    // predict: the two engines agree; onnxruntime is the default.
    let predict = |engine: &str| {
        let mut args = vec!["predict", "--model", m, "--json", "--all", "--engine", engine];
        args.extend(imgs.iter().map(String::as_str));
        json(&cvtk(&args))
    };
    let torch = probabilities(&predict("torch"));
    assert!(!model.join("model.onnx").exists(), "the torch engine made an ONNX graph");
    let ort = probabilities(&predict("onnxruntime"));
    assert_eq!(probabilities(&predict("auto")), ort);
    for (a, b) in torch.iter().flatten().zip(ort.iter().flatten()) {
        assert!((a - b).abs() < 1e-4, "torch {a} vs onnxruntime {b}");
    }
    let cached = model.join("model.onnx");
    assert_eq!(OnnxModel::read(&cached).unwrap().bytes(), exported.bytes(), "the cache is the export");

    // A corrupt cached graph is rebuilt, not trusted.
    std::fs::write(&cached, b"\x08\x01garbage").unwrap();
    let mut args = vec!["predict", "--model", m, "--json", "--all"];
    args.extend(imgs.iter().map(String::as_str));
    let again = cvtk_env(&args, &[], "warn");
    assert!(stderr(&again).contains("rebuilding the model's ONNX graph"), "{}", stderr(&again));
    assert_eq!(probabilities(&json(&again)), ort);
    assert_eq!(OnnxModel::read(&cached).unwrap().bytes(), exported.bytes());

    // A cached graph of another model (other labels) is refused, naming both
    // label lists, and rebuilt.
    let other_data = dir.path().join("other");
    for label in ["cat", "dog"] {
        std::fs::create_dir_all(other_data.join(label)).unwrap();
        for i in 0..3u8 {
            image::RgbImage::from_pixel(32, 32, image::Rgb([i * 40, 90, 10]))
                .save(other_data.join(label).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let other = dir.path().join("other-model");
    train_resnet18(&other_data, &other, 1, &[]);
    json(&cvtk(&["export", other.to_str().unwrap(), "--out", cached.to_str().unwrap(), "--json"]));
    let again = cvtk_env(&args, &[], "warn");
    let log = stderr(&again);
    assert!(log.contains("cat, dog") && log.contains("blue, green, red"), "{log}");
    assert_eq!(probabilities(&json(&again)), ort);
    assert_eq!(OnnxModel::read(&cached).unwrap().bytes(), exported.bytes());

    // Without onnxruntime: auto falls back to torch with one log line,
    // asking for onnxruntime says how to install it.
    let none = [("CVTK_ONNXRUNTIME_LIB", "none")];
    let fallback = cvtk_env(&args, &none, "warn");
    assert_eq!(stderr(&fallback).matches("scoring with libtorch").count(), 1, "{}", stderr(&fallback));
    assert_eq!(probabilities(&json(&fallback)), torch);
    let mut strict = args.clone();
    strict.extend(["--engine", "onnxruntime"]);
    let refused = cvtk_env(&strict, &none, "error");
    assert_eq!(refused.status.code(), Some(1));
    let e = stderr(&refused);
    assert!(e.contains("make setup") && e.contains("CVTK_ONNXRUNTIME_LIB") && e.contains("--engine torch"), "{e}");
    assert_eq!(e.lines().count(), 1, "one line, no native trace: {e}");
}

/// Waits for `addr_file` and returns the URL written there.
fn wait_url(addr_file: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(u) = std::fs::read_to_string(addr_file) {
            return u;
        }
        assert!(Instant::now() < deadline, "the service never wrote its address");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// GET `url` until the answer is not "still loading": (status, JSON body).
fn settled(url: &str) -> (u16, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = reqwest::blocking::get(url).unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().unwrap();
        let loading = body["error"]["message"].as_str().is_some_and(|m| m.contains("still loading"));
        if !loading || Instant::now() > deadline {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_service_whose_engine_cannot_run_stays_up_but_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (_, manifest) = split_colours(dir.path());
    let model = dir.path().join("model");
    train_small_cnn(&manifest, &model, 1, &[]);
    let serve = |engine: &str, env: &[(&str, &str)], name: &str| {
        let addr = dir.path().join(name);
        let child = Command::new(env!("CARGO_BIN_EXE_cvtk"))
            .args(["serve", "--model", model.to_str().unwrap(), "--port", "0", "--no-auth", "--device", "cpu"])
            .args(["--engine", engine, "--addr-file", addr.to_str().unwrap()])
            .envs(env.iter().copied())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        (child, wait_url(&addr))
    };

    let (mut child, url) = serve("onnxruntime", &[("CVTK_ONNXRUNTIME_LIB", "none")], "a");
    let (status, body) = settled(&format!("{url}/ready"));
    assert_eq!(status, 503, "{body}");
    let reason = body["error"]["message"].as_str().unwrap();
    assert!(reason.contains("onnxruntime") && reason.contains("make setup"), "{reason}");
    assert_eq!(reqwest::blocking::get(format!("{url}/health")).unwrap().status().as_u16(), 200);
    let score = reqwest::blocking::Client::new().post(format!("{url}/score")).body(vec![0u8; 10]).send().unwrap();
    assert_eq!(score.status().as_u16(), 503);
    assert!(child.try_wait().unwrap().is_none(), "the service stopped");
    child.kill().unwrap();
    child.wait().unwrap();

    // The default engine on the CPU is onnxruntime, and /ready says so.
    let (mut child, url) = serve("auto", &[], "b");
    let (status, body) = settled(&format!("{url}/ready"));
    assert_eq!((status, body["engine"].as_str()), (200, Some("onnxruntime")), "{body}");
    child.kill().unwrap();
    child.wait().unwrap();
}

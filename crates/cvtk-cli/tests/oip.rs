//! The Open Inference Protocol end to end: a running `cvtk serve` driven by
//! Triton's standard Python client (tritonclient.http, a test requirement),
//! whose probabilities must equal `cvtk predict`'s within 1e-5, for encoded
//! images and for preprocessed tensors built from the model's metadata.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn python() -> PathBuf {
    venv_python("it installs tritonclient for this test")
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{what}: {got:?} vs cvtk predict's {want:?}");
    }
}

#[test]
fn tritons_client_gets_the_same_probabilities_as_cvtk_predict() {
    let dir = tempfile::tempdir().unwrap();
    let (_, manifest) = split_colours(dir.path());
    let model = dir.path().join("digits-model");
    train_small_cnn(&manifest, &model, 1, &[]);
    // Gray PNGs at the model's input size (28x28).
    let files: Vec<PathBuf> = (0..3u8)
        .map(|i| {
            let img =
                image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * 9 + y * 5) as u8).wrapping_mul(i + 1)]));
            let path = dir.path().join(format!("g{i}.png"));
            img.save(&path).unwrap();
            path
        })
        .collect();
    let names: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let predicted =
        json(&cvtk(&[&["predict", "--model", model.to_str().unwrap(), "--json", "--all"][..], &names].concat()));
    let want: Vec<Vec<f64>> = predicted
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect())
        .collect();

    let key_file = dir.path().join("key");
    std::fs::write(&key_file, cvtk_deploy::generate_key()).unwrap();
    let addr = dir.path().join("addr");
    let mut server = Command::new(env!("CARGO_BIN_EXE_cvtk"))
        .args(["serve", "--model", model.to_str().unwrap(), "--port", "0", "--device", "cpu"])
        .args(["--key-file", key_file.to_str().unwrap(), "--addr-file", addr.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        if let Ok(u) = std::fs::read_to_string(&addr) {
            if cvtk_deploy::Client::new(&u, None).unwrap().ready() {
                break u;
            }
        }
        assert!(Instant::now() < deadline, "cvtk serve not ready");
        std::thread::sleep(Duration::from_millis(50));
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/oip_client.py");
    let out = Command::new(python())
        .arg(&script)
        .args([url.as_str(), key_file.to_str().unwrap(), "digits-model"])
        .args(&names)
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (got["live"].as_bool(), got["ready"].as_bool(), got["model_ready"].as_bool()),
        (Some(true), Some(true), Some(true)),
        "{got}"
    );
    let meta = &got["metadata"];
    assert_eq!(meta["name"], "digits-model");
    assert_eq!(meta["inputs"][1]["shape"], serde_json::json!([-1, 1, 28, 28]));
    for (form, key) in [("encoded images", "bytes_probabilities"), ("preprocessed tensors", "tensor_probabilities")] {
        let rows = got[key].as_array().unwrap_or_else(|| panic!("{key} missing: {got}"));
        assert_eq!(rows.len(), want.len(), "{form}");
        for (row, w) in rows.iter().zip(&want) {
            let row: Vec<f64> = row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_close(&row, w, form);
        }
    }
    let labels: Vec<&str> = got["bytes_labels"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let top: Vec<&str> = predicted.as_array().unwrap().iter().map(|r| r["top"][0]["label"].as_str().unwrap()).collect();
    assert_eq!(labels, top);
    let unknown = got["unknown_model_error"].as_str().expect("an unknown model is an error");
    assert!(unknown.contains("unknown model 'no-such-model'"), "{unknown}");
}

//! `cvtk annotate` end to end: real MNIST digits with planted label errors, a
//! small CNN trained on them, the page in headless Chromium
//! (tests/browser/annotate.test.mjs) changing labels with the mouse and keys,
//! and the manifest checked through `ClassificationDataset::from_manifest`.
//! Needs `make test-setup` (the mnist-5k sample data, Debian's chromium and
//! tests/browser/node_modules); fails loudly without them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::browser::run_browser_test;
use crate::common;
use crate::common::{cvtk, json, train_small_cnn};
use cvtk_dataset::ClassificationDataset;

/// Kills the server when the test ends, passed or not.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cvtk annotate ARGS --port 0`; returns it and the URL it printed.
pub fn annotate(args: &[&str]) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cvtk"))
        .arg("annotate")
        .args(args)
        .args(["--port", "0"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "cvtk annotate printed {line:?}");
    (Server(child), url)
}

/// 3 digits x 20 real MNIST images, with 3 images moved into a wrong label.
fn digits_with_label_errors(dir: &Path) -> PathBuf {
    let digits = common::mnist_digits(dir, "0,1,7", 20);
    for (from, to) in [("7/7_00003.png", "1"), ("1/1_00005.png", "0"), ("0/0_00008.png", "7")] {
        let name = Path::new(from).file_name().unwrap();
        std::fs::rename(digits.join(from), digits.join(to).join(name)).unwrap();
    }
    digits
}

#[test]
fn the_annotation_page_fixes_labels_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let digits = digits_with_label_errors(dir.path());
    let manifest = dir.path().join("digits.json");
    json(&cvtk(&[
        "dataset",
        "split",
        digits.to_str().unwrap(),
        "--stratify",
        "--out",
        manifest.to_str().unwrap(),
        "--json",
    ]));
    let model = dir.path().join("model");
    train_small_cnn(&manifest, &model, 6, &[]);

    let (_server, url) = annotate(&[manifest.to_str().unwrap(), "--model", model.to_str().unwrap(), "--device", "cpu"]);
    let expect = serde_json::json!({ "total": 60, "labels": ["0", "1", "7"] }).to_string();
    let (log, shot) = run_browser_test(
        "annotate.test.mjs",
        "annotate.png",
        &[
            ("CVTK_ANNOTATE_URL", url.as_ref()),
            ("CVTK_MANIFEST", manifest.as_os_str()),
            ("CVTK_EXPECT", expect.as_ref()),
        ],
    );
    assert!(shot.is_file(), "no screenshot written");

    // What the page did, checked through cvtk's own manifest reader.
    let line = log.lines().find_map(|l| l.trim().strip_prefix("RESULT ")).expect("the browser test prints RESULT");
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    let ds = ClassificationDataset::from_manifest(&manifest).unwrap();
    assert!(ds.label_names().contains(&"unsure".to_string()));
    let label_of = |id: &serde_json::Value| {
        let img = ds.any_image(id.as_u64().unwrap()).unwrap();
        ds.labels()[img.label()].name.clone()
    };
    for key in ["mouse", "undone", "viewer", "after_read_only"] {
        assert_eq!(label_of(&r[key]["id"]), r[key]["label"].as_str().unwrap(), "{key}: {r}");
    }
    let excluded = r["excluded"].as_u64().unwrap();
    assert!(ds.image(excluded).is_none() && ds.excluded().iter().any(|i| i.id == excluded));
    assert_eq!(ds.len() + ds.excluded().len(), 60);
}

#[test]
fn a_folder_gets_a_manifest_beside_it_and_remote_binding_needs_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("colours");
    common::colour_tree(&data, 3);
    {
        let (_server, url) = annotate(&[data.to_str().unwrap()]);
        let view: serde_json::Value = reqwest::blocking::get(format!("{url}api/dataset")).unwrap().json().unwrap();
        assert_eq!(view["images"].as_array().unwrap().len(), 9);
        assert_eq!(view["has_model"], false);
    }
    let manifest = dir.path().join("colours.json");
    assert_eq!(ClassificationDataset::from_manifest(&manifest).unwrap().len(), 9);

    let out = cvtk(&["annotate", data.to_str().unwrap(), "--host", "0.0.0.0", "--port", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to serve on 0.0.0.0") && err.contains("--allow-remote"), "{err}");
}

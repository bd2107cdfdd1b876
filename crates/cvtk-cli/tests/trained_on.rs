//! `cvtk evaluate` on images the model was trained on: a warning on stderr,
//! a line in the text output and the report, and `trained_on_evaluated_images`
//! in `--json`; none of it on the test part of the split it was trained with
//! (issue 32, finding 2).

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{json, split_colours, train_small_cnn};

/// `cvtk evaluate` with the CLI's default log level (warnings shown).
fn evaluate(dataset: &Path, model: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cvtk"))
        .args(["evaluate", dataset.to_str().unwrap(), "--model", model.to_str().unwrap(), "--device", "cpu"])
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn evaluating_a_model_on_its_training_images_warns_and_counts_them_but_its_test_part_does_not() {
    let dir = tempfile::tempdir().unwrap();
    // 3 labels x 6 images, split in half: 9 train, 9 test.
    let (data, manifest) = split_colours(dir.path());
    let model = dir.path().join("model");
    let trained = train_small_cnn(&manifest, &model, 1, &[]);
    assert_eq!(trained["train_images"], 9);

    // The whole folder: its 9 training images are found, and said loudly.
    let report = dir.path().join("report");
    let all = evaluate(&data, &model, &["--json", "--report", report.to_str().unwrap()]);
    let summary = json(&all);
    assert_eq!((summary["images"].as_u64(), summary["trained_on_evaluated_images"].as_u64()), (Some(18), Some(9)));
    let warning = stderr(&all);
    for says in ["trained on 9 of the 18 images evaluated", "not a test accuracy", "held-out images", "test part"] {
        assert!(warning.contains(says), "the warning does not say '{says}': {warning}");
    }
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("id=\"trained-on\""), "the report does not say it");
    let text = evaluate(&data, &model, &[]);
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("NOT A TEST ACCURACY: the model was trained on 9 of these 18")
    );

    // The training part, and a copy of the folder elsewhere (found by content).
    let train = json(&evaluate(&manifest, &model, &["--split", "train", "--json"]));
    assert_eq!(train["trained_on_evaluated_images"], 9);
    let copy = dir.path().join("copy");
    for entry in walk(&data) {
        let to = copy.join(entry.strip_prefix(&data).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &to).unwrap();
    }
    assert_eq!(json(&evaluate(&copy, &model, &["--json"]))["trained_on_evaluated_images"], 9);

    // The test part of the split it was trained with: no warning, 0.
    let test = evaluate(&manifest, &model, &["--json"]);
    let summary = json(&test);
    assert_eq!((summary["images"].as_u64(), summary["trained_on_evaluated_images"].as_u64()), (Some(9), Some(0)));
    assert!(!stderr(&test).contains("trained on"), "a warning on the test part: {}", stderr(&test));

    // A model folder from before the record loads as before: not known, no warning.
    let meta_path = model.join("model.json");
    let mut meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    let record = meta.as_object_mut().unwrap().remove("training_images").expect("model.json names the record");
    assert!(model.join(record.as_str().unwrap()).is_file());
    std::fs::write(&meta_path, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
    let old = evaluate(&data, &model, &["--json"]);
    assert!(json(&old)["trained_on_evaluated_images"].is_null());
    assert!(!stderr(&old).contains("trained on"), "{}", stderr(&old));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

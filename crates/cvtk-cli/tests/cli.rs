//! The `cvtk` binary end to end: sample data from a (generated) source file,
//! dataset info and split, JSON output and exit codes.

use crate::common;
use crate::common::*;

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
    let no_source =
        cvtk(&["sample-data", "mnist-5k", "--out", "/tmp/unused", "--data-dir", "/nonexistent", "--no-download"]);
    assert_eq!(no_source.status.code(), Some(1));
    let err = String::from_utf8_lossy(&no_source.stderr);
    assert!(err.contains("mnist-5k is in none of /nonexistent") && err.contains("download"), "{err}");
    assert_eq!(cvtk(&["dataset", "frobnicate"]).status.code(), Some(2));
    assert_eq!(cvtk(&["sample-data", "cifar-10", "--out", "x"]).status.code(), Some(2));
    assert!(cvtk(&["--help"]).status.success());
}

/// A tiny colour dataset: 3 labels x `n` 32x32 images.

#[test]
fn train_then_predict_with_dnn_and_svm() {
    let dir = tempfile::tempdir().unwrap();
    let (data, manifest) = split_colours(dir.path());
    let model = dir.path().join("model");
    let trained = train_resnet18(&manifest, &model, 2, &[]);
    assert_eq!(trained["classifier"], "dnn");
    assert_eq!(trained["history"].as_array().unwrap().len(), 2);
    assert_eq!(trained["train_images"], 9);
    assert_eq!(trained["eval_images"], 9);
    assert!(trained["eval_accuracy"].as_f64().is_some());
    let img = data.join("red/0.png");
    let pred = json(&cvtk(&["predict", "--model", model.to_str().unwrap(), img.to_str().unwrap(), "--json", "--all"]));
    assert_eq!(pred[0]["probabilities"].as_array().unwrap().len(), 3);
    let total: f64 = pred[0]["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4);
    assert_eq!(pred[0]["raw"].as_array().unwrap().len(), 3);
    assert_eq!(pred[0]["raw_kind"], serde_json::json!({ "kind": "logits", "temperature": 1.0 }));

    let svm = dir.path().join("svm");
    let trained = train_svm(&manifest, &svm);
    assert_eq!(trained["classifier"], "svm");
    assert_eq!(trained["train_accuracy"], 1.0);
    let text = cvtk(&["predict", "--model", svm.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains('%'));
}

#[test]
fn predict_imagenet_prints_the_top_k_and_every_probability_only_with_all() {
    let dir = tempfile::tempdir().unwrap();
    colour_tree(dir.path(), 1);
    let img = dir.path().join("red/0.png");
    let out = json(&cvtk(&["predict", img.to_str().unwrap(), "--top", "3", "--json"]));
    assert_eq!(out[0]["top"].as_array().unwrap().len(), 3);
    assert!(out[0].get("probabilities").is_none() && out[0].get("raw").is_none(), "{}", out[0]);
    let all = json(&cvtk(&["predict", img.to_str().unwrap(), "--top", "3", "--json", "--all"]));
    assert_eq!(all[0]["top"], out[0]["top"]);
    assert_eq!(all[0]["raw"].as_array().unwrap().len(), 1000);
    assert_eq!(all[0]["raw_kind"]["kind"], "logits");
    let top = all[0]["top"][0]["probability"].as_f64().unwrap();
    let max = all[0]["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).fold(0.0, f64::max);
    assert_eq!(top, max, "the top label is the most probable");
    let zero = cvtk(&["predict", img.to_str().unwrap(), "--top", "0"]);
    assert_eq!(zero.status.code(), Some(2), "--top 0 would print nothing: a usage error");
    assert_eq!(cvtk(&["predict", img.to_str().unwrap(), "--all"]).status.code(), Some(1), "--all without --json");
}

#[test]
fn predict_takes_folders_and_a_bad_file_is_a_row_with_an_error_while_the_others_are_classified() {
    let dir = tempfile::tempdir().unwrap();
    colour_tree(dir.path(), 2);
    std::fs::write(dir.path().join("green/broken.png"), b"not a png").unwrap();
    // A hidden file (macOS's ._ files) is no image of the folder's: skipped, as dataset scans skip it.
    std::fs::write(dir.path().join("green/._0.png"), b"resource fork").unwrap();
    let missing = dir.path().join("missing.png");
    let (red, green) = (dir.path().join("red"), dir.path().join("green"));
    let out = cvtk(&[
        "predict",
        red.to_str().unwrap(),
        green.to_str().unwrap(),
        missing.to_str().unwrap(),
        "--top",
        "1",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "a failed image makes the run fail, after the others");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the rows are printed as JSON");
    let rows = rows.as_array().unwrap();
    let images: Vec<&str> = rows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(images.len(), 6, "2 red, 2 green + the broken one, the missing one: {images:?}");
    assert!(images[..2].iter().all(|i| i.contains("/red/")) && images[5] == missing.to_str().unwrap(), "{images:?}");
    for r in rows {
        let bad = r["path"].as_str().unwrap().ends_with("broken.png") || r["path"] == missing.to_str().unwrap();
        assert_eq!(r.get("error").is_some(), bad, "{r}");
        assert_eq!(r["top"].as_array().unwrap().len(), if bad { 0 } else { 1 }, "{r}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 of 6 images could not be classified"), "{stderr}");
    let text = cvtk(&["predict", green.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("broken.png\n  error: ") && stdout.matches('%').count() == 2 * 5, "{stdout}");
}

#[test]
fn train_and_predict_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    colour_tree(dir.path(), 2);
    let d = dir.path().to_str().unwrap();
    let out = cvtk(&["train", d, "--base-model", "resnet50", "--out", "/tmp/unused-cvtk-model"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--weights FILE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cvtk(&["train", d, "--base-model", "vgg16", "--out", "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown base model 'vgg16'"));
    let out = cvtk(&["train", d, "--lr-per-mb", "0.1*z", "--out", "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("repeat count"));
    let out = cvtk(&["predict", "--model", d, &format!("{d}/red/0.png")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model.json"));
    let out = cvtk(&["predict", "/nonexistent.png"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("/nonexistent.png\n  error: "));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 1 images could not be classified"));
    assert_eq!(cvtk(&["train", d, "--classifier", "tree", "--out", "x"]).status.code(), Some(2));
}

#[test]
fn evaluate_prints_metrics_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let (_, manifest) = split_colours(dir.path());
    let m = manifest.to_str().unwrap();
    let model = dir.path().join("svm");
    json(&cvtk(&["train", m, "--classifier", "svm", "--image-size", "64", "--out", model.to_str().unwrap(), "--json"]));
    let report = dir.path().join("report");
    let out = json(&cvtk(&[
        "evaluate",
        m,
        "--model",
        model.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(out["images"], 9);
    assert_eq!(out["part"], "test");
    assert_eq!(out["confusion_matrix"]["counts"].as_array().unwrap().len(), 3);
    assert!(out["class_averaged_accuracy"].as_f64().unwrap() > 0.5);
    assert_eq!(out["curves"].as_array().unwrap().len(), 3);
    for f in ["report.html", "confusion_matrix.png", "roc_curves.svg", "pr_curves.png"] {
        assert!(report.join(f).is_file(), "{f} written");
    }
    let text = cvtk(&["evaluate", m, "--model", model.to_str().unwrap(), "--split", "train"]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("class-averaged accuracy") && text.contains("confusion matrix") && text.contains("(train)"),
        "{text}"
    );
    // A usage error (it exited 1 before --split was typed).
    let bad = cvtk(&["evaluate", m, "--model", model.to_str().unwrap(), "--split", "validation"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("use train or test"));
}

#[test]
fn augment_writes_copies_and_train_takes_a_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let (_, manifest) = split_colours(dir.path());
    let pipeline = "flip_crop"; // built in: works from any folder
    let out = dir.path().join("aug");
    let summary = json(&cvtk(&[
        "augment",
        manifest.to_str().unwrap(),
        "--pipeline",
        pipeline,
        "--part",
        "train",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]));
    // 18 originals (9 train, 9 test): a copy of each training image only.
    assert_eq!((summary["originals"].as_u64(), summary["copies"].as_u64()), (Some(18), Some(9)));
    let listed = json(&cvtk(&["dataset", "info", summary["manifest"].as_str().unwrap(), "--json"]));
    assert_eq!(listed["images"], 27);
    let augmented = cvtk_dataset::ClassificationDataset::from_manifest(summary["manifest"].as_str().unwrap()).unwrap();
    let original = cvtk_dataset::ClassificationDataset::from_manifest(&manifest).unwrap();
    let paths = |d: &cvtk_dataset::ClassificationDataset| {
        let mut p: Vec<_> =
            d.test().unwrap().images().iter().map(|i| std::fs::canonicalize(&i.path).unwrap()).collect();
        p.sort();
        p
    };
    assert_eq!(paths(&augmented), paths(&original), "the test part is not the originals' test part");
    assert_eq!(augmented.train().unwrap().len(), 18);
    // A fix made on the augmented manifest survives augmenting again into the same folder.
    let mut fixed = augmented.clone();
    let copy = fixed.images().iter().find(|i| i.path.to_string_lossy().contains("_aug0")).unwrap().id;
    fixed.set_excluded(copy, true).unwrap();
    fixed.to_manifest(summary["manifest"].as_str().unwrap()).unwrap();
    let args =
        ["augment", manifest.to_str().unwrap(), "--pipeline", pipeline, "--out", out.to_str().unwrap(), "--json"];
    // Meanwhile an original is relabelled in the input manifest: that fix is newer, and wins.
    let mut input = cvtk_dataset::ClassificationDataset::from_manifest(&manifest).unwrap();
    let original = input.train().unwrap().images()[0].clone();
    let other = (original.label() + 1) % input.labels().len();
    input.set_label(original.id, other).unwrap();
    input.to_manifest(&manifest).unwrap();
    let again = json(&cvtk(&args));
    assert_eq!(again["excluded_copies_kept"], 1, "{again}");
    let reread = cvtk_dataset::ClassificationDataset::from_manifest(summary["manifest"].as_str().unwrap()).unwrap();
    assert_eq!(reread.excluded().len(), 1, "the exclusion was dropped");
    let relabelled = reread.images().iter().find(|i| i.path == original.path).unwrap();
    assert_eq!(
        reread.label_names()[relabelled.label()],
        input.label_names()[other],
        "the input's newer label was overwritten by the earlier output's"
    );
    let test_part =
        cvtk(&["augment", manifest.to_str().unwrap(), "--pipeline", pipeline, "--part", "test", "--out", "z"]);
    assert_eq!(test_part.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&test_part.stderr).contains("never augmented"));

    // A pipeline file, here the built-in `photo`'s own.
    let photo = concat!(env!("CARGO_MANIFEST_DIR"), "/../cvtk-augment/pipelines/photo.toml");
    let model = dir.path().join("model");
    let trained = train_small_cnn(&manifest, &model, 2, &["--augment", photo]);
    assert_eq!(trained["history"].as_array().unwrap().len(), 2);

    let svm = cvtk(&["train", manifest.to_str().unwrap(), "--classifier", "svm", "--augment", photo, "--out", "x"]);
    assert_eq!(svm.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&svm.stderr).contains("cvtk augment"));
    let unknown = cvtk(&["augment", manifest.to_str().unwrap(), "--pipeline", "flip_crop2", "--out", "w"]);
    assert_eq!(unknown.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("flip_crop2: no such file, nor a built-in pipeline") && err.contains("flip_crop, photo"),
        "{err}"
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"type": "Fliplr", "p": 2}"#).unwrap();
    let refused = cvtk(&["augment", manifest.to_str().unwrap(), "--pipeline", bad.to_str().unwrap(), "--out", "y"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Fliplr.p"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn dataset_collect_copies_folders_reports_duplicates_and_needs_an_endpoint_for_text() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    common::colour_tree(&photos, 3);
    // The same bytes twice: kept once.
    std::fs::copy(photos.join("red/0.png"), photos.join("red/0-again.png")).unwrap();
    let queries = dir.path().join("q.json");
    std::fs::write(&queries, r#"{"bluish": ["photos/blue"], "reddish": ["./photos/red"]}"#).unwrap();
    let out = dir.path().join("collected");
    let manifest = dir.path().join("collected.json");
    let args = [
        "dataset",
        "collect",
        queries.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--json",
    ];
    let v = json(&cvtk(&args));
    assert_eq!(v["report"]["per_label"], serde_json::json!({ "bluish": 3, "reddish": 3 }));
    assert_eq!(v["report"]["duplicates"].as_array().unwrap().len(), 1);
    assert_eq!(v["report"]["added"].as_array().unwrap().len(), 6);
    let ds = cvtk_dataset::ClassificationDataset::from_manifest(&manifest).unwrap();
    assert_eq!(ds.label_names(), ["bluish", "reddish"]);
    // Again: nothing new.
    let v = json(&cvtk(&args));
    assert_eq!((v["report"]["added"].as_array().unwrap().len(), v["report"]["already_there"].as_u64()), (0, Some(7)));
    // Fixes made in `cvtk annotate` (here through the library, as the page does) survive another run.
    let mut fixed = ds.clone();
    let (first, second) = (fixed.images()[0].id, fixed.images()[1].id);
    let reddish = fixed.label_index("reddish").unwrap();
    fixed.set_label(first, reddish).unwrap();
    fixed.set_excluded(second, true).unwrap();
    fixed.to_manifest(&manifest).unwrap();
    let v = json(&cvtk(&args));
    assert_eq!(v["kept_fixes"], serde_json::json!({ "relabelled": 1, "excluded": 1 }), "{v}");
    let again = cvtk_dataset::ClassificationDataset::from_manifest(&manifest).unwrap();
    let path_of = |d: &cvtk_dataset::ClassificationDataset, id: u64| d.any_image(id).unwrap().path.clone();
    let relabelled = again.images().iter().find(|i| i.path == path_of(&fixed, first)).unwrap();
    assert_eq!(again.label_names()[relabelled.label()], "reddish");
    assert!(again.excluded().iter().any(|i| i.path == path_of(&fixed, second)), "the exclusion was dropped");

    std::fs::write(&queries, r#"{"cup": ["red cup"]}"#).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cvtk"))
        .args(["dataset", "collect", queries.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .env_remove("CVTK_IMAGE_SEARCH_ENDPOINT")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("\"red cup\"") && err.contains("CVTK_IMAGE_SEARCH_ENDPOINT"), "{err}");
}

/// The EfficientNet-Lite0 weights `make test-setup` installs into the checkout.
fn lite0_weights() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run `make test-setup`", dir.display()))
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("efficientnet-lite0-"))
        .expect("no efficientnet-lite0 weights: run `make test-setup`")
}

#[test]
fn weights_install_checks_files_and_list_finds_them_in_cvtk_home_first() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let weights = lite0_weights();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cvtk"))
            .args(args)
            .current_dir(tmp.path())
            .env("CVTK_HOME", &home)
            .env_remove("CVTK_WEIGHTS_DIR")
            .output()
            .unwrap()
    };
    let installed = run(&["weights", "install", weights.to_str().unwrap()]);
    assert!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));
    let dest = home.join("weights").join(weights.file_name().unwrap());
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&weights).unwrap());
    assert!(String::from_utf8_lossy(&installed.stdout).contains("efficientnet-lite0"));

    let listed = json(&run(&["weights", "list", "--json"]));
    let lite0 = listed["architectures"].as_array().unwrap().iter().find(|a| a["architecture"] == "efficientnet-lite0");
    assert_eq!(lite0.unwrap()["weights"].as_str().map(std::path::PathBuf::from), Some(dest.canonicalize().unwrap()));

    // A name that names no architecture, and a file that does not fit the one it names.
    let unnamed = tmp.path().join("model.pth");
    std::fs::copy(&weights, &unnamed).unwrap();
    let e = run(&["weights", "install", unnamed.to_str().unwrap()]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("ARCH-ANYTHING.pth"));
    let misnamed = tmp.path().join("resnet18-0000.pth");
    std::fs::copy(&weights, &misnamed).unwrap();
    let e = run(&["weights", "install", misnamed.to_str().unwrap()]);
    assert!(!e.status.success(), "efficientnet weights installed as resnet18");
    assert!(!home.join("weights/resnet18-0000.pth").exists());
}

#[test]
fn health_exits_0_only_when_the_url_answers_2xx() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let down = cvtk(&["health", &format!("http://127.0.0.1:{port}/health"), "--timeout", "2"]);
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("does not answer"), "{down:?}");
    // A server answering 404 is not healthy either.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", server.local_addr().unwrap());
    let answer = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = server.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
    });
    let not_found = cvtk(&["health", &url]);
    answer.join().unwrap();
    assert!(!not_found.status.success() && String::from_utf8_lossy(&not_found.stderr).contains("404"));
}

#[test]
fn splitting_again_never_drops_the_fixes_made_in_annotate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("colours");
    common::colour_tree(&data, 6);
    let manifest = dir.path().join("colours.json");
    let (d, m) = (data.to_str().unwrap(), manifest.to_str().unwrap());
    let split = |args: &[&str]| cvtk(&[&["dataset", "split"][..], args, &["--stratify", "--json"]].concat());
    assert!(split(&[d, "--out", m]).status.success());
    // What `cvtk annotate` does: a relabel and an exclusion, saved to the manifest.
    let mut ds = cvtk_dataset::ClassificationDataset::from_manifest(&manifest).unwrap();
    let (first, second) = (ds.images()[0].id, ds.images()[1].id);
    let other = (ds.images()[0].labels[0] + 1) % ds.labels().len();
    ds.set_label(first, other).unwrap();
    ds.set_excluded(second, true).unwrap();
    ds.to_manifest(&manifest).unwrap();
    let fixed = std::fs::read_to_string(&manifest).unwrap();
    // The guide's split command again, from the folder: refused, nothing touched.
    let again = split(&[d, "--out", m]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(err.contains("cvtk annotate") && err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), fixed);
    // Re-splitting the manifest itself keeps the fixes and changes only the split.
    assert!(split(&[m, "--out", m, "--seed", "7"]).status.success());
    let ds = cvtk_dataset::ClassificationDataset::from_manifest(&manifest).unwrap();
    let image = |id| ds.images().iter().find(|i| i.id == id);
    assert_eq!(image(first).unwrap().labels, vec![other]);
    assert!(image(second).is_none() && ds.excluded().iter().any(|i| i.id == second));
    // --overwrite starts over from the folder.
    assert!(split(&[d, "--out", m, "--overwrite"]).status.success());
    let ds = cvtk_dataset::ClassificationDataset::from_manifest(&manifest).unwrap();
    assert!(ds.excluded().is_empty());
}

#[test]
fn a_stratified_split_puts_every_label_in_both_parts_or_refuses_and_train_refuses_unseen_labels() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("colours");
    common::colour_tree(&data, 20);
    let manifest = dir.path().join("m.json");
    let (d, m) = (data.to_str().unwrap(), manifest.to_str().unwrap());
    // 60 images at 0.01: 0 training images. At 0.04: 2 training images for 3 labels.
    for (size, says) in
        [("0.01", "leaves one part empty"), ("0.04", "from 0.050 to 0.950"), ("0.97", "from 0.050 to 0.950")]
    {
        let out = cvtk(&["dataset", "split", d, "--stratify", "--train-size", size, "--out", m, "--overwrite"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "--train-size {size}: {err}");
        assert!(err.contains(says), "{size}: {err}");
    }
    let split = json(&cvtk(&["dataset", "split", d, "--stratify", "--train-size", "0.05", "--out", m, "--json"]));
    assert_eq!(split["split"]["train"], 3, "{split}");
    let ds = cvtk_dataset::ClassificationDataset::from_manifest(&manifest).unwrap();
    assert!(ds.train().unwrap().counts_per_label().iter().all(|&n| n == 1));
    // Not stratified, 1 training image: two labels the model would never see.
    let out = cvtk(&["dataset", "split", d, "--train-size", "0.02", "--out", m, "--overwrite"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let train = cvtk(&[
        "train",
        m,
        "--out",
        dir.path().join("model").to_str().unwrap(),
        "--base-model",
        "small-cnn",
        "--random-init",
    ]);
    let err = String::from_utf8_lossy(&train.stderr);
    assert_eq!(train.status.code(), Some(1), "{err}");
    assert!(err.contains("no training image") && err.contains("--stratify"), "{err}");
    assert!(!dir.path().join("model").exists());
}

#[test]
fn dataset_info_does_not_vouch_for_a_manifest_whose_images_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (data, manifest) = split_colours(dir.path());
    let m = manifest.to_str().unwrap();
    assert!(cvtk(&["dataset", "info", m]).status.success());
    std::fs::rename(&data, dir.path().join("moved")).unwrap();
    let out = cvtk(&["dataset", "info", m]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("18 images") && err.contains("missing") && err.contains("moved or deleted"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("MISSING: 18 of the 18 images"), "the summary says so too: {text}");
    let listed = cvtk(&["dataset", "info", m, "--json"]);
    assert_eq!(listed.status.code(), Some(1));
    let summary: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(summary["missing_images"], 18, "{summary}");
}

#[test]
fn errors_under_json_are_json_on_stderr_and_stdout_stays_empty() {
    let out = cvtk(&["dataset", "info", "/nonexistent/cvtk", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).expect("the error is JSON");
    assert!(err["error"].as_str().unwrap().contains("does not exist"), "{err}");
    let plain = cvtk(&["dataset", "info", "/nonexistent/cvtk"]);
    assert!(String::from_utf8_lossy(&plain.stderr).starts_with("error: "));
}

#[test]
fn warnings_piped_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    colour_tree(dir.path(), 2);
    // A label with a single image: split warns that it cannot be in both parts.
    std::fs::remove_file(dir.path().join("red/1.png")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cvtk"))
        .args(["dataset", "split", dir.path().to_str().unwrap(), "--stratify", "--out"])
        .arg(dir.path().join("m.json"))
        .env("RUST_LOG", "warn")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WARN") && err.contains("single image"), "{err}");
    assert!(!err.contains('\u{1b}'), "escape codes in a pipe: {err:?}");
}

#[test]
fn a_missing_model_folder_is_called_missing() {
    let dir = tempfile::tempdir().unwrap();
    colour_tree(dir.path(), 1);
    let img = dir.path().join("red/0.png");
    let out = cvtk(&["predict", "--model", "/nonexistent/model", img.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/model: does not exist") && !err.contains("not a folder"), "{err}");
}

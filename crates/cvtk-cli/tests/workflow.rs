//! The whole workflow through the `cvtk` program, as a user would run it on a
//! tiny dataset: sample data, dataset info and split, augmentation, training,
//! evaluation with the report, prediction, deployment, scoring over HTTP, a
//! load test, and deletion. Every step's `--json` output is checked.

use std::path::Path;

use crate::common::*;

#[test]
fn the_eight_steps_on_a_tiny_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).to_str().unwrap().to_string();
    let home = dir.path().join("home");
    fake_mnist_5k(dir.path());

    // 1. Create a dataset and split it.
    let written = json(&cvtk_in(
        &home,
        &["sample-data", "mnist-5k", "--data-dir", &d(""), "--classes", "0,1,2", "--out", &d("digits"), "--json"],
    ));
    assert_eq!(written["per_label"].as_array().unwrap().len(), 3);
    let info = json(&cvtk_in(&home, &["dataset", "info", &d("digits"), "--json"]));
    assert_eq!(info["images"], 18);
    let split = json(&cvtk_in(
        &home,
        &["dataset", "split", &d("digits"), "--train-size", "0.66", "--stratify", "--out", &d("digits.json"), "--json"],
    ));
    assert_eq!(split["split"]["train"].as_u64().unwrap() + split["split"]["test"].as_u64().unwrap(), 18);

    // 3. Augment the training part.
    let pipeline = "flip_crop"; // built in
    let augmented = json(&cvtk_in(
        &home,
        &["augment", &d("digits.json"), "--part", "train", "--pipeline", pipeline, "--out", &d("aug"), "--json"],
    ));
    // A copy of each training image; the test part stays the originals.
    assert_eq!(augmented["copies"], split["split"]["train"]);
    assert_eq!(augmented["originals"], 18);

    // 4-5. Define and train a model (the small CNN from scratch, to stay fast).
    let trained =
        train_small_cnn(Path::new(augmented["manifest"].as_str().unwrap()), &dir.path().join("model"), 2, &[]);
    assert_eq!(trained["history"].as_array().unwrap().len(), 2);

    // 6. Evaluate on the test part, with the report; predict one image.
    let evaluated = json(&cvtk_in(
        &home,
        &["evaluate", &d("digits.json"), "--model", &d("model"), "--report", &d("report"), "--device", "cpu", "--json"],
    ));
    assert_eq!(evaluated["images"], split["split"]["test"]);
    // Trained on the augmented manifest, whose test part is the originals': not one of them.
    assert_eq!(evaluated["trained_on_evaluated_images"], 0);
    assert!(Path::new(evaluated["report"].as_str().unwrap()).is_file());
    let image = dir.path().join("digits/0/0_00000.png");
    let predicted = json(&cvtk_in(&home, &["predict", "--model", &d("model"), image.to_str().unwrap(), "--json"]));
    assert_eq!(predicted[0]["top"].as_array().unwrap().len(), 3);

    // 7. Deploy, score over HTTP (same answer as in-process), show.
    let created =
        json(&cvtk_in(&home, &["deploy", "create", "digits", "--model", &d("model"), "--device", "cpu", "--json"]));
    let scored = json(&cvtk_in(&home, &["deploy", "score", "digits", image.to_str().unwrap(), "--json"]));
    assert_eq!(scored[0]["label"], predicted[0]["top"][0]["label"]);
    let local = predicted[0]["top"][0]["probability"].as_f64().unwrap();
    assert!((scored[0]["score"].as_f64().unwrap() - local).abs() < 1e-5);
    let shown = json(&cvtk_in(&home, &["deploy", "show", "digits", "--json"]));
    assert_eq!(shown["url"], created["url"]);

    // 8. Load-test it briefly, then delete it.
    let load = json(&cvtk_in(
        &home,
        &[
            "loadtest",
            "--deployment",
            "digits",
            "--images",
            &d("digits"),
            "--concurrency",
            "4",
            "--requests",
            "40",
            "--json",
        ],
    ));
    assert_eq!(load["ok"], 40, "{load}");
    let deleted = json(&cvtk_in(&home, &["deploy", "delete", "digits", "--json"]));
    assert_eq!(deleted["deleted"], "digits");
    assert_eq!(json(&cvtk_in(&home, &["deploy", "list", "--json"])), serde_json::json!([]));
}

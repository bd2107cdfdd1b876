//! `cvtk explain`: an overlay and the map's numbers per image, the same
//! picture from CAM and Grad-CAM and from either engine, the prediction
//! `cvtk predict` gives, and clear errors (a label the model lacks, a file
//! that is not an image, a network without a feature map).

use std::path::Path;

use crate::common::{cvtk, json, split_colours, train_small_cnn, train_svm};

fn explain(model: &Path, images: &[&Path], out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["explain", "--model", model.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"];
    args.extend(images.iter().map(|p| p.to_str().unwrap()));
    args.extend_from_slice(extra);
    cvtk(&args)
}

/// The largest difference between two images' channels.
fn image_diff(a: &Path, b: &Path) -> u8 {
    let (a, b) = (image::open(a).unwrap().to_rgb8(), image::open(b).unwrap().to_rgb8());
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0)
}

#[test]
fn explain_writes_an_overlay_and_numbers_that_agree_with_predict() {
    let dir = tempfile::tempdir().unwrap();
    let (data, manifest) = split_colours(dir.path());
    let model = dir.path().join("svm");
    train_svm(&manifest, &model);
    let red = data.join("red/0.png");
    let junk = dir.path().join("notes.png");
    std::fs::write(&junk, "not an image").unwrap();

    let cam = dir.path().join("cam");
    let out = explain(&model, &[&red, &junk, &data.join("blue")], &cam, &[]);
    assert_eq!(out.status.code(), Some(1), "a failed image makes the exit status 1");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2 + 6, "the file, the junk, and the folder's 6 images");
    assert!(rows[1]["error"].as_str().unwrap().contains("notes.png"), "{}", rows[1]);
    let first = &rows[0];
    assert_eq!(first["label"], first["predicted"]);
    let (h, w) = (first["map"]["height"].as_u64().unwrap(), first["map"]["width"].as_u64().unwrap());
    assert_eq!((h, w), (2, 2), "a 64-pixel input gives Lite0 a 2x2 map");
    assert_eq!(first["map"]["values"].as_array().unwrap().len(), 4);
    let overlay = Path::new(first["overlay"].as_str().unwrap());
    // The folder's blue/0.png shares red/0.png's name: both keep their files.
    assert!(overlay.starts_with(&cam) && overlay.ends_with("red_0.explain.png"), "{}", overlay.display());
    assert!(cam.join("blue_0.explain.png").is_file() && cam.join("1.explain.png").is_file());
    let picture = image::open(overlay).unwrap();
    assert!(picture.width() > 32 && picture.height() == 32, "the image at its own size, and a colour scale");
    let numbers: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first["numbers"].as_str().unwrap()).unwrap()).unwrap();
    let values = |v: &serde_json::Value| -> Vec<f64> {
        v["map"]["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    let (a, b) = (values(&numbers), values(first));
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6), "{a:?} vs {b:?}");

    // The label and probability are what `cvtk predict` says.
    let predicted = json(&cvtk(&["predict", "--model", model.to_str().unwrap(), red.to_str().unwrap(), "--json"]));
    let top = &predicted[0]["top"][0];
    assert_eq!(top["label"], first["predicted"]);
    let (p, q) = (top["probability"].as_f64().unwrap(), first["predicted_probability"].as_f64().unwrap());
    assert!((p - q).abs() < 1e-4, "predict says {p}, explain {q}");

    // Grad-CAM draws the same picture as CAM; libtorch draws onnxruntime's.
    let grad = dir.path().join("grad");
    assert!(explain(&model, &[&red], &grad, &["--method", "grad-cam"]).status.success());
    let torch = dir.path().join("torch");
    assert!(explain(&model, &[&red], &torch, &["--engine", "torch"]).status.success());
    for other in [&grad, &torch] {
        let d = image_diff(overlay, &other.join("0.explain.png"));
        assert!(d <= 2, "{}: the overlay differs by {d}", other.display());
    }

    // Another label's map on request; a label the model lacks is refused.
    let blue = json(&explain(&model, &[&red], &dir.path().join("blue"), &["--label", "blue"]));
    assert_eq!(blue[0]["label"], "blue");
    assert_eq!(blue[0]["predicted"], "red");
    let refused = explain(&model, &[&red], &dir.path().join("x"), &["--label", "purple"]);
    let e = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && e.contains("no label 'purple'") && e.contains("blue, green, red"), "{e}");
}

#[test]
fn a_model_without_a_feature_map_is_an_error_per_image_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (data, manifest) = split_colours(dir.path());
    let model = dir.path().join("cnn");
    train_small_cnn(&manifest, &model, 1, &[]);
    let out = explain(&model, &[&data.join("red/0.png")], &dir.path().join("out"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = rows[0]["error"].as_str().unwrap();
    assert!(e.contains("no feature map") && e.contains("small-cnn"), "{e}");
}

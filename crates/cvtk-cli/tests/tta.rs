//! Test-time augmentation: `cvtk train --tta flip` records it in the model
//! folder, every scoring command then averages each image's raw scores with
//! its mirror image's, and `--tta none` turns it off.

use crate::common::{cvtk, json, split_colours};

fn raw(model: &std::path::Path, image: &std::path::Path, extra: &[&str]) -> Vec<f64> {
    let mut args = vec!["predict", "--model", model.to_str().unwrap(), image.to_str().unwrap(), "--json", "--all"];
    args.extend_from_slice(extra);
    let v = json(&cvtk(&args));
    v[0]["raw"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn a_model_trained_with_flip_scores_each_image_with_its_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let (data, manifest) = split_colours(dir.path());
    let model = dir.path().join("svm");
    let (m, o) = (manifest.to_str().unwrap(), model.to_str().unwrap());
    json(&cvtk(&["train", m, "--classifier", "svm", "--image-size", "64", "--out", o, "--tta", "flip", "--json"]));
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(meta["tta"], "flip", "the model folder records it");
    assert!(meta["calibration"].is_object(), "and a temperature fitted on the averaged scores");

    // The image's stripes run one way, its mirror image's the other.
    let image = data.join("red/1.png");
    let mirror = dir.path().join("mirror.png");
    image::imageops::flip_horizontal(&image::open(&image).unwrap().to_rgb8()).save(&mirror).unwrap();
    let (plain, flipped) = (raw(&model, &image, &["--tta", "none"]), raw(&model, &mirror, &["--tta", "none"]));
    assert!(plain.iter().zip(&flipped).any(|(a, b)| (a - b).abs() > 1e-4), "the mirror image scores differently");
    let averaged = raw(&model, &image, &[]);
    for ((a, b), t) in plain.iter().zip(&flipped).zip(&averaged) {
        assert!(
            ((a + b) / 2.0 - t).abs() < 1e-4,
            "by default the folder's flip: {plain:?} {flipped:?} -> {averaged:?}"
        );
    }
    // The ONNX export bakes the folder's flip in (and --tta none leaves it out).
    let onnx = dir.path().join("m.onnx");
    json(&cvtk(&["export", o, "--out", onnx.to_str().unwrap(), "--json"]));
    let has = |bytes: &[u8]| bytes.windows(8).any(|w| w == b"cvtk.tta");
    assert!(has(&std::fs::read(&onnx).unwrap()), "the export records its baked-in flip");
    json(&cvtk(&["export", o, "--out", onnx.to_str().unwrap(), "--tta", "none", "--json"]));
    assert!(!has(&std::fs::read(&onnx).unwrap()));
    // An export with the flip baked in, saved as the folder's own
    // model.onnx, is not taken for the engine's graph: --tta none still
    // scores without the flip (the engine applies its own).
    json(&cvtk(&["export", o, "--out", model.join("model.onnx").to_str().unwrap(), "--json"]));
    let engine_none = raw(&model, &image, &["--tta", "none", "--engine", "onnxruntime"]);
    assert!(plain.iter().zip(&engine_none).all(|(a, b)| (a - b).abs() < 1e-4), "{plain:?} vs {engine_none:?}");
    // The audit scores no trained model: --tta there is refused, not ignored.
    let out = cvtk(&["audit", m, "--tta", "flip"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--tta is for commands"));
    // An unknown mode is refused by name.
    let out = cvtk(&["predict", "--model", o, image.to_str().unwrap(), "--tta", "rotate"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("none, flip"));
}

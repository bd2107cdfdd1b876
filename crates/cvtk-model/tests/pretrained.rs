//! The pretrained default (EfficientNet-Lite0 with the ImageNet weights `make
//! setup` installs) classifies real photos from a registry package
//! (scikit-image's sample images) as a person would.

use std::path::PathBuf;

use crate::common;
use cvtk_model::{Architecture, BaseModel, Device, Scorer};

fn skimage_photo(name: &str) -> PathBuf {
    let out = std::process::Command::new(common::python())
        .args(["-c", "import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), 'data'))"])
        .output()
        .unwrap();
    assert!(out.status.success(), "scikit-image missing from .venv: run `make test-setup`");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join(name)
}

#[test]
fn lite0_recognises_a_cat_a_coffee_cup_and_a_rocket() {
    let base = BaseModel::pretrained(Architecture::EfficientnetLite0)
        .expect("run `make test-setup` to install the Lite0 weights");
    let photos = [skimage_photo("chelsea.png"), skimage_photo("coffee.png"), skimage_photo("rocket.jpg")];
    for engine in [cvtk_model::EngineChoice::Torch, cvtk_model::EngineChoice::Onnxruntime] {
        recognises(&base, &photos, engine);
    }
}

fn recognises(base: &BaseModel, photos: &[PathBuf], engine: cvtk_model::EngineChoice) {
    let preds = base.predict_imagenet(photos, 5, Device::Cpu, engine).unwrap();
    eprintln!("engine {engine}");
    for (p, (top, raw)) in photos.iter().zip(&preds) {
        eprintln!(
            "{}: {:?}",
            p.display(),
            top.iter().map(|t| (t.index, t.label.as_str(), t.score)).collect::<Vec<_>>()
        );
        assert_eq!(raw.len(), 1000);
    }
    // ImageNet 281-285 are the domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian cat).
    assert!((281..=285).contains(&preds[0].0[0].index), "chelsea: {:?}", preds[0].0[0]);
    // 967 espresso, 968 cup, 504 coffee mug.
    assert!([967, 968, 504].contains(&preds[1].0[0].index), "coffee: {:?}", preds[1].0[0]);
    // 812 space shuttle, 744 projectile/missile, 657 missile.
    assert!(preds[2].0.iter().take(3).any(|t| [812, 744, 657].contains(&t.index)), "rocket: {:?}", preds[2].0);
}

#[test]
fn the_imagenet_classifier_saves_loads_and_scores_as_predict_imagenet_does() {
    let base = BaseModel::pretrained(Architecture::EfficientnetLite0)
        .expect("run `make test-setup` to install the Lite0 weights");
    let photos = [skimage_photo("chelsea.png"), skimage_photo("coffee.png")];
    let expected = base.predict_imagenet(&photos, 1, Device::Cpu, cvtk_model::EngineChoice::Torch).unwrap();
    let model = cvtk_model::TransferModel::imagenet(&base, Device::Cpu).unwrap();
    let labels = cvtk_model::Scorer::labels(&model).to_vec();
    assert_eq!(labels.len(), 1000);
    assert_eq!(labels.iter().collect::<std::collections::HashSet<_>>().len(), 1000, "labels must be unique");
    assert_eq!(labels[281], "tabby, tabby cat");
    let dir = tempfile::tempdir().unwrap();
    cvtk_model::Classifier::save(&model, dir.path()).unwrap();
    let loaded =
        cvtk_model::load_scorer(dir.path(), cvtk_model::DeviceChoice::Cpu, cvtk_model::EngineChoice::Auto).unwrap();
    assert_eq!(loaded.engine(), cvtk_model::Engine::Onnxruntime);
    assert_eq!(loaded.labels(), labels.as_slice());
    let loader = cvtk_dataset::ImageLoader::new(loaded.loader_config()).unwrap();
    let scores = loaded.score_images(&loader.load_batch(&photos).unwrap()).unwrap();
    for ((_, raw), got) in expected.iter().zip(&scores) {
        let diff = raw.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        // The loaded model scores with onnxruntime (the default), the
        // expectation with libtorch.
        assert!(diff < 1e-4, "the saved ImageNet classifier's logits differ by {diff}");
    }
    assert_eq!(cvtk_core::first_max(&scores[0]), expected[0].0[0].index);
}

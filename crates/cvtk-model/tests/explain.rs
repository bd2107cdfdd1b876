//! Explanations: Grad-CAM against Captum's `LayerGradCam` on the same weights
//! and input, CAM against Grad-CAM (equal up to scale for a linear head, as
//! theory says), onnxruntime's maps against libtorch's, and maps of a trained
//! model falling on the object it classified.

use std::path::{Path, PathBuf};

use crate::common::{read_f32, run_reference};
use cvtk_dataset::{ClassificationDataset, ImageBatch, ImageLoader};
use cvtk_model::explain::{explain_batch, explain_files, Method};
use cvtk_model::{
    compile, Architecture, BaseModel, Device, EngineChoice, Featurizer, LrSchedule, Scorer, SvmClassifier, SvmParams,
    TrainConfig, TransferModel,
};
use rand::{Rng, SeedableRng};

/// The largest absolute difference of two equal-length slices.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn max_abs(a: &[f32]) -> f32 {
    a.iter().map(|v| v.abs()).fold(0.0, f32::max)
}

fn against_captum(arch: Architecture) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let weights = match arch {
        Architecture::Resnet18 => dir.path().join("resnet18.pth"),
        _ => BaseModel::pretrained(arch).expect("`make test-setup` installs the Lite0 weights").weights.unwrap(),
    };
    run_reference("gradcam_reference.py", &[arch.name(), out, weights.to_str().unwrap()]);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("targets.json")).unwrap()).unwrap();
    let targets: Vec<usize> =
        meta["targets"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as usize).collect();
    let (h, w) = (meta["shape"][1].as_u64().unwrap() as usize, meta["shape"][2].as_u64().unwrap() as usize);
    let input = read_f32(&dir.path().join("input.bin"), &[2, 3, 224, 224]);
    let captum =
        Vec::<f32>::try_from(&read_f32(&dir.path().join("gradcam.bin"), &[2, h as i64, w as i64]).flatten(0, -1))
            .unwrap();
    let batch = ImageBatch::new(Vec::<f32>::try_from(&input.flatten(0, -1)).unwrap(), [2, 3, 224, 224]).unwrap();

    let model = TransferModel::imagenet(&BaseModel::new(arch, Some(weights)), Device::Cpu).unwrap();
    let grad = model.grad_cam(&batch, &targets).unwrap();
    assert_eq!((grad[0].height, grad[0].width), (h, w), "{arch}: map size");
    let ours: Vec<f32> = grad.iter().flat_map(|m| m.values.clone()).collect();
    let (diff, scale) = (max_diff(&ours, &captum), max_abs(&captum));
    eprintln!("{arch}: Grad-CAM vs Captum: max abs difference {diff:e} (maps up to {scale:e})");
    assert!(scale > 0.0, "{arch}: Captum's maps are all zero: the test input explains nothing");
    assert!(diff <= 1e-4 * scale, "{arch}: Grad-CAM differs from Captum's by {diff:e} (maps up to {scale:e})");

    // CAM's positive part over the number of cells is Grad-CAM, for a linear head.
    let cams = model.class_maps(&batch).unwrap();
    for (i, &t) in targets.iter().enumerate() {
        let cam = cams[i].map(t).unwrap();
        let scaled: Vec<f32> = cam.values.iter().map(|v| v.max(0.0) / (h * w) as f32).collect();
        let d = max_diff(&scaled, &grad[i].values);
        assert!(d <= 1e-4 * scale, "{arch} image {i}: CAM / cells differs from Grad-CAM by {d:e}");
        // And each map's mean plus the bias is the score.
        let scores = model.score_images(&batch).unwrap();
        let d = (cams[i].scores[t] - scores[i][t]).abs();
        assert!(
            d < 1e-3 * scores[i][t].abs().max(1.0),
            "{arch}: CAM's score {} vs {}",
            cams[i].scores[t],
            scores[i][t]
        );
    }

    // onnxruntime's graph with class maps gives libtorch's maps.
    let ort = compile(&model, EngineChoice::Onnxruntime).unwrap();
    let ort_maps = ort.class_maps(&batch).unwrap();
    for (a, b) in ort_maps.iter().zip(&cams) {
        let d = max_diff(&a.values, &b.values);
        assert!(d <= 1e-3 * max_abs(&b.values), "{arch}: onnxruntime's maps differ by {d:e}");
        assert!(max_diff(&a.scores, &b.scores) <= 1e-3 * max_abs(&b.scores));
    }
}

#[test]
fn grad_cam_equals_captums_on_resnet18() {
    against_captum(Architecture::Resnet18);
}

#[test]
fn grad_cam_equals_captums_on_efficientnet_lite0() {
    against_captum(Architecture::EfficientnetLite0);
}

/// A canvas of `SIDE` pixels, plain grey, with one object of its label's
/// shape and colour at a random place; returns the object's box.
const SIDE: u32 = 224;
const OBJECT: u32 = 80;
const SHAPES: [&str; 3] = ["disc", "square", "cross"];

fn draw(shape: usize, rng: &mut impl Rng) -> (image::RgbImage, (u32, u32)) {
    let (x0, y0) = (rng.random_range(0..SIDE - OBJECT), rng.random_range(0..SIDE - OBJECT));
    let img = image::RgbImage::from_fn(SIDE, SIDE, |x, y| {
        let (dx, dy) = (x as i64 - (x0 + OBJECT / 2) as i64, y as i64 - (y0 + OBJECT / 2) as i64);
        let r = i64::from(OBJECT / 2);
        let inside = x >= x0 && x < x0 + OBJECT && y >= y0 && y < y0 + OBJECT;
        let on = inside
            && match shape {
                0 => dx * dx + dy * dy <= r * r,
                1 => true,
                _ => dx.abs() <= 11 || dy.abs() <= 11,
            };
        match (on, shape) {
            (true, 0) => image::Rgb([200, 40, 40]),
            (true, 1) => image::Rgb([40, 60, 200]),
            (true, _) => image::Rgb([30, 150, 50]),
            (false, _) => image::Rgb([190, 190, 185]),
        }
    });
    (img, (x0, y0))
}

/// Each image's path and its object's top-left corner.
type Boxes = Vec<(PathBuf, (u32, u32))>;

/// `per_label` images of each shape under `dir`, and each image's object box.
fn shapes(dir: &Path, per_label: usize, seed: u64) -> (ClassificationDataset, Boxes) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut boxes = Vec::new();
    for (s, name) in SHAPES.iter().enumerate() {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        for i in 0..per_label {
            let (img, corner) = draw(s, &mut rng);
            let path = dir.join(name).join(format!("{i}.png"));
            img.save(&path).unwrap();
            boxes.push((path, corner));
        }
    }
    (ClassificationDataset::create_from_dir("shapes", dir).unwrap(), boxes)
}

/// The share of correctly classified images whose map's maximum (the centre
/// of its hottest cell) falls inside the object's box.
fn share_on_object(scorer: &dyn Scorer, boxes: &[(PathBuf, (u32, u32))]) -> (f64, usize) {
    let loader = ImageLoader::new(scorer.loader_config()).unwrap();
    let (mut hits, mut correct) = (0, 0);
    for chunk in boxes.chunks(16) {
        let paths: Vec<&Path> = chunk.iter().map(|(p, _)| p.as_path()).collect();
        let batch = loader.load_batch(&paths).unwrap();
        for (e, (path, (x0, y0))) in explain_batch(scorer, &batch, None, Method::Cam).unwrap().iter().zip(chunk) {
            let truth = path.parent().unwrap().file_name().unwrap().to_str().unwrap();
            if e.predicted != truth {
                continue;
            }
            correct += 1;
            let (_, row, col) = e.map.argmax();
            let cx = (col as f64 + 0.5) * f64::from(SIDE) / e.map.width as f64;
            let cy = (row as f64 + 0.5) * f64::from(SIDE) / e.map.height as f64;
            let inside = |c: f64, lo: u32| c >= f64::from(lo) && c <= f64::from(lo + OBJECT);
            hits += usize::from(inside(cx, *x0) && inside(cy, *y0));
        }
    }
    (hits as f64 / correct.max(1) as f64, correct)
}

#[test]
fn maps_of_a_trained_model_fall_on_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let (train, _) = shapes(&dir.path().join("train"), 24, 1);
    let (_, test) = shapes(&dir.path().join("test"), 40, 2);
    let base = BaseModel::pretrained(Architecture::EfficientnetLite0).expect("`make test-setup` installs Lite0");

    let mut model = TransferModel::new(train.label_names(), &base, Some(SIDE), Device::Cpu).unwrap();
    let config = TrainConfig { lr_per_mb: LrSchedule::constant(0.01, 5), mb_size: 12, ..TrainConfig::default() };
    model.train(&train, &config, None).unwrap();
    let (share, correct) = share_on_object(&model, &test);
    eprintln!("fine-tuned: the map's maximum is on the object for {share:.3} of {correct} correct test images");
    assert!(correct >= 90, "the model learned too little to judge its maps: {correct} of 120 right");
    assert!(share >= 0.9, "fine-tuned: the map's maximum is on the object for only {share:.3}");

    let featurizer = Featurizer::new(&base, Some(SIDE), Device::Cpu).unwrap();
    let svm = SvmClassifier::fit(featurizer, &train, &SvmParams::default()).unwrap();
    let (share, correct) = share_on_object(&svm, &test);
    eprintln!("SVM: the map's maximum is on the object for {share:.3} of {correct} correct test images");
    assert!(correct >= 90, "the SVM learned too little to judge its maps: {correct} of 120 right");
    // The SVM's features are ImageNet's, never trained on these shapes: its
    // maps are coarser (0.667 here when written). Chance is the box's share
    // of the canvas, (80/224)^2 = 0.13; a map misplaced by a bug is near it.
    assert!(share >= 0.5, "SVM: the map's maximum is on the object for only {share:.3}");

    // What the user gets on disk: an overlay and the numbers, one per image;
    // an image that does not decode is its own error, the rest are explained.
    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"not an image").unwrap();
    let paths = vec![test[0].0.clone(), junk.clone(), test[60].0.clone()];
    let results = explain_files(&model, &paths, None, Method::Cam).unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0].1.is_ok() && results[2].1.is_ok(), "{results:?}");
    let e = results[1].1.as_ref().unwrap_err().to_string();
    assert!(e.contains("junk.png"), "the error names the image: {e}");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let explanation = results[0].1.as_ref().unwrap();
    let (png, json) =
        cvtk_model::explain::write_explanation(explanation, &paths[0], &model.loader_config(), &out, "first").unwrap();
    let overlay = image::open(&png).unwrap();
    assert!(overlay.width() > SIDE && overlay.height() == SIDE, "the overlay and its colour scale");
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    assert_eq!(record["map"]["values"].as_array().unwrap().len(), explanation.map.height * explanation.map.width);

    // A label the model lacks is refused before any image is read.
    let e = explain_files(&model, &paths, Some("zebra"), Method::Cam).unwrap_err().to_string();
    assert!(e.contains("no label 'zebra'") && e.contains("disc"), "{e}");
    // Asked for another label, the map is that label's.
    let other = explain_files(&model, &paths[..1], Some("cross"), Method::GradCam).unwrap();
    assert_eq!(other[0].1.as_ref().unwrap().label, "cross");
}

#[test]
fn a_network_without_a_feature_map_says_so() {
    let base = BaseModel::new(Architecture::SmallCnn, None);
    let model = TransferModel::new(vec!["a".into(), "b".into()], &base, None, Device::Cpu).unwrap();
    let batch = ImageBatch::new(vec![0.0; 28 * 28], [1, 1, 28, 28]).unwrap();
    let e = model.class_maps(&batch).unwrap_err().to_string();
    assert!(e.contains("no feature map") && e.contains("small-cnn"), "{e}");
    let e = model.grad_cam(&batch, &[0]).unwrap_err().to_string();
    assert!(e.contains("no feature map"), "{e}");
}

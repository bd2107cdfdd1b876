//! Scores that mean what they say (issue 18): the report that the main job's
//! library calls write (examples/image_classification.rs: `score_dataset`,
//! `ClassificationEvaluation::from_scores`, `write_report`) shows, for every
//! test image, the probabilities `cvtk predict` prints for it: for a
//! calibrated fine-tuned network and for an SVM, whose raw scores are logits
//! and decision values with their own temperatures.

use std::path::Path;

use crate::common::*;
use cvtk_core::ScoreKind;
use cvtk_dataset::ClassificationDataset;
use cvtk_eval::{write_report, ClassificationEvaluation, ReportImage, ReportOptions};
use cvtk_model::{load_classifier, Device};
use serde_json::Value;

/// The rows the report embeds for its results viewer: (file name, probabilities).
fn report_rows(html: &Path) -> Vec<(String, Vec<f64>)> {
    let html = std::fs::read_to_string(html).unwrap();
    let start = html.find(r#"<script type="application/json" id="data">"#).unwrap();
    let body = &html[start..];
    let json = &body[body.find('>').unwrap() + 1..body.find("</script>").unwrap()];
    let data: Value = serde_json::from_str(&json.replace("<\\/", "</")).unwrap();
    data["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let probs = r["probs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            (r["name"].as_str().unwrap().to_string(), probs)
        })
        .collect()
}

/// Writes the report as the main job does and compares it with `cvtk predict`.
fn report_agrees_with_predict(model_dir: &Path, test: &ClassificationDataset, out: &Path) -> ScoreKind {
    let model = load_classifier(model_dir, Device::Cpu).unwrap();
    let scores = model.score_dataset(test, 32).unwrap();
    let evaluation = ClassificationEvaluation::from_scores(&scores).unwrap();
    let images = test.images().iter().map(|i| ReportImage { id: i.id, path: i.path.clone(), overlay: None }).collect();
    let options =
        ReportOptions { title: "t".into(), model: model.describe(), images, history: None, max_thumbnails: 0 };
    let report = write_report(out, &evaluation, &options).unwrap();
    let rows = report_rows(&report.html);

    let paths: Vec<String> = test.images().iter().map(|i| i.path.to_str().unwrap().to_string()).collect();
    let mut args = vec!["predict", "--model", model_dir.to_str().unwrap(), "--device", "cpu", "--json", "--all"];
    args.extend(paths.iter().map(String::as_str));
    let predicted = json(&cvtk(&args));
    assert_eq!(rows.len(), paths.len());
    for ((name, shown), (path, p)) in rows.iter().zip(paths.iter().zip(predicted.as_array().unwrap())) {
        assert!(path.ends_with(name.as_str()), "row order: {name} vs {path}");
        let printed: Vec<f64> = p["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        for (a, b) in shown.iter().zip(&printed) {
            assert!((a - b).abs() < 1e-4, "{name}: the report shows {shown:?}, cvtk predict prints {printed:?}");
        }
        // And `predict`'s raw scores convert to those probabilities through their kind.
        let kind: ScoreKind = serde_json::from_value(p["raw_kind"].clone()).unwrap();
        let raw: Vec<f32> = p["raw"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        for (a, b) in kind.probabilities(&raw).iter().zip(&printed) {
            assert!((f64::from(*a) - b).abs() < 1e-4);
        }
    }
    assert_eq!(evaluation.score_kind(), scores.kind);
    scores.kind
}

#[test]
fn the_reports_confidences_are_what_predict_prints_for_a_network_and_an_svm() {
    let dir = tempfile::tempdir().unwrap();
    let (_, manifest) = split_colours_of(dir.path(), 12);
    let test = ClassificationDataset::from_manifest(&manifest).unwrap().test().unwrap();

    let dnn = dir.path().join("dnn");
    let trained = train_resnet18(&manifest, &dnn, 3, &["--calibrate", "--calibration-fraction", "0.34"]);
    let t = trained["calibration"]["temperature"].as_f64().expect("--calibrate fits a temperature");
    assert_eq!(trained["calibration"]["images"], 7, "18 - floor(0.66 * 18) training images held out");
    assert_eq!(trained["score_kind"], serde_json::json!({ "kind": "logits", "temperature": t }));
    let kind = report_agrees_with_predict(&dnn, &test, &dir.path().join("dnn-report"));
    assert_eq!(kind.temperature(), Some(t as f32));
    assert_ne!(t, 1.0, "the fitted temperature is used, not the plain softmax");

    let svm = dir.path().join("svm");
    let trained = train_svm(&manifest, &svm);
    assert_eq!(trained["score_kind"]["kind"], "decision");
    let kind = report_agrees_with_predict(&svm, &test, &dir.path().join("svm-report"));
    assert!(matches!(kind, ScoreKind::Decision { temperature } if temperature != 1.0), "{kind:?}");
}

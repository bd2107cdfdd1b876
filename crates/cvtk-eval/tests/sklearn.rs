//! Cross-check against scikit-learn 1.7: the same score matrices give the same
//! confusion matrix, accuracies, per-label precision/recall/F1, PR and ROC
//! curves (point by point), average precision and AUC, per label, micro and
//! macro, and (scores taken as logits) the same Brier score and expected
//! calibration error. Reference values: tests/reference/sklearn_metrics.py, run here.

use std::path::Path;
use std::process::Command;

use cvtk_core::ScoreKind;
use cvtk_eval::{ClassificationEvaluation, PrCurve, RocCurve};
use serde_json::Value;

fn python() -> std::path::PathBuf {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(py.is_file(), "{} missing: run `make test-setup` (scikit-learn goes into .venv)", py.display());
    py
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap_or(f64::INFINITY)).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a == b) || (a - b).abs() <= 1e-9 * (1.0 + b.abs())
}

fn same(name: &str, ours: &[f64], theirs: &[f64]) {
    assert_eq!(ours.len(), theirs.len(), "{name}: {} points vs scikit-learn's {}", ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!(close(*a, *b), "{name}[{i}]: {a} vs scikit-learn {b}");
    }
}

fn check_pr(name: &str, ours: Option<PrCurve>, theirs: &Value) {
    match (ours, theirs.is_null()) {
        (None, true) => {}
        (Some(p), false) => {
            same(&format!("{name} precision"), &p.precision, &floats(&theirs["precision"]));
            same(&format!("{name} recall"), &p.recall, &floats(&theirs["recall"]));
            same(&format!("{name} thresholds"), &p.thresholds, &floats(&theirs["thresholds"]));
            assert!(
                close(p.average_precision, theirs["ap"].as_f64().unwrap()),
                "{name} AP {} vs {}",
                p.average_precision,
                theirs["ap"]
            );
        }
        (o, _) => panic!("{name}: defined here {} but in scikit-learn {}", o.is_some(), !theirs.is_null()),
    }
}

fn check_roc(name: &str, ours: Option<RocCurve>, theirs: &Value) {
    match (ours, theirs.is_null()) {
        (None, true) => {}
        (Some(r), false) => {
            same(&format!("{name} fpr"), &r.fpr, &floats(&theirs["fpr"]));
            same(&format!("{name} tpr"), &r.tpr, &floats(&theirs["tpr"]));
            same(&format!("{name} thresholds"), &r.thresholds, &floats(&theirs["thresholds"]));
            assert!(close(r.auc, theirs["auc"].as_f64().unwrap()), "{name} AUC {} vs {}", r.auc, theirs["auc"]);
        }
        (o, _) => panic!("{name}: defined here {} but in scikit-learn {}", o.is_some(), !theirs.is_null()),
    }
}

#[test]
fn metrics_match_scikit_learn() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cases.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/sklearn_metrics.py");
    let run = Command::new(python()).arg(&script).arg(&out).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(cases.len(), 5);
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let k = c["k"].as_u64().unwrap() as usize;
        let y: Vec<usize> = c["y"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let s: Vec<Vec<f32>> =
            c["scores"].as_array().unwrap().iter().map(|r| floats(r).into_iter().map(|v| v as f32).collect()).collect();
        let e =
            ClassificationEvaluation::new((0..k).map(|i| format!("l{i}")).collect(), y, s, ScoreKind::LOGITS).unwrap();

        let cm: Vec<Vec<usize>> = serde_json::from_value(c["confusion"].clone()).unwrap();
        assert_eq!(e.confusion_matrix().counts, cm, "{name}: confusion matrix");
        assert!(close(e.accuracy(), c["accuracy"].as_f64().unwrap()), "{name}: accuracy");
        assert!(
            close(e.class_averaged_accuracy(), c["balanced_accuracy"].as_f64().unwrap()),
            "{name}: balanced accuracy {} vs {}",
            e.class_averaged_accuracy(),
            c["balanced_accuracy"]
        );
        let per = e.per_class();
        same(
            &format!("{name} precision"),
            &per.iter().map(|m| m.precision).collect::<Vec<_>>(),
            &floats(&c["precision"]),
        );
        same(&format!("{name} recall"), &per.iter().map(|m| m.recall).collect::<Vec<_>>(), &floats(&c["recall"]));
        same(&format!("{name} f1"), &per.iter().map(|m| m.f1).collect::<Vec<_>>(), &floats(&c["f1"]));
        let support: Vec<usize> = serde_json::from_value(c["support"].clone()).unwrap();
        assert_eq!(per.iter().map(|m| m.support).collect::<Vec<_>>(), support, "{name}: support");
        for l in 0..k {
            check_pr(&format!("{name} label {l} PR"), e.pr_curve(l), &c["per_label"][l]["pr"]);
            check_roc(&format!("{name} label {l} ROC"), e.roc_curve(l), &c["per_label"][l]["roc"]);
        }
        check_pr(&format!("{name} micro PR"), e.micro_pr_curve(), &c["micro_pr"]);
        check_roc(&format!("{name} micro ROC"), e.micro_roc_curve(), &c["micro_roc"]);
        let opt = |v: &Value| v.as_f64();
        match (e.macro_average_precision(), opt(&c["macro_ap"])) {
            (Some(a), Some(b)) => assert!(close(a, b), "{name}: macro AP {a} vs {b}"),
            (a, b) => assert_eq!(a.is_some(), b.is_some(), "{name}: macro AP"),
        }
        match (e.macro_auc(), opt(&c["macro_auc"])) {
            (Some(a), Some(b)) => assert!(close(a, b), "{name}: macro AUC {a} vs {b}"),
            (a, b) => assert_eq!(a.is_some(), b.is_some(), "{name}: macro AUC"),
        }
        let (brier, ece) = (c["brier"].as_f64().unwrap(), c["ece"].as_f64().unwrap());
        assert!(close(e.brier_score(), brier), "{name}: Brier {} vs scikit-learn {brier}", e.brier_score());
        assert!(
            close(e.expected_calibration_error(), ece),
            "{name}: ECE {} vs the reference {ece}",
            e.expected_calibration_error()
        );
    }
}

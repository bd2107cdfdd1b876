//! The HTML report in headless Chromium (tests/browser/report.test.mjs): no
//! console errors, no network requests, the filter, sort and threshold slider
//! work, the slider starts at the threshold with the best F1, the calibration
//! figures are shown, and a screenshot is written to
//! target/screenshots/report.png.
//! Needs `make test-setup` (Debian's chromium and tests/browser/node_modules); fails
//! loudly without them.

use crate::browser::run_browser_test;
use cvtk_core::ScoreKind;
use cvtk_eval::{write_report, ClassificationEvaluation, ReportImage, ReportOptions};
use serde_json::json;

/// Images kept and true positives of `label` at threshold `t`, and its positives.
fn counts(e: &ClassificationEvaluation, label: usize, t: f64) -> (usize, usize, usize) {
    let conf = e.confidences();
    let kept: Vec<usize> = (0..conf.len()).filter(|&i| f64::from(conf[i][label]) >= t).collect();
    let tp = kept.iter().filter(|&&i| e.y_true()[i] == label).count();
    let pos = e.y_true().iter().filter(|&&y| y == label).count();
    (kept.len(), tp, pos)
}

fn explorer(e: &ClassificationEvaluation, label: usize, t: f64) -> serde_json::Value {
    let (kept, tp, pos) = counts(e, label, t);
    let fmt =
        |num: usize, den: usize| if den == 0 { "n/a".to_string() } else { format!("{:.3}", num as f64 / den as f64) };
    json!({ "precision": fmt(tp, kept), "recall": fmt(tp, pos), "kept": kept })
}

/// The highest of the slider's thresholds (0.00..1.00 by 0.01) with the best F1.
fn best_threshold(e: &ClassificationEvaluation, label: usize) -> f64 {
    let f1 = |t: f64| {
        let (kept, tp, pos) = counts(e, label, t);
        if tp == 0 {
            return 0.0;
        }
        let (p, r) = (tp as f64 / kept as f64, tp as f64 / pos as f64);
        2.0 * p * r / (p + r)
    };
    let mut best = (0.5, -1.0);
    for i in (0..=100).rev() {
        let t = f64::from(i) / 100.0;
        if f1(t) > best.1 {
            best = (t, f1(t));
        }
    }
    best.0
}

#[test]
fn the_report_works_in_headless_chromium() {
    // 40 images of 3 labels; scores depend on the index so some are wrong.
    let labels: Vec<String> = ["bowl", "cup", "plate"].iter().map(|s| s.to_string()).collect();
    let dir = tempfile::tempdir().unwrap();
    let (mut y, mut s, mut images) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..40usize {
        let t = i % 3;
        let mut row = vec![0.0f32; 3];
        row[t] = 1.0 + (i % 5) as f32 * 0.6;
        row[(t + 1 + i % 2) % 3] = if i % 4 == 0 { 2.5 } else { 0.4 + (i % 3) as f32 * 0.3 };
        y.push(t);
        s.push(row);
        let p = dir.path().join(format!("{}_{i}.png", labels[t]));
        let mut px = [40u8, 40, 40];
        px[t] = 220;
        image::RgbImage::from_pixel(48, 36, image::Rgb(px)).save(&p).unwrap();
        // Every other image has an overlay (a map's picture), as a model with maps gives.
        let overlay = (i % 2 == 0).then(|| {
            let mut jpeg = std::io::Cursor::new(Vec::new());
            image::RgbImage::from_pixel(48, 36, image::Rgb([250, 30, 20]))
                .write_to(&mut jpeg, image::ImageFormat::Jpeg)
                .unwrap();
            jpeg.into_inner()
        });
        images.push(ReportImage { id: i as u64, path: p, overlay });
    }
    let e = ClassificationEvaluation::new(labels, y, s, ScoreKind::LOGITS).unwrap();
    let options = ReportOptions {
        title: "Browser test".into(),
        model: "test scores".into(),
        images,
        history: Some((vec![0.6, 0.8, 0.9], vec![0.5, 0.7, 0.75])),
        max_thumbnails: 0,
    };
    let files = write_report(&dir.path().join("report"), &e, &options).unwrap();

    let wrong = e.y_true().iter().zip(e.y_pred()).filter(|(t, p)| t != p).count();
    assert!(wrong > 0 && wrong < 40);
    let best = best_threshold(&e, 0);
    let expect = json!({
        "total": 40,
        "wrong": wrong,
        "at050": explorer(&e, 0, 0.5),
        "at090": explorer(&e, 0, 0.9),
        "best": format!("{best:.2}"),
        "atbest": explorer(&e, 0, best),
        "ece": format!("{:.3}", e.expected_calibration_error()),
        // The gallery: ids of the highest losses, highest first, and which have maps.
        "top_losses": e.top_losses(cvtk_eval::TOP_LOSSES).iter().map(|&i| i as u64).collect::<Vec<_>>(),
        "confused": e.most_confused().iter().map(|&(t, p, n)| json!([e.labels()[t], e.labels()[p], n])).collect::<Vec<_>>(),
    });
    assert_eq!(expect["top_losses"].as_array().unwrap().len(), cvtk_eval::TOP_LOSSES);
    assert!(expect["confused"].as_array().unwrap().len() >= 2, "several confused pairs to list");
    assert_ne!(expect["at050"], expect["at090"], "the two thresholds should keep different images");
    assert_ne!(expect["atbest"]["kept"], json!(0), "the starting threshold keeps images");
    let expect = expect.to_string();
    let (_, shot) = run_browser_test(
        "report.test.mjs",
        "report.png",
        &[("CVTK_REPORT", files.html.as_os_str()), ("CVTK_EXPECT", expect.as_ref())],
    );
    let shot = image::open(shot).unwrap();
    assert!(shot.height() > 1000, "a full-page screenshot");
}

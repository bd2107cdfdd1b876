//! Plots and the HTML report are written, well-formed and self-contained.

use cvtk_eval::plots::{
    graph_confusion_matrix, graph_pr_curve, graph_reliability_diagram, graph_roc_curve, graph_training_curves, Target,
};
use cvtk_eval::{write_report, ClassificationEvaluation, ReportImage, ReportOptions};

/// 3 labels, 30 images, a decent but imperfect classifier (deterministic).
fn evaluation() -> ClassificationEvaluation {
    let labels = vec!["T-shirt_top".to_string(), "Trouser".to_string(), "Sneaker".to_string()];
    let mut y = Vec::new();
    let mut s = Vec::new();
    for i in 0..30usize {
        let t = i % 3;
        let mut row = vec![0.1f32 * ((i * 7) % 5) as f32; 3];
        row[t] += if i % 7 == 0 { 0.0 } else { 1.0 + (i % 4) as f32 * 0.3 };
        row[(t + 1) % 3] += if i % 7 == 0 { 0.8 } else { 0.2 };
        y.push(t);
        s.push(row);
    }
    ClassificationEvaluation::new(labels, y, s, cvtk_core::ScoreKind::LOGITS).unwrap()
}

#[test]
fn plots_are_written_as_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let e = evaluation();
    for ext in ["png", "svg"] {
        graph_roc_curve(&e, Target::File(&dir.path().join(format!("roc.{ext}")))).unwrap();
        graph_pr_curve(&e, Target::File(&dir.path().join(format!("pr.{ext}")))).unwrap();
        graph_confusion_matrix(&e, Target::File(&dir.path().join(format!("cm.{ext}")))).unwrap();
        graph_reliability_diagram(&e, Target::File(&dir.path().join(format!("rel.{ext}")))).unwrap();
        graph_training_curves(
            &[0.5, 0.8, 0.9],
            &[0.4, 0.7, 0.85],
            Target::File(&dir.path().join(format!("train.{ext}"))),
        )
        .unwrap();
    }
    let png = image::open(dir.path().join("roc.png")).unwrap().to_rgb8();
    assert_eq!(png.dimensions(), (760, 600));
    let dark = png.pixels().filter(|p| p[0] < 100 && p[1] < 100 && p[2] < 100).count();
    assert!(dark > 2000, "axes, text and curves are drawn ({dark} dark pixels)");
    let svg = std::fs::read_to_string(dir.path().join("cm.svg")).unwrap();
    assert!(svg.contains("Confusion matrix") && svg.contains("Sneaker") && svg.contains("predicted label"));
    let svg = std::fs::read_to_string(dir.path().join("roc.svg")).unwrap();
    assert!(svg.contains("micro-average (AUC") && svg.contains("false positive rate"));
    let svg = std::fs::read_to_string(dir.path().join("rel.svg")).unwrap();
    let ece = format!("Reliability diagram (ECE {:.3})", e.expected_calibration_error());
    assert!(svg.contains(&ece) && svg.contains("perfect calibration"), "{ece}");
    let e2 = graph_roc_curve(&e, Target::File(&dir.path().join("roc.gif"))).unwrap_err();
    assert!(e2.to_string().contains(".png or .svg"));
}

#[test]
fn the_report_is_one_self_contained_page() {
    let dir = tempfile::tempdir().unwrap();
    let e = evaluation();
    let imgs: Vec<ReportImage> = (0..30)
        .map(|i| {
            let p = dir.path().join(format!("img{i}.png"));
            image::RgbImage::from_pixel(40, 30, image::Rgb([i as u8 * 8, 100, 200])).save(&p).unwrap();
            ReportImage { id: i, path: p, overlay: None }
        })
        .collect();
    let opts = ReportOptions {
        title: "Fashion <test>".into(),
        model: "efficientnet-lite0".into(),
        images: imgs,
        history: Some((vec![0.5, 0.9], vec![0.4, 0.8])),
        max_thumbnails: 0,
    };
    let files = write_report(&dir.path().join("report"), &e, &opts).unwrap();
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.contains("Fashion &lt;test&gt;"), "title is escaped");
    assert!(html.contains("data:image/jpeg;base64,"), "thumbnails are inline");
    assert_eq!(html.matches("<svg").count(), 5, "five inline plots");
    assert!(
        html.contains("the softmax of the network's logits (not calibrated)"),
        "the report says what its confidences are"
    );
    // Nothing is fetched: the only URLs are XML namespace names, every src is a data: URI.
    let without_ns = html
        .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
        .replace("xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "");
    assert!(!without_ns.contains("http:") && !without_ns.contains("https:"), "the report refers to the network");
    // (the one template `src="${src}"` is filled with the data: URIs of a row's thumbnail or overlay)
    assert!(
        html.match_indices("src=\"")
            .all(|(i, _)| html[i + 5..].starts_with("data:") || html[i + 5..].starts_with("${src}")),
        "a src that is not inline"
    );
    assert_eq!(files.plots.len(), 10);
    assert!(files.plots.iter().all(|p| p.is_file()));
}

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

/// The mean absolute difference of two same-sized pictures' channels.
fn mean_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    sum as f64 / a.as_raw().len() as f64
}

/// The service started by `cvtk serve` on a free port, killed when dropped.
struct Served(std::process::Child, String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(model: &Path, dir: &Path) -> Served {
    let addr = dir.join("addr");
    let mut served = Served(
        std::process::Command::new(env!("CARGO_BIN_EXE_cvtk"))
            .args(["serve", "--model", model.to_str().unwrap(), "--port", "0"])
            .args(["--addr-file", addr.to_str().unwrap()])
            .env("CVTK_SERVICE_KEY", "explain-test-key-0123456789")
            .env("RUST_LOG", "error")
            .spawn()
            .unwrap(),
        String::new(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok(url) = std::fs::read_to_string(&addr) {
            if reqwest::blocking::get(format!("{url}/ready")).is_ok_and(|r| r.status().is_success()) {
                served.1 = url;
                return served;
            }
        }
        assert!(served.0.try_wait().unwrap().is_none(), "cvtk serve exited");
        assert!(std::time::Instant::now() < deadline, "cvtk serve did not get ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// One image's map as `cvtk explain`, the evaluation report, the annotation
/// page and the service's `/explain` show it: the same overlay, the same
/// numbers.
#[test]
fn the_command_the_report_the_annotation_page_and_the_service_show_the_same_map() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let (_, manifest) = split_colours(dir.path());
    let model = dir.path().join("svm");
    train_svm(&manifest, &model);
    let ds = cvtk_dataset::ClassificationDataset::open(&manifest).unwrap();
    let test = ds.test().unwrap();
    let image = &test.images()[0];

    // 1. cvtk explain.
    let out = dir.path().join("explained");
    let rows = json(&explain(&model, &[&image.path], &out, &[]));
    let ours = image::open(rows[0]["overlay"].as_str().unwrap()).unwrap().to_rgb8();
    let map: Vec<f64> = rows[0]["map"]["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();

    // 2. The report: the card's overlay (a JPEG of the image at its own
    // 32 pixels, never enlarged) is the same picture.
    let report = dir.path().join("report");
    let m = model.to_str().unwrap();
    json(&cvtk(&[
        "evaluate",
        manifest.to_str().unwrap(),
        "--model",
        m,
        "--report",
        report.to_str().unwrap(),
        "--json",
    ]));
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    let data = &html[html.find("id=\"data\">").unwrap() + 10..];
    let data: serde_json::Value = serde_json::from_str(&data[..data.find("</script>").unwrap()]).unwrap();
    let row = data["rows"].as_array().unwrap().iter().find(|r| r["id"] == image.id).expect("the image's card");
    let url = row["overlay"].as_str().expect("the card has the map");
    let jpeg =
        base64::engine::general_purpose::STANDARD.decode(url.trim_start_matches("data:image/jpeg;base64,")).unwrap();
    let card = image::load_from_memory(&jpeg).unwrap().to_rgb8();
    let d = mean_diff(&card, &ours);
    assert!(d < 6.0, "the report's map differs from cvtk explain's by {d} per channel on average");
    assert!(
        data["top_losses"].as_array().unwrap().len() == test.len(),
        "every test image is among the top losses here"
    );

    // 3. The annotation page's large view: the very same PNG.
    let (_server, page) = crate::annotate::annotate(&[manifest.to_str().unwrap(), "--model", m]);
    let view: serde_json::Value = reqwest::blocking::get(format!("{page}api/dataset")).unwrap().json().unwrap();
    assert_eq!(view["has_maps"], true);
    let png = reqwest::blocking::get(format!("{page}api/images/{}/explain", image.id)).unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    let shown = image::load_from_memory(&png.bytes().unwrap()).unwrap().to_rgb8();
    assert_eq!(mean_diff(&shown, &ours), 0.0, "the page's map is cvtk explain's");
    // In the browser: `m` on the large view (tests/browser/annotate_maps.test.mjs).
    let (_, shot) = crate::browser::run_browser_test(
        "annotate_maps.test.mjs",
        "annotate_maps.png",
        &[("CVTK_ANNOTATE_URL", std::ffi::OsStr::new(&page))],
    );
    assert!(shot.is_file());

    // 4. The service: the same numbers, and its overlay (over the image as
    // the model took it, 64 pixels) has its hottest part in the same cell.
    let served = serve(&model, dir.path());
    let answer: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("{}/explain", served.1))
        .bearer_auth("explain-test-key-0123456789")
        .header("content-type", "image/png")
        .body(std::fs::read(&image.path).unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let r = &answer["results"][0];
    assert_eq!(r["label"], rows[0]["label"]);
    let theirs: Vec<f64> = r["map"]["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(map.iter().zip(&theirs).all(|(a, b)| (a - b).abs() < 1e-4), "{map:?} vs {theirs:?}");
    let overlay = base64::engine::general_purpose::STANDARD.decode(r["overlay_png_base64"].as_str().unwrap()).unwrap();
    let overlay = image::load_from_memory(&overlay).unwrap().to_rgb8();
    assert_eq!(overlay.height(), 64, "over the image as the model took it");
    // Its picture, brought to the image's own 32 pixels, is cvtk explain's.
    let area = |img: &image::RgbImage, side: u32| image::imageops::crop_imm(img, 0, 0, side, side).to_image();
    let small = image::imageops::resize(&area(&overlay, 64), 32, 32, image::imageops::FilterType::Triangle);
    let d = mean_diff(&small, &area(&ours, 32));
    assert!(d < 12.0, "the service's map differs from cvtk explain's by {d} per channel on average");
}

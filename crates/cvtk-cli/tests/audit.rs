//! `cvtk audit` end to end on real MNIST digits with planted problems:
//! label errors (pretrained EfficientNet-Lite0 features, cross-fitted linear
//! models, confident learning) are found with their true labels suggested;
//! an exact copy across the split is a leak, a resized JPEG copy a near
//! duplicate, a photo among the digits an outlier, a darkened digit dark; a
//! folder of one label or too few images is a clear error. Needs `make
//! test-setup` (the mnist-5k sample data and the Lite0 weights).

use std::path::Path;

use serde_json::Value;

use crate::browser::run_browser_test;
use crate::common::{cvtk, cvtk_in, json, mnist_digits, skimage_photo, train_small_cnn};
use cvtk_dataset::ClassificationDataset;

#[test]
fn planted_label_errors_in_real_digits_are_found_with_their_true_labels() {
    let dir = tempfile::tempdir().unwrap();
    let digits = mnist_digits(dir.path(), "0,1,3,7", 40);
    let d = digits.to_str().unwrap();
    // Eight digits (5%) moved into a wrong label's folder.
    let planted = [
        ("0/0_00002.png", "7"),
        ("0/0_00011.png", "3"),
        ("1/1_00004.png", "0"),
        ("1/1_00017.png", "3"),
        ("3/3_00006.png", "1"),
        ("3/3_00021.png", "7"),
        ("7/7_00009.png", "0"),
        ("7/7_00030.png", "1"),
    ];
    for (from, to) in planted {
        let name = Path::new(from).file_name().unwrap();
        std::fs::rename(digits.join(from), digits.join(to).join(name)).unwrap();
    }

    // CVTK_HOME in the test's folder: the feature cache goes there.
    let home = dir.path().join("home");
    let out = json(&cvtk_in(&home, &["audit", d, "--device", "cpu", "--json"]));
    assert_eq!(out["images"], 160);
    assert_eq!(out["features"], serde_json::json!({ "reused": 0, "computed": 160 }));
    assert_eq!(out["folds"], 5);
    let counts: Vec<u64> = out["labels"].as_array().unwrap().iter().map(|l| l["images"].as_u64().unwrap()).collect();
    assert_eq!(counts.iter().sum::<u64>(), 160, "{counts:?}");
    let issues = out["label_issues"].as_array().unwrap();
    let found: Vec<(String, String, String)> = issues
        .iter()
        .map(|i| {
            let name = Path::new(i["path"].as_str().unwrap()).file_name().unwrap().to_str().unwrap().to_string();
            (name, i["given"].as_str().unwrap().to_string(), i["suggested"].as_str().unwrap().to_string())
        })
        .collect();
    // Found: at least 6 of the 8 (6 with Lite0's ImageNet features on these
    // 28-pixel digits), each with its true label suggested.
    let mut hits = 0;
    for (from, to) in planted {
        let (truly, name) = from.split_once('/').unwrap();
        if let Some((_, given, suggested)) = found.iter().find(|(n, _, _)| n == name) {
            assert_eq!((given.as_str(), suggested.as_str()), (to, truly), "{name}");
            hits += 1;
        }
    }
    assert!(hits >= 6, "{hits} of 8 planted errors found; flagged: {found:?}");
    // Few false alarms (here 1s and 7s that look alike): at most as many as
    // there are planted errors.
    assert!(found.len() - hits <= 8, "{} flagged for 8 planted: {found:?}", found.len());
    // Worst first, probabilities in range.
    let quality: Vec<f64> = issues.iter().map(|i| i["quality"].as_f64().unwrap()).collect();
    assert!(quality.windows(2).all(|w| w[0] <= w[1]), "{quality:?}");
    assert!(issues.iter().all(|i| (0.0..=1.0).contains(&i["suggested_probability"].as_f64().unwrap())));

    // A second audit featurizes nothing and finds the same; a changed image
    // is featurized anew.
    let again = json(&cvtk_in(&home, &["audit", d, "--device", "cpu", "--json"]));
    assert_eq!(again["features"], serde_json::json!({ "reused": 160, "computed": 0 }));
    assert_eq!(again["label_issues"], out["label_issues"]);
    let changed = digits.join("1/1_00001.png");
    image::open(&changed).unwrap().fliph().save(&changed).unwrap();
    let third = json(&cvtk_in(&home, &["audit", d, "--device", "cpu", "--json"]));
    assert_eq!(third["features"], serde_json::json!({ "reused": 159, "computed": 1 }));
    // Another input size is another featurizer: nothing reused.
    let resized = json(&cvtk_in(&home, &["audit", d, "--device", "cpu", "--json", "--image-size", "160"]));
    assert_eq!(resized["features"], serde_json::json!({ "reused": 0, "computed": 160 }));
    let fresh = json(&cvtk_in(&home, &["audit", d, "--device", "cpu", "--json", "--no-cache"]));
    assert_eq!(fresh["features"], serde_json::json!({ "reused": 0, "computed": 160 }));

    // Featurized in two shards (as on two machines), then audited with the
    // shards' files gathered: nothing featurized again, the same findings,
    // and the manifest untouched by the shards.
    let shards = dir.path().join("shards");
    let manifest = dir.path().join("digits.json");
    let before = std::fs::read(&manifest).unwrap();
    let mut parts = Vec::new();
    for k in 0..2 {
        let shard = format!("{k}/2");
        let part = json(&cvtk_in(
            &home,
            &[
                "audit",
                manifest.to_str().unwrap(),
                "--device",
                "cpu",
                "--json",
                "--shard",
                &shard,
                "--cache-dir",
                shards.to_str().unwrap(),
            ],
        ));
        assert_eq!(part["features"]["reused"], 0, "{part}");
        assert!(part["file"].as_str().unwrap().ends_with(&format!(".shard-{k}-of-2.features")), "{part}");
        parts.push(part["features"]["computed"].as_u64().unwrap());
    }
    assert_eq!(parts.iter().sum::<u64>(), 160, "{parts:?}");
    assert!(parts.iter().all(|&p| p > 40), "uneven shards: {parts:?}");
    assert_eq!(std::fs::read(&manifest).unwrap(), before, "a shard wrote the manifest");
    let merged =
        json(&cvtk_in(&home, &["audit", d, "--device", "cpu", "--json", "--cache-dir", shards.to_str().unwrap()]));
    assert_eq!(merged["features"], serde_json::json!({ "reused": 160, "computed": 0 }));
    assert_eq!(merged["label_issues"], fresh["label_issues"]);
    // Shard 1/2 missing from the folder: said, and its images featurized.
    let half = dir.path().join("half");
    std::fs::create_dir_all(&half).unwrap();
    for entry in std::fs::read_dir(&shards).unwrap() {
        let path = entry.unwrap().path();
        if path.to_str().unwrap().ends_with(".shard-0-of-2.features") {
            std::fs::copy(&path, half.join(path.file_name().unwrap())).unwrap();
        }
    }
    // (With warnings shown: the tests' cvtk_in shows errors only.)
    let partial = std::process::Command::new(env!("CARGO_BIN_EXE_cvtk"))
        .args(["audit", d, "--device", "cpu", "--json", "--cache-dir", half.to_str().unwrap()])
        .env("CVTK_HOME", &home)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&partial.stderr).contains("shard 1/2 missing"), "{partial:?}");
    assert_eq!(json(&partial)["features"]["computed"], parts[1]);
    // Bad shards, a shard without a cache folder, a shard of a folder: clear errors.
    let e = cvtk_in(&home, &["audit", d, "--shard", "2/2", "--cache-dir", "x"]);
    assert_eq!(e.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&e.stderr).contains("is not K/N"), "{e:?}");
    let e = cvtk_in(&home, &["audit", manifest.to_str().unwrap(), "--shard", "0/2"]);
    assert_eq!(e.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&e.stderr).contains("--cache-dir"), "{e:?}");
    let e = cvtk_in(&home, &["audit", d, "--shard", "0/2", "--cache-dir", "x"]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("needs the dataset's manifest"), "{e:?}");

    // The text output names them and says how to fix them.
    let text = cvtk_in(&home, &["audit", d, "--device", "cpu", "--show", "3"]);
    assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("160 images, 4 labels") && text.contains("label issues"), "{text}");
    assert!(text.contains("cvtk annotate"), "{text}");

    // Too few images for the folds, and one label: clear errors, exit 1.
    let small = dir.path().join("small");
    for label in ["a", "b"] {
        std::fs::create_dir_all(small.join(label)).unwrap();
        image::RgbImage::new(8, 8).save(small.join(label).join("x.png")).unwrap();
    }
    let e = cvtk_in(&home, &["audit", small.to_str().unwrap(), "--device", "cpu"]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("2 images are too few for 5 folds"), "{e:?}");
    std::fs::remove_dir_all(small.join("b")).unwrap();
    let e = cvtk_in(&home, &["audit", small.to_str().unwrap(), "--device", "cpu"]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("two or more"), "{e:?}");
}

/// The file names of a finding's images.
fn names(images: &[Value]) -> Vec<String> {
    images
        .iter()
        .map(|i| Path::new(i["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn copies_leaks_outliers_and_dark_images_among_real_digits_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let digits = mnist_digits(dir.path(), "0,1,3,7", 40);
    // An exact copy under another name, a copy resized to 40 pixels and
    // re-encoded as JPEG, a digit at a fifth of its brightness, a photo.
    std::fs::copy(digits.join("0/0_00005.png"), digits.join("0/copy_of_0_00005.png")).unwrap();
    let three = image::open(digits.join("3/3_00008.png")).unwrap().to_rgb8();
    image::imageops::resize(&three, 40, 40, image::imageops::FilterType::Triangle)
        .save(digits.join("3/resized_3_00008.jpg"))
        .unwrap();
    let mut dark = image::open(digits.join("7/7_00003.png")).unwrap().to_luma8();
    dark.pixels_mut().for_each(|p| p.0[0] /= 5);
    dark.save(digits.join("7/dark_7_00003.png")).unwrap();
    // And a planted label error, for the page to fix.
    std::fs::rename(digits.join("7/7_00009.png"), digits.join("1/7_00009.png")).unwrap();
    let photo = skimage_photo("astronaut.png").expect("scikit-image's photos: run `make test-setup`");
    image::open(photo)
        .unwrap()
        .resize_exact(28, 28, image::imageops::FilterType::Triangle)
        .save(digits.join("1/astronaut.png"))
        .unwrap();

    // A split, then the exact copy moved to the other side of its original.
    let manifest = dir.path().join("digits.json");
    let m = manifest.to_str().unwrap();
    let split = cvtk(&["dataset", "split", digits.to_str().unwrap(), "--stratify", "--out", m, "--json"]);
    assert!(split.status.success(), "{}", String::from_utf8_lossy(&split.stderr));
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let id = |name: &str| doc["images"].as_array().unwrap().iter().find(|i| i["name"] == name).unwrap()["id"].clone();
    let (original, copy) = (id("0_00005.png"), id("copy_of_0_00005.png"));
    for (part, keep, other) in [("train", &original, &copy), ("test", &copy, &original)] {
        let ids = doc["split"][part].as_array_mut().unwrap();
        ids.retain(|i| i != other);
        if !ids.contains(keep) {
            ids.push(keep.clone());
        }
    }
    std::fs::write(&manifest, serde_json::to_vec(&doc).unwrap()).unwrap();

    let home = dir.path().join("home");
    let report = dir.path().join("report");
    let out = json(&cvtk_in(&home, &["audit", m, "--device", "cpu", "--json", "--report", report.to_str().unwrap()]));
    assert_eq!(out["images"], 164);
    assert_eq!(out["report"], report.join("audit.html").to_str().unwrap());
    let sets = out["duplicates"].as_array().unwrap();
    let with = |name: &str| sets.iter().find(|s| names(s["images"].as_array().unwrap()).contains(&name.to_string()));
    let exact = with("copy_of_0_00005.png").expect("the exact copy is in no duplicate set");
    assert!(names(exact["images"].as_array().unwrap()).contains(&"0_00005.png".to_string()), "{exact}");
    assert_eq!(exact["leak"], true, "an original in train and its copy in test: {exact}");
    let parts: Vec<&str> = exact["images"].as_array().unwrap().iter().map(|i| i["part"].as_str().unwrap()).collect();
    assert!(parts.contains(&"train") && parts.contains(&"test"), "{parts:?}");
    let near = with("resized_3_00008.jpg").expect("the resized JPEG copy is in no duplicate set");
    assert!(names(near["images"].as_array().unwrap()).contains(&"3_00008.png".to_string()), "{near}");
    assert_eq!(near["exact"], false);
    // Lookalike digits may form sets too, but few: most digits are in none.
    let in_sets: usize = sets.iter().map(|s| s["images"].as_array().unwrap().len()).sum();
    assert!(in_sets <= 12, "{in_sets} of 164 digits in duplicate sets: {sets:?}");

    let outliers = names(out["outliers"].as_array().unwrap());
    assert_eq!(outliers.first().map(String::as_str), Some("astronaut.png"), "the photo is the farthest: {outliers:?}");
    assert!(outliers.len() <= 12, "{outliers:?}");

    let quality = out["quality"].as_array().unwrap();
    let dark = quality.iter().find(|q| q["path"].as_str().unwrap().ends_with("dark_7_00003.png")).expect("not dark");
    assert!(dark["issues"].as_array().unwrap().contains(&Value::from("dark")), "{dark}");
    assert!(dark["scores"]["dark"].as_f64().unwrap() < 0.32);
    // Every MNIST digit is "low information" by CleanVision's measure: a trait
    // of the dataset, counted once.
    let common = out["common_quality"].as_array().unwrap();
    assert!(common.iter().any(|c| c["issue"] == "low_information" && c["images"].as_u64().unwrap() > 82), "{common:?}");
    assert!(!quality.iter().any(|q| q["issues"].as_array().unwrap().contains(&Value::from("low_information"))));

    let text = cvtk_in(&home, &["audit", m, "--device", "cpu", "--show", "50"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("LEAK (train and test)") && text.contains("astronaut.png"), "{text}");
    assert!(text.contains("--keep-duplicates-together"), "no hint to fix the leak: {text}");

    // The report in a browser: the same counts as --json.
    let expect = dir.path().join("audit.json");
    std::fs::write(&expect, serde_json::to_vec(&out).unwrap()).unwrap();
    let page = report.join("audit.html");
    let (_, shot) = run_browser_test(
        "audit_report.test.mjs",
        "audit_report.png",
        &[("CVTK_REPORT", page.as_os_str()), ("CVTK_EXPECT", expect.as_os_str())],
    );
    assert!(shot.is_file());

    // The findings are in the manifest, labels untouched.
    let ds = ClassificationDataset::from_manifest(&manifest).unwrap();
    let findings = ds.findings().expect("no findings recorded in the manifest");
    assert_eq!(findings.audited_images, 164);
    assert_eq!(findings.duplicate_sets.len(), sets.len());
    let planted = ds.images().iter().find(|i| i.name == "7_00009.png").unwrap();
    assert_eq!(ds.labels()[planted.label()].name, "1", "the audit changed a label");

    // A split that keeps every duplicate set on one side, sizes kept.
    let resplit = dir.path().join("resplit.json");
    let r = json(&cvtk(&[
        "dataset",
        "split",
        m,
        "--out",
        resplit.to_str().unwrap(),
        "--stratify",
        "--keep-duplicates-together",
        "--json",
    ]));
    assert!(r["duplicate_sets_kept_together"]["moved"].as_u64().unwrap() >= 1, "{r}");
    let again = ClassificationDataset::from_manifest(&resplit).unwrap();
    let split = again.split_info().unwrap();
    assert_eq!(split.train.len(), ds.split(0.66, true, 0).unwrap().train.len(), "the sizes of the parts changed");
    for set in &again.findings().unwrap().duplicate_sets {
        let train = set.ids.iter().filter(|id| split.train.contains(id)).count();
        assert!(train == 0 || train == set.ids.len(), "set {:?} is on both sides", set.ids);
    }
    let e = cvtk(&[
        "dataset",
        "split",
        digits.to_str().unwrap(),
        "--out",
        dir.path().join("x.json").to_str().unwrap(),
        "--keep-duplicates-together",
    ]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("run `cvtk audit"), "{e:?}");

    // The fix loop in the annotation page: a suggestion accepted, extra copies excluded.
    let (_server, url) = crate::annotate::annotate(&[m]);
    let (log, shot) = run_browser_test(
        "audit_fixes.test.mjs",
        "audit_fixes.png",
        &[("CVTK_ANNOTATE_URL", url.as_ref()), ("CVTK_MANIFEST", manifest.as_os_str())],
    );
    assert!(shot.is_file());
    let line = log.lines().find_map(|l| l.trim().strip_prefix("RESULT ")).expect("the browser test prints RESULT");
    let r: Value = serde_json::from_str(line).unwrap();
    let ds = ClassificationDataset::from_manifest(&manifest).unwrap();
    let accepted = ds.any_image(r["accepted"]["id"].as_u64().unwrap()).unwrap();
    assert_eq!(ds.labels()[accepted.label()].name, r["accepted"]["label"].as_str().unwrap());
    for id in r["excluded"].as_array().unwrap() {
        assert_eq!(ds.is_excluded(id.as_u64().unwrap()), Some(true), "{r}");
    }
    assert_eq!(ds.is_excluded(r["kept"].as_u64().unwrap()), Some(false));
    // Audited again, the accepted image is no label issue and the excluded copies are not audited.
    let after = json(&cvtk_in(&home, &["audit", m, "--device", "cpu", "--json"]));
    let excluded = r["excluded"].as_array().unwrap().len() as u64;
    assert_eq!(after["images"].as_u64().unwrap(), 164 - excluded);
    assert!(!after["label_issues"].as_array().unwrap().iter().any(|i| i["id"] == r["accepted"]["id"]), "{after}");

    // With --model, the features are those of a trained model's network (another cache entry).
    let model = dir.path().join("cnn");
    train_small_cnn(&manifest, &model, 2, &[]);
    let with_model =
        json(&cvtk_in(&home, &["audit", m, "--device", "cpu", "--json", "--model", model.to_str().unwrap()]));
    assert!(
        with_model["base_model"].as_str().unwrap().starts_with("the small-cnn of "),
        "{}",
        with_model["base_model"]
    );
    assert_eq!(
        with_model["features"]["computed"], with_model["images"],
        "a trained network's features came from the cache"
    );
    let e = cvtk_in(&home, &["audit", m, "--model", model.to_str().unwrap(), "--base-model", "resnet18"]);
    assert_eq!(e.status.code(), Some(2), "{e:?}");
}

#[test]
fn identical_images_a_label_of_one_image_and_a_kill_give_findings_or_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // Twelve identical images under two labels.
    let same = dir.path().join("same");
    for (label, n) in [("a", 6), ("b", 6)] {
        std::fs::create_dir_all(same.join(label)).unwrap();
        for i in 0..n {
            image::RgbImage::from_pixel(32, 32, image::Rgb([90, 120, 150]))
                .save(same.join(label).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let out = cvtk_in(&home, &["audit", same.to_str().unwrap(), "--device", "cpu", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = json(&out);
    let sets = out["duplicates"].as_array().unwrap();
    assert_eq!(sets.len(), 1, "one set of twelve exact copies: {sets:?}");
    assert_eq!((sets[0]["exact"].clone(), sets[0]["images"].as_array().unwrap().len()), (Value::from(true), 12));
    assert_eq!(out["outliers"].as_array().unwrap().len(), 0, "no image is farther than the others");

    // A label of one image among real digits: flagged too few, the rest audited.
    let digits = mnist_digits(dir.path(), "0,1", 12);
    std::fs::create_dir_all(digits.join("7")).unwrap();
    std::fs::rename(digits.join("1/1_00003.png"), digits.join("7/1_00003.png")).unwrap();
    let out = json(&cvtk_in(&home, &["audit", digits.to_str().unwrap(), "--device", "cpu", "--json"]));
    let seven = out["labels"].as_array().unwrap().iter().find(|l| l["label"] == "7").unwrap().clone();
    assert_eq!(
        (seven["images"].clone(), seven["too_few"].clone(), seven["small"].clone()),
        (Value::from(1), Value::from(true), Value::from(true))
    );

    // Killed at any moment, an audit leaves a whole manifest, its labels as they were.
    let manifest = dir.path().join("digits.json");
    let labels =
        |ds: &ClassificationDataset| -> Vec<(u64, usize)> { ds.images().iter().map(|i| (i.id, i.label())).collect() };
    let before = labels(&ClassificationDataset::from_manifest(&manifest).unwrap());
    for delay_ms in [50, 400, 1500] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cvtk"))
            .args(["audit", manifest.to_str().unwrap(), "--device", "cpu", "--no-cache"])
            .env("CVTK_HOME", &home)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let ds = ClassificationDataset::from_manifest(&manifest).expect("a killed audit left a broken manifest");
        assert_eq!(labels(&ds), before, "after {delay_ms} ms");
    }
}

//! `cvtk audit` end to end on real MNIST digits with planted label errors:
//! pretrained EfficientNet-Lite0 features, cross-fitted linear models,
//! confident learning. The planted errors are found, with their true labels
//! suggested, and a folder of one label or too few images is a clear error.
//! Needs `make test-setup` (the mnist-5k sample data and the Lite0 weights).

use std::path::Path;

use crate::common::{cvtk_in, json, mnist_digits};

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

//! Cross-check against CleanVision 0.3.7: on the same image files (made by
//! tests/reference/cleanvision_quality.py from scikit-image's photos, each of
//! the ordinary ones and one or more failing each check), every statistic
//! and score equals CleanVision's, and the same images are flagged dark,
//! light, blurry, low information, odd aspect ratio, odd size and grayscale.

use std::path::Path;
use std::process::Command;

use cvtk_audit::quality::{judge, measure_file, QualityIssue};
use serde_json::Value;

use crate::python::python;

fn close(ours: f64, theirs: f64, what: &str, image: &str) {
    // Equal but for the last bits of exp and log (numpy may use its own).
    let tolerance = 1e-12 * theirs.abs().max(1.0);
    assert!((ours - theirs).abs() <= tolerance, "{image}: {what} is {ours}, CleanVision's {theirs}");
}

#[test]
fn the_same_statistics_scores_and_flags_as_cleanvision() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/cleanvision_quality.py");
    let out = Command::new(python()).arg(&script).arg(dir.path()).env("TQDM_DISABLE", "1").output().unwrap();
    assert!(
        out.status.success(),
        "the CleanVision reference failed (is cleanvision in .venv? `make test-setup`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(theirs.len() >= 20, "the reference made {} images", theirs.len());
    let stats: Vec<_> =
        theirs.iter().map(|row| measure_file(Path::new(row["path"].as_str().unwrap()), u64::MAX).unwrap()).collect();
    let judged = judge(&stats);
    let mut flagged = std::collections::BTreeMap::new();
    for ((row, stats), judged) in theirs.iter().zip(&stats).zip(&judged) {
        let image = Path::new(row["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
        let f = |key: &str| row[key].as_f64().unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(stats.brightness_p5, f("brightness_perc_5"), "{image}: 5th percentile of brightness");
        assert_eq!(stats.brightness_p99, f("brightness_perc_99"), "{image}: 99th percentile of brightness");
        close(stats.entropy, f("entropy"), "entropy", &image);
        close(stats.blurriness, f("blurriness"), "blurriness", &image);
        close(stats.gray_level_spread, f("blurriness_grayscale_std"), "gray-level spread", &image);
        assert_eq!(stats.gray, row["color_space"] == "L", "{image}: stored as gray");
        let s = &judged.scores;
        for (ours, key) in [
            (s.dark, "dark_score"),
            (s.light, "light_score"),
            (s.blurry, "blurry_score"),
            (s.low_information, "low_information_score"),
            (s.odd_aspect_ratio, "odd_aspect_ratio_score"),
            (s.odd_size, "odd_size_score"),
        ] {
            close(ours, f(key), key, &image);
        }
        for issue in QualityIssue::ALL {
            let theirs = row[format!("is_{}_issue", issue.name())].as_bool().unwrap();
            assert_eq!(judged.issues.contains(&issue), theirs, "{image}: {} differs from CleanVision", issue.name());
            if theirs {
                *flagged.entry(issue.name()).or_insert(0) += 1;
            }
        }
    }
    // The images were made so that every check flags something.
    for issue in QualityIssue::ALL {
        assert!(flagged.contains_key(issue.name()), "no image is {}: the reference images test nothing", issue.name());
    }
}

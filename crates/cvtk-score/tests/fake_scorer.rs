//! Scoring a folder with a fake scorer: rows in path order with calibrated
//! top labels, bad images as rows with an error, a rerun that scores nothing
//! again, and shards that together hold the unsharded rows.

use std::path::Path;
use std::time::Duration;

use cvtk_score::{score_to_file, Row, ScoreInput, ScoreOptions, Shard};

/// The service tests' fake scorer: labels x (the mean intensity) and y (its
/// negation), no libtorch.
#[path = "../../cvtk-deploy/tests/common/fake.rs"]
mod fake;
use fake::Fake;

/// Images the fake has scored.
fn scored(fake: &Fake) -> usize {
    fake.batches.lock().unwrap().iter().sum()
}

/// Six gray PNGs (three dark, three light) and one file that is not an image.
fn folder(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("photos");
    std::fs::create_dir_all(&root).unwrap();
    for i in 0..6u8 {
        let v = if i % 2 == 0 { 20 + i } else { 230 - i };
        image::GrayImage::from_pixel(16, 12, image::Luma([v])).save(root.join(format!("img{i}.png"))).unwrap();
    }
    std::fs::write(root.join("broken.png"), b"not a png").unwrap();
    root
}

fn rows(path: &Path) -> Vec<Row> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_folder_is_scored_resumed_and_sharded_on_a_scorer_without_libtorch() {
    let dir = tempfile::tempdir().unwrap();
    let input = ScoreInput::Folder(folder(dir.path()));
    let fake = Fake::new(Duration::ZERO);
    let out = dir.path().join("scores.jsonl");
    let options = ScoreOptions { top: 2, batch: 4, threads: 1, ..ScoreOptions::default() };
    let report = score_to_file(&fake, &input, &out, &options).unwrap();
    assert_eq!((report.images, report.scored, report.failed, report.already_done), (7, 7, 1, 0));
    assert_eq!(scored(&fake), 6, "the broken file never reaches the scorer");
    let all = rows(&out);
    let names: Vec<&str> = all.iter().map(|r| Path::new(&r.path).file_name().unwrap().to_str().unwrap()).collect();
    assert_eq!(names, ["broken.png", "img0.png", "img1.png", "img2.png", "img3.png", "img4.png", "img5.png"]);
    assert!(all[0].error.as_deref().is_some_and(|e| !e.is_empty()) && all[0].top.is_empty(), "{:?}", all[0]);
    let mut x = Vec::new();
    for row in all.iter().skip(1) {
        assert_eq!(row.label(), Some("x"), "{row:?}");
        assert_eq!(row.top.len(), 2);
        let sum: f32 = row.top.iter().map(|t| t.probability).sum();
        assert!((sum - 1.0).abs() < 1e-5, "{row:?}");
        x.push(row.top[0].probability);
    }
    // Light images (odd) are more surely x than dark ones (even).
    assert!(x[1] > x[0] && x[3] > x[2] && x[5] > x[4], "{x:?}");

    // A rerun continues after the last complete row: nothing is scored again.
    let again = score_to_file(&fake, &input, &out, &options).unwrap();
    assert_eq!((again.already_done, again.scored), (7, 0));
    assert_eq!(scored(&fake), 6);
    assert_eq!(rows(&out), all);

    // Two shards hold the unsharded rows between them, each once.
    let mut sharded = Vec::new();
    for k in 0..2 {
        let part = dir.path().join(format!("part-{k}.jsonl"));
        let shard: Shard = format!("{k}/2").parse().unwrap();
        score_to_file(&fake, &input, &part, &ScoreOptions { shard: Some(shard), ..options.clone() }).unwrap();
        sharded.extend(rows(&part));
    }
    sharded.sort_by_key(|r| r.index);
    assert_eq!(sharded, all);
}

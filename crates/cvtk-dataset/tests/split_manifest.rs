//! Splits (counts, stratification, determinism) and manifests (round trip,
//! relative paths, corrupt files).

use std::collections::HashSet;

use crate::common::make_tree;
use cvtk_dataset::{ClassificationDataset, Error, SplitPart};

fn dataset_63(dir: &std::path::Path) -> ClassificationDataset {
    // The original package's sample: 63 images over 3 labels.
    make_tree(dir, &["bowl", "cup", "plate"], &[21, 21, 21]);
    ClassificationDataset::create_from_dir("dishes", dir).unwrap()
}

#[test]
fn sixty_three_images_at_0_66_give_41_train_and_22_test() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset_63(dir.path());
    for stratify in [true, false] {
        let s = ds.split(0.66, stratify, 0).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (41, 22), "stratify={stratify}");
        let all: HashSet<u64> = s.train.iter().chain(&s.test).copied().collect();
        assert_eq!(all.len(), 63, "parts are disjoint and cover the dataset");
    }
}

#[test]
fn stratified_split_keeps_label_proportions() {
    let dir = tempfile::tempdir().unwrap();
    let mut ds = dataset_63(dir.path());
    let s = ds.split(0.66, true, 7).unwrap();
    ds.set_split(s).unwrap();
    let train = ds.part(SplitPart::Train).unwrap().counts_per_label();
    let test = ds.part(SplitPart::Test).unwrap().counts_per_label();
    assert_eq!(train.iter().sum::<usize>(), 41);
    for (tr, te) in train.iter().zip(&test) {
        assert!((13..=14).contains(tr) && (7..=8).contains(te), "train {train:?} test {test:?}");
    }
}

#[test]
fn every_label_with_two_images_is_in_both_parts() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), &["big", "small_a", "small_b"], &[40, 2, 2]);
    let ds = ClassificationDataset::create_from_dir("x", dir.path()).unwrap();
    for seed in 0..20 {
        let s = ds.split(0.9, true, seed).unwrap();
        let label_of = |id: &u64| ds.image(*id).unwrap().label();
        let train: HashSet<usize> = s.train.iter().map(label_of).collect();
        let test: HashSet<usize> = s.test.iter().map(label_of).collect();
        assert_eq!(train.len(), 3, "seed {seed}: train labels {train:?}");
        assert_eq!(test.len(), 3, "seed {seed}: test labels {test:?}");
    }
}

#[test]
fn same_seed_same_split_other_seed_other_split() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset_63(dir.path());
    assert_eq!(ds.split(0.66, true, 42).unwrap(), ds.split(0.66, true, 42).unwrap());
    assert_ne!(ds.split(0.66, true, 42).unwrap().train, ds.split(0.66, true, 43).unwrap().train);
}

#[test]
fn rejects_bad_train_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset_63(dir.path());
    for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
        let e = ds.split(bad, true, 0).unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { field: "train_size", .. }), "{bad}: {e}");
    }
    let e = ds.split(0.01, true, 0).unwrap_err();
    assert!(e.to_string().contains("leaves one part empty"), "{e}");
}

#[test]
fn manifest_round_trips_with_split_and_skipped_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut ds = dataset_63(&data);
    std::fs::write(data.join("bowl/notes.txt"), "x").unwrap();
    let mut ds2 = ClassificationDataset::create_from_dir("dishes", &data).unwrap();
    assert_eq!(ds2.skipped().len(), 1);
    let s = ds.split(0.66, true, 3).unwrap();
    ds.set_split(s.clone()).unwrap();
    ds2.set_split(s).unwrap();
    let path = dir.path().join("dishes.json");
    ds2.to_manifest(&path).unwrap();
    let back = ClassificationDataset::from_manifest(&path).unwrap();
    assert_eq!(back, ds2);
    assert_eq!(back.train().unwrap().len(), 41);
    // Paths are stored relative to the manifest, so the pair can move.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"root\": \"data\"") && text.contains("\"path\": \"bowl/img_000.png\""), "{text}");
    let moved = tempfile::tempdir().unwrap();
    std::fs::rename(&data, moved.path().join("data")).unwrap();
    std::fs::rename(&path, moved.path().join("dishes.json")).unwrap();
    let back = ClassificationDataset::from_manifest(moved.path().join("dishes.json")).unwrap();
    assert!(back.images().iter().all(|i| i.path.is_file()));
}

#[test]
fn image_paths_outside_the_manifests_folder_are_stored_relative_too_and_found_through_links() {
    // A dataset with no root (as `cvtk augment` makes: copies in its folder,
    // originals elsewhere), its manifest reached through a linked folder.
    let dir = tempfile::tempdir().unwrap();
    make_tree(&dir.path().join("real/data"), &["a"], &[2]);
    make_tree(&dir.path().join("real/out"), &["a"], &[1]);
    std::os::unix::fs::symlink(dir.path().join("real/out"), dir.path().join("out")).unwrap();
    let image =
        |path: std::path::PathBuf, id| cvtk_dataset::ImageInfo { id, name: "x.png".into(), path, labels: vec![0] };
    let ds = ClassificationDataset::from_parts(
        "mixed",
        vec![cvtk_dataset::Label { name: "a".into() }],
        vec![
            image(dir.path().join("out/a/img_000.png"), 0),
            image(dir.path().join("real/data/a/img_000.png"), 1),
            image(dir.path().join("real/data/a/img_001.png"), 2),
        ],
    )
    .unwrap();
    let manifest = dir.path().join("out/manifest.json");
    ds.to_manifest(&manifest).unwrap();
    let text: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let stored: Vec<&str> = text["images"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap()).collect();
    // out/.. is real/, not the temporary folder: `..` is counted from the resolved folder.
    assert_eq!(stored, ["a/img_000.png", "../data/a/img_000.png", "../data/a/img_001.png"]);
    let back = ClassificationDataset::from_manifest(&manifest).unwrap();
    for (b, d) in back.images().iter().zip(ds.images()) {
        assert_eq!(std::fs::canonicalize(&b.path).unwrap(), std::fs::canonicalize(&d.path).unwrap());
        assert!(!b.path.components().any(|c| c == std::path::Component::ParentDir), "{}", b.path.display());
    }
    // Written again from what was read, the paths are the same.
    back.to_manifest(&manifest).unwrap();
    let again: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(again["images"], text["images"]);
    // The pair moves together.
    let moved = tempfile::tempdir().unwrap();
    std::fs::rename(dir.path().join("real"), moved.path().join("real")).unwrap();
    let back = ClassificationDataset::from_manifest(moved.path().join("real/out/manifest.json")).unwrap();
    assert!(back.images().iter().all(|i| i.path.is_file()));
}

#[test]
fn corrupt_manifests_get_errors_that_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset_63(&dir.path().join("data"));
    let path = dir.path().join("m.json");
    ds.to_manifest(&path).unwrap();
    let good = std::fs::read_to_string(&path).unwrap();
    let cases = [
        (good[..good.len() / 2].to_string(), "not JSON"),
        ("{\"name\": 1}".to_string(), "not a cvtk dataset manifest"),
        (good.replace("\"version\": 1", "\"version\": 99"), "newer than this cvtk"),
        (good.replacen("\"labels\": [\n    \"bowl\"", "\"labels\": [\n    \"bowl\", \"bowl\"", 1), "listed twice"),
        (good.replacen("\"labels\": [\n        \"cup\"", "\"labels\": [\n        \"mug\"", 1), "'mug'"),
        (good.replacen("\"id\": 1,", "\"id\": 0,", 1), "appears twice"),
    ];
    for (text, expected) in cases {
        std::fs::write(&path, &text).unwrap();
        let e = ClassificationDataset::from_manifest(&path).unwrap_err();
        assert!(matches!(e, Error::Manifest { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(expected) && msg.contains("m.json"), "expected '{expected}' in: {msg}");
    }
}

#[test]
fn split_ids_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let mut ds = dataset_63(dir.path());
    let mut s = ds.split(0.66, true, 0).unwrap();
    s.test.push(999);
    assert!(ds.set_split(s).unwrap_err().to_string().contains("999"));
    assert!(matches!(ds.train().unwrap_err(), Error::NoSplit { .. }));
}

#[test]
fn edits_relabel_exclude_and_add_labels_and_survive_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let mut ds = dataset_63(dir.path());
    let split = ds.split(0.66, true, 0).unwrap();
    let (train0, test0) = (split.train[0], split.test[0]);
    ds.set_split(split).unwrap();

    let plate = ds.label_index("plate").unwrap();
    ds.set_label(train0, plate).unwrap();
    ds.set_excluded(test0, true).unwrap();
    // A new label sorts in between, shifting "cup" and "plate" up by one.
    assert_eq!(ds.add_label("chopsticks").unwrap(), 1);
    assert_eq!(ds.add_label("chopsticks").unwrap(), 1, "adding twice is a no-op");
    assert_eq!(ds.label_names(), ["bowl", "chopsticks", "cup", "plate"]);
    assert_eq!(ds.any_image(train0).unwrap().label(), 3, "plate moved from 2 to 3");
    assert!(matches!(ds.add_label("../etc"), Err(Error::InvalidConfig { .. })));
    assert!(matches!(ds.set_label(9999, 0), Err(Error::InvalidConfig { .. })));
    assert!(matches!(ds.set_label(train0, 4), Err(Error::InvalidConfig { .. })));

    assert_eq!(ds.len(), 62);
    assert_eq!(ds.is_excluded(test0), Some(true));
    assert!(ds.image(test0).is_none() && ds.any_image(test0).is_some());
    assert_eq!(ds.test().unwrap().len(), 21, "an excluded image is in no part");

    let path = dir.path().join("dishes.json");
    ds.to_manifest(&path).unwrap();
    let back = ClassificationDataset::from_manifest(&path).unwrap();
    assert_eq!(back.label_names(), ds.label_names());
    assert_eq!(back.len(), 62);
    assert_eq!(back.excluded().len(), 1);
    assert_eq!(back.image(train0).unwrap().label(), 3);
    assert_eq!(back.test().unwrap().len(), 21);
    assert_eq!(back.counts_per_label(), ds.counts_per_label());
    assert_eq!(back.counts_per_label()[1], 0, "the new label has no image yet");

    // Bringing it back puts it in its old split part again.
    let mut back = back;
    back.set_excluded(test0, false).unwrap();
    assert_eq!(back.test().unwrap().len(), 22);
    assert!(back.test().unwrap().image(test0).is_some());
}

#[test]
fn open_takes_a_folder_named_after_itself_or_a_manifest_and_summarises_the_split() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dishes");
    make_tree(&root, &["bowl", "cup"], &[6, 4]);
    let ds = ClassificationDataset::open(&root).unwrap();
    assert_eq!(ds.name(), "dishes");
    let mut ds = ds;
    let split = ds.split(0.5, true, 3).unwrap();
    ds.set_split(split).unwrap();
    let manifest = dir.path().join("dishes.json");
    ds.to_manifest(&manifest).unwrap();
    let back = ClassificationDataset::open(&manifest).unwrap();
    assert_eq!(back.train().unwrap().len(), 5);
    let s = back.summary();
    assert_eq!((s.images, s.split.as_ref().map(|p| (p.train, p.test))), (10, Some((5, 5))));
    assert_eq!(s.labels[0].name, "bowl");
    assert_eq!((s.labels[0].train, s.labels[0].test), (Some(3), Some(3)));
    assert_eq!((s.labels[1].train, s.labels[1].test), (Some(2), Some(2)));
    let e = ClassificationDataset::open(dir.path().join("missing")).unwrap_err();
    assert!(matches!(e, Error::RootNotFound { .. }), "{e}");
}

//! `augment_dataset`: copies written, originals kept, labels and split carried,
//! test images never augmented.

use crate::images;
use cvtk_augment::{augment_dataset, Crop, Fliplr, Pipeline, Sequential};
use cvtk_core::StorageContext;
use cvtk_dataset::ClassificationDataset;

fn pipeline() -> Pipeline {
    Pipeline::new(
        Sequential::new(vec![Fliplr::new(0.5).unwrap().into(), Crop::percent((0.0, 0.1)).unwrap().into()]).unwrap(),
    )
    .unwrap()
}

#[test]
fn forty_one_training_images_and_one_pipeline_give_eighty_two() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dishes");
    images::make_tree(&root, &["plate", "bowl", "cup"], &[21, 21, 21]);
    let mut ds = ClassificationDataset::create_from_dir("dishes", &root).unwrap();
    let split = ds.split(0.66, true, 0).unwrap();
    ds.set_split(split).unwrap();
    let train = ds.train().unwrap();
    assert_eq!(train.len(), 41);
    let storage = StorageContext::under(dir.path().join("store"));
    let out = augment_dataset(&train, &[pipeline()], &storage, 1).unwrap();
    assert_eq!(out.len(), 82);
    assert_eq!(out.label_names(), train.label_names());
    // Each copy has its original's label and exists on disk, under outputs/.
    let counts = |d: &ClassificationDataset| {
        let mut c = vec![0; d.labels().len()];
        d.images().iter().for_each(|i| c[i.label()] += 1);
        c
    };
    assert_eq!(counts(&out), counts(&train).iter().map(|n| n * 2).collect::<Vec<_>>());
    for img in &out.images()[41..] {
        assert!(img.path.starts_with(storage.outputs().join("augmented")), "{}", img.path.display());
        assert!(img.path.is_file());
        let label = &out.label_names()[img.label()];
        assert_eq!(img.path.parent().unwrap().file_name().unwrap().to_str().unwrap(), label);
    }
    // Two pipelines: three images per original; ids unique.
    let two = augment_dataset(&train, &[pipeline(), pipeline()], &storage, 1).unwrap();
    assert_eq!(two.len(), 123);
    let mut ids: Vec<u64> = two.images().iter().map(|i| i.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 123);
}

#[test]
fn a_split_is_carried_to_the_copies_and_survives_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("d");
    images::make_tree(&root, &["a", "b"], &[5, 5]);
    let mut ds = ClassificationDataset::create_from_dir("d", &root).unwrap();
    let split = ds.split(0.6, true, 3).unwrap();
    ds.set_split(split).unwrap();
    let out = augment_dataset(&ds, &[pipeline()], &StorageContext::under(dir.path()), 0).unwrap();
    assert_eq!(out.train().unwrap().len(), 2 * ds.train().unwrap().len());
    // The test part stays as it was: its originals, none augmented.
    let test_paths =
        |d: &ClassificationDataset| d.test().unwrap().images().iter().map(|i| i.path.clone()).collect::<Vec<_>>();
    assert_eq!(test_paths(&out), test_paths(&ds));
    assert_eq!(out.len(), ds.len() + ds.train().unwrap().len());
    let manifest = dir.path().join("aug.json");
    out.to_manifest(&manifest).unwrap();
    let back = ClassificationDataset::from_manifest(&manifest).unwrap();
    assert_eq!(back.len(), out.len());
    // Same seed, same bytes.
    let again = augment_dataset(&ds, &[pipeline()], &StorageContext::under(dir.path().join("again")), 0).unwrap();
    for (a, b) in out.images()[10..].iter().zip(&again.images()[10..]) {
        assert_eq!(std::fs::read(&a.path).unwrap(), std::fs::read(&b.path).unwrap());
    }
}

#[test]
fn the_augmented_manifest_stores_every_image_path_one_way_relative_to_its_folder() {
    // As `cvtk augment d.json --out aug` does: copies under aug/, the
    // manifest in aug/, the originals (the test part) elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("d");
    images::make_tree(&root, &["a", "b"], &[4, 4]);
    let mut ds = ClassificationDataset::create_from_dir("d", &root).unwrap();
    ds.set_split(ds.split(0.5, true, 0).unwrap()).unwrap();
    let out_dir = dir.path().join("aug");
    let out = cvtk_augment::augment_dataset_into(&ds, &[pipeline()], &out_dir, 0).unwrap();
    let manifest = out_dir.join("manifest.json");
    out.to_manifest(&manifest).unwrap();
    let text: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let stored: Vec<&str> = text["images"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap()).collect();
    assert_eq!(stored.len(), 12);
    assert!(stored.iter().all(|p| std::path::Path::new(p).is_relative()), "a path is absolute: {stored:?}");
    assert_eq!(stored.iter().filter(|p| p.starts_with("../d/")).count(), 8, "the originals: {stored:?}");
    // They lead to the files, and the folder pair can move.
    let moved = tempfile::tempdir().unwrap();
    for name in ["d", "aug"] {
        std::fs::rename(dir.path().join(name), moved.path().join(name)).unwrap();
    }
    let back = ClassificationDataset::from_manifest(moved.path().join("aug/manifest.json")).unwrap();
    assert_eq!(back.len(), 12);
    assert!(back.images().iter().all(|i| i.path.is_file()));
    assert_eq!(back.test().unwrap().len(), 4);
}

#[test]
fn the_loader_applies_a_pipeline_on_the_fly_per_epoch_and_never_when_scoring() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("d");
    images::make_tree(&root, &["a", "b"], &[4, 4]);
    // Make the images asymmetric so a flip shows.
    for entry in walk(&root) {
        let img = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([(x * 30) as u8, (y * 30) as u8, 7]));
        img.save(&entry).unwrap();
    }
    let ds = ClassificationDataset::create_from_dir("d", &root).unwrap();
    let config = cvtk_dataset::LoaderConfig { threads: 2, ..cvtk_dataset::LoaderConfig::square(8) };
    let flip = Pipeline::new(Fliplr::new(1.0).unwrap()).unwrap();
    let plain = cvtk_dataset::ImageLoader::new(config.clone()).unwrap();
    let augmenting = cvtk_dataset::ImageLoader::new(config).unwrap().with_transform(Arc::new(flip));
    let first = |l: &cvtk_dataset::ImageLoader, shuffle: Option<u64>| {
        l.batches(&ds, 8, shuffle, 0).next().unwrap().unwrap().images
    };
    // Training (a shuffle seed): flipped left-right. Scoring (no seed): untouched.
    let trained = first(&augmenting, Some(1));
    let reference = first(&plain, Some(1));
    let [n, c, h, w] = reference.shape();
    let at = |b: &cvtk_dataset::ImageBatch, i: usize, x: usize| b.data()[i * w + x];
    for row in 0..n * c * h {
        for x in 0..w {
            assert_eq!(at(&trained, row, x), at(&reference, row, w - 1 - x), "row {row}, x {x}");
        }
    }
    assert_ne!(trained, reference);
    assert_eq!(first(&augmenting, None), first(&plain, None));
}

fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for label in std::fs::read_dir(root).unwrap() {
        for f in std::fs::read_dir(label.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out
}

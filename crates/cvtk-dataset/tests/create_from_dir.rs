//! `ClassificationDataset::create_from_dir` on good and bad folders: every bad
//! input gets an error or a skipped entry (with a warning) that names the file.

use std::path::Path;

use crate::common::{encode, make_tree, png_claiming, write_image};
use cvtk_dataset::{ClassificationDataset, Error, ScanOptions, SkipKind};
use image::{ImageFormat, RgbImage};

fn skipped_kind(ds: &ClassificationDataset, file: &str) -> Option<SkipKind> {
    ds.skipped().iter().find(|s| s.path.ends_with(file)).map(|s| s.kind)
}

#[test]
fn labels_are_sorted_and_ids_stable() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), &["zebra", "apple", "mango"], &[2, 3, 1]);
    let a = ClassificationDataset::create_from_dir("fruit", dir.path()).unwrap();
    assert_eq!(a.label_names(), ["apple", "mango", "zebra"]);
    assert_eq!(a.counts_per_label(), vec![3, 1, 2]);
    let ids: Vec<u64> = a.images().iter().map(|i| i.id).collect();
    assert_eq!(ids, (0..6).collect::<Vec<_>>());
    assert_eq!(a.images()[0].name, "img_000.png");
    assert_eq!(a.images()[3].label(), 1);
    assert!(a.images().iter().all(|i| i.path.is_absolute()));
    let b = ClassificationDataset::create_from_dir("fruit", dir.path()).unwrap();
    assert_eq!(a, b, "the same folder gives the same dataset");
}

#[test]
fn missing_root_is_a_clear_error() {
    let e = ClassificationDataset::create_from_dir("x", "/nonexistent/cvtk/data").unwrap_err();
    assert!(matches!(e, Error::RootNotFound { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/cvtk/data") && e.to_string().contains("does not exist"));
}

#[test]
fn root_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("data.png");
    write_image(&f, 2, 2, [0; 3]);
    let e = ClassificationDataset::create_from_dir("x", &f).unwrap_err();
    assert!(matches!(e, Error::RootNotDir { .. }), "{e}");
    assert!(e.to_string().contains("is a file"));
}

#[test]
fn folder_without_images_is_an_error_that_counts_skipped_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("cats")).unwrap();
    std::fs::write(dir.path().join("cats/notes.txt"), "hi").unwrap();
    let e = ClassificationDataset::create_from_dir("x", dir.path()).unwrap_err();
    assert!(matches!(e, Error::NoImages { skipped: 2, .. }), "{e}");
}

#[test]
fn empty_label_folder_is_left_out_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), &["cats", "dogs"], &[2, 2]);
    std::fs::create_dir(dir.path().join("birds")).unwrap();
    let ds = ClassificationDataset::create_from_dir("x", dir.path()).unwrap();
    assert_eq!(ds.label_names(), ["cats", "dogs"]);
    let s = ds.skipped().iter().find(|s| s.kind == SkipKind::EmptyLabel).expect("empty label reported");
    assert!(s.path.ends_with("birds") && s.reason.contains("'birds'"), "{s:?}");
}

#[test]
fn non_image_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), &["cats"], &[2]);
    std::fs::write(dir.path().join("cats/readme.txt"), "text").unwrap();
    std::fs::write(dir.path().join("cats/fake.jpg"), "<html>not a jpeg</html>").unwrap();
    std::fs::write(dir.path().join("loose.png"), "x").unwrap();
    let ds = ClassificationDataset::create_from_dir("x", dir.path()).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(skipped_kind(&ds, "readme.txt"), Some(SkipKind::NotAnImage));
    assert_eq!(skipped_kind(&ds, "fake.jpg"), Some(SkipKind::Corrupt));
    assert_eq!(skipped_kind(&ds, "loose.png"), Some(SkipKind::NotInLabelFolder));
    let fake = ds.skipped().iter().find(|s| s.path.ends_with("fake.jpg")).unwrap();
    assert!(fake.reason.contains("fake.jpg") && fake.reason.contains("not an image"), "{}", fake.reason);
}

#[test]
fn zero_byte_and_truncated_images_are_skipped_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), &["cats"], &[1]);
    let img = RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 7]));
    let jpeg = encode(&img, ImageFormat::Jpeg);
    let png = encode(&img, ImageFormat::Png);
    std::fs::write(dir.path().join("cats/empty.jpg"), b"").unwrap();
    std::fs::write(dir.path().join("cats/empty.png"), b"").unwrap();
    std::fs::write(dir.path().join("cats/cut.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    std::fs::write(dir.path().join("cats/cut.png"), &png[..png.len() / 2]).unwrap();
    let ds = ClassificationDataset::create_from_dir("x", dir.path()).unwrap();
    assert_eq!(ds.len(), 1, "{:?}", ds.skipped());
    assert_eq!(skipped_kind(&ds, "empty.jpg"), Some(SkipKind::Empty));
    assert_eq!(skipped_kind(&ds, "empty.png"), Some(SkipKind::Empty));
    assert_eq!(skipped_kind(&ds, "cut.jpg"), Some(SkipKind::Corrupt));
    assert_eq!(skipped_kind(&ds, "cut.png"), Some(SkipKind::Corrupt));
    // A header-only scan cannot see the truncation; the default full check does.
    let quick =
        ClassificationDataset::create_from_dir_with("x", dir.path(), &ScanOptions::default().verify(false)).unwrap();
    assert!(quick.len() > ds.len(), "header-only scan keeps some truncated file: {}", quick.len());
}

#[test]
fn decompression_bomb_is_skipped_as_too_large() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), &["cats"], &[1]);
    std::fs::write(dir.path().join("cats/bomb.png"), png_claiming(50_000, 50_000)).unwrap();
    let ds = ClassificationDataset::create_from_dir("x", dir.path()).unwrap();
    assert_eq!(skipped_kind(&ds, "bomb.png"), Some(SkipKind::TooLarge));
    let s = ds.skipped().iter().find(|s| s.path.ends_with("bomb.png")).unwrap();
    assert!(s.reason.contains("50000x50000"), "{}", s.reason);
}

#[test]
fn unreadable_files_are_skipped() {
    // Tests may run as root, for whom permission bits do not stop reading; a
    // dangling symbolic link is unreadable for everyone.
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), &["cats"], &[1]);
    std::os::unix::fs::symlink("/nonexistent/target.png", dir.path().join("cats/dangling.png")).unwrap();
    let ds = ClassificationDataset::create_from_dir("x", dir.path()).unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(skipped_kind(&ds, "dangling.png"), Some(SkipKind::Unreadable));
}

#[test]
fn hidden_files_and_folders_are_skipped_silently() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), &["cats", ".cache"], &[2, 2]);
    write_image(&dir.path().join("cats/.thumb.png"), 2, 2, [0; 3]);
    write_image(&dir.path().join("cats/.git/x.png"), 2, 2, [0; 3]);
    let ds = ClassificationDataset::create_from_dir("x", dir.path()).unwrap();
    assert_eq!(ds.label_names(), ["cats"]);
    assert_eq!(ds.len(), 2);
    assert_eq!(skipped_kind(&ds, ".thumb.png"), Some(SkipKind::Hidden));
    assert_eq!(skipped_kind(&ds, ".cache"), Some(SkipKind::Hidden));
    assert_eq!(skipped_kind(&ds, ".git"), Some(SkipKind::Hidden));
}

#[test]
fn symlink_loops_are_reported_not_followed_forever() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), &["cats"], &[2]);
    std::os::unix::fs::symlink(dir.path().join("cats"), dir.path().join("cats/again")).unwrap();
    let ds = ClassificationDataset::create_from_dir("x", dir.path()).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(skipped_kind(&ds, "again"), Some(SkipKind::SymlinkLoop));
}

#[test]
fn non_utf8_names_are_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), &["cats"], &[1]);
    let bad_file = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
    write_image(&dir.path().join("cats").join(bad_file), 2, 2, [0; 3]);
    let bad_label = std::ffi::OsStr::from_bytes(b"chi\xe8n");
    write_image(&dir.path().join(bad_label).join("a.png"), 2, 2, [0; 3]);
    let ds = ClassificationDataset::create_from_dir("x", dir.path()).unwrap();
    assert_eq!(ds.label_names(), ["cats"]);
    assert_eq!(ds.len(), 1);
    let kinds: Vec<_> = ds.skipped().iter().map(|s| s.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == SkipKind::NonUtf8Name).count(), 2, "{:?}", ds.skipped());
}

#[test]
fn nested_folders_belong_to_their_label_and_formats_mix() {
    let dir = tempfile::tempdir().unwrap();
    write_image(&dir.path().join("cats/a.jpg"), 8, 8, [1, 2, 3]);
    write_image(&dir.path().join("cats/sub/b.PNG"), 8, 8, [1, 2, 3]);
    write_image(&dir.path().join("cats/c.bmp"), 8, 8, [1, 2, 3]);
    let ds = ClassificationDataset::create_from_dir("x", dir.path()).unwrap();
    assert_eq!(ds.len(), 3, "{:?}", ds.skipped());
    assert!(ds.skipped().is_empty());
    assert!(Path::new(&ds.images()[2].path).ends_with("cats/sub/b.PNG"));
}

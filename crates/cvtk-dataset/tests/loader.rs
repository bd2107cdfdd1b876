//! The image loader: decoding, orientation, resizing, normalisation, batching.

use crate::common::{jpeg_with_orientation, make_tree, png_claiming};
use cvtk_dataset::{
    ClassificationDataset, ColorMode, Error, ImageBatch, ImageLoader, LoaderConfig, Normalization, ResizeMode,
};
use image::{Rgb, RgbImage};

#[test]
fn exif_orientation_is_applied() {
    // 4 wide x 2 tall, left half red, right half blue; orientation 6 = rotate 90 degrees clockwise.
    let img = RgbImage::from_fn(16, 8, |x, _| if x < 8 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
    let loader = ImageLoader::new(LoaderConfig { width: 8, height: 16, ..LoaderConfig::default() }).unwrap();
    let out = loader.load_image_bytes(&jpeg_with_orientation(&img, 6), "rot.jpg").unwrap();
    assert_eq!(out.dimensions(), (8, 16), "upright image is tall");
    let top = out.get_pixel(4, 2);
    let bottom = out.get_pixel(4, 13);
    assert!(top[0] > 200 && top[2] < 60, "top is red after rotating clockwise: {top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "bottom is blue: {bottom:?}");
}

#[test]
fn center_crop_keeps_the_middle_and_squash_keeps_everything() {
    // 30x10: a red centre square (10..20) between green margins.
    let img = RgbImage::from_fn(30, 10, |x, _| if (10..20).contains(&x) { Rgb([255, 0, 0]) } else { Rgb([0, 255, 0]) });
    let crop = ImageLoader::new(LoaderConfig {
        width: 10,
        height: 10,
        resize: ResizeMode::CenterCrop { crop_fraction: 1.0 },
        ..Default::default()
    })
    .unwrap();
    let out = crop.resize(&img).unwrap();
    assert!(out.pixels().all(|p| p[0] == 255 && p[1] == 0), "centre crop sees only red");
    let squash = ImageLoader::new(LoaderConfig::square(10)).unwrap();
    let out = squash.resize(&img).unwrap();
    assert_eq!(out.get_pixel(0, 5)[1], 255, "squash keeps the green margin");
}

fn img_of(side: u32) -> RgbImage {
    RgbImage::from_pixel(side, side, Rgb([1, 2, 3]))
}

#[test]
fn normalisation_and_layout_are_nchw() {
    let loader = ImageLoader::new(LoaderConfig {
        width: 2,
        height: 2,
        normalization: Normalization::IMAGENET,
        ..Default::default()
    })
    .unwrap();
    let img = RgbImage::from_pixel(2, 2, Rgb([255, 0, 128]));
    let t = loader.to_batch(&[img.clone(), img]).unwrap();
    assert_eq!(t.shape(), [2, 3, 2, 2]);
    // Image 1, channel c, pixel (1, 1): index ((1 * 3 + c) * 2 + 1) * 2 + 1.
    let v = |c: usize| f64::from(t.data()[((3 + c) * 2 + 1) * 2 + 1]);
    assert!((v(0) - (1.0 - 0.485) / 0.229).abs() < 1e-5);
    assert!((v(1) - (0.0 - 0.456) / 0.224).abs() < 1e-5);
    assert!((v(2) - (128.0 / 255.0 - 0.406) / 0.225).abs() < 1e-5);

    let gray = ImageLoader::new(LoaderConfig {
        width: 2,
        height: 2,
        color: ColorMode::Gray,
        normalization: Normalization::UNIT,
        ..Default::default()
    })
    .unwrap();
    let t = gray.to_batch(&[RgbImage::from_pixel(2, 2, Rgb([255, 255, 255]))]).unwrap();
    assert_eq!(t.shape(), [1, 1, 2, 2]);
    assert!((t.data()[0] - 1.0).abs() < 1e-6);
    // Batches concatenate along N, and refuse other image sizes.
    let both = ImageBatch::concat(&[&t, &t]).unwrap();
    assert_eq!((both.shape(), both.len()), ([2, 1, 2, 2], 2));
    let small = loader.to_batch(&[]).unwrap();
    assert!(small.is_empty());
    assert!(ImageBatch::concat(&[&t, &loader.to_batch(&[img_of(2)]).unwrap()]).is_err());
    assert!(ImageBatch::new(vec![0.0; 5], [1, 1, 2, 2]).is_err());
}

#[test]
fn batches_cover_the_dataset_with_labels_and_shuffle_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), &["a", "b"], &[3, 4]);
    let ds = ClassificationDataset::create_from_dir("x", dir.path()).unwrap();
    let loader = ImageLoader::new(LoaderConfig::square(8)).unwrap();
    let batches: Vec<_> = loader.batches(&ds, 3, None, 0).collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[2].images.shape(), [1, 3, 8, 8]);
    let labels: Vec<usize> = batches.iter().flat_map(|b| b.labels.clone()).collect();
    assert_eq!(labels, vec![0, 0, 0, 1, 1, 1, 1]);
    let order = |epoch| loader.batches(&ds, 7, Some(5), epoch).next().unwrap().unwrap().ids;
    assert_eq!(order(0), order(0));
    assert_ne!(order(0), order(1), "each epoch has its own order");
}

#[test]
fn a_broken_file_in_a_batch_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), &["a"], &[2]);
    let ds = ClassificationDataset::create_from_dir("x", dir.path()).unwrap();
    std::fs::write(&ds.images()[1].path, b"gone bad").unwrap();
    let loader = ImageLoader::new(LoaderConfig::square(4)).unwrap();
    let e = loader.batches(&ds, 2, None, 0).next().unwrap().unwrap_err().to_string();
    assert!(e.contains("img_001.png"), "{e}");
}

#[test]
fn huge_declared_images_are_refused_before_allocation() {
    let loader = ImageLoader::new(LoaderConfig::default()).unwrap();
    let e = loader.load_image_bytes(&png_claiming(50_000, 50_000), "bomb.png").unwrap_err();
    assert!(matches!(e, Error::TooLarge { width: 50_000, height: 50_000, .. }), "{e}");
}

#[test]
fn invalid_configs_name_the_field() {
    let cases = [
        (LoaderConfig { width: 0, ..Default::default() }, "width/height"),
        (
            LoaderConfig { resize: ResizeMode::CenterCrop { crop_fraction: 1.5 }, ..Default::default() },
            "resize.crop_fraction",
        ),
        (
            LoaderConfig {
                normalization: Normalization { mean: [0.0; 3], std: [1.0, 0.0, 1.0] },
                ..Default::default()
            },
            "normalization",
        ),
        (LoaderConfig { max_pixels: 0, ..Default::default() }, "max_pixels"),
    ];
    for (cfg, field) in cases {
        match ImageLoader::new(cfg).unwrap_err() {
            Error::InvalidConfig { field: f, .. } => assert_eq!(f, field),
            e => panic!("unexpected {e}"),
        }
    }
}

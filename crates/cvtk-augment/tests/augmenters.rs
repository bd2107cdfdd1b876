//! Geometry and invariants of the augmenters, determinism, and every rejection
//! of an invalid parameter.

use cvtk_augment::*;
use image::{Rgb, RgbImage};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn photo(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 13 + y * 3) as u8, (y * 7 + x) as u8, ((x * y) % 251) as u8]))
}

fn run(a: &impl Augmenter, img: &RgbImage, seed: u64) -> RgbImage {
    a.augment(img.clone(), &mut ChaCha8Rng::seed_from_u64(seed))
}

#[test]
fn flipping_twice_is_the_identity() {
    let img = photo(31, 17);
    for a in [Spec::from(Fliplr::new(1.0).unwrap()), Spec::from(Flipud::new(1.0).unwrap())] {
        let once = run(&a, &img, 1);
        assert_ne!(once, img);
        assert_eq!(run(&a, &once, 2), img);
    }
    assert_eq!(run(&Fliplr::new(0.0).unwrap(), &img, 3), img);
    assert_eq!(run(&Fliplr::new(1.0).unwrap(), &img, 3), image::imageops::flip_horizontal(&img));
}

#[test]
fn crop_and_pad_output_sizes() {
    let img = photo(100, 50);
    assert_eq!(run(&Crop::px(3.0).unwrap().keep_size(false), &img, 0).dimensions(), (94, 44));
    assert_eq!(run(&Crop::percent(0.1).unwrap().keep_size(false), &img, 0).dimensions(), (80, 40));
    assert_eq!(run(&Crop::percent((0.0, 0.1)).unwrap(), &img, 0).dimensions(), (100, 50), "keep_size by default");
    for seed in 0..20 {
        let (w, h) = run(&Crop::percent((0.0, 0.1)).unwrap().keep_size(false), &img, seed).dimensions();
        assert!((80..=100).contains(&w) && (40..=50).contains(&h), "{w}x{h}");
    }
    // The crop keeps the inside: cropping 3 px is the same as taking the sub-image.
    let cropped = run(&Crop::px(3.0).unwrap().keep_size(false), &img, 0);
    assert_eq!(cropped, image::imageops::crop_imm(&img, 3, 3, 94, 44).to_image());
    assert_eq!(run(&Pad::px(2.0).unwrap().keep_size(false), &img, 0).dimensions(), (104, 54));
    let padded = run(&Pad::px(2.0).unwrap().keep_size(false), &img, 0);
    assert_eq!(padded.get_pixel(0, 0), &Rgb([0, 0, 0]));
    assert_eq!(padded.get_pixel(2, 2), img.get_pixel(0, 0));
    let edge = run(&Pad::px(2.0).unwrap().keep_size(false).mode(FillMode::Edge), &img, 0);
    assert_eq!(edge.get_pixel(0, 0), img.get_pixel(0, 0));
    // Extreme crops never produce an empty image.
    assert_eq!(run(&Crop::px(500.0).unwrap().keep_size(false), &img, 0).dimensions(), (1, 1));
}

#[test]
fn rotating_90_degrees_equals_transpose_and_flip() {
    let img = photo(33, 33);
    let r90 = run(&Rotate::new(90.0).unwrap(), &img, 0);
    assert_eq!(r90, image::imageops::rotate90(&img), "clockwise, as on screen");
    assert_eq!(run(&Rotate::new(-90.0).unwrap(), &img, 0), image::imageops::rotate270(&img));
    assert_eq!(run(&Affine::new().rotate(180.0).unwrap(), &img, 0), image::imageops::rotate180(&img));
    // transpose then flip left-right is the same clockwise quarter turn.
    let transposed = RgbImage::from_fn(33, 33, |x, y| *img.get_pixel(y, x));
    assert_eq!(r90, image::imageops::flip_horizontal(&transposed));
}

#[test]
fn identity_parameters_change_nothing() {
    let img = photo(40, 30);
    let identities: Vec<Spec> = vec![
        Affine::new().into(),
        Affine::new()
            .scale(1.0)
            .unwrap()
            .rotate(0.0)
            .unwrap()
            .shear(0.0)
            .unwrap()
            .translate_percent(0.0)
            .unwrap()
            .into(),
        Multiply::new(1.0).unwrap().into(),
        Add::new(0.0).unwrap().into(),
        LinearContrast::new(1.0).unwrap().into(),
        GaussianBlur::new(0.0).unwrap().into(),
        AdditiveGaussianNoise::new(0.0).unwrap().into(),
        Grayscale::new(0.0).unwrap().into(),
        Crop::px(0.0).unwrap().into(),
        Pad::px(0.0).unwrap().into(),
        Resize::to(40, 30).unwrap().into(),
        Sequential::new(vec![]).unwrap().into(),
        Sometimes::new(0.0, vec![Fliplr::new(1.0).unwrap().into()]).unwrap().into(),
    ];
    for a in identities {
        assert_eq!(run(&a, &img, 5), img, "{a:?}");
    }
}

#[test]
fn affine_translation_moves_pixels_by_the_fraction() {
    let img = photo(40, 20);
    let moved = run(&Affine::new().translate_percent(0.1).unwrap(), &img, 0);
    // 10% of 40 is 4 px right, 10% of 20 is 2 px down.
    assert_eq!(moved.get_pixel(10, 10), img.get_pixel(6, 8));
    assert_eq!(moved.get_pixel(0, 0), &Rgb([0, 0, 0]));
}

#[test]
fn colour_ops_keep_the_shape_and_do_what_they_say() {
    let img = photo(24, 18);
    let ops: Vec<Spec> = vec![
        Multiply::new((0.5, 1.5)).unwrap().into(),
        Add::new((10.0, 40.0)).unwrap().into(),
        LinearContrast::new((0.5, 2.0)).unwrap().into(),
        GaussianBlur::new((0.5, 3.0)).unwrap().into(),
        AdditiveGaussianNoise::new(20.0).unwrap().into(),
        Grayscale::new((0.0, 1.0)).unwrap().into(),
    ];
    for a in &ops {
        let out = run(a, &img, 9);
        assert_eq!(out.dimensions(), img.dimensions(), "{a:?}");
        assert!(out != img, "{a:?} changed nothing");
    }
    let doubled = run(&Multiply::new(2.0).unwrap(), &img, 0);
    let (p, q) = (img.get_pixel(3, 2), doubled.get_pixel(3, 2));
    for c in 0..3 {
        assert_eq!(u16::from(q[c]), (u16::from(p[c]) * 2).min(255));
    }
    let gray = run(&Grayscale::new(1.0).unwrap(), &img, 0);
    assert!(gray.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    let flat = run(&LinearContrast::new(0.0).unwrap(), &img, 0);
    assert!(flat.pixels().all(|p| *p == Rgb([128, 128, 128])));
}

fn busy_pipeline() -> Pipeline {
    Pipeline::new(
        Sequential::new(vec![
            Fliplr::new(0.5).unwrap().into(),
            Crop::percent((0.0, 0.1)).unwrap().into(),
            SomeOf::new(
                (1, 2),
                vec![
                    Affine::new().rotate((-20.0, 20.0)).unwrap().into(),
                    Multiply::new((0.8, 1.2)).unwrap().into(),
                    AdditiveGaussianNoise::new((0.0, 10.0)).unwrap().into(),
                ],
            )
            .unwrap()
            .into(),
            OneOf::new(vec![GaussianBlur::new((0.0, 1.0)).unwrap().into(), Grayscale::new((0.0, 0.5)).unwrap().into()])
                .unwrap()
                .into(),
        ])
        .unwrap()
        .random_order(true),
    )
    .unwrap()
}

#[test]
fn same_seed_same_output_across_runs_and_thread_counts() {
    let p = busy_pipeline();
    let inputs: Vec<(RgbImage, u64)> = (0..24).map(|i| (photo(30 + i, 20 + i), u64::from(i) * 31)).collect();
    let with_threads = |n: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        pool.install(|| {
            use rayon::prelude::*;
            inputs.par_iter().map(|(img, seed)| p.run(img.clone(), *seed)).collect::<Vec<_>>()
        })
    };
    let one = with_threads(1);
    assert_eq!(one, with_threads(4));
    assert_eq!(one, with_threads(1));
    let other: Vec<RgbImage> = inputs.iter().map(|(img, seed)| p.run(img.clone(), seed + 1)).collect();
    assert!(one.iter().zip(&other).filter(|(a, b)| a != b).count() > 12, "other seeds give other images");
}

/// (what, the error, expected augmenter, expected field)
#[test]
fn every_invalid_parameter_is_refused_with_its_name() {
    let cases: Vec<(Result<Spec>, &str, &str)> = vec![
        (Fliplr::new(1.5).map(Into::into), "Fliplr", "p"),
        (Flipud::new(-0.1).map(Into::into), "Flipud", "p"),
        (Crop::percent((-0.1, 0.1)).map(Into::into), "Crop", "percent"),
        (Crop::percent((0.2, 0.1)).map(Into::into), "Crop", "percent"),
        (Crop::percent(0.6).map(Into::into), "Crop", "percent"),
        (Crop::px(-1.0).map(Into::into), "Crop", "px"),
        (Crop::percent(f32::NAN).map(Into::into), "Crop", "percent"),
        (Pad::px((3.0, 1.0)).map(Into::into), "Pad", "px"),
        (Pad::percent(-0.5).map(Into::into), "Pad", "percent"),
        (Affine::new().scale(0.0).map(Into::into), "Affine", "scale"),
        (Affine::new().rotate(400.0).map(Into::into), "Affine", "rotate"),
        (Affine::new().shear(90.0).map(Into::into), "Affine", "shear"),
        (Affine::new().translate_percent(2.0).map(Into::into), "Affine", "translate_percent"),
        (Rotate::new((10.0, -10.0)).map(Into::into), "Rotate", "degrees"),
        (Resize::to(0, 10).map(Into::into), "Resize", "size"),
        (Resize::by(0.0).map(Into::into), "Resize", "scale"),
        (Multiply::new(-1.0).map(Into::into), "Multiply", "mul"),
        (Add::new(300.0).map(Into::into), "Add", "value"),
        (LinearContrast::new(-1.0).map(Into::into), "LinearContrast", "alpha"),
        (GaussianBlur::new(-1.0).map(Into::into), "GaussianBlur", "sigma"),
        (AdditiveGaussianNoise::new(-5.0).map(Into::into), "AdditiveGaussianNoise", "scale"),
        (Grayscale::new(1.5).map(Into::into), "Grayscale", "alpha"),
        (SomeOf::new((2, 1), vec![Fliplr::new(0.5).unwrap().into(); 2]).map(Into::into), "SomeOf", "n"),
        (SomeOf::new((3, 3), vec![Fliplr::new(0.5).unwrap().into(); 2]).map(Into::into), "SomeOf", "n"),
        (OneOf::new(vec![]).map(Into::into), "OneOf", "children"),
        (Sometimes::new(2.0, vec![]).map(Into::into), "Sometimes", "p"),
        // A bad child inside a container is found too.
        (Sequential::new(vec![Spec::Fliplr(Fliplr { p: 7.0 })]).map(Into::into), "Fliplr", "p"),
    ];
    for (result, augmenter, field) in cases {
        match result {
            Err(Error::InvalidParameter { augmenter: a, field: f, reason }) => {
                assert_eq!((a, f), (augmenter, field), "{reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("{augmenter}.{field}: expected a rejection, got {other:?}"),
        }
    }
}

#[test]
fn pipelines_read_from_json_and_toml_alike_and_round_trip() {
    let json = r#"{"type": "Sequential", "random_order": true, "children": [
        {"type": "Fliplr", "p": 0.5},
        {"type": "Crop", "percent": [0.0, 0.1]},
        {"type": "Sometimes", "p": 0.3, "then": [{"type": "Affine", "rotate": [-15, 15], "mode": "reflect"}]},
        {"type": "OneOf", "children": [{"type": "Multiply", "mul": [0.8, 1.2]}, {"type": "GaussianBlur", "sigma": [0, 1]}]}
    ]}"#;
    let toml = r#"
type = "Sequential"
random_order = true

[[children]]
type = "Fliplr"
p = 0.5

[[children]]
type = "Crop"
percent = [0.0, 0.1]

[[children]]
type = "Sometimes"
p = 0.3
then = [{ type = "Affine", rotate = [-15, 15], mode = "reflect" }]

[[children]]
type = "OneOf"
children = [{ type = "Multiply", mul = [0.8, 1.2] }, { type = "GaussianBlur", sigma = [0, 1] }]
"#;
    let a = Pipeline::from_json(json).unwrap();
    let b = Pipeline::from_toml(toml).unwrap();
    assert_eq!(a, b);
    assert_eq!(Pipeline::from_json(&a.to_json()).unwrap(), a);
    let img = photo(20, 20);
    assert_eq!(a.run(img.clone(), 3), b.run(img, 3));
}

#[test]
fn bad_pipeline_text_gets_errors_that_say_what_is_wrong() {
    let unknown = Pipeline::from_json(r#"{"type": "Sharpen", "alpha": 1}"#).unwrap_err().to_string();
    assert!(unknown.contains("Sharpen") && unknown.contains("\"type\""), "{unknown}");
    let field = Pipeline::from_json(r#"{"type": "Fliplr", "prob": 0.5}"#).unwrap_err().to_string();
    assert!(field.contains("prob"), "{field}");
    let value = Pipeline::from_json(r#"{"type": "Fliplr", "p": 3}"#).unwrap_err();
    assert!(matches!(value, Error::InvalidParameter { augmenter: "Fliplr", field: "p", .. }), "{value}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, "type = \"Crop\"\npercent = [0.3, 0.1]\n").unwrap();
    assert!(matches!(Pipeline::from_file(&path).unwrap_err(), Error::InvalidParameter { augmenter: "Crop", .. }));
    std::fs::write(&path, "type = ").unwrap();
    let parse = Pipeline::from_file(&path).unwrap_err().to_string();
    assert!(parse.contains("p.toml"), "{parse}");
}

#[test]
fn blur_keeps_flat_areas_and_spreads_a_point_symmetrically() {
    let flat = RgbImage::from_pixel(20, 15, Rgb([90, 120, 200]));
    assert_eq!(run(&GaussianBlur::new(2.0).unwrap(), &flat, 0), flat);
    let mut dot = RgbImage::new(21, 21);
    dot.put_pixel(10, 10, Rgb([255, 255, 255]));
    let b = run(&GaussianBlur::new(1.5).unwrap(), &dot, 0);
    assert!(b.get_pixel(10, 10)[0] < 255 && b.get_pixel(10, 10)[0] > b.get_pixel(11, 10)[0]);
    for (dx, dy) in [(1, 0), (2, 1), (3, 3)] {
        let v = b.get_pixel(10 + dx, 10 + dy);
        assert_eq!(v, b.get_pixel(10 - dx, 10 - dy));
        assert_eq!(v, b.get_pixel(10 + dy, 10 + dx));
    }
}

#[test]
fn built_in_pipelines_open_by_name_from_any_folder_and_a_file_of_that_name_wins() {
    for (name, _) in Pipeline::BUILTIN {
        let p = Pipeline::open(name.as_ref()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.spec(), Pipeline::builtin(name).unwrap().unwrap().spec(), "{name}");
    }
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("flip_crop");
    std::fs::write(&own, r#"{"type": "Fliplr", "p": 1.0}"#).unwrap();
    assert_eq!(
        Pipeline::open(&own).unwrap().spec(),
        Pipeline::from_json(r#"{"type": "Fliplr", "p": 1.0}"#).unwrap().spec()
    );
    let e = Pipeline::open("flipcrop".as_ref()).unwrap_err().to_string();
    assert!(e.contains("flipcrop: no such file") && e.contains("flip_crop, photo"), "{e}");
}

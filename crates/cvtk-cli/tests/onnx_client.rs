//! The Python ONNX client of docs/models.md ("The input contract"), run as it
//! stands in the docs: on real photos (scikit-image's, PNG) through the
//! pretrained Lite0 export (RGB, center crop) and through a gray model
//! (squash), its probabilities must equal `cvtk predict --json --all`'s
//! within 1e-5. On JPEG copies of the photos (decoders may differ) it must
//! give the same top label; how close the probabilities are is printed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::browser::repo;
use crate::common::*;
use serde_json::Value;

fn python() -> PathBuf {
    venv_python("numpy, Pillow and onnxruntime come with it")
}

/// The client: the docs' python block in "The input contract".
fn documented_client(dir: &Path) -> PathBuf {
    let docs = std::fs::read_to_string(repo().join("docs/models.md")).unwrap();
    let section = &docs[docs.find("### The input contract").expect("docs/models.md has the contract")..];
    let block = section.split("```python\n").nth(1).expect("the contract has a python client").split("```").next();
    let path = dir.join("cvtk_onnx_client.py");
    std::fs::write(&path, block.unwrap()).unwrap();
    path
}

/// scikit-image's sample photos in the venv.
fn photos() -> Vec<PathBuf> {
    ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"]
        .iter()
        .map(|f| {
            skimage_photo(f).unwrap_or_else(|| {
                panic!(
                    "scikit-image's {f} missing from .venv: run `make test-setup` (scikit-image is a test requirement)"
                )
            })
        })
        .collect()
}

/// `image -> probabilities` from the documented client's JSON lines.
fn client(dir: &Path, model: &Path, images: &[PathBuf]) -> Vec<(String, Vec<f64>)> {
    let out = Command::new(python())
        .arg(documented_client(dir))
        .arg(model)
        .args(images)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap();
    assert!(out.status.success(), "the documented client failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["path"].as_str().unwrap().to_string(), floats(&v["probabilities"]))
        })
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// `cvtk predict --json --all` (with `model_args`): each image's probabilities.
fn predicted(model_args: &[&str], images: &[PathBuf]) -> Vec<Vec<f64>> {
    let mut args = vec!["predict", "--json", "--all", "--device", "cpu"];
    args.extend_from_slice(model_args);
    let paths: Vec<&str> = images.iter().map(|p| p.to_str().unwrap()).collect();
    args.extend_from_slice(&paths);
    json(&cvtk(&args)).as_array().unwrap().iter().map(|r| floats(&r["probabilities"])).collect()
}

fn largest_difference(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap()
}

#[test]
fn the_documented_python_client_gives_cvtk_predicts_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    // PNG copies of the photos (rocket comes as a JPEG: decoded once, here, to a PNG).
    let pngs: Vec<PathBuf> = photos()
        .iter()
        .map(|p| {
            let png = dir.path().join(p.with_extension("png").file_name().unwrap());
            image::open(p).unwrap().to_rgb8().save(&png).unwrap();
            png
        })
        .collect();

    // The pretrained Lite0 ImageNet classifier: RGB, center crop 0.875 at 224.
    let lite0 = dir.path().join("lite0.onnx");
    assert!(cvtk(&["export", "--out", lite0.to_str().unwrap()]).status.success());
    let ours = predicted(&[], &pngs);
    for ((image, theirs), ours) in client(dir.path(), &lite0, &pngs).iter().zip(&ours) {
        let d = largest_difference(theirs, ours);
        eprintln!("lite0 {image}: largest difference {d:.2e}");
        assert!(d < 1e-5, "{image}: the client's probabilities are {d} from cvtk predict's");
    }

    // A gray model (small CNN, 28x28, squash) on colour photos of any size.
    let (_, manifest) = split_colours(dir.path());
    let model = dir.path().join("gray-model");
    train_small_cnn(&manifest, &model, 1, &[]);
    let gray = dir.path().join("gray.onnx");
    assert!(cvtk(&["export", model.to_str().unwrap(), "--out", gray.to_str().unwrap()]).status.success());
    let ours = predicted(&["--model", model.to_str().unwrap()], &pngs);
    for ((image, theirs), ours) in client(dir.path(), &gray, &pngs).iter().zip(&ours) {
        let d = largest_difference(theirs, ours);
        eprintln!("gray {image}: largest difference {d:.2e}");
        assert!(d < 1e-5, "{image}: the client's probabilities are {d} from cvtk predict's");
    }

    // JPEG copies: Pillow and cvtk decode them a little differently.
    let jpegs: Vec<PathBuf> = pngs
        .iter()
        .map(|p| {
            let jpeg = p.with_extension("jpg");
            image::open(p).unwrap().to_rgb8().save(&jpeg).unwrap();
            jpeg
        })
        .collect();
    let ours = predicted(&[], &jpegs);
    for ((image, theirs), ours) in client(dir.path(), &lite0, &jpegs).iter().zip(&ours) {
        eprintln!("lite0 {image} (JPEG): largest difference {:.2e}", largest_difference(theirs, ours));
        assert_eq!(argmax(theirs), argmax(ours), "{image}: another top label");
    }
}

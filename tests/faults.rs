//! Fault tests: a process killed with SIGKILL in the middle of saving a
//! model, a manifest, or an annotation edit leaves the previous file or the
//! new one intact, never neither. Each test starts this test binary again as
//! a child that saves in a loop (the ignored `fault_child` below), kills it at
//! varied moments once it is saving, and checks what is on disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use cvtk::dataset::ClassificationDataset;
use cvtk::model::{Architecture, BaseModel, Classifier, Device, TransferModel};

const CHILD_ENV: &str = "CVTK_FAULT_CHILD";
const KILLS: u32 = 8;

/// A dataset of 4 images under `dir`, with its manifest; returns the manifest.
fn dataset(dir: &Path) -> PathBuf {
    for (label, shade) in [("dark", 40u8), ("light", 220)] {
        std::fs::create_dir_all(dir.join("data").join(label)).unwrap();
        for i in 0..2u8 {
            image::RgbImage::from_pixel(8, 8, image::Rgb([shade + i, shade, shade]))
                .save(dir.join("data").join(label).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let ds = ClassificationDataset::create_from_dir("d", dir.join("data")).unwrap();
    let manifest = dir.join("d.json");
    ds.to_manifest(&manifest).unwrap();
    manifest
}

fn model(seed: u64) -> TransferModel {
    let base = BaseModel::new(Architecture::Resnet18, None);
    TransferModel::new_seeded(vec!["dark".into(), "light".into()], &base, Some(32), Device::Cpu, seed).unwrap()
}

/// Starts the child for `what` on `target`, waits until it has saved once.
fn start_child(what: &str, target: &Path) -> Child {
    let started = target.with_extension("started");
    let _ = std::fs::remove_file(&started);
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "fault_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{what}:{}", target.display()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the {what} child did not start saving");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

/// Kills `what`'s child [`KILLS`] times at varied moments, calling `check`
/// after each kill.
fn kill_while_saving(what: &str, target: &Path, check: impl Fn(u32)) {
    for k in 0..KILLS {
        let mut child = start_child(what, target);
        // 0, 7, 14, ... ms into the save loop.
        std::thread::sleep(Duration::from_millis(u64::from(k) * 7 % 50));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        check(k);
    }
}

#[test]
fn a_model_save_killed_midway_leaves_a_loadable_model() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("model");
    model(1).save(&target).unwrap();
    kill_while_saving("model", &target, |k| {
        let loaded = TransferModel::load(&target, Device::Cpu);
        assert!(loaded.is_ok(), "kill {k}: {:?}", loaded.err());
        let weights = std::fs::read_dir(&target)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".safetensors"))
            .count();
        assert!(weights <= 2, "kill {k}: {weights} weights files pile up");
    });
}

#[test]
fn a_manifest_save_killed_midway_leaves_a_readable_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dataset(dir.path());
    kill_while_saving("manifest", &manifest, |k| {
        let ds = ClassificationDataset::from_manifest(&manifest);
        assert!(ds.as_ref().is_ok_and(|d| d.len() == 4), "kill {k}: {:?}", ds.err());
    });
}

#[test]
fn an_annotate_edit_killed_midway_leaves_a_readable_manifest_with_the_old_or_new_label() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dataset(dir.path());
    kill_while_saving("annotate", &manifest, |k| {
        let ds = ClassificationDataset::from_manifest(&manifest).unwrap_or_else(|e| panic!("kill {k}: {e}"));
        assert!(ds.any_image(0).is_some(), "kill {k}");
        // The store still opens (and would edit) it.
        cvtk::annotate::Store::open(&manifest, HashMap::new()).unwrap();
    });
}

/// The child: saves `target` in a loop until killed.
#[test]
#[ignore = "the child process of the fault tests above, which run it; not a test on its own"]
fn fault_child() {
    let spec = std::env::var(CHILD_ENV).expect("run by the fault tests, with CVTK_FAULT_CHILD set");
    let (what, target) = spec.split_once(':').unwrap();
    let target = PathBuf::from(target);
    let started = target.with_extension("started");
    let mark = || {
        let _ = std::fs::write(&started, b"");
    };
    match what {
        "model" => {
            let models = [model(2), model(3)];
            for i in 0.. {
                models[i % 2].save(&target).unwrap();
                mark();
            }
        }
        "manifest" => {
            let mut ds = ClassificationDataset::from_manifest(&target).unwrap();
            for i in 0.. {
                ds.set_label(0, i % 2).unwrap();
                ds.to_manifest(&target).unwrap();
                mark();
            }
        }
        "annotate" => {
            let mut store = cvtk::annotate::Store::open(&target, HashMap::new()).unwrap();
            loop {
                let view = store.image_view(0).unwrap();
                let next = if view.label == "dark" { "light" } else { "dark" };
                let edit = serde_json::from_value(serde_json::json!({
                    "expect": { "label": view.label, "excluded": view.excluded },
                    "label": next,
                }))
                .unwrap();
                store.edit(0, &edit).unwrap();
                mark();
            }
        }
        other => panic!("unknown fault child {other}"),
    }
}

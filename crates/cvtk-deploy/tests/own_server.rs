//! A program built on cvtk-deploy deploys a model with no `cvtk` program on
//! the machine: it calls `serve_if_deployed()` first in `main`, and
//! `Deployment::deploy` starts it again as the server. This file is that
//! program (a test without the harness, so it owns `main`).

use std::time::Duration;

use cvtk_core::StorageContext;
use cvtk_deploy::api::ItemResult;
use cvtk_deploy::{DeployConfig, Deployment, DeploymentStatus, ServeConfig};
use cvtk_model::{Architecture, BaseModel, Classifier, Device, TransferModel};

/// Removes the deployment (and stops its server) however the test ends.
struct Cleanup<'a>(&'a cvtk_deploy::DeploymentRecord, &'a StorageContext);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.delete(self.1);
    }
}

fn main() {
    cvtk_deploy::serve_if_deployed();
    // As a test binary: `--list` lists nothing to run alone, and a name
    // filter other than this test's skips it (`--skip X` takes a value).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("own_server: test");
        return;
    }
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--skip" => {
                it.next();
            }
            a if a.starts_with('-') => {}
            a => filters.push(a.to_string()),
        }
    }
    if !filters.is_empty() && !filters.iter().any(|f| "own_server".contains(f.as_str())) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    let base = BaseModel::new(Architecture::SmallCnn, None);
    let labels = vec!["a".to_string(), "b".to_string()];
    TransferModel::new_seeded(labels, &base, None, Device::Cpu, 7).unwrap().save(&model_dir).unwrap();
    // No cvtk anywhere: not named, not on PATH.
    std::env::remove_var("CVTK_EXE");
    std::env::set_var("PATH", dir.path().join("no-programs-here"));
    let storage = StorageContext::new().with_persistent(dir.path().join("home"));
    let config = DeployConfig {
        device: "cpu".into(),
        serve: ServeConfig { port: 0, ..ServeConfig::default() },
        ready_timeout: Duration::from_secs(60),
        ..DeployConfig::default()
    };
    let record = Deployment::new("own", &model_dir, config).deploy(&storage).unwrap();
    let cleanup = Cleanup(&record, &storage);
    assert_eq!(record.server_exe, std::env::current_exe().unwrap(), "this program serves");
    assert_eq!(record.status(), DeploymentStatus::Running);
    let png = {
        let mut bytes = Vec::new();
        image::GrayImage::from_fn(28, 28, |x, y| image::Luma([(x * 9 + y) as u8]))
            .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
            .unwrap();
        bytes
    };
    let scored = record.client().unwrap().score_raw(png, "image/png", true).unwrap();
    let ItemResult::Scored(result) = scored else { panic!("not scored: {scored:?}") };
    assert_eq!(result.scores.len(), 2);
    assert!((result.scores.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{result:?}");
    drop(cleanup);
    assert!(cvtk_deploy::list_deployments(&storage).unwrap().is_empty(), "deleted");
    println!("own_server: a program with serve_if_deployed() served its own deployment");
}

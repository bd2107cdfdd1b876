//! A program built on cvtk-deploy deploys a model with no `cvtk` program on
//! the machine: it calls `serve_if_deployed()` first in `main`, and
//! `Deployment::deploy` starts it again as the server. This file is that
//! program (a test without the harness, so it owns `main`).

use std::time::Duration;

use cvtk_dataset::StorageContext;
use cvtk_deploy::api::ItemResult;
use cvtk_deploy::{DeployConfig, Deployment, DeploymentStatus, ServeConfig};
use cvtk_model::{Architecture, BaseModel, Classifier, Device, TransferModel};

fn main() {
    cvtk_deploy::serve_if_deployed();
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
    record.delete(&storage).unwrap();
    assert!(cvtk_deploy::list_deployments(&storage).unwrap().is_empty());
    println!("own_server: a program with serve_if_deployed() served its own deployment");
}

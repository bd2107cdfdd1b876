//! Seeded training is reproducible: the same seed gives the same model.
//!
//! In its own test binary on purpose: cargo runs test binaries one at a time,
//! so no other test trains in this process meanwhile. With trainings running
//! concurrently in one process, results were seen to differ (random draws are
//! serialised by a lock; the remaining cause, probably libtorch's CPU kernels
//! under concurrent use, is not yet found).

mod common;

use common::colour_dataset;
use cvtk_model::{Architecture, BaseModel, Classifier, Device, LrSchedule, TrainConfig, TransferModel};

#[test]
fn same_seed_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let ds = colour_dataset(dir.path(), 6);
    let run = || {
        let mut m =
            TransferModel::new(ds.label_names(), &BaseModel::new(Architecture::Resnet18, None), Some(40), Device::Cpu)
                .unwrap();
        m.train(&ds, &TrainConfig { lr_per_mb: LrSchedule::constant(0.01, 2), mb_size: 8, ..Default::default() }, None)
            .unwrap();
        m.score_dataset(&ds, 8).unwrap().values
    };
    assert_eq!(run(), run());
}

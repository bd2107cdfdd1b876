//! Seeded training is reproducible: the same seed gives the same model.
//!
//! Alone in a process of its own on purpose (a child of the test binary), so
//! no other test trains in this process meanwhile. With trainings running
//! concurrently in one process, results were seen to differ (random draws are
//! serialised by a lock; the remaining cause, probably libtorch's CPU kernels
//! under concurrent use, is not yet found).

use crate::common::colour_dataset;
use cvtk_model::{Architecture, BaseModel, Device, LrSchedule, Scorer, TrainConfig, TransferModel};

#[test]
fn same_seed_same_model() {
    if crate::isolated::alone(module_path!(), "same_seed_same_model").is_some() {
        return;
    }
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

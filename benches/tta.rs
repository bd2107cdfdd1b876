//! Test-time augmentation: what `--tta flip` (each image and its mirror
//! image, raw scores averaged) changes in accuracy, and what it costs in
//! scoring time, against no augmentation, in the same run.
//!
//! The data: the project's real-image subsets. MNIST digits (mnist-5k, which
//! `make setup` fetches) and, when Debian's `dataset-fashion-mnist` is
//! installed, Fashion-MNIST's test set: per label, the first 20% of the
//! images train and the rest are scored. The model: a linear SVM on
//! EfficientNet-Lite0 features at 64 pixels (`cvtk train --classifier svm
//! --image-size 64 --tta flip`, calibrated on the averaged scores), scored on
//! the default engine once without and once with the flip.
//!
//! `cargo bench --bench tta` (or `make bench`) prints Markdown; without
//! `--bench` (as `cargo test` runs it) it does a tiny round.

use std::path::Path;
use std::time::Instant;

use cvtk::dataset::sample::{sample_data_dirs, SampleSource};
use cvtk::dataset::ClassificationDataset;
use cvtk::model::{
    compile, Architecture, BaseModel, EngineChoice, Featurizer, Scorer, SvmClassifier, SvmParams, TtaMode,
};

/// Writes `per_label` images of each label of `source` under `dir/{train,test}/LABEL/`,
/// the first fifth of each label into train.
fn write(source: SampleSource, data: &Path, dir: &Path, per_label: usize) -> anyhow::Result<()> {
    let names = source.class_names();
    let mut seen = vec![0usize; names.len()];
    for (label, img) in source.load(data)? {
        let i = seen[label as usize];
        if i >= per_label {
            continue;
        }
        seen[label as usize] += 1;
        let part = if i < per_label / 5 { "train" } else { "test" };
        let folder = dir.join(part).join(&names[label as usize]);
        std::fs::create_dir_all(&folder)?;
        img.save(folder.join(format!("{i:05}.png")))?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let per_label = if full { 500 } else { 25 };
    let base = BaseModel::resolve(Architecture::EfficientnetLite0, None, false)?;
    println!("| data | test images | accuracy, no TTA | accuracy, flip | change (points) | scoring s, no TTA | scoring s, flip | cost |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, source) in [("MNIST digits (mnist-5k)", "mnist-5k"), ("Fashion-MNIST (test set)", "fashion-mnist-test")]
    {
        let source = SampleSource::from_name(source)?;
        let Some(data) = source.find(&sample_data_dirs()) else {
            println!(
                "| {name} | not measured: not installed here (`apt-get install dataset-fashion-mnist`) | | | | | | |"
            );
            continue;
        };
        let tmp = tempfile::tempdir()?;
        write(source, &data, tmp.path(), per_label)?;
        let train = ClassificationDataset::open(tmp.path().join("train"))?;
        let test = ClassificationDataset::open(tmp.path().join("test"))?;
        let featurizer = Featurizer::new(&base, Some(64), tch::Device::Cpu)?.compile(EngineChoice::Auto)?;
        let svm = SvmClassifier::fit_with(featurizer, &train, &SvmParams::default(), TtaMode::Flip)?;
        let mut row = Vec::new();
        for mode in [TtaMode::None, TtaMode::Flip] {
            let scorer = compile(&svm, EngineChoice::Auto)?.with_tta(mode);
            let start = Instant::now();
            let accuracy = scorer.score_dataset(&test, 32)?.accuracy();
            row.push((accuracy, start.elapsed().as_secs_f64()));
        }
        let ((a0, s0), (a1, s1)) = (row[0], row[1]);
        println!(
            "| {name} | {} | {:.2}% | {:.2}% | {:+.2} | {s0:.1} | {s1:.1} | {:.2}x |",
            test.len(),
            100.0 * a0,
            100.0 * a1,
            100.0 * (a1 - a0),
            s1 / s0
        );
    }
    Ok(())
}

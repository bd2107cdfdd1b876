//! The data audit on real digits, against cleanlab on scikit-learn's
//! out-of-fold probabilities.
//!
//! The data: MNIST's 5,000 digits (mnist-5k) with 10% of the labels flipped
//! at random to another label (seeded), and 200 of the unflipped digits
//! copied in again resized to 40 pixels and re-encoded as JPEG.
//!
//! - cvtk: `DatasetAudit::run` (EfficientNet-Lite0 features on the default
//!   engine, 5-fold cross-fitted logistic regression, confident learning; outliers,
//!   duplicates, quality too), timed featurizing included and again with
//!   every feature cached.
//! - the peer: cleanlab 2.9's `find_label_issues` (default filter) on
//!   out-of-fold probabilities from scikit-learn's `LogisticRegression`
//!   (`cross_val_predict`, 5 folds) on the same features, timed from the
//!   features (it does not featurize).
//!
//! Printed: precision and recall of the flagged labels against the flips,
//! each side's time, the near-duplicate recall (copies found in a set with
//! their original), then the time of the audit's feature-space steps
//! (cross-fitting, confident learning, the exact neighbour search and what
//! uses it) and the process's peak memory meanwhile, on 5k, 20k, 50k and
//! 200k rows of synthetic cached features.
//!
//! `cargo bench --bench audit` (or `make bench`) prints Markdown; without
//! `--bench` (as `cargo test` runs it) it does a tiny round.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use cvtk::audit::crossfit::{out_of_sample_probabilities, LogisticParams};
use cvtk::audit::neighbours::search;
use cvtk::audit::outliers::{neighbour_votes, outlier_scores};
use cvtk::audit::{label_issues, AuditOptions, DatasetAudit, FeatureCache};
use cvtk::dataset::sample::SampleSource;
use cvtk::dataset::ClassificationDataset;
use cvtk::model::{Architecture, BaseModel, EngineChoice, Featurizer};
use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The file names of the flipped digits, and (copy, original) per copy.
type Planted = (HashSet<String>, Vec<(String, String)>);

/// Writes the digits with flipped labels and resized JPEG copies into
/// `dir/LABEL/`.
fn write_digits(root: &Path, dir: &Path, per_class: usize, copies: usize) -> anyhow::Result<Planted> {
    let digits = SampleSource::from_name("mnist-5k")?.load(&root.join("sample_data/downloads"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut seen = [0usize; 10];
    let (mut flipped, mut unflipped) = (HashSet::new(), Vec::new());
    for (i, (label, img)) in digits.into_iter().enumerate() {
        if seen[label as usize] >= per_class {
            continue;
        }
        seen[label as usize] += 1;
        // Named by position alone: a name that began with the true label
        // would sort each folder's flipped digits together, and a peer that
        // folds the images in order would hold them out together.
        let name = format!("{i:05}.png");
        let given = if rng.random_bool(0.1) {
            flipped.insert(name.clone());
            (label + rng.random_range(1..10)) % 10
        } else {
            unflipped.push((name.clone(), label, img.clone()));
            label
        };
        std::fs::create_dir_all(dir.join(given.to_string()))?;
        img.save(dir.join(given.to_string()).join(&name))?;
    }
    unflipped.shuffle(&mut rng);
    let mut pairs = Vec::new();
    for (name, label, img) in unflipped.into_iter().take(copies) {
        let copy = format!("copy_{}.jpg", name.trim_end_matches(".png"));
        let big = image::imageops::resize(&img, 40, 40, image::imageops::FilterType::Triangle);
        let mut file = std::fs::File::create(dir.join(label.to_string()).join(&copy))?;
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, 85).encode_image(&big)?;
        pairs.push((copy, name));
    }
    Ok((flipped, pairs))
}

/// Resets the process's peak resident memory (Linux's `/proc/self/clear_refs`),
/// so that [`memory_mb`]`("VmHWM")` reads the peak since now.
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's resident memory in MB, where the system says it: now
/// (`VmRSS`) or its peak (`VmHWM`).
fn memory_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 =
        line.trim_start_matches(field).trim_start_matches(':').trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

fn name_of(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// (precision, recall) of `flagged` against `truth`.
fn precision_recall(flagged: &HashSet<String>, truth: &HashSet<String>) -> (f64, f64) {
    let hits = flagged.intersection(truth).count() as f64;
    (hits / flagged.len().max(1) as f64, hits / truth.len().max(1) as f64)
}

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (per_class, copies, sizes) =
        if full { (500, 200, vec![5_000, 20_000, 50_000, 200_000]) } else { (30, 10, vec![500]) };
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("digits");
    let (flipped, pairs) = write_digits(root, &data, per_class, copies)?;
    let dataset = ClassificationDataset::open(&data)?;
    let n = dataset.len();

    let base = BaseModel::resolve(Architecture::EfficientnetLite0, None, false)?;
    let options = AuditOptions { cache: Some(FeatureCache::new(tmp.path().join("cache"))), ..AuditOptions::default() };
    let start = Instant::now();
    let featurizer = Featurizer::new(&base, None, tch::Device::Cpu)?.compile(EngineChoice::Auto)?;
    let audit = DatasetAudit::run(&dataset, &featurizer, &options)?;
    let cold = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let featurizer = Featurizer::new(&base, None, tch::Device::Cpu)?.compile(EngineChoice::Auto)?;
    let again = DatasetAudit::run(&dataset, &featurizer, &options)?;
    let warm = start.elapsed().as_secs_f64();
    if again.label_issues != audit.label_issues || again.features.computed != 0 {
        bail!("the cached audit differs from the first");
    }

    // The peer, on the same features (from the cache) and labels.
    let (features, _) = options.cache.as_ref().context("cache")?.features(&featurizer, &dataset, 32)?;
    let labels: Vec<u8> = dataset.images().iter().map(|i| i.label() as u8).collect();
    std::fs::write(tmp.path().join("x.bin"), features.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    std::fs::write(tmp.path().join("y.bin"), &labels)?;
    let args = [tmp.path().to_string_lossy().into_owned(), n.to_string(), features.ncols().to_string()];
    let peer = common::python_peer(root, "audit_cleanlab.py", &args, None)?;
    let peer_flagged: HashSet<String> = peer["flagged"]
        .as_array()
        .context("flagged")?
        .iter()
        .filter_map(|i| i.as_u64())
        .map(|i| name_of(&dataset.images()[i as usize].path))
        .collect();
    let ours: HashSet<String> = audit.label_issues.iter().map(|i| name_of(&i.path)).collect();
    let (p, r) = precision_recall(&ours, &flipped);
    let (pp, pr) = precision_recall(&peer_flagged, &flipped);
    let peer_s = peer["seconds"].as_f64().context("seconds")?;
    if ours.is_empty() || peer_flagged.is_empty() {
        bail!("implausible: cvtk flagged {}, cleanlab {}", ours.len(), peer_flagged.len());
    }
    let found_copies = pairs
        .iter()
        .filter(|(copy, original)| {
            audit.duplicates.iter().any(|d| {
                let names: Vec<String> = d.images.iter().map(|m| name_of(&m.image.path)).collect();
                names.contains(copy) && names.contains(original)
            })
        })
        .count();

    println!(
        "{n} MNIST digits (mnist-5k, {per_class} per label), {} labels flipped at random (10%), {} digits copied in \
         resized to 40 px as JPEG\n",
        flipped.len(),
        pairs.len()
    );
    println!("| | flagged | precision | recall | seconds |");
    println!("|---|---|---|---|---|");
    println!("| cvtk audit, featurizing included | {} | {:.3} | {:.3} | {cold:.1} |", ours.len(), p, r);
    println!("| cvtk audit, features cached | {} | {:.3} | {:.3} | {warm:.1} |", again.label_issues.len(), p, r);
    println!(
        "| cleanlab `find_label_issues` on `LogisticRegression` out-of-fold probabilities, same features (not featurizing) | {} | {:.3} | {:.3} | {peer_s:.1} |",
        peer_flagged.len(),
        pp,
        pr
    );
    println!(
        "\nNear duplicates: {found_copies} of {} copies found in a set with their original ({:.1}%); {} sets, {} images \
         in them. Outliers {}, neighbours disagree {}, quality findings {}.\n",
        pairs.len(),
        100.0 * found_copies as f64 / pairs.len().max(1) as f64,
        audit.duplicates.len(),
        audit.duplicates.iter().map(|d| d.images.len()).sum::<usize>(),
        audit.outliers.len(),
        audit.neighbour_issues.len(),
        audit.quality.len()
    );

    // The feature-space steps alone, on cached features of growing count.
    let mb = |field: &str| memory_mb(field).map_or("n/a".to_string(), |mb| format!("{mb:.0}"));
    println!(
        "Peak memory is the whole process's (resident), {} MB before the first size's features are made (the audits \
         above, the featurizer).\n",
        mb("VmRSS")
    );
    println!(
        "| cached feature rows (1280 each) | cross-fitting + confident learning s | neighbour search + outliers + \
         neighbour vote s | total s | peak memory MB |"
    );
    println!("|---|---|---|---|---|");
    for rows in sizes {
        reset_peak_memory();
        let mut rng = ChaCha8Rng::seed_from_u64(rows as u64);
        let (k, dim) = (10, 1280);
        let centres = Array2::from_shape_fn((k, dim), |_| rng.sample::<f32, _>(rand_distr::StandardNormal));
        let y: Vec<usize> = (0..rows).map(|_| rng.random_range(0..k)).collect();
        let x = Array2::from_shape_fn((rows, dim), |(i, j)| {
            (centres[[y[i], j]] + 2.0 * rng.sample::<f32, _>(rand_distr::StandardNormal)).max(0.0)
        });
        let t = Instant::now();
        let (probs, _) = out_of_sample_probabilities(&x, &y, k, 5, &LogisticParams::default(), 0)?;
        let _ = label_issues(&y, &probs)?;
        let fit = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (nb, _) = search(x.view(), 10, 0.85, |_, _, _| false);
        let _ = outlier_scores(&nb);
        let _ = label_issues(&y, &neighbour_votes(&nb, &y, k))?;
        let knn = t.elapsed().as_secs_f64();
        println!("| {rows} | {fit:.1} | {knn:.1} | {:.1} | {} |", fit + knn, mb("VmHWM"));
    }
    Ok(())
}

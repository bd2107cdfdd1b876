//! [`DatasetSummary`]: what `cvtk dataset info` prints: images per label (and
//! per split part, when the dataset has a split) and the skipped files by kind.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::{ClassificationDataset, Skipped};

/// One label's image counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LabelCount {
    /// The label.
    pub name: String,
    /// Its images.
    pub images: usize,
    /// Of them, in the training part (with a split).
    pub train: Option<usize>,
    /// Of them, in the test part (with a split).
    pub test: Option<usize>,
}

/// How a dataset is split.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SplitSummary {
    /// The fraction asked for training.
    pub train_size: f64,
    /// Whether label proportions were kept.
    pub stratify: bool,
    /// The shuffle's seed.
    pub seed: u64,
    /// Training images.
    pub train: usize,
    /// Test images.
    pub test: usize,
}

/// A dataset's counts, skipped files and split.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetSummary<'a> {
    /// The dataset's name.
    pub name: &'a str,
    /// The folder it was scanned from, if it was.
    pub root: Option<&'a Path>,
    /// Images in all.
    pub images: usize,
    /// Per label, in label order.
    pub labels: Vec<LabelCount>,
    /// Files left out, with why.
    pub skipped: &'a [Skipped],
    /// How many were left out for each reason.
    pub skipped_by_kind: BTreeMap<&'static str, usize>,
    /// The split, if any.
    pub split: Option<SplitSummary>,
}

impl ClassificationDataset {
    /// Counts per label and split part, skipped files by kind, and the split.
    pub fn summary(&self) -> DatasetSummary<'_> {
        let counts = self.counts_per_label();
        let part_counts = |ids: &[u64]| {
            let mut c = vec![0; self.labels().len()];
            for id in ids {
                if let Some(img) = self.image(*id) {
                    c[img.label()] += 1;
                }
            }
            c
        };
        let split_counts = self.split_info().map(|s| (part_counts(&s.train), part_counts(&s.test)));
        let labels = self
            .labels()
            .iter()
            .enumerate()
            .map(|(i, l)| LabelCount {
                name: l.name.clone(),
                images: counts[i],
                train: split_counts.as_ref().map(|(tr, _)| tr[i]),
                test: split_counts.as_ref().map(|(_, te)| te[i]),
            })
            .collect();
        let mut skipped_by_kind = BTreeMap::new();
        for s in self.skipped() {
            *skipped_by_kind.entry(s.kind.as_str()).or_insert(0) += 1;
        }
        DatasetSummary {
            name: self.name(),
            root: self.root(),
            images: self.len(),
            labels,
            skipped: self.skipped(),
            skipped_by_kind,
            split: self.split_info().map(|s| SplitSummary {
                train_size: s.train_size,
                stratify: s.stratify,
                seed: s.seed,
                train: s.train.len(),
                test: s.test.len(),
            }),
        }
    }
}

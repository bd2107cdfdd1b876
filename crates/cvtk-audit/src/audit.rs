//! [`DatasetAudit`]: the findings on a dataset's images, as one library call
//! (what `cvtk audit` prints).

use std::path::PathBuf;

use cvtk_dataset::ClassificationDataset;
use cvtk_model::{Featurizer, SvmParams};
use serde::Serialize;

use crate::crossfit::{check_folds, out_of_sample_probabilities};
use crate::{label_issues, CacheUse, Error, FeatureCache, Result};

/// How an audit is run.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// Folds of the cross-fitting (at least 2). By default 5.
    pub folds: usize,
    /// The linear model fitted on each fold's features.
    pub svm: SvmParams,
    /// Seeds the folds.
    pub seed: u64,
    /// Images per featurizing batch. By default 32.
    pub batch_size: usize,
    /// Where features are kept between audits; by default none (every audit
    /// featurizes). `cvtk audit` keeps them in [`FeatureCache::in_storage`].
    pub cache: Option<FeatureCache>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions { folds: 5, svm: SvmParams::default(), seed: 0, batch_size: 32, cache: None }
    }
}

/// One image whose label is likely wrong.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageLabelIssue {
    /// The image's id in the manifest.
    pub id: u64,
    /// The image file.
    pub path: PathBuf,
    /// The label it has.
    pub given: String,
    /// The label the out-of-sample model finds most probable.
    pub suggested: String,
    /// That label's probability.
    pub suggested_probability: f64,
    /// The given label's probability (lower is worse).
    pub quality: f64,
}

/// A label's image count, and whether it has too few images to be audited,
/// learned or evaluated well.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelCount {
    /// The label.
    pub label: String,
    /// Its images.
    pub images: usize,
    /// Fewer images than folds: some folds fit without it, so its images
    /// cannot all be judged.
    pub too_few: bool,
}

/// What an audit found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetAudit {
    /// Images audited (every image not excluded).
    pub images: usize,
    /// Folds of the cross-fitting.
    pub folds: usize,
    /// The temperature that turned the out-of-fold decision values into probabilities.
    pub temperature: f32,
    /// How many images' features came from the cache (none without one).
    pub features: CacheUse,
    /// Images per label.
    pub labels: Vec<LabelCount>,
    /// Images whose labels are likely wrong, worst first.
    pub label_issues: Vec<ImageLabelIssue>,
}

impl DatasetAudit {
    /// Audits every image of `dataset`: features from `featurizer`,
    /// out-of-sample probabilities by cross-fitting a linear SVM on them, then
    /// confident learning.
    pub fn run(dataset: &ClassificationDataset, featurizer: &Featurizer, options: &AuditOptions) -> Result<Self> {
        let names = dataset.label_names();
        if names.len() < 2 {
            return Err(Error::Invalid(format!(
                "the dataset has {} label; an audit of labels needs two or more",
                names.len()
            )));
        }
        check_folds(dataset.len(), options.folds)?;
        let params = options.svm.check()?;
        let labels: Vec<usize> = dataset.images().iter().map(|i| i.label()).collect();
        let (features, cache_use) = match &options.cache {
            Some(cache) => cache.features(featurizer, dataset, options.batch_size)?,
            None => {
                (featurizer.features(dataset, options.batch_size)?, CacheUse { reused: 0, computed: dataset.len() })
            }
        };
        let (probs, temperature) =
            out_of_sample_probabilities(&features, &labels, names.len(), options.folds, &params, options.seed)?;
        let issues = label_issues(&labels, &probs)?
            .into_iter()
            .map(|issue| {
                let image = &dataset.images()[issue.index];
                ImageLabelIssue {
                    id: image.id,
                    path: image.path.clone(),
                    given: names[issue.given].clone(),
                    suggested: names[issue.suggested].clone(),
                    suggested_probability: issue.suggested_probability,
                    quality: issue.quality,
                }
            })
            .collect();
        Ok(DatasetAudit {
            images: dataset.len(),
            folds: options.folds,
            temperature,
            features: cache_use,
            labels: names
                .iter()
                .zip(&dataset.counts_per_label())
                .map(|(label, &images)| LabelCount { label: label.clone(), images, too_few: images < options.folds })
                .collect(),
            label_issues: issues,
        })
    }
}
